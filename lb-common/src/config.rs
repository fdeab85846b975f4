//! The balancer's run-time settings (`LB_CONFIG[0]`), written by lb-ctl.

/// Run-time settings of the balancer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Outer source address for IPv4 reals, network order; zero = IPv4
    /// reals unusable.
    pub src_v4: [u8; 4],
    /// Outer source address for IPv6 reals, network order; zero = IPv6
    /// reals unusable.
    pub src_v6: [u8; 16],
    /// Destination MAC of encapsulated packets when `mac_mode` is
    /// [`MAC_MODE_GATEWAY`].
    pub gateway_mac: [u8; 6],
    /// Source MAC of encapsulated packets when `mac_mode` is
    /// [`MAC_MODE_GATEWAY`] (the interface's own MAC).
    pub iface_mac: [u8; 6],
    /// Largest IP packet (outer header included) that may leave, host order;
    /// 0 = no limit. Bigger ones are dropped and counted (`drop_mtu`); with
    /// [`CONFIG_F_ICMP_TOO_BIG`] the client is told (ICMP fragmentation
    /// needed / ICMPv6 packet too big).
    pub mtu: u16,
    /// One of the `MAC_MODE_*` values.
    pub mac_mode: u8,
    pub _pad: u8,
    /// `CONFIG_F_*` bits.
    pub flags: u32,
    /// Connections each CPU may remember per second; 0 = no limit. Past
    /// it, new flows are still sent to their ring's real, only not
    /// remembered (counted in `conn_rate_limited`), so that a flood of new
    /// flows cannot push established ones out of the connection table.
    pub max_conn_rate: u32,
    /// How many low bits of the IPv4 outer source vary per flow (from the
    /// flow hash, see [`flow_source`]), so that reals whose NICs spread
    /// tunnels by outer addresses (RSS) spread lb's flows over their
    /// queues; 0 = always `src_v4`. At most 16.
    pub src_v4_flow_bits: u8,
    /// The same for the IPv6 outer source. At most 32.
    pub src_v6_flow_bits: u8,
    /// UDP destination port of GUE tunnels (reals with
    /// [`crate::maps::REAL_F_GUE`]), host order. lb-ctl always writes one
    /// (default [`DEFAULT_GUE_PORT`]); the program sends to whatever is
    /// here.
    pub gue_port: u16,
    /// Packet capture (`lb-ctl capture`): one in this many of the packets
    /// that pass the filters below is sent to `LB_CAPTURE`, with its
    /// verdict, reason, VIP and real; 0 = capture off (the program then
    /// reads nothing more than this field).
    pub capture_sample: u32,
    /// Capture only these verdicts: bit `1 << action` (XDP_DROP = 1, ...);
    /// 0 = every verdict.
    pub capture_verdicts: u32,
    /// Capture only this VIP: its id + 1; 0 = any (and packets of none).
    pub capture_vip: u32,
    /// Capture only packets sent to this real id; 0 = any.
    pub capture_real: u32,
    /// Bytes of each packet captured (from the Ethernet header), at most
    /// [`crate::capture::MAX_SNAPLEN`].
    pub capture_snaplen: u32,
    /// QUIC VIPs ([`crate::maps::VIP_F_QUIC`]): the length of the
    /// destination connection id of short-header packets (the length
    /// lb's reals' servers give the ids they issue), 1..=20.
    pub quic_cid_len: u8,
    /// Where the real's id starts in that connection id (byte offset;
    /// byte 0 is QUIC-LB's first octet by default).
    pub quic_id_offset: u8,
    /// How many bytes the real's id takes (1..=4, big-endian); offset +
    /// length is at most `quic_cid_len`.
    pub quic_id_len: u8,
    pub _pad3: u8,
}

/// The outer source of a flow whose hash is `hash`: `base` with its lowest
/// `bits` bits (at most 32) replaced by the hash's lowest bits. Shared by
/// the balancer and user space, which predicts it.
#[inline(always)]
pub fn flow_source<const N: usize>(base: [u8; N], bits: u8, hash: u32) -> [u8; N] {
    if bits == 0 || N < 4 {
        return base;
    }
    let mask = u32::MAX >> (32 - u32::from(if bits > 32 { 32 } else { bits }));
    let mut out = base;
    let tail = u32::from_be_bytes([out[N - 4], out[N - 3], out[N - 2], out[N - 1]]);
    let tail = ((tail & !mask) | (hash & mask)).to_be_bytes();
    out[N - 4] = tail[0];
    out[N - 3] = tail[1];
    out[N - 2] = tail[2];
    out[N - 1] = tail[3];
    out
}

