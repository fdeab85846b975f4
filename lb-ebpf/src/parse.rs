//! Parsing: Ethernet (one optional 802.1Q tag), then IPv4 or IPv6, then the
//! ports of TCP or UDP, into the flow key the balancer looks up. Anything the
//! balancer does not forward comes back as a [`Parsed`] variant saying why,
//! so every path has its own counter.
//!
//! The parser is the one owner of well-formedness. A length field is
//! trusted only once it agrees with the header and with the frame: an IP
//! length shorter than its own header is [`Parsed::Malformed`], one longer
//! than the frame is [`Parsed::Cut`], and a transport header that does not
//! fit inside the IP length is [`Unbalanceable::TruncatedL4`], even when
//! the frame has the bytes (Ethernet padding is not payload). So a
//! [`Parsed::Flow`] and the `ip_len` of an [`Parsed::Unbalanceable`] can
//! be used without looking again.
use aya_ebpf::programs::XdpContext;
use lb_common::{FAMILY_V4, FAMILY_V6, maps::FlowKey};

use lb_ebpf::{
    headers::*,
    l2::{L2, parse_l2},
};

/// A packet's place in the balancer's world.
pub enum Parsed {
    /// A TCP or UDP packet with its flow key; `ip_len` is the IP packet's
    /// length (header included), `tos` its TOS / traffic class.
    Flow {
        l2: L2,
        flow: FlowKey,
        ip_len: u16,
        tos: u8,
    },
    /// Not IPv4 or IPv6.
    NotIp,
    /// Cut inside the Ethernet or IP header.
    Truncated,
    /// An IP length longer than the frame: the packet was cut after its IP
    /// header.
    Cut { family: u8, dst: [u8; 16] },
    /// An IP length shorter than the IP header itself (IPv4: also a header
    /// length below 20).
    Malformed { family: u8, dst: [u8; 16] },
    /// A packet to `dst` whose transport cannot be balanced: see `why`.
    /// `ip_len` (header included) agrees with the header and the frame.
    Unbalanceable {
        l2: L2,
        family: u8,
        dst: [u8; 16],
        ip_len: u16,
        why: Unbalanceable,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Unbalanceable {
    Ipv4Options,
    Fragment,
    /// ICMP or ICMPv6 (unfragmented, no options).
    Icmp,
    UnknownProto,
    /// The TCP or UDP header does not fit inside the IP length.
    TruncatedL4,
}

#[inline(always)]
pub fn parse(ctx: &XdpContext) -> Parsed {
    let Some((proto, l2)) = parse_l2(ctx) else {
        return Parsed::Truncated;
    };
    match proto {
        ETH_P_IP => parse_v4(ctx, l2),
        ETH_P_IPV6 => parse_v6(ctx, l2),
        _ => Parsed::NotIp,
    }
}

/// The smallest transport header of `proto` (TCP 20, UDP 8 bytes).
#[inline(always)]
fn l4_min_len(proto: u8) -> usize {
    if proto == IPPROTO_TCP { 20 } else { 8 }
}

#[inline(always)]
fn parse_v4(ctx: &XdpContext, l2: L2) -> Parsed {
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l2.l3_off) else {
        return Parsed::Truncated;
    };
    // SAFETY: checked by ptr_at.
    let ip = unsafe { &*ip };
    if ip.version_ihl >> 4 != 4 {
        return Parsed::NotIp;
    }
    let dst = v4_in_16(ip.dst);
    let hdr_len = usize::from(ip.version_ihl & 0x0f) * 4;
    let ip_len = u16::from_be(ip.tot_len);
    if hdr_len < IPV4_LEN || usize::from(ip_len) < hdr_len {
        return Parsed::Malformed {
            family: FAMILY_V4,
            dst,
        };
    }
    if usize::from(ip_len) > ctx.data_end() - ctx.data() - l2.l3_off {
        return Parsed::Cut {
            family: FAMILY_V4,
            dst,
        };
    }
    let why = if hdr_len != IPV4_LEN {
        Some(Unbalanceable::Ipv4Options)
    } else if u16::from_be(ip.frag_off) & 0x3fff != 0 {
        // More-fragments set or a non-zero offset.
        Some(Unbalanceable::Fragment)
    } else if ip.proto == IPPROTO_ICMP {
        Some(Unbalanceable::Icmp)
    } else if ip.proto != IPPROTO_TCP && ip.proto != IPPROTO_UDP {
        Some(Unbalanceable::UnknownProto)
    } else if usize::from(ip_len) < IPV4_LEN + l4_min_len(ip.proto) {
        Some(Unbalanceable::TruncatedL4)
    } else {
        None
    };
    if let Some(why) = why {
        return Parsed::Unbalanceable {
            l2,
            family: FAMILY_V4,
            dst,
            ip_len,
            why,
        };
    }
    // Inside the frame: ip_len fits in it and holds the ports.
    let Some(ports) = ptr_at::<Ports>(ctx, l2.l3_off + IPV4_LEN) else {
        return Parsed::Unbalanceable {
            l2,
            family: FAMILY_V4,
            dst,
            ip_len,
            why: Unbalanceable::TruncatedL4,
        };
    };
    // SAFETY: checked by ptr_at.
    let ports = unsafe { *ports };
    let src = v4_in_16(ip.src);
    Parsed::Flow {
        l2,
        flow: FlowKey {
            src,
            dst,
            sport: u16::from_be(ports.src),
            dport: u16::from_be(ports.dst),
            proto: ip.proto,
            family: FAMILY_V4,
            _pad: [0; 2],
        },
        ip_len,
        tos: ip.tos,
    }
}

#[inline(always)]
fn parse_v6(ctx: &XdpContext, l2: L2) -> Parsed {
    let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, l2.l3_off) else {
        return Parsed::Truncated;
    };
    // SAFETY: checked by ptr_at.
    let ip = unsafe { &*ip };
    let first = u32::from_be(ip.vtc_flow);
    if first >> 28 != 6 {
        return Parsed::NotIp;
    }
    // In usize: a payload length near 65535 must not wrap when the header
    // is added.
    let total = usize::from(u16::from_be(ip.payload_len)) + IPV6_LEN;
    if total > ctx.data_end() - ctx.data() - l2.l3_off {
        return Parsed::Cut {
            family: FAMILY_V6,
            dst: ip.dst,
        };
    }
    // No frame holds 64 KiB: the sum fits in u16 once it fits the frame.
    let ip_len = total as u16;
    let why = match ip.next_hdr {
        IPPROTO_TCP | IPPROTO_UDP if total < IPV6_LEN + l4_min_len(ip.next_hdr) => {
            Some(Unbalanceable::TruncatedL4)
        }
        IPPROTO_TCP | IPPROTO_UDP => None,
        IPPROTO_ICMPV6 => Some(Unbalanceable::Icmp),
        IPPROTO_FRAGMENT => Some(Unbalanceable::Fragment),
        // Other extension headers and protocols: not balanced.
        _ => Some(Unbalanceable::UnknownProto),
    };
    if let Some(why) = why {
        return Parsed::Unbalanceable {
            l2,
            family: FAMILY_V6,
            dst: ip.dst,
            ip_len,
            why,
        };
    }
    let Some(ports) = ptr_at::<Ports>(ctx, l2.l3_off + IPV6_LEN) else {
        return Parsed::Unbalanceable {
            l2,
            family: FAMILY_V6,
            dst: ip.dst,
            ip_len,
            why: Unbalanceable::TruncatedL4,
        };
    };
    // SAFETY: checked by ptr_at.
    let ports = unsafe { *ports };
    Parsed::Flow {
        l2,
        flow: FlowKey {
            src: ip.src,
            dst: ip.dst,
            sport: u16::from_be(ports.src),
            dport: u16::from_be(ports.dst),
            proto: ip.next_hdr,
            family: FAMILY_V6,
            _pad: [0; 2],
        },
        ip_len,
        tos: ((first >> 20) & 0xff) as u8,
    }
}
