//! The backends' decapsulator: a tunnel packet (IPv4-in-IPv4, IPv6-in-IPv6,
//! IPv4-in-IPv6, IPv6-in-IPv4, or GUE: UDP to the configured port with the
//! client's IP packet right after the UDP header) addressed to one of this
//! host's local addresses loses its outer headers and goes to the stack as
//! the client's packet, to the VIP on `lo`. Everything else passes
//! untouched.
use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, HashMap, PerCpuArray},
    helpers::generated::bpf_xdp_adjust_head,
    macros::btf_map,
    programs::XdpContext,
};
use lb_common::{
    FAMILY_V4, FAMILY_V6,
    decap::{DecapCounter, DecapStats, MAX_DECAP_ADDRS},
    maps::AddrKey,
};

use lb_ebpf::{
    headers::*,
    l2::{parse_l2, save_l2, write_l2},
};

/// Local addresses: tunnels to these are opened.
#[btf_map]
pub static LB_DECAP_ADDRS: HashMap<AddrKey, u32, { MAX_DECAP_ADDRS as usize }> = HashMap::new();

/// The UDP port of GUE tunnels (host order) at index 0; 0 = GUE off.
#[btf_map]
pub static LB_DECAP_GUE: Array<u32, 1> = Array::new();

/// Counters per CPU, at index 0.
#[btf_map]
pub static LB_DECAP_STATS: PerCpuArray<DecapStats, 1> = PerCpuArray::new();

#[inline(always)]
fn count(counter: DecapCounter) {
    let raw = counter as u32;
    // SAFETY: reading a local; volatile keeps the bound check below (see
    // the balancer's stats::count).
    let index = unsafe { core::ptr::read_volatile(&raw) } as usize;
    if index >= DecapCounter::COUNT {
        return;
    }
    if let Some(stats) = LB_DECAP_STATS.get_ptr_mut(0) {
        // SAFETY: DecapStats is COUNT u64s in counter order; this CPU's slot.
        unsafe { *stats.cast::<u64>().add(index) += 1 };
    }
}

/// Decapsulates, or passes untouched; counts the verdict and the reason.
#[inline(always)]
pub fn decap(ctx: &XdpContext) -> u32 {
    let (action, reason) = try_decap(ctx);
    count(reason);
    count(if action == xdp_action::XDP_DROP {
        DecapCounter::XdpDrop
    } else {
        DecapCounter::XdpPass
    });
    action
}

/// The outer header of a tunnel packet to us.
struct Outer {
    /// Bytes to strip.
    len: usize,
    /// The inner packet's IP version as announced by the outer header.
    inner_v6: bool,
    /// GUE: the version comes from the inner header itself.
    gue: bool,
}

/// For a UDP packet whose header is at `udp_off`: whether it is GUE (to
/// the configured port), and the inner IP version it carries, read from
/// the inner header's first nibble (None: neither 4 nor 6, or cut).
/// `Err` = not GUE (another port, GUE off, or the UDP header cut).
#[inline(always)]
fn gue_inner(ctx: &XdpContext, udp_off: usize) -> Result<Option<bool>, DecapCounter> {
    let port = match LB_DECAP_GUE.get(0) {
        Some(&p) if p != 0 => p,
        _ => return Err(DecapCounter::PassNotTunnel),
    };
    let Some(udp) = ptr_at::<UdpHdr>(ctx, udp_off) else {
        return Err(DecapCounter::PassTruncated);
    };
    // SAFETY: checked by ptr_at.
    if u32::from(u16::from_be(unsafe { (*udp).dst })) != port {
        return Err(DecapCounter::PassNotTunnel);
    }
    let Some(first) = ptr_at::<u8>(ctx, udp_off + UDP_LEN) else {
        return Ok(None);
    };
    // SAFETY: checked by ptr_at.
    Ok(match unsafe { *first } >> 4 {
        4 => Some(false),
        6 => Some(true),
        _ => None,
    })
}

#[inline(always)]
fn is_local(family: u8, dst: &[u8; 16]) -> bool {
    let key = AddrKey {
        addr: *dst,
        family,
        _pad: [0; 3],
    };
    // SAFETY: only tested for presence.
    unsafe { LB_DECAP_ADDRS.get(key) }.is_some()
}