/// lb-ctl's default [`Config::max_conn_rate`] (Katran's figure).
pub const DEFAULT_MAX_CONN_RATE: u32 = 125_000;

/// [`Config::gue_port`] unless configured: 6080, the port Katran's GUE
/// tunnels use by default, so that backends set up for it need no change.
pub const DEFAULT_GUE_PORT: u16 = 6080;

/// [`Config::quic_cid_len`] unless configured: 8 bytes, the length most
/// QUIC servers issue.
pub const DEFAULT_QUIC_CID_LEN: u8 = 8;
/// [`Config::quic_id_offset`] unless configured: after QUIC-LB's first
/// octet (config rotation and length bits).
pub const DEFAULT_QUIC_ID_OFFSET: u8 = 1;
/// [`Config::quic_id_len`] unless configured: 2 bytes, real ids up to
/// 65,535 (lb-ctl refuses QUIC VIPs when `max_reals` needs more).
pub const DEFAULT_QUIC_ID_LEN: u8 = 2;

/// Send encapsulated packets back to the MAC they came from (the router
/// that delivered them), from the MAC they were sent to. Needs no
/// configuration; right when the LB host has one upstream router.
pub const MAC_MODE_REFLECT: u8 = 0;
/// Send encapsulated packets to `gateway_mac` from `iface_mac`.
pub const MAC_MODE_GATEWAY: u8 = 1;
/// Ask the kernel's FIB (`bpf_fib_lookup`) for the next hop toward each
/// real: its MAC, our MAC, and the interface (another one: redirect). With
/// no neighbour entry yet, the packet goes through the stack, which
/// forwards it and resolves the neighbour. The lookup is a router's, so the
/// LB host must forward (`net.ipv4.ip_forward=1`,
/// `net.ipv6.conf.all.forwarding=1`); otherwise packets count as `drop_fib`.
pub const MAC_MODE_FIB: u8 = 2;

/// Answer ICMP echo requests (ping) addressed to a VIP.
pub const CONFIG_F_ICMP_ECHO: u32 = 1 << 0;
/// Answer packets over the MTU with ICMP "fragmentation needed" (IPv4, when
/// DF is set) or ICMPv6 "packet too big".
pub const CONFIG_F_ICMP_TOO_BIG: u32 = 1 << 1;

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], integers and byte arrays, no implicit padding.
unsafe impl aya::Pod for Config {}

const _: () = assert!(core::mem::size_of::<Config>() == 72);
// Each field where the XDP program reads it.
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(Config, src_v4) == 0);
    assert!(offset_of!(Config, src_v6) == 4);
    assert!(offset_of!(Config, gateway_mac) == 20);
    assert!(offset_of!(Config, iface_mac) == 26);
    assert!(offset_of!(Config, mtu) == 32);
    assert!(offset_of!(Config, mac_mode) == 34);
    assert!(offset_of!(Config, _pad) == 35);
    assert!(offset_of!(Config, flags) == 36);
    assert!(offset_of!(Config, max_conn_rate) == 40);
    assert!(offset_of!(Config, src_v4_flow_bits) == 44);
    assert!(offset_of!(Config, src_v6_flow_bits) == 45);
    assert!(offset_of!(Config, gue_port) == 46);
    assert!(offset_of!(Config, capture_sample) == 48);
    assert!(offset_of!(Config, capture_verdicts) == 52);
    assert!(offset_of!(Config, capture_vip) == 56);
    assert!(offset_of!(Config, capture_real) == 60);
    assert!(offset_of!(Config, capture_snaplen) == 64);
    assert!(offset_of!(Config, quic_cid_len) == 68);
    assert!(offset_of!(Config, quic_id_offset) == 69);
    assert!(offset_of!(Config, quic_id_len) == 70);
    assert!(offset_of!(Config, _pad3) == 71);
};
