//! The balancer's global counters (`LB_STATS`, per CPU): one named field per
//! counter, and a [`Counter`] number for each that is also its metric label.
//!
//! Both come from one list (the `counters!` invocation below), so the enum
//! and the struct cannot drift apart: `Counter::X as usize` is the index of
//! field `x` in [`Stats`] viewed as `[u64; Counter::COUNT]`.

/// Defines a counter enum and its per-CPU struct from one list.
macro_rules! counters {
    (
        $(#[doc = $edoc:literal])* enum $Counter:ident;
        $(#[doc = $sdoc:literal])* struct $Stats:ident;
        $( $(#[doc = $doc:literal])* $variant:ident => $field:ident, )*
    ) => {
        $(#[doc = $edoc])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $Counter {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl $Counter {
            /// Every counter, in index order.
            pub const ALL: &'static [$Counter] = &[$($Counter::$variant,)*];
            /// How many counters there are.
            pub const COUNT: usize = Self::ALL.len();

            /// The counter's name: its field in the struct and its metric label.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $Counter::$variant => stringify!($field), )*
                }
            }
        }

        $(#[doc = $sdoc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $Stats {
            $( $(#[doc = $doc])* pub $field: u64, )*
        }

        impl $Stats {
            /// The value of `counter`.
            pub const fn get(&self, counter: $Counter) -> u64 {
                match counter {
                    $( $Counter::$variant => self.$field, )*
                }
            }

            /// Adds `other` field by field.
            pub fn add(&mut self, other: &$Stats) {
                $( self.$field += other.$field; )*
            }
        }

        const _: () = assert!(core::mem::size_of::<$Stats>() == $Counter::COUNT * 8);
    };
}
pub(crate) use counters;

counters! {
    /// A balancer counter: its number is its index in [`Stats`].
    enum Counter;
    /// The balancer's counters on one CPU; sum over CPUs for the total.
    struct Stats;
    /// Verdict: passed to the stack.
    XdpPass => xdp_pass,
    /// Verdict: sent back out (encapsulated, or an ICMP answer).
    XdpTx => xdp_tx,
    /// Verdict: dropped.
    XdpDrop => xdp_drop,
    /// Verdict: aborted (a helper failed unexpectedly).
    XdpAborted => xdp_aborted,
    /// Verdict: redirected out of another interface (FIB mode).
    XdpRedirect => xdp_redirect,
    /// A flow found in the connection table with a usable real.
    ConnHit => conn_hit,
    /// A flow not in the connection table (hashed onto the ring).
    ConnMiss => conn_miss,
    /// A flow in the table whose real is gone, reused or down: hashed again.
    ConnRehash => conn_rehash,
    /// Inserting into the connection table failed (the flow is still sent).
    ConnInsertFailed => conn_insert_failed,
    /// A new flow not remembered: this CPU reached `max_conn_rate` this
    /// second (the flow is still sent).
    ConnRateLimited => conn_rate_limited,
    /// A QUIC VIP's short-header packet sent to the real its destination
    /// connection id names (after the connection table missed: conn_miss
    /// or conn_rehash counts it too).
    QuicRouted => quic_routed,
    /// A QUIC VIP's packet with no connection id to route by (a long
    /// header: Initial, 0-RTT, Handshake; or cut short): balanced as usual.
    QuicFallback => quic_fallback,
    /// A QUIC VIP's short-header packet whose connection id names no
    /// usable real of the VIP (unknown, another VIP's, down): balanced as
    /// usual.
    QuicUnknownId => quic_unknown_id,
    /// Pass: not IPv4 or IPv6 (ARP, LLDP, ...).
    PassNotIp => pass_not_ip,
    /// Pass: not addressed to a VIP.
    PassNotVip => pass_not_vip,
    /// Pass: not addressed to a VIP but sent from one: a real's reply to a
    /// client reached the LB host, which direct server return should never
    /// do (a routing mistake upstream of the reals).
    PassFromVip => pass_from_vip,
    /// Pass: cut inside the Ethernet or IP header (no VIP can be told).
    PassTruncated => pass_truncated,
    /// Pass, encapsulated: the FIB knows no MAC for the next hop yet; the
    /// stack forwards the packet and resolves it (FIB mode).
    PassFibNoNeighbour => pass_fib_no_neighbour,
    /// Drop: for a VIP address, an IP length longer than the frame, or a
    /// TCP/UDP header that does not fit inside the IP length.
    DropTruncated => drop_truncated,
    /// Drop: for a VIP address, an IP length shorter than the IP header
    /// (or an IPv4 header length below 20 bytes).
    DropMalformed => drop_malformed,
    /// Drop: for a VIP address, IPv4 with options.
    DropIpv4Options => drop_ipv4_options,
    /// Drop: for a VIP address, a fragment (IPv4 MF/offset, IPv6 fragment header).
    DropFragment => drop_fragment,
    /// Drop: for a VIP address, a protocol no VIP serves (and not ICMP).
    DropUnknownProto => drop_unknown_proto,
    /// Drop: ICMP for a VIP address that is not handled.
    DropIcmp => drop_icmp,
    /// Drop: the VIP has no ring or an empty slot (no usable real).
    DropNoReal => drop_no_real,
    /// Drop: the ring names a real slot that is unused.
    DropRealInvalid => drop_real_invalid,
    /// Drop: no outer source address configured for the real's family.
    DropNoSource => drop_no_source,
    /// Drop: the flow's or its real's family is neither IPv4 nor IPv6
    /// (lb-ctl writes no such real: a bug if it counts).
    DropFamily => drop_family,
    /// Drop: bigger than the MTU once encapsulated.
    DropMtu => drop_mtu,
    /// Drop: `bpf_xdp_adjust_head`/`tail` failed.
    DropAdjust => drop_adjust,
    /// Drop: the FIB has no route to the real (FIB mode).
    DropFib => drop_fib,
    /// ICMP echo requests to a VIP answered.
    IcmpEchoReply => icmp_echo_reply,
    /// Drop: an echo request to a VIP from a source no reply may go to
    /// (multicast, broadcast, unspecified, loopback).
    DropEchoSource => drop_echo_source,
    /// Drop: an echo request to a VIP whose ICMP checksum is wrong.
    DropEchoChecksum => drop_echo_checksum,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" sent to clients.
    IcmpTooBigSent => icmp_too_big_sent,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" about a real's
    /// reply, sent on to that real (so its path MTU discovery works).
    IcmpTooBigForwarded => icmp_too_big_forwarded,
    /// Packets that carried an 802.1Q tag.
    Vlan => vlan,
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], only u64 fields, no padding.
unsafe impl aya::Pod for Stats {}
