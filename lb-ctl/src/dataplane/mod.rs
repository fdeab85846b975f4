//! The balancer in the kernel, as user space drives it: load the program
//! with its maps (pinned under a bpffs directory if asked, adopting maps
//! already pinned there), fill VIPs, reals and rings, read counters.
//!
//! A pinned map is adopted only if it has this build's layout (see
//! [`crate::pins`]); otherwise it is created afresh: counters,
//! configuration and the connection table alone; the VIP and real maps all
//! together, and the connections with them, so that no connection points
//! at an id that now means something else.
//!
//! This is the mechanism; which ids VIPs and reals get, and what rings hold,
//! is decided above (the controller) or by tests.
mod conns;
mod counters;
mod entries;
mod ring;

use std::{
    collections::HashMap as StdHashMap,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, HashMap, MapData, MapError, PerCpuArray, ProgramArray},
    programs::Xdp,
};
pub use conns::{ConnCounts, ConnTables};
use lb_common::{
    DEFAULT_CONN_TABLE_SIZE, DEFAULT_CONN_TABLE_SIZE_V6, MAX_REALS, MAX_VIPS,
    config::Config,
    maps::{AddrKey, Conn, FlowKey, JUMP_ICMP_TOO_BIG, Real, Traffic, VipKey, VipMeta, names},
    stats::Stats,
};
pub use ring::{Ring, RingError};

use crate::{
    pins::{self, PinSet, PinsError, Replaced},
    programs::{self, Program, ProgramsError},
};

/// The VIP and real maps: a changed one replaces them all, and the
/// connection table.
const VIP_STATE: [&str; 6] = [
    names::VIPS,
    names::VIP_ADDRS,
    names::VIP_FILTER,
    names::VIP_GENS,
    names::REALS,
    names::RINGS,
];

