//! Map keys and values of the balancer.
//!
//! | map | kind | key -> value |
//! |---|---|---|
//! | `LB_VIPS` | hash | [`VipKey`] -> [`VipMeta`] |
//! | `LB_VIP_ADDRS` | hash | [`AddrKey`] -> `u32` (VIPs on that address) |
//! | `LB_VIP_FILTER` | array | [`crate::hash::vip_filter_slot`] -> `u32` (VIP addresses in the slot) |
//! | `LB_VIP_GENS` | array | VIP id -> its generation (bumped when the id changes hands or its VIP goes) |
//! | `LB_REALS` | array | real id -> [`Real`] |
//! | `LB_RINGS` | array of maps | VIP id -> ring (array of real ids) |
//! | `LB_CONNS_V4` | LRU hash | [`FlowKeyV4`] -> [`Conn`] (IPv4 flows) |
//! | `LB_CONNS_V6` | LRU hash | [`FlowKey`] -> [`Conn`] (IPv6 flows) |
//! | `LB_CONN_RATE` | per-CPU array[1] | [`ConnRate`] |
//! | `LB_JUMP` | program array | [`JUMP_ICMP_TOO_BIG`] -> `lb_icmp_too_big` |
//! | `LB_CONFIG` | array[1] | [`crate::config::Config`] |
//! | `LB_STATS` | per-CPU array[1] | [`crate::stats::Stats`] |
//! | `LB_VIP_STATS` | per-CPU array | VIP id -> [`Traffic`] |
//! | `LB_REAL_STATS` | per-CPU array | real id -> [`Traffic`] |
//! | `LB_NEXT_HOPS` | per-CPU array[16384] | real id -> the FIB's next hop, kept 100 ms (the program's own type; not pinned) |

/// Names of the balancer's maps in the object (also their pin file names).
pub mod names {
    pub const VIPS: &str = "LB_VIPS";
    pub const VIP_ADDRS: &str = "LB_VIP_ADDRS";
    pub const VIP_FILTER: &str = "LB_VIP_FILTER";
    pub const VIP_GENS: &str = "LB_VIP_GENS";
    pub const JUMP: &str = "LB_JUMP";
    pub const REALS: &str = "LB_REALS";
    pub const RINGS: &str = "LB_RINGS";
    pub const CONNS_V4: &str = "LB_CONNS_V4";
    pub const CONNS_V6: &str = "LB_CONNS_V6";
    pub const CONN_RATE: &str = "LB_CONN_RATE";
    pub const CONFIG: &str = "LB_CONFIG";
    pub const STATS: &str = "LB_STATS";
    pub const VIP_STATS: &str = "LB_VIP_STATS";
    pub const REAL_STATS: &str = "LB_REAL_STATS";
    pub const CAPTURE: &str = "LB_CAPTURE";
    /// Every balancer map, for pinning and adoption.
    pub const ALL: [&str; 15] = [
        VIPS, VIP_ADDRS, VIP_FILTER, VIP_GENS, JUMP, REALS, RINGS, CONNS_V4, CONNS_V6, CONN_RATE,
        CONFIG, STATS, VIP_STATS, REAL_STATS, CAPTURE,
    ];
    /// The one connection table of both families ([`super::FlowKey`] ->
    /// [`super::Conn`]) of versions before `LB_CONNS_V4` and `LB_CONNS_V6`.
    pub const RETIRED_CONNS: &str = "LB_CONNS";
    /// Maps earlier versions pinned that this one no longer has (removed
    /// from the pin directory at load).
    pub const RETIRED: [&str; 1] = [RETIRED_CONNS];
}

