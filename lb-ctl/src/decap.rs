//! The backends' decapsulator as user space drives it: load `lb_decap`
//! with its maps (pinned and adopted under a bpffs directory if asked, if
//! their layout is this build's: see [`crate::pins`]), say
//! which local addresses tunnels are opened for, read its counters.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    programs::Xdp,
};
use lb_common::{
    decap::{DecapStats, names},
    maps::AddrKey,
};

use crate::{
    pins::{self, PinSet, PinsError},
    programs::{self, Program, ProgramsError},
};

/// Where the decapsulator pins its maps unless told otherwise.
pub const DEFAULT_DECAP_PIN_DIR: &str = "/sys/fs/bpf/lb-decap";

#[derive(Debug, thiserror::Error)]
pub enum DecapError {
    #[error("failed to load the decapsulator object")]
    Load(#[source] aya::EbpfError),
    #[error(transparent)]
    Program(#[from] ProgramsError),
    #[error("checking the pinned maps")]
    Pins(#[from] PinsError),
    #[error("the decapsulator object has no map `{0}`")]
    MissingMap(&'static str),
    #[error("map `{name}`: {what}")]
    Map {
        name: &'static str,
        what: &'static str,
        #[source]
        source: MapError,
    },
    #[error("failed to create the pin directory {}", path.display())]
    PinDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn map_err(name: &'static str, what: &'static str) -> impl FnOnce(MapError) -> DecapError {
    move |source| DecapError::Map { name, what, source }
}

/// The loaded decapsulator.
pub struct Decapsulator {
    ebpf: Ebpf,
    addrs: HashMap<MapData, AddrKey, u32>,
    gue: Array<MapData, u32>,
    stats: PerCpuArray<MapData, DecapStats>,
}

impl Decapsulator {
    /// Loads `lb_decap`; with `pin_dir`, its maps are pinned there (or the
    /// ones already pinned there adopted).
    pub fn load(pin_dir: Option<&Path>) -> Result<Self, DecapError> {
        let mut loader = EbpfLoader::new();
        if let Some(dir) = pin_dir {
            std::fs::create_dir_all(dir).map_err(|source| DecapError::PinDir {
                path: dir.to_owned(),
                source,
            })?;
            // Both maps are filled by whoever attaches: either may be
            // replaced alone.
            let set = PinSet {
                names: &names::ALL,
                entries: &[],
                together: &[],
                with_them: &[],
                retired: &[],
            };
            pins::unpin_stale(dir, programs::DECAP_OBJECT, &set)?;
            for name in names::ALL {
                loader.map_pin_path(name, dir.join(name));
            }
        }
        let mut ebpf = loader
            .load(programs::DECAP_OBJECT)
            .map_err(DecapError::Load)?;
        programs::load(&mut ebpf, Program::Decap)?;
        let addrs = ebpf
            .take_map(names::ADDRS)
            .ok_or(DecapError::MissingMap(names::ADDRS))?;
        let addrs = HashMap::try_from(addrs).map_err(map_err(names::ADDRS, "type"))?;
        let stats = ebpf
            .take_map(names::STATS)
            .ok_or(DecapError::MissingMap(names::STATS))?;
        let stats = PerCpuArray::try_from(stats).map_err(map_err(names::STATS, "type"))?;
        let gue = ebpf
            .take_map(names::GUE)
            .ok_or(DecapError::MissingMap(names::GUE))?;
        let gue = Array::try_from(gue).map_err(map_err(names::GUE, "type"))?;
        Ok(Decapsulator {
            ebpf,
            addrs,
            gue,
            stats,
        })
    }

    /// The program (loaded), to attach or run with `TestRun`.
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(Program::Decap.symbol())
            .expect("loaded in Decapsulator::load")
            .try_into()
            .expect("an XDP program")
    }

    /// Opens GUE tunnels that come to UDP port `port` (0: GUE off; only
    /// IP-in-IP is opened).
    pub fn set_gue_port(&mut self, port: u16) -> Result<(), DecapError> {
        self.gue
            .set(0, u32::from(port), 0)
            .map_err(map_err(names::GUE, "write"))
    }

    /// The UDP port GUE tunnels are opened on (0: off).
    pub fn gue_port(&self) -> Result<u16, DecapError> {
        let port = self.gue.get(&0, 0).map_err(map_err(names::GUE, "read"))?;
        Ok(port as u16)
    }

    /// Opens tunnels addressed to `addr`.
    pub fn add_address(&mut self, addr: IpAddr) -> Result<(), DecapError> {
        self.addrs
            .insert(AddrKey::new(addr), 1, 0)
            .map_err(map_err(names::ADDRS, "write"))
    }

    /// Stops opening tunnels addressed to `addr`.
    pub fn remove_address(&mut self, addr: IpAddr) -> Result<(), DecapError> {
        match self.addrs.remove(&AddrKey::new(addr)) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::ADDRS, "remove")(e)),
        }
    }

    /// The addresses tunnels are opened for.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.addrs
            .keys()
            .filter_map(Result::ok)
            .filter_map(|k| lb_common::maps::addr_from_bytes(&k.addr, k.family))
            .collect()
    }

    /// The counters, summed over CPUs.
    pub fn stats(&self) -> Result<DecapStats, DecapError> {
        sum_stats(&self.stats)
    }
}

fn sum_stats(map: &PerCpuArray<MapData, DecapStats>) -> Result<DecapStats, DecapError> {
    let per_cpu = map.get(&0, 0).map_err(map_err(names::STATS, "read"))?;
    let mut total = DecapStats::default();
    per_cpu.iter().for_each(|s| total.add(s));
    Ok(total)
}

/// The counters of a decapsulator pinned under `pin_dir`, without loading
/// anything.
pub fn pinned_stats(pin_dir: &Path) -> Result<DecapStats, DecapError> {
    let data =
        MapData::from_pin(pin_dir.join(names::STATS)).map_err(map_err(names::STATS, "open pin"))?;
    let map = PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data))
        .map_err(map_err(names::STATS, "type"))?;
    sum_stats(&map)
}

/// Removes the decapsulator's map pins under `pin_dir` (the maps go when
/// nothing else holds them).
pub fn unpin_maps(pin_dir: &Path) {
    for name in names::ALL {
        let _ = std::fs::remove_file(pin_dir.join(name));
    }
}