/// How to load the balancer.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// IPv4 connection table entries.
    pub conn_table_size: u32,
    /// IPv6 connection table entries.
    pub conn_table_size_v6: u32,
    /// Slots of the real table and of its counters.
    pub max_reals: u32,
    /// Pin (or adopt) every map under this bpffs directory.
    pub pin_dir: Option<PathBuf>,
    /// Another build of the balancer object (the data-plane benchmark runs
    /// another revision's beside this one); `None`: the one this binary
    /// carries ([`programs::OBJECT`]). Its maps must have this build's
    /// layouts.
    pub object: Option<std::sync::Arc<[u8]>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            conn_table_size: DEFAULT_CONN_TABLE_SIZE,
            conn_table_size_v6: DEFAULT_CONN_TABLE_SIZE_V6,
            max_reals: MAX_REALS,
            pin_dir: None,
            object: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("failed to load the balancer object")]
    Load(#[source] aya::EbpfError),
    #[error(transparent)]
    Program(#[from] ProgramsError),
    #[error("checking the pinned maps")]
    Pins(#[from] PinsError),
    #[error("counting the possible CPUs")]
    Cpus(#[source] std::io::Error),
    #[error("the object has no map `{0}`")]
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
    #[error("VIP id {0} is outside 0..{MAX_VIPS}")]
    VipId(u32),
    #[error("real id {0} is outside 1..{1}")]
    RealId(u32, u32),
    #[error("VIP id {0} has no ring")]
    NoRing(u32),
    #[error("ring of VIP id {vip_id}")]
    Ring {
        vip_id: u32,
        #[source]
        source: RingError,
    },
}

type Result<T, E = DataplaneError> = std::result::Result<T, E>;

fn map_err(name: &'static str, what: &'static str) -> impl FnOnce(MapError) -> DataplaneError {
    move |source| DataplaneError::Map { name, what, source }
}

/// The loaded balancer: its program and typed handles on its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    /// `LB_JUMP`: held so that its entries live as long as the balancer.
    _jump: ProgramArray<MapData>,
    /// Pinned maps of another layout that this load created afresh.
    replaced: Vec<Replaced>,
    vips: HashMap<MapData, VipKey, VipMeta>,
    vip_addrs: HashMap<MapData, AddrKey, u32>,
    vip_filter: Array<MapData, u32>,
    vip_gens: Array<MapData, u32>,
    reals: Array<MapData, Real>,
    /// `LB_RINGS`, kept as the generic map so its fd is at hand (aya's
    /// typed handle has no delete).
    rings_outer: aya::maps::Map,
    rings: StdHashMap<u32, Ring>,
    conns: ConnTables,
    config: Array<MapData, Config>,
    stats: PerCpuArray<MapData, Stats>,
    vip_stats: PerCpuArray<MapData, Traffic>,
    real_stats: PerCpuArray<MapData, Traffic>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("rings", &self.rings.len())
            .finish()
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map> {
    ebpf.take_map(name).ok_or(DataplaneError::MissingMap(name))
}

impl Dataplane {
    /// Loads the balancer program and creates (or adopts pinned) maps.
    pub fn load(opts: &LoadOptions) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(names::CONNS_V4, opts.conn_table_size);
        loader.map_max_entries(names::CONNS_V6, opts.conn_table_size_v6);
        loader.map_max_entries(names::REALS, opts.max_reals);
        loader.map_max_entries(names::REAL_STATS, opts.max_reals);
        let object = opts.object.as_deref().unwrap_or(programs::OBJECT);
        let mut replaced = Vec::new();
        let mut retired_flows = Vec::new();
        let pins: Vec<(&'static str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
                    path: dir.clone(),
                    source,
                })?;
                // A perf event array has one entry per possible CPU, set by
                // the loader (the object says 0).
                let cpus = aya::util::nr_cpus()
                    .map_err(|(_, source)| DataplaneError::Cpus(source))?
                    as u32;
                let set = PinSet {
                    names: &names::ALL,
                    entries: &[
                        (names::CONNS_V4, opts.conn_table_size),
                        (names::CONNS_V6, opts.conn_table_size_v6),
                        (names::REALS, opts.max_reals),
                        (names::REAL_STATS, opts.max_reals),
                        (names::CAPTURE, cpus),
                    ],
                    together: &VIP_STATE,
                    with_them: &[names::CONNS_V4, names::CONNS_V6],
                    retired: &names::RETIRED,
                };
                let limit = opts.conn_table_size as usize + opts.conn_table_size_v6 as usize;
                retired_flows = conns::read_retired(dir, limit);
                replaced = pins::unpin_stale(dir, object, &set)?;
                names::ALL.iter().map(|n| (*n, dir.join(n))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader.load(object).map_err(DataplaneError::Load)?;
        programs::load(&mut ebpf, Program::Balance)?;
        // The balancer's tail calls. A pinned `LB_JUMP` of an earlier run
        // still points at that run's program: replace it with this one.
        programs::load(&mut ebpf, Program::IcmpTooBig)?;
        let mut jump = ProgramArray::try_from(take(&mut ebpf, names::JUMP)?)
            .map_err(map_err(names::JUMP, "type"))?;
        let too_big = ebpf
            .program(Program::IcmpTooBig.symbol())
            .expect("loaded above")
            .fd()
            .map_err(|source| ProgramsError::Load {
                name: Program::IcmpTooBig.symbol(),
                source,
            })?;
        jump.set(JUMP_ICMP_TOO_BIG, too_big, 0)
            .map_err(map_err(names::JUMP, "write"))?;

        let vips = HashMap::try_from(take(&mut ebpf, names::VIPS)?)
            .map_err(map_err(names::VIPS, "type"))?;
        let vip_addrs = HashMap::try_from(take(&mut ebpf, names::VIP_ADDRS)?)
            .map_err(map_err(names::VIP_ADDRS, "type"))?;
        let vip_filter = Array::try_from(take(&mut ebpf, names::VIP_FILTER)?)
            .map_err(map_err(names::VIP_FILTER, "type"))?;
        let vip_gens = Array::try_from(take(&mut ebpf, names::VIP_GENS)?)
            .map_err(map_err(names::VIP_GENS, "type"))?;
        let reals = Array::try_from(take(&mut ebpf, names::REALS)?)
            .map_err(map_err(names::REALS, "type"))?;
        let rings_outer = take(&mut ebpf, names::RINGS)?;
        ArrayOfMaps::<_, MapData>::try_from(&rings_outer).map_err(map_err(names::RINGS, "type"))?;
        let conns = ConnTables::new(
            take(&mut ebpf, names::CONNS_V4)?,
            take(&mut ebpf, names::CONNS_V6)?,
        )
        .map_err(|(name, e)| map_err(name, "type")(e))?;
        let config = Array::try_from(take(&mut ebpf, names::CONFIG)?)
            .map_err(map_err(names::CONFIG, "type"))?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, names::STATS)?)
            .map_err(map_err(names::STATS, "type"))?;
        let vip_stats = PerCpuArray::try_from(take(&mut ebpf, names::VIP_STATS)?)
            .map_err(map_err(names::VIP_STATS, "type"))?;
        let real_stats = PerCpuArray::try_from(take(&mut ebpf, names::REAL_STATS)?)
            .map_err(map_err(names::REAL_STATS, "type"))?;
        let mut dp = Dataplane {
            ebpf,
            _jump: jump,
            replaced,
            vips,
            vip_addrs,
            vip_filter,
            vip_gens,
            reals,
            rings_outer,
            rings: StdHashMap::new(),
            conns,
            config,
            stats,
            vip_stats,
            real_stats,
        };
        dp.adopt_rings()?;
        dp.carry_over(retired_flows);
        Ok(dp)
    }

    /// Writes the flows of an earlier version's connection table into this
    /// one's, unless the VIP state was created afresh (then their ids mean
    /// nothing). Flows that version remembers from now until this program
    /// replaces it are not carried (Maglev still sends most to their real).
    fn carry_over(&mut self, flows: Vec<(FlowKey, Conn)>) {
        if flows.is_empty() || self.replaced.iter().any(|r| VIP_STATE.contains(&r.name)) {
            return;
        }
        let (mut carried, mut failed) = (0usize, 0usize);
        for (flow, conn) in &flows {
            match self.remember(flow, *conn) {
                Ok(()) => carried += 1,
                Err(_) => failed += 1,
            }
        }
        tracing::info!(
            carried,
            failed,
            "connections of the earlier version's table carried over"
        );
    }

    /// Picks up rings already referenced by `LB_RINGS` (pinned maps of an
    /// earlier run), so that they are updated in place, not replaced.
    fn adopt_rings(&mut self) -> Result<()> {
        let metas: Vec<VipMeta> = self
            .vips
            .iter()
            .filter_map(|r| r.ok())
            .map(|(_, m)| m)
            .collect();
        for meta in metas {
            let outer = ArrayOfMaps::<_, MapData>::try_from(&self.rings_outer)
                .map_err(map_err(names::RINGS, "type"))?;
            let map: MapData = match outer.get(&meta.vip_id, 0) {
                Ok(m) => m,
                Err(MapError::KeyNotFound) => continue,
                Err(e) => return Err(map_err(names::RINGS, "read")(e)),
            };
            let ring =
                Ring::from_map(map, meta.ring_size).map_err(|source| DataplaneError::Ring {
                    vip_id: meta.vip_id,
                    source,
                })?;
            self.rings.insert(meta.vip_id, ring);
        }
        Ok(())
    }

    /// The balancer program (loaded), to attach or run with `TestRun`.
    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(Program::Balance.symbol())
            .expect("loaded in Dataplane::load")
            .try_into()
            .expect("an XDP program")
    }

    /// The pinned maps this load did not adopt (another layout), and why.
    pub fn replaced_pins(&self) -> &[Replaced] {
        &self.replaced
    }

    /// The underlying object (other programs, e.g. for benchmarks).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    pub fn set_config(&mut self, config: &Config) -> Result<()> {
        self.config
            .set(0, config, 0)
            .map_err(map_err(names::CONFIG, "write"))
    }

    pub fn config(&self) -> Result<Config> {
        self.config
            .get(&0, 0)
            .map_err(map_err(names::CONFIG, "read"))
    }
}

/// Whether `path` holds a pinned balancer (its VIP map).
pub fn is_pinned(pin_dir: &Path) -> bool {
    pin_dir.join(names::VIPS).exists()
}
