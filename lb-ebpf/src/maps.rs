//! The maps of the XDP programs. Keys and values come from `lb-common`;
//! lb-ctl pins every balancer map under its bpffs directory by these names.
use aya_ebpf::{
    btf_maps::{
        Array, ArrayOfMaps, HashMap, LruHashMap, PerCpuArray, PerfEventArray, ProgramArray,
    },
    macros::btf_map,
};
use lb_common::{
    DEFAULT_CONN_TABLE_SIZE, DEFAULT_CONN_TABLE_SIZE_V6, MAX_REALS, MAX_VIPS, RING_MAP_FLAGS,
    RING_TEMPLATE_SIZE,
    config::Config,
    hash::VIP_FILTER_SLOTS,
    maps::{AddrKey, Conn, ConnRate, FlowKey, FlowKeyV4, Real, Traffic, VipKey, VipMeta},
    stats::Stats,
};

use crate::fib::CachedHop;

const MAX_VIPS_N: usize = MAX_VIPS as usize;
const MAX_REALS_N: usize = MAX_REALS as usize;
const NO_COMMON_LRU: usize = lb_common::BPF_F_NO_COMMON_LRU as usize;

/// VIP (address, port, protocol) -> its id, ring size and flags.
#[btf_map]
pub static LB_VIPS: HashMap<VipKey, VipMeta, MAX_VIPS_N> = HashMap::new();

/// Address -> number of VIPs on it: tells "for a VIP address" for packets
/// without a usable port (ICMP, fragments, options, truncated).
#[btf_map]
pub static LB_VIP_ADDRS: HashMap<AddrKey, u32, MAX_VIPS_N> = HashMap::new();

/// Filter slot of an address -> how many VIP addresses fall in it; zero
/// means "certainly not a VIP" at the cost of one array read.
#[btf_map]
pub static LB_VIP_FILTER: Array<u32, { VIP_FILTER_SLOTS as usize }> = Array::new();

/// VIP id -> its generation; a connection is used only while its VIP id
/// has the generation the connection recorded.
#[btf_map]
pub static LB_VIP_GENS: Array<u32, MAX_VIPS_N> = Array::new();

/// Real id -> real (address, state, generation).
#[btf_map]
pub static LB_REALS: Array<Real, MAX_REALS_N> = Array::new();

/// VIP id -> its Maglev ring: an array of real ids of any prime size
/// (created by lb-ctl; the template's size is only nominal).
#[btf_map]
pub static LB_RINGS: ArrayOfMaps<
    Array<u32, { RING_TEMPLATE_SIZE as usize }, { RING_MAP_FLAGS as usize }>,
    MAX_VIPS_N,
> = ArrayOfMaps::new();

/// The IPv4 connection table: flow -> real, keyed by 16 bytes. Size set by
/// lb-ctl at load.
#[btf_map]
pub static LB_CONNS_V4: LruHashMap<
    FlowKeyV4,
    Conn,
    { DEFAULT_CONN_TABLE_SIZE as usize },
    NO_COMMON_LRU,
> = LruHashMap::new();

/// The IPv6 connection table: flow -> real. Size set by lb-ctl at load.
#[btf_map]
pub static LB_CONNS_V6: LruHashMap<
    FlowKey,
    Conn,
    { DEFAULT_CONN_TABLE_SIZE_V6 as usize },
    NO_COMMON_LRU,
> = LruHashMap::new();

/// Connections remembered on this CPU in the current second (for
/// `Config::max_conn_rate`), at index 0.
#[btf_map]
pub static LB_CONN_RATE: PerCpuArray<ConnRate, 1> = PerCpuArray::new();

/// Programs the balancer tail-calls: [`JUMP_ICMP_TOO_BIG`] is
/// `lb_icmp_too_big` (set by lb-ctl when it loads the balancer).
#[btf_map]
pub static LB_JUMP: ProgramArray<1> = ProgramArray::new();

/// The slot of `lb_icmp_too_big` in [`LB_JUMP`].
pub const JUMP_ICMP_TOO_BIG: u32 = lb_common::maps::JUMP_ICMP_TOO_BIG;

/// Run-time settings, at index 0.
#[btf_map]
pub static LB_CONFIG: Array<Config, 1> = Array::new();

/// Global counters per CPU, at index 0.
#[btf_map]
pub static LB_STATS: PerCpuArray<Stats, 1> = PerCpuArray::new();

/// Per-VIP traffic per CPU, by VIP id.
#[btf_map]
pub static LB_VIP_STATS: PerCpuArray<Traffic, MAX_VIPS_N> = PerCpuArray::new();

/// Per-real traffic per CPU, by real id.
#[btf_map]
pub static LB_REAL_STATS: PerCpuArray<Traffic, MAX_REALS_N> = PerCpuArray::new();

/// FIB mode: the next hop of each real slot, per CPU, for
/// `fib::NEXT_HOP_TTL_NS`. The program's own; lb-ctl never reads it.
#[btf_map]
pub static LB_NEXT_HOPS: PerCpuArray<CachedHop, MAX_REALS_N> = PerCpuArray::new();

/// Captured packets (`lb-ctl capture`): a perf buffer per CPU.
#[btf_map]
pub static LB_CAPTURE: PerfEventArray = PerfEventArray::new();
