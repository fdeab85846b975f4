//! The state file: the VIPs as last changed through the control API or a
//! reload, so that API changes survive a restart. In fleet mode the same
//! file format is the last known good state (LKG): the VIPs of the last
//! store revision applied, with that revision. Written atomically
//! (temporary file, fsync, rename, fsync of the directory).
use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::config::VipConfig;

/// The file's format version.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    /// The fleet store's revision these VIPs are (fleet mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fleet_revision: Option<i64>,
    vips: Vec<VipConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the state file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the state file {} is not valid (fix or remove it: without it, the config file's VIPs are used): {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("cannot write the state file {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The VIPs of a state file and the fleet revision they are (fleet mode).
pub type Saved = (Vec<VipConfig>, Option<i64>);

/// The VIPs in the state file, or `None` if there is no file.
pub fn load(path: &Path) -> Result<Option<Vec<VipConfig>>, StateError> {
    Ok(load_with_revision(path)?.map(|(vips, _)| vips))
}

/// The VIPs in the state file and the fleet revision they are, or `None`
/// if there is no file.
pub fn load_with_revision(path: &Path) -> Result<Option<Saved>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let file: StateFile = serde_json::from_str(&text).map_err(|e| StateError::Invalid {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if file.version != VERSION {
        return Err(StateError::Invalid {
            path: path.to_owned(),
            reason: format!("version {} (this lb-ctl writes {VERSION})", file.version),
        });
    }
    Ok(Some((file.vips, file.fleet_revision)))
}

/// Replaces the state file with `vips`, atomically.
pub fn save(path: &Path, vips: &[VipConfig]) -> Result<(), StateError> {
    save_with_revision(path, vips, None)
}

/// Replaces the state file with `vips` of fleet revision `revision`,
/// atomically.
pub fn save_with_revision(
    path: &Path,
    vips: &[VipConfig],
    fleet_revision: Option<i64>,
) -> Result<(), StateError> {
    let err = |source| StateError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("state".into(), |n| n.to_string_lossy())
    ));
    let json = serde_json::to_vec_pretty(&StateFile {
        version: VERSION,
        fleet_revision,
        vips: vips.to_vec(),
    })
    .expect("VIP configs serialize");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(&json).map_err(err)?;
    f.write_all(b"\n").map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Check, RealConfig};

    #[test]
    fn saved_state_loads_back_and_garbage_is_refused() {
        let dir = std::env::temp_dir().join(format!("lb-state-test-{}", std::process::id()));
        let path = dir.join("state.json");
        assert!(load(&path).unwrap().is_none(), "no file: no state");
        let vips = vec![VipConfig {
            address: "203.0.113.10".parse().unwrap(),
            port: 80,
            protocol: crate::vocab::Proto::Tcp,
            ring_size: 13,
            no_conn_table: false,
            quic: true,
            encap: crate::vocab::Encapsulation::Gue,
            health: Check::none(),
            min_healthy: 1,
            communities: Some(vec!["65001:100".parse().unwrap()]),
            med: Some(5),
            reals: vec![RealConfig {
                address: "192.0.2.18".parse().unwrap(),
                weight: 2,
                health: None,
                encap: Some(crate::vocab::Encapsulation::Ipip),
            }],
        }];
        save(&path, &vips).unwrap();
        assert_eq!(load(&path).unwrap(), Some(vips.clone()));
        assert_eq!(
            load_with_revision(&path).unwrap(),
            Some((vips.clone(), None))
        );
        save_with_revision(&path, &vips, Some(42)).unwrap();
        assert_eq!(load_with_revision(&path).unwrap(), Some((vips, Some(42))));
        std::fs::write(&path, "{ not json").unwrap();
        assert!(matches!(load(&path), Err(StateError::Invalid { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
