//! How a packet is carried to its real: the encapsulation chosen once per
//! packet from the client packet's family, the real's, and whether the VIP
//! asks for GUE, and what it costs in bytes. The balancer's MTU check, its
//! ICMP "too big" answers and user space (tests, tools that explain a
//! decision) all take the overhead from here.
use crate::{FAMILY_V4, FAMILY_V6, IPV4_ENCAP_LEN, IPV6_ENCAP_LEN, stats::Counter};

/// Bytes the UDP header of a GUE tunnel adds (variant 1: the client's IP
/// packet follows it directly, with no GUE header of its own).
pub const GUE_UDP_LEN: u16 = 8;

/// An encapsulation lb sends with: IP-in-IP, or GUE (draft-ietf-intarea-gue
/// variant 1: outer IP, UDP, the client's IP packet).
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
    /// GUE: IPv4 client packet, outer IPv4 and UDP.
    Gue4in4,
    /// GUE: IPv6 client packet, outer IPv6 and UDP.
    Gue6in6,
    /// GUE: IPv4 client packet, outer IPv6 and UDP.
    Gue4in6,
    /// GUE: IPv6 client packet, outer IPv4 and UDP.
    Gue6in4,
}

impl Encap {
    /// The encapsulation of a `flow_family` packet toward a real of
    /// `real_family`, in GUE if `gue`; the drop reason when either family
    /// is neither IPv4 nor IPv6 (lb-ctl writes no such real; a bug if
    /// counted).
    #[inline(always)]
    pub const fn choose(flow_family: u8, real_family: u8, gue: bool) -> Result<Self, Counter> {
        Ok(match (flow_family, real_family, gue) {
            (FAMILY_V4, FAMILY_V4, false) => Self::Ip4in4,
            (FAMILY_V6, FAMILY_V6, false) => Self::Ip6in6,
            (FAMILY_V4, FAMILY_V6, false) => Self::Ip4in6,
            (FAMILY_V6, FAMILY_V4, false) => Self::Ip6in4,
            (FAMILY_V4, FAMILY_V4, true) => Self::Gue4in4,
            (FAMILY_V6, FAMILY_V6, true) => Self::Gue6in6,
            (FAMILY_V4, FAMILY_V6, true) => Self::Gue4in6,
            (FAMILY_V6, FAMILY_V4, true) => Self::Gue6in4,
            _ => return Err(Counter::DropFamily),
        })
    }

    /// Whether a UDP header follows the outer IP header.
    #[inline(always)]
    pub const fn gue(self) -> bool {
        matches!(
            self,
            Self::Gue4in4 | Self::Gue6in6 | Self::Gue4in6 | Self::Gue6in4
        )
    }

    /// Whether the outer header is IPv4.
    #[inline(always)]
    pub const fn outer_v4(self) -> bool {
        matches!(
            self,
            Self::Ip4in4 | Self::Ip6in4 | Self::Gue4in4 | Self::Gue6in4
        )
    }

    /// Whether the client's packet is IPv6.
    #[inline(always)]
    pub const fn inner_v6(self) -> bool {
        matches!(
            self,
            Self::Ip6in6 | Self::Ip6in4 | Self::Gue6in6 | Self::Gue6in4
        )
    }

    /// Bytes the outer headers add.
    #[inline(always)]
    pub const fn overhead(self) -> u16 {
        let ip = if self.outer_v4() {
            IPV4_ENCAP_LEN
        } else {
            IPV6_ENCAP_LEN
        };
        if self.gue() { ip + GUE_UDP_LEN } else { ip }
    }

    /// The outer IP header's protocol / next header: UDP (17) for GUE,
    /// else the client packet's (4 for IPv4, 41 for IPv6).
    #[inline(always)]
    pub const fn next_proto(self) -> u8 {
        if self.gue() {
            17
        } else if self.inner_v6() {
            41
        } else {
            4
        }
    }

    /// The largest client packet (IP length) that fits an `mtu` once
    /// encapsulated.
    #[inline(always)]
    pub const fn inner_mtu(self, mtu: u16) -> u16 {
        mtu.saturating_sub(self.overhead())
    }
}

/// The UDP source port of a GUE tunnel for a flow whose outer hash is
/// `hash`: 49152-65535 (the dynamic range, as RFC 8086 asks of UDP
/// tunnels), so that backends' NICs spread flows over their receive
/// queues (RSS hashes the UDP ports) with one outer source address.
#[inline(always)]
pub const fn gue_source_port(hash: u32) -> u16 {
    0xc000 | (hash as u16 & 0x3fff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_pair_has_its_encapsulation_and_overhead() {
        use Encap::*;
        // (flow, real, GUE) -> (encap, overhead, outer IPv4, next proto)
        for (flow, real, gue, want) in [
            (FAMILY_V4, FAMILY_V4, false, Ok((Ip4in4, 20, true, 4))),
            (FAMILY_V6, FAMILY_V6, false, Ok((Ip6in6, 40, false, 41))),
            (FAMILY_V4, FAMILY_V6, false, Ok((Ip4in6, 40, false, 4))),
            (FAMILY_V6, FAMILY_V4, false, Ok((Ip6in4, 20, true, 41))),
            (FAMILY_V4, FAMILY_V4, true, Ok((Gue4in4, 28, true, 17))),
            (FAMILY_V6, FAMILY_V6, true, Ok((Gue6in6, 48, false, 17))),
            (FAMILY_V4, FAMILY_V6, true, Ok((Gue4in6, 48, false, 17))),
            (FAMILY_V6, FAMILY_V4, true, Ok((Gue6in4, 28, true, 17))),
            (0, FAMILY_V4, false, Err(Counter::DropFamily)),
            (FAMILY_V4, 0, true, Err(Counter::DropFamily)),
        ] {
            let got = Encap::choose(flow, real, gue)
                .map(|e| (e, e.overhead(), e.outer_v4(), e.next_proto()));
            assert_eq!(got, want, "flow {flow}, real {real}, GUE {gue}");
            if let Ok(e) = Encap::choose(flow, real, gue) {
                assert_eq!(e.gue(), gue);
                assert_eq!(e.inner_v6(), flow == FAMILY_V6);
            }
        }
        assert_eq!(Ip4in6.inner_mtu(1500), 1460);
        assert_eq!(Ip4in4.inner_mtu(1500), 1480);
        assert_eq!(Ip6in4.inner_mtu(1500), 1480);
        assert_eq!(Gue4in4.inner_mtu(1500), 1472);
        assert_eq!(Gue6in6.inner_mtu(1500), 1452);
        assert_eq!(Ip6in6.inner_mtu(10), 0);
    }

    #[test]
    fn gue_source_ports_stay_in_the_dynamic_range_and_follow_the_hash() {
        let mut seen = [false; 0x4000];
        for hash in (0..0x40000u32).map(|i| i.wrapping_mul(0x9e37_79b9)) {
            let port = gue_source_port(hash);
            assert!(port >= 49152, "{port}");
            seen[usize::from(port - 49152)] = true;
        }
        assert!(seen.iter().all(|&s| s), "every port of the range is used");
        assert_eq!(gue_source_port(0x1234_5678), 0xc000 | 0x1678);
    }
}