/// A VIP: destination address, port and protocol. A port-less VIP (all
/// ports of the address for that protocol) has `port` 0.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipKey {
    /// Network order; IPv4 in the first 4 bytes, the rest zero.
    pub addr: [u8; 16],
    /// Host order; 0 = every port.
    pub port: u16,
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`].
    pub family: u8,
}

/// What the balancer knows of a VIP.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VipMeta {
    /// Index into `LB_RINGS` and `LB_VIP_STATS`.
    pub vip_id: u32,
    /// The VIP's ring size M (prime); the ring slot is `flow_hash % M`.
    pub ring_size: u32,
    /// [`VIP_F_*`](VIP_F_NO_CONN_TABLE) bits.
    pub flags: u32,
    /// The VIP id's generation (as in `LB_VIP_GENS`) when this VIP got it;
    /// connections remember it, so they die with their VIP.
    pub generation: u32,
}

/// One CPU's count of connections remembered in the current second,
/// against [`crate::config::Config::max_conn_rate`]: past the limit, new
/// flows are still sent to their ring's real but not remembered, so that a
/// flood of new flows (a SYN flood) cannot push established ones out of
/// the LRU connection table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnRate {
    /// When the current one-second window began (`bpf_ktime_get_ns`).
    pub window_start_ns: u64,
    /// Connections remembered on this CPU since `window_start_ns`.
    pub remembered: u32,
    pub _pad: u32,
}

/// The slot of `lb_icmp_too_big` in `LB_JUMP` (the balancer's tail calls).
pub const JUMP_ICMP_TOO_BIG: u32 = 0;

/// VIP flag: do not use the connection table for this VIP (pure Maglev:
/// every packet is hashed; flows move when reals change).
pub const VIP_F_NO_CONN_TABLE: u32 = 1 << 0;

/// VIP flag (UDP VIPs): QUIC. A short-header packet whose destination
/// connection id carries a usable real of this VIP (the layout:
/// [`crate::config::Config::quic_cid_len`] and the two fields after it)
/// goes to that real; anything else (long headers, unknown ids) is
/// balanced as usual. A connection then stays on its real when the
/// client's address or port changes.
pub const VIP_F_QUIC: u32 = 1 << 1;

/// An address and its family: the key of `LB_VIP_ADDRS` (addresses with a
/// VIP, for packets that carry no usable port: ICMP, fragments, IPv4
/// options, unknown protocols) and of `LB_DECAP_ADDRS` (the decapsulator's
/// local addresses).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrKey {
    /// Network order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`].
    pub family: u8,
    pub _pad: [u8; 3],
}

/// A real (backend) slot.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Real {
    /// Network order; IPv4 in the first 4 bytes.
    pub addr: [u8; 16],
    /// [`crate::FAMILY_V4`] or [`crate::FAMILY_V6`]; 0 = unused slot.
    pub family: u8,
    /// One of [`REAL_STATE_UP`], [`REAL_STATE_DRAINING`], [`REAL_STATE_DOWN`].
    pub state: u8,
    /// [`REAL_F_GUE`] or 0 (lb-ctl writes its VIP's choice, or the real's
    /// own, into every slot).
    pub flags: u8,
    pub _pad: u8,
    /// Bumped each time the slot is given to another real; a connection
    /// remembers the generation it was made with, so a reused slot never
    /// inherits another real's flows.
    pub generation: u32,
    /// The VIP this real serves (lb-ctl's bookkeeping: a restarted lb-ctl
    /// learns from it which slots belong to which VIP; the program does not
    /// read it).
    pub vip_id: u32,
}

/// Real flag: carry packets to this real in GUE (a UDP header between the
/// outer IP header and the client's packet, to
/// [`crate::config::Config::gue_port`]) instead of plain IP-in-IP.
pub const REAL_F_GUE: u8 = 1;

/// Real state: takes new flows (if in a ring) and keeps established ones.
pub const REAL_STATE_UP: u8 = 1;
/// Real state: keeps established flows, gets no new ones (weight 0).
pub const REAL_STATE_DRAINING: u8 = 2;
/// Real state: failed; its flows are hashed again onto the ring.
pub const REAL_STATE_DOWN: u8 = 3;

/// The IPv6 connection table's key (and the balancer's flow of either
/// family): a flow's 5-tuple as the client sent it.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Client address, network order; IPv4 in the first 4 bytes.
    pub src: [u8; 16],
    /// VIP address, network order; IPv4 in the first 4 bytes.
    pub dst: [u8; 16],
    /// Host order.
    pub sport: u16,
    /// Host order.
    pub dport: u16,
    pub proto: u8,
    pub family: u8,
    pub _pad: [u8; 2],
}

/// The IPv4 connection table's key: 16 bytes, not [`FlowKey`]'s 40, so the
/// kernel hashes and compares less than half as much on every lookup.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKeyV4 {
    /// Client address, network order.
    pub src: [u8; 4],
    /// VIP address, network order.
    pub dst: [u8; 4],
    /// Host order.
    pub sport: u16,
    /// Host order.
    pub dport: u16,
    /// The IP protocol in a whole word (three pad bytes would be zeroed
    /// by a byte-wise `memset` call in the XDP program).
    pub proto: u32,
}

/// The connection tables' value. A hit is used only while both the real
/// slot and the VIP id still have the generations recorded here, so the
/// established path needs no VIP lookup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    /// Index into `LB_REALS`.
    pub real_id: u32,
    /// The real slot's generation when the flow was pinned to it.
    pub real_generation: u32,
    /// The VIP's id (for its counters).
    pub vip_id: u32,
    /// The VIP id's generation when the flow was pinned.
    pub vip_generation: u32,
}

