//! How a packet is carried to its real: the encapsulation chosen once per
//! packet from the client packet's family and the real's, and what it
//! costs in bytes. The balancer's MTU check, its ICMP "too big" answers and
//! user space (tests, tools that explain a decision) all take the overhead
//! from here.
use crate::{FAMILY_V4, FAMILY_V6, IPV4_ENCAP_LEN, IPV6_ENCAP_LEN, stats::Counter};

/// An encapsulation lb sends with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encap {
    /// IPv4 client packet in an outer IPv4 header (protocol 4).
    Ip4in4,
    /// IPv6 client packet in an outer IPv6 header (next header 41).
    Ip6in6,
    /// IPv4 client packet in an outer IPv6 header (next header 4).
    Ip4in6,
    /// IPv6 client packet in an outer IPv4 header (protocol 41, as in
    /// RFC 4213's configured tunnels): an IPv6 VIP's IPv4-only real.
    Ip6in4,
}

impl Encap {
    /// The encapsulation of a `flow_family` packet toward a real of
    /// `real_family`; the drop reason when either family is neither IPv4
    /// nor IPv6 (lb-ctl writes no such real; a bug if counted).
    #[inline(always)]
    pub const fn choose(flow_family: u8, real_family: u8) -> Result<Self, Counter> {
        match (flow_family, real_family) {
            (FAMILY_V4, FAMILY_V4) => Ok(Self::Ip4in4),
            (FAMILY_V6, FAMILY_V6) => Ok(Self::Ip6in6),
            (FAMILY_V4, FAMILY_V6) => Ok(Self::Ip4in6),
            (FAMILY_V6, FAMILY_V4) => Ok(Self::Ip6in4),
            _ => Err(Counter::DropFamily),
        }
    }

    /// Bytes the outer header adds.
    #[inline(always)]
    pub const fn overhead(self) -> u16 {
        match self {
            Self::Ip4in4 | Self::Ip6in4 => IPV4_ENCAP_LEN,
            Self::Ip6in6 | Self::Ip4in6 => IPV6_ENCAP_LEN,
        }
    }

    /// Whether the outer header is IPv4.
    #[inline(always)]
    pub const fn outer_v4(self) -> bool {
        matches!(self, Self::Ip4in4 | Self::Ip6in4)
    }

    /// The outer header's protocol / next header: what it carries.
    #[inline(always)]
    pub const fn inner_proto(self) -> u8 {
        match self {
            Self::Ip4in4 | Self::Ip4in6 => 4,
            Self::Ip6in6 | Self::Ip6in4 => 41,
        }
    }

    /// The largest client packet (IP length) that fits an `mtu` once
    /// encapsulated.
    #[inline(always)]
    pub const fn inner_mtu(self, mtu: u16) -> u16 {
        mtu.saturating_sub(self.overhead())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_pair_has_its_encapsulation_and_overhead() {
        for (flow, real, want) in [
            (FAMILY_V4, FAMILY_V4, Ok((Encap::Ip4in4, 20, true, 4))),
            (FAMILY_V6, FAMILY_V6, Ok((Encap::Ip6in6, 40, false, 41))),
            (FAMILY_V4, FAMILY_V6, Ok((Encap::Ip4in6, 40, false, 4))),
            (FAMILY_V6, FAMILY_V4, Ok((Encap::Ip6in4, 20, true, 41))),
            (0, FAMILY_V4, Err(Counter::DropFamily)),
            (FAMILY_V4, 0, Err(Counter::DropFamily)),
        ] {
            let got =
                Encap::choose(flow, real).map(|e| (e, e.overhead(), e.outer_v4(), e.inner_proto()));
            assert_eq!(got, want, "flow {flow}, real {real}");
        }
        assert_eq!(Encap::Ip4in6.inner_mtu(1500), 1460);
        assert_eq!(Encap::Ip4in4.inner_mtu(1500), 1480);
        assert_eq!(Encap::Ip6in4.inner_mtu(1500), 1480);
        assert_eq!(Encap::Ip6in6.inner_mtu(10), 0);
    }
}
