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
use lb_common::{
    DEFAULT_CONN_TABLE_SIZE, MAX_REALS, MAX_VIPS,
    config::Config,
    hash::vip_filter_slot,
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
    /// Connection table entries.
    pub conn_table_size: u32,
    /// Pin (or adopt) every map under this bpffs directory.
    pub pin_dir: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            conn_table_size: DEFAULT_CONN_TABLE_SIZE,
            pin_dir: None,
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
    #[error("real id {0} is outside 1..{MAX_REALS}")]
    RealId(u32),
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
    conns: HashMap<MapData, FlowKey, Conn>,
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
        loader.map_max_entries(names::CONNS, opts.conn_table_size);
        let mut replaced = Vec::new();
        let pins: Vec<(&'static str, PathBuf)> = match &opts.pin_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
                    path: dir.clone(),
                    source,
                })?;
                let set = PinSet {
                    names: &names::ALL,
                    entries: &[(names::CONNS, opts.conn_table_size)],
                    together: &VIP_STATE,
                    with_them: &[names::CONNS],
                };
                replaced = pins::unpin_stale(dir, programs::OBJECT, &set)?;
                names::ALL.iter().map(|n| (*n, dir.join(n))).collect()
            }
            None => Vec::new(),
        };
        for (name, path) in &pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .load(programs::OBJECT)
            .map_err(DataplaneError::Load)?;
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
        let conns = HashMap::try_from(take(&mut ebpf, names::CONNS)?)
            .map_err(map_err(names::CONNS, "type"))?;
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
        Ok(dp)
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

    /// Adds or replaces a VIP (its ring should be set first, to avoid
    /// drops). `meta.generation` is assigned here: kept when the VIP keeps
    /// its id and flags (a new ring size keeps its connections), bumped
    /// otherwise, so that connections made under another VIP never apply.
    pub fn set_vip(&mut self, key: VipKey, mut meta: VipMeta) -> Result<()> {
        if meta.vip_id >= MAX_VIPS {
            return Err(DataplaneError::VipId(meta.vip_id));
        }
        let old = self.vips.get(&key, 0).ok();
        meta.generation = match old {
            Some(o) if o.vip_id == meta.vip_id && o.flags == meta.flags => o.generation,
            _ => self.bump_vip_generation(meta.vip_id)?,
        };
        self.vips
            .insert(key, meta, 0)
            .map_err(map_err(names::VIPS, "write"))?;
        match old {
            None => self.adjust_addr_count(&key, 1)?,
            // The VIP moved to another id: the old id's connections die.
            Some(o) if o.vip_id != meta.vip_id => {
                self.bump_vip_generation(o.vip_id)?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Removes a VIP and ends its connections (its ring stays until
    /// [`Self::remove_ring`]).
    pub fn remove_vip(&mut self, key: &VipKey) -> Result<()> {
        let Ok(old) = self.vips.get(key, 0) else {
            return Ok(());
        };
        self.bump_vip_generation(old.vip_id)?;
        match self.vips.remove(key) {
            Ok(()) => self.adjust_addr_count(key, -1),
            Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::VIPS, "remove")(e)),
        }
    }

    /// Gives VIP id `vip_id` a new generation (never 0) and returns it.
    fn bump_vip_generation(&mut self, vip_id: u32) -> Result<u32> {
        let now = self
            .vip_gens
            .get(&vip_id, 0)
            .map_err(map_err(names::VIP_GENS, "read"))?;
        let next = now.wrapping_add(1).max(1);
        self.vip_gens
            .set(vip_id, next, 0)
            .map_err(map_err(names::VIP_GENS, "write"))?;
        Ok(next)
    }

    pub fn vips(&self) -> Result<Vec<(VipKey, VipMeta)>> {
        self.vips
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(names::VIPS, "read"))
    }

    fn adjust_addr_count(&mut self, key: &VipKey, delta: i32) -> Result<()> {
        let addr = AddrKey {
            addr: key.addr,
            family: key.family,
            _pad: [0; 3],
        };
        let now = self.vip_addrs.get(&addr, 0).unwrap_or(0);
        let next = now.saturating_add_signed(delta);
        // The filter counts addresses: it changes when an address gets its
        // first VIP or loses its last.
        if (now == 0) != (next == 0) {
            let slot = vip_filter_slot(&key.addr);
            let in_slot = self
                .vip_filter
                .get(&slot, 0)
                .map_err(map_err(names::VIP_FILTER, "read"))?;
            let in_slot = if next == 0 {
                in_slot.saturating_sub(1)
            } else {
                in_slot + 1
            };
            self.vip_filter
                .set(slot, in_slot, 0)
                .map_err(map_err(names::VIP_FILTER, "write"))?;
        }
        if next == 0 {
            match self.vip_addrs.remove(&addr) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(e) => Err(map_err(names::VIP_ADDRS, "remove")(e)),
            }
        } else {
            self.vip_addrs
                .insert(addr, next, 0)
                .map_err(map_err(names::VIP_ADDRS, "write"))
        }
    }

    /// Writes real slot `id` (1..MAX_REALS).
    pub fn set_real(&mut self, id: u32, real: &Real) -> Result<()> {
        if id == 0 || id >= MAX_REALS {
            return Err(DataplaneError::RealId(id));
        }
        self.reals
            .set(id, real, 0)
            .map_err(map_err(names::REALS, "write"))
    }

    /// Every real slot that is or was used (non-zero family or generation).
    pub fn reals(&self) -> Result<Vec<(u32, Real)>> {
        let mut out = Vec::new();
        for (id, real) in self.reals.iter().enumerate() {
            let real = real.map_err(map_err(names::REALS, "read"))?;
            if real.family != 0 || real.generation != 0 {
                out.push((id as u32, real));
            }
        }
        Ok(out)
    }

    pub fn real(&self, id: u32) -> Result<Real> {
        self.reals
            .get(&id, 0)
            .map_err(map_err(names::REALS, "read"))
    }

    /// Replaces VIP `vip_id`'s ring with `slots` (real ids; 0 = none). If a
    /// ring of that size exists it is updated in place (only differing
    /// slots are written); otherwise a new ring is made, filled, and swapped
    /// in. Returns the number of slots written.
    pub fn set_ring(&mut self, vip_id: u32, slots: &[u32]) -> Result<usize> {
        if vip_id >= MAX_VIPS {
            return Err(DataplaneError::VipId(vip_id));
        }
        let size = slots.len() as u32;
        if let Some(ring) = self.rings.get(&vip_id)
            && ring.size() == size
        {
            return Ok(ring.write_all(slots));
        }
        let ring_err = |source| DataplaneError::Ring { vip_id, source };
        let ring = Ring::create(size).map_err(ring_err)?;
        let written = ring.write_all(slots);
        ArrayOfMaps::<_, MapData>::try_from(&mut self.rings_outer)
            .map_err(map_err(names::RINGS, "type"))?
            .set(vip_id, ring.map(), 0)
            .map_err(map_err(names::RINGS, "write"))?;
        self.rings.insert(vip_id, ring);
        Ok(written)
    }

    /// Writes single slots of VIP `vip_id`'s ring: `(slot, real id)`.
    pub fn update_ring(&mut self, vip_id: u32, changes: &[(u32, u32)]) -> Result<()> {
        let ring = self
            .rings
            .get(&vip_id)
            .ok_or(DataplaneError::NoRing(vip_id))?;
        for &(slot, real) in changes {
            ring.set(slot, real);
        }
        Ok(())
    }

    /// Reads VIP `vip_id`'s ring.
    pub fn ring(&self, vip_id: u32) -> Result<Vec<u32>> {
        self.rings
            .get(&vip_id)
            .map(Ring::read)
            .ok_or(DataplaneError::NoRing(vip_id))
    }

    /// Drops VIP `vip_id`'s ring: `LB_RINGS` forgets it and its memory is
    /// freed once nothing refers to it.
    pub fn remove_ring(&mut self, vip_id: u32) -> Result<()> {
        self.rings.remove(&vip_id);
        // aya 0.14 has no delete for arrays of maps; the kernel has.
        match delete_elem(self.rings_outer_fd(), &vip_id) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(io_error) => Err(map_err(names::RINGS, "remove")(MapError::SyscallError(
                aya::sys::SyscallError {
                    call: "bpf_map_delete_elem",
                    io_error,
                },
            ))),
        }
    }

    fn rings_outer_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        match &self.rings_outer {
            aya::maps::Map::ArrayOfMaps(data) => data.fd().as_fd(),
            _ => unreachable!("LB_RINGS was checked to be an array of maps at load"),
        }
    }

    /// The connection of `flow`, if the table has it.
    pub fn conn(&self, flow: &FlowKey) -> Result<Option<Conn>> {
        match self.conns.get(flow, 0) {
            Ok(c) => Ok(Some(c)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::CONNS, "read")(e)),
        }
    }

    /// How many connections the table holds (walks it).
    pub fn conn_count(&self) -> usize {
        self.conns.keys().filter(Result::is_ok).count()
    }

    /// The global counters, summed over CPUs.
    pub fn stats(&self) -> Result<Stats> {
        let per_cpu = self
            .stats
            .get(&0, 0)
            .map_err(map_err(names::STATS, "read"))?;
        let mut total = Stats::default();
        per_cpu.iter().for_each(|s| total.add(s));
        Ok(total)
    }

    /// VIP `vip_id`'s traffic, summed over CPUs.
    pub fn vip_traffic(&self, vip_id: u32) -> Result<Traffic> {
        sum_traffic(&self.vip_stats, vip_id, names::VIP_STATS)
    }

    /// Real `real_id`'s traffic, summed over CPUs.
    pub fn real_traffic(&self, real_id: u32) -> Result<Traffic> {
        sum_traffic(&self.real_stats, real_id, names::REAL_STATS)
    }
}

/// `BPF_MAP_DELETE_ELEM` on `fd` for `key`.
fn delete_elem(fd: std::os::fd::BorrowedFd<'_>, key: &u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    /// The `bpf_attr` of the map element commands.
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
    let attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: a bpf(2) call with a valid attr of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_DELETE_ELEM,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn sum_traffic(
    map: &PerCpuArray<MapData, Traffic>,
    index: u32,
    name: &'static str,
) -> Result<Traffic> {
    let per_cpu = map.get(&index, 0).map_err(map_err(name, "read"))?;
    let mut total = Traffic::default();
    per_cpu.iter().for_each(|t| total += *t);
    Ok(total)
}

/// Whether `path` holds a pinned balancer (its VIP map).
pub fn is_pinned(pin_dir: &Path) -> bool {
    pin_dir.join(names::VIPS).exists()
}
