//! Which pinned maps a new load may adopt.
//!
//! aya adopts any map pinned under a map's name, whatever its layout. A map
//! pinned by another lb-ctl version (a counter added, the configuration
//! grown) or with another size (`conn_table_size` changed) would then be
//! used as if it were this build's: the verifier refuses the program, or
//! worse, accepts it. So before loading, every pinned map is compared with
//! this build's definition (type, key and value size, entries, flags), and
//! one that differs is unpinned, to be created afresh: alone, or with a
//! group of maps whose contents only make sense together (the balancer's
//! VIP and real maps, and with them the connections). Maps an earlier
//! version pinned and this one no longer has are unpinned too.
//!
//! The program still attached keeps the maps it holds until it is replaced.
use std::path::Path;

use aya::maps::{MapInfo, MapType};

/// The maps of one object pinned in one directory, and how they go.
pub(crate) struct PinSet<'a> {
    /// Every map the object pins.
    pub names: &'a [&'static str],
    /// Maps whose entries are set at load, not by the object: (name, entries).
    pub entries: &'a [(&'static str, u32)],
    /// If any of these is replaced, `with_them` are replaced too.
    pub together: &'a [&'static str],
    pub with_them: &'a [&'static str],
    /// Maps earlier versions pinned that this object no longer has: their
    /// pins are removed, so that their memory is freed once no program
    /// holds them.
    pub retired: &'a [&'static str],
}

/// A pinned map that was not adopted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced {
    pub name: &'static str,
    pub why: String,
}

/// This build's definition of a map.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    map_type: Option<MapType>,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    flags: u32,
}

impl Layout {
    fn of_object(map: &aya_obj::Map) -> Self {
        Layout {
            map_type: map_type(map.map_type()),
            key_size: map.key_size(),
            value_size: map.value_size(),
            max_entries: map.max_entries(),
            flags: map.map_flags(),
        }
    }

    fn of_pin(info: &MapInfo) -> Self {
        Layout {
            map_type: info.map_type().ok(),
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
            flags: info.map_flags(),
        }
    }

    /// How `pinned` differs from this layout, if it does.
    fn differences(&self, pinned: &Layout) -> Option<String> {
        let mut d = Vec::new();
        if self.map_type != pinned.map_type {
            d.push(format!(
                "type {:?}, now {:?}",
                pinned.map_type, self.map_type
            ));
        }
        for (what, was, now) in [
            ("key size", pinned.key_size, self.key_size),
            ("value size", pinned.value_size, self.value_size),
            ("entries", pinned.max_entries, self.max_entries),
            ("flags", pinned.flags, self.flags),
        ] {
            if was != now {
                d.push(format!("{what} {was}, now {now}"));
            }
        }
        (!d.is_empty()).then(|| d.join(", "))
    }
}

fn map_type(raw: u32) -> Option<MapType> {
    let raw = aya_obj::generated::bpf_map_type::try_from(raw).ok()?;
    MapType::try_from(raw).ok()
}

/// Compares the maps of `set` pinned under `dir` with `object`'s
/// definitions and unpins those that may not be adopted. Returns what was
/// unpinned.
pub(crate) fn unpin_stale(
    dir: &Path,
    object: &[u8],
    set: &PinSet<'_>,
) -> Result<Vec<Replaced>, PinsError> {
    let obj = aya_obj::Object::parse(object).map_err(|e| PinsError::Object(e.to_string()))?;
    let mut stale: Vec<Replaced> = Vec::new();
    for &name in set.names {
        let path = dir.join(name);
        if !path.exists() {
            continue;
        }
        let def = obj.maps.get(name).ok_or(PinsError::NotInObject(name))?;
        let mut want = Layout::of_object(def);
        if let Some((_, n)) = set.entries.iter().find(|(m, _)| *m == name) {
            want.max_entries = *n;
        }
        let why = match MapInfo::from_pin(&path) {
            Ok(info) => want.differences(&Layout::of_pin(&info)),
            Err(e) => Some(format!("not readable as a map ({e})")),
        };
        if let Some(why) = why {
            stale.push(Replaced { name, why });
        }
    }
    if let Some(first) = stale
        .iter()
        .find(|r| set.together.contains(&r.name))
        .cloned()
    {
        for &name in set.together.iter().chain(set.with_them) {
            if !stale.iter().any(|r| r.name == name) && dir.join(name).exists() {
                stale.push(Replaced {
                    name,
                    why: format!("replaced with {} (its layout changed)", first.name),
                });
            }
        }
    }
    for r in &stale {
        let path = dir.join(r.name);
        std::fs::remove_file(&path).map_err(|source| PinsError::Unpin {
            name: r.name,
            source,
        })?;
        tracing::warn!(map = r.name, why = %r.why, "pinned map not adopted: created afresh");
    }
    let retired = set.retired.iter().filter(|n| dir.join(n).exists());
    for &name in retired {
        std::fs::remove_file(dir.join(name)).map_err(|source| PinsError::Unpin { name, source })?;
        tracing::warn!(
            map = name,
            "pinned map of an earlier version unpinned: no longer used"
        );
        stale.push(Replaced {
            name,
            why: "no longer used by this version".to_owned(),
        });
    }
    Ok(stale)
}

#[derive(Debug, thiserror::Error)]
pub enum PinsError {
    #[error("cannot parse the embedded object's maps: {0}")]
    Object(String),
    #[error("the object has no map `{0}`")]
    NotInObject(&'static str),
    #[error("cannot unpin the stale map `{name}`")]
    Unpin {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}
