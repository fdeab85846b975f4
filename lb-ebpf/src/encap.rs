//! Encapsulation toward a real: IPv4-in-IPv4 (protocol 4), IPv6-in-IPv6 and
//! IPv4-in-IPv6 (next header 41 / 4). The outer header goes between the
//! Ethernet (and 802.1Q) header and the client's packet, which is left
//! byte for byte as it came. Then the MACs are set toward the next hop.
use aya_ebpf::{
    helpers::generated::{bpf_redirect, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use lb_common::{
    ENCAP_TTL, FAMILY_V4, FAMILY_V6, IPV4_ENCAP_LEN, IPV6_ENCAP_LEN,
    config::{Config, MAC_MODE_FIB, MAC_MODE_GATEWAY, flow_source},
    hash::flow_hash,
    maps::{FlowKey, Real},
    stats::Counter,
};

use lb_ebpf::{
    csum,
    headers::*,
    l2::{L2, SavedL2, save_l2, write_l2},
};

use crate::{
    fib::{self, Fib, NextHop},
    stats::Verdict,
};

/// How an encapsulated packet leaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Back out of the interface it came in on.
    Tx,
    /// Out of another interface (FIB mode).
    Redirect(u32),
    /// To the stack, which routes it and resolves the next hop's MAC (FIB
    /// mode, neighbour not known yet).
    Stack,
}

impl Forward {
    /// The program's verdict for a packet leaving this way (the reason is
    /// counted by the caller, except the stack's).
    #[inline(always)]
    pub fn verdict(self) -> Verdict {
        match self {
            Forward::Tx => Verdict::tx_only(),
            // SAFETY: a helper with no memory arguments.
            Forward::Redirect(ifindex) => Verdict {
                action: unsafe { bpf_redirect(ifindex, 0) } as u32,
                reason: None,
            },
            Forward::Stack => Verdict::pass(Counter::PassFibNoNeighbour),
        }
    }
}

/// The MACs and the way out of a packet toward `real`.
#[inline(always)]
fn next_hop(
    ctx: &XdpContext,
    saved: &SavedL2,
    real: &Real,
    cfg: &Config,
    tot_len: u16,
) -> Result<([u8; 6], [u8; 6], Forward), Counter> {
    match cfg.mac_mode {
        MAC_MODE_GATEWAY => Ok((cfg.gateway_mac, cfg.iface_mac, Forward::Tx)),
        MAC_MODE_FIB => {
            let mut hop = NextHop {
                dst_mac: [0; 6],
                src_mac: [0; 6],
                ifindex: 0,
            };
            match fib::next_hop(ctx, real, cfg, tot_len, &mut hop) {
                Fib::Found => {
                    // SAFETY: reading the context's ingress ifindex.
                    let ingress = unsafe { (*ctx.ctx).ingress_ifindex };
                    let how = if hop.ifindex == ingress {
                        Forward::Tx
                    } else {
                        Forward::Redirect(hop.ifindex)
                    };
                    Ok((hop.dst_mac, hop.src_mac, how))
                }
                // Addressed to us, so the stack takes it and forwards it.
                Fib::NoNeighbour => Ok((saved.dst, saved.src, Forward::Stack)),
                Fib::Failed => Err(Counter::DropFib),
            }
        }
        // Reflect: back to the router that delivered it.
        _ => Ok((saved.src, saved.dst, Forward::Tx)),
    }
}

/// Encapsulates the packet toward `real`. `ip_len` is the client packet's
/// length, `tos` its TOS / traffic class. An outer IPv6 header carries the
/// flow hash as its flow label, so that routers spread flows.
#[inline(always)]
pub fn encapsulate(
    ctx: &XdpContext,
    l2: L2,
    flow: &FlowKey,
    real: &Real,
    cfg: &Config,
    ip_len: u16,
    tos: u8,
) -> Result<Forward, Counter> {
    let outer_v4 = real.family == FAMILY_V4;
    if outer_v4 && flow.family == FAMILY_V6 {
        return Err(Counter::DropFamily);
    }
    let (outer_len, has_src) = if outer_v4 {
        (IPV4_ENCAP_LEN, cfg.src_v4 != [0; 4])
    } else {
        (IPV6_ENCAP_LEN, cfg.src_v6 != [0; 16])
    };
    if !has_src {
        return Err(Counter::DropNoSource);
    }
    if cfg.mtu != 0 && u32::from(ip_len) + u32::from(outer_len) > u32::from(cfg.mtu) {
        return Err(Counter::DropMtu);
    }
    let Some(saved) = save_l2(ctx, l2) else {
        return Err(Counter::DropTruncated);
    };
    let (dst_mac, src_mac, how) = next_hop(ctx, &saved, real, cfg, ip_len + outer_len)?;
    // SAFETY: ctx.ctx is the program's context; a negative delta grows the
    // packet at the front. Every packet pointer is re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -i32::from(outer_len)) } != 0 {
        return Err(Counter::DropAdjust);
    }
    let inner_proto = if flow.family == FAMILY_V4 {
        IPPROTO_IPIP
    } else {
        IPPROTO_IPV6
    };
    if outer_v4 {
        write_l2(ctx, &saved, dst_mac, src_mac, ETH_P_IP).ok_or(Counter::DropAdjust)?;
        let mut dst = [0u8; 4];
        dst.copy_from_slice(&real.addr[..4]);
        let mut hdr = Ipv4Hdr {
            version_ihl: 0x45,
            tos,
            tot_len: (ip_len + IPV4_ENCAP_LEN).to_be(),
            id: 0,
            frag_off: 0,
            ttl: ENCAP_TTL,
            proto: inner_proto,
            check: 0,
            src: if cfg.src_v4_flow_bits == 0 {
                cfg.src_v4
            } else {
                flow_source(cfg.src_v4, cfg.src_v4_flow_bits, flow_hash(flow))
            },
            dst,
        };
        // SAFETY: Ipv4Hdr is 20 bytes of plain data, no padding.
        let words: [u16; 10] = unsafe { core::mem::transmute(hdr) };
        hdr.check = csum::ipv4_header(&words);
        let out = ptr_at::<Ipv4Hdr>(ctx, l2.l3_off).ok_or(Counter::DropAdjust)?;
        // SAFETY: checked by ptr_at.
        unsafe { *out = hdr };
    } else {
        write_l2(ctx, &saved, dst_mac, src_mac, ETH_P_IPV6).ok_or(Counter::DropAdjust)?;
        let hash = flow_hash(flow);
        let hdr = Ipv6Hdr {
            vtc_flow: ((6u32 << 28) | (u32::from(tos) << 20) | (hash & 0x000f_ffff)).to_be(),
            payload_len: ip_len.to_be(),
            next_hdr: inner_proto,
            hop_limit: ENCAP_TTL,
            src: flow_source(cfg.src_v6, cfg.src_v6_flow_bits, hash),
            dst: real.addr,
        };
        let out = ptr_at::<Ipv6Hdr>(ctx, l2.l3_off).ok_or(Counter::DropAdjust)?;
        // SAFETY: checked by ptr_at.
        unsafe { *out = hdr };
    }
    Ok(how)
}