#[inline(always)]
fn try_decap(ctx: &XdpContext) -> (u32, DecapCounter) {
    const PASS: u32 = xdp_action::XDP_PASS;
    let Some((proto, l2)) = parse_l2(ctx) else {
        return (PASS, DecapCounter::PassTruncated);
    };
    let outer = match proto {
        ETH_P_IP => {
            let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, l2.l3_off) else {
                return (PASS, DecapCounter::PassTruncated);
            };
            // SAFETY: checked by ptr_at.
            let ip = unsafe { &*ip };
            let proto = ip.proto;
            if proto != IPPROTO_IPIP && proto != IPPROTO_IPV6 && proto != IPPROTO_UDP {
                return (PASS, DecapCounter::PassNotTunnel);
            }
            // Options or fragments: leave it to the stack.
            if ip.version_ihl != 0x45 || u16::from_be(ip.frag_off) & 0x3fff != 0 {
                return (PASS, DecapCounter::PassNotTunnel);
            }
            let dst = v4_in_16(ip.dst);
            let (gue, inner_v6) = if proto == IPPROTO_UDP {
                match gue_inner(ctx, l2.l3_off + IPV4_LEN) {
                    Ok(v6) => (true, v6),
                    Err(reason) => return (PASS, reason),
                }
            } else {
                (false, Some(proto == IPPROTO_IPV6))
            };
            if !is_local(FAMILY_V4, &dst) {
                return (PASS, DecapCounter::PassNotLocal);
            }
            let Some(inner_v6) = inner_v6 else {
                return (xdp_action::XDP_DROP, DecapCounter::DropBadInner);
            };
            Outer {
                len: IPV4_LEN + if gue { UDP_LEN } else { 0 },
                inner_v6,
                gue,
            }
        }
        ETH_P_IPV6 => {
            let Some(ip) = ptr_at::<Ipv6Hdr>(ctx, l2.l3_off) else {
                return (PASS, DecapCounter::PassTruncated);
            };
            // SAFETY: checked by ptr_at.
            let ip = unsafe { &*ip };
            let next = ip.next_hdr;
            if next != IPPROTO_IPIP && next != IPPROTO_IPV6 && next != IPPROTO_UDP {
                return (PASS, DecapCounter::PassNotTunnel);
            }
            let (gue, inner_v6) = if next == IPPROTO_UDP {
                match gue_inner(ctx, l2.l3_off + IPV6_LEN) {
                    Ok(v6) => (true, v6),
                    Err(reason) => return (PASS, reason),
                }
            } else {
                (false, Some(next == IPPROTO_IPV6))
            };
            if !is_local(FAMILY_V6, &ip.dst) {
                return (PASS, DecapCounter::PassNotLocal);
            }
            let Some(inner_v6) = inner_v6 else {
                return (xdp_action::XDP_DROP, DecapCounter::DropBadInner);
            };
            Outer {
                len: IPV6_LEN + if gue { UDP_LEN } else { 0 },
                inner_v6,
                gue,
            }
        }
        _ => return (PASS, DecapCounter::PassNotIp),
    };
    // The inner header must be there and of the version announced.
    let inner_off = l2.l3_off + outer.len;
    let inner_ok = if outer.inner_v6 {
        ptr_at::<Ipv6Hdr>(ctx, inner_off)
            // SAFETY: checked by ptr_at.
            .is_some_and(|h| unsafe { (*h).vtc_flow.to_le_bytes()[0] } >> 4 == 6)
    } else {
        ptr_at::<Ipv4Hdr>(ctx, inner_off)
            // SAFETY: checked by ptr_at.
            .is_some_and(|h| unsafe { (*h).version_ihl } >> 4 == 4)
    };
    if !inner_ok {
        return (xdp_action::XDP_DROP, DecapCounter::DropBadInner);
    }
    let Some(saved) = save_l2(ctx, l2) else {
        return (PASS, DecapCounter::PassTruncated);
    };
    // SAFETY: a positive delta shrinks the front; pointers are re-derived.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, outer.len as i32) } != 0 {
        return (xdp_action::XDP_DROP, DecapCounter::DropAdjust);
    }
    let outer_v6 = proto == ETH_P_IPV6;
    let (ethertype, reason) = match (outer.gue, outer_v6, outer.inner_v6) {
        (false, false, false) => (ETH_P_IP, DecapCounter::DecapIpip),
        (false, false, true) => (ETH_P_IPV6, DecapCounter::DecapIp6ip),
        (false, true, false) => (ETH_P_IP, DecapCounter::DecapIpip6),
        (false, true, true) => (ETH_P_IPV6, DecapCounter::DecapIp6ip6),
        (true, false, v6) => (
            if v6 { ETH_P_IPV6 } else { ETH_P_IP },
            DecapCounter::DecapGue,
        ),
        (true, true, v6) => (
            if v6 { ETH_P_IPV6 } else { ETH_P_IP },
            DecapCounter::DecapGue6,
        ),
    };
    if write_l2(ctx, &saved, saved.dst, saved.src, ethertype).is_none() {
        return (xdp_action::XDP_DROP, DecapCounter::DropAdjust);
    }
    (PASS, reason)
}
