//! The decapsulator's counters (`LB_DECAP_STATS`, per CPU). Its map of
//! local addresses (`LB_DECAP_ADDRS`) is keyed by [`crate::maps::AddrKey`];
//! `LB_DECAP_GUE` holds the UDP port GUE tunnels come to (0: GUE off).
//!
//! | map | kind | key -> value |
//! |---|---|---|
//! | `LB_DECAP_ADDRS` | hash, 64 | [`crate::maps::AddrKey`] -> `u32` (1) |
//! | `LB_DECAP_GUE` | array[1] | `u32`: the GUE port, host order; 0 = off |
//! | `LB_DECAP_STATS` | per-CPU array[1] | [`DecapStats`] |

/// How many local addresses the decapsulator accepts tunnels for.
pub const MAX_DECAP_ADDRS: u32 = 64;

/// Names of the decapsulator's maps (also their pin file names).
pub mod names {
    pub const ADDRS: &str = "LB_DECAP_ADDRS";
    pub const GUE: &str = "LB_DECAP_GUE";
    pub const STATS: &str = "LB_DECAP_STATS";
    pub const ALL: [&str; 3] = [ADDRS, GUE, STATS];
}

crate::stats::counters! {
    /// A decapsulator counter: its number is its index in [`DecapStats`].
    enum DecapCounter;
    /// The decapsulator's counters on one CPU.
    struct DecapStats;
    /// Verdict: passed to the stack (decapsulated or untouched).
    XdpPass => xdp_pass,
    /// Verdict: dropped.
    XdpDrop => xdp_drop,
    /// Decapsulated IPv4-in-IPv4.
    DecapIpip => decap_ipip,
    /// Decapsulated IPv6-in-IPv6.
    DecapIp6ip6 => decap_ip6ip6,
    /// Decapsulated IPv4-in-IPv6.
    DecapIpip6 => decap_ipip6,
    /// Decapsulated IPv6-in-IPv4.
    DecapIp6ip => decap_ip6ip,
    /// Decapsulated GUE over IPv4 (either inner family).
    DecapGue => decap_gue,
    /// Decapsulated GUE over IPv6 (either inner family).
    DecapGue6 => decap_gue6,
    /// Pass, untouched: not IPv4 or IPv6.
    PassNotIp => pass_not_ip,
    /// Pass, untouched: not a tunnel (or an outer header with options or
    /// fragmented, which the stack handles; or UDP to another port than
    /// the GUE port, or with GUE off).
    PassNotTunnel => pass_not_tunnel,
    /// Pass, untouched: a tunnel packet for another address.
    PassNotLocal => pass_not_local,
    /// Pass, untouched: cut inside the outer headers.
    PassTruncated => pass_truncated,
    /// Drop: a tunnel to us whose inner header is cut or of the wrong IP
    /// version (for GUE: neither 4 nor 6, e.g. a variant-0 GUE header,
    /// which lb never sends).
    DropBadInner => drop_bad_inner,
    /// Drop: `bpf_xdp_adjust_head` failed.
    DropAdjust => drop_adjust,
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], only u64 fields, no padding.
unsafe impl aya::Pod for DecapStats {}