/// Packet and byte counts.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

impl core::ops::AddAssign for Traffic {
    fn add_assign(&mut self, o: Traffic) {
        self.packets += o.packets;
        self.bytes += o.bytes;
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all are #[repr(C)], made of integers and byte arrays, with no
    // implicit padding (checked by the size assertions below).
    unsafe impl aya::Pod for super::VipKey {}
    unsafe impl aya::Pod for super::VipMeta {}
    unsafe impl aya::Pod for super::AddrKey {}
    unsafe impl aya::Pod for super::Real {}
    unsafe impl aya::Pod for super::FlowKey {}
    unsafe impl aya::Pod for super::FlowKeyV4 {}
    unsafe impl aya::Pod for super::Conn {}
    unsafe impl aya::Pod for super::Traffic {}
    unsafe impl aya::Pod for super::ConnRate {}
}

// No implicit padding anywhere: the sizes equal the sums of the fields.
const _: () = {
    // Keys and values holding addresses are aligned (to 4; the flow key to
    // 8) so that the XDP programs copy, compare and hash addresses in words,
    // not byte by byte: rustc gives a field the alignment of its offset in
    // an aligned struct. The alignment adds no padding: map layouts stay.
    assert!(core::mem::size_of::<VipKey>() == 20);
    assert!(core::mem::size_of::<VipMeta>() == 16);
    assert!(core::mem::size_of::<AddrKey>() == 20);
    assert!(core::mem::size_of::<Real>() == 28);
    assert!(core::mem::size_of::<FlowKey>() == 40);
    assert!(core::mem::size_of::<FlowKeyV4>() == 16);
    assert!(core::mem::size_of::<Conn>() == 16);
    assert!(core::mem::size_of::<Traffic>() == 16);
    assert!(core::mem::size_of::<ConnRate>() == 16);
};

// And every field where the other side reads it: the layout is the
// contract between the XDP programs and lb-ctl (and bpftool's view).
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(VipKey, addr) == 0);
    assert!(offset_of!(VipKey, port) == 16);
    assert!(offset_of!(VipKey, proto) == 18);
    assert!(offset_of!(VipKey, family) == 19);
    assert!(offset_of!(VipMeta, vip_id) == 0);
    assert!(offset_of!(VipMeta, ring_size) == 4);
    assert!(offset_of!(VipMeta, flags) == 8);
    assert!(offset_of!(VipMeta, generation) == 12);
    assert!(offset_of!(AddrKey, addr) == 0);
    assert!(offset_of!(AddrKey, family) == 16);
    assert!(offset_of!(AddrKey, _pad) == 17);
    assert!(offset_of!(Real, addr) == 0);
    assert!(offset_of!(Real, family) == 16);
    assert!(offset_of!(Real, state) == 17);
    assert!(offset_of!(Real, flags) == 18);
    assert!(offset_of!(Real, _pad) == 19);
    assert!(offset_of!(Real, generation) == 20);
    assert!(offset_of!(Real, vip_id) == 24);
    assert!(offset_of!(FlowKey, src) == 0);
    assert!(offset_of!(FlowKey, dst) == 16);
    assert!(offset_of!(FlowKey, sport) == 32);
    assert!(offset_of!(FlowKey, dport) == 34);
    assert!(offset_of!(FlowKey, proto) == 36);
    assert!(offset_of!(FlowKey, family) == 37);
    assert!(offset_of!(FlowKey, _pad) == 38);
    assert!(offset_of!(FlowKeyV4, dst) == 4 && offset_of!(FlowKeyV4, sport) == 8);
    assert!(offset_of!(FlowKeyV4, dport) == 10 && offset_of!(FlowKeyV4, proto) == 12);
    assert!(offset_of!(Conn, real_id) == 0);
    assert!(offset_of!(Conn, real_generation) == 4);
    assert!(offset_of!(Conn, vip_id) == 8);
    assert!(offset_of!(Conn, vip_generation) == 12);
    assert!(offset_of!(Traffic, packets) == 0);
    assert!(offset_of!(Traffic, bytes) == 8);
    assert!(offset_of!(ConnRate, window_start_ns) == 0);
    assert!(offset_of!(ConnRate, remembered) == 8);
    assert!(offset_of!(ConnRate, _pad) == 12);
};

mod constructors;
pub use constructors::{addr_bytes, addr_from_bytes};
