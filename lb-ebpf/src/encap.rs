//! Encapsulation toward a real, as the flow's [`Encap`] says
//! (IP-in-IP or GUE, in any pair of families): room is made in front of
//! the client's packet, which is left byte for byte as it came, the outer
//! header is written there (`outer.rs`), and the MACs are set toward the
//! next hop.
use aya_ebpf::{
    helpers::generated::{bpf_redirect, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use lb_common::{
    config::{Config, MAC_MODE_FIB, MAC_MODE_GATEWAY, flow_source},
    encap::{Encap, gue_source_port},
    hash::outer_hash,
    maps::{FlowKey, Real},
    stats::Counter,
};

use lb_ebpf::{
    headers::{ETH_P_IP, ETH_P_IPV6, v4_of_16},
    l2::{L2, SavedL2, save_l2, write_l2},
};

use crate::{
    fib::{self, Fib, HopQuery},
    outer::{self, GuePorts},
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
                vip: 0,
                real: 0,
                noted: 0,
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
    real_id: u32,
    real: &Real,
    cfg: &Config,
    tot_len: u16,
) -> Result<([u8; 6], [u8; 6], Forward), Counter> {
    match cfg.mac_mode {
        MAC_MODE_GATEWAY => Ok((cfg.gateway_mac, cfg.iface_mac, Forward::Tx)),
        MAC_MODE_FIB => {
            let mut q = HopQuery {
                real_id,
                tot_len,
                hop: core::mem::MaybeUninit::uninit(),
            };
            match fib::next_hop_cached(ctx, real, cfg, &mut q) {
                Fib::Found => {
                    // SAFETY: written when the lookup says Found.
                    let hop = unsafe { q.hop.assume_init() };
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

/// Encapsulates the packet toward `real` (slot `real_id`) as `encap`
/// says. `ip_len` is the client packet's length, `tos` its TOS / traffic
/// class. An outer IPv6 header carries the flow's outer hash as its flow
/// label, so that routers spread flows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn encapsulate(
    ctx: &XdpContext,
    l2: L2,
    flow: &FlowKey,
    real_id: u32,
    real: &Real,
    cfg: &Config,
    encap: Encap,
    ip_len: u16,
    tos: u8,
) -> Result<Forward, Counter> {
    let outer_len = encap.overhead();
    let has_src = if encap.outer_v4() {
        cfg.src_v4 != [0; 4]
    } else {
        cfg.src_v6 != [0; 16]
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
    let (dst_mac, src_mac, how) = next_hop(ctx, &saved, real_id, real, cfg, ip_len + outer_len)?;
    // SAFETY: ctx.ctx is the program's context; a negative delta grows the
    // packet at the front. Every packet pointer is re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -i32::from(outer_len)) } != 0 {
        return Err(Counter::DropAdjust);
    }
    // The outer hash, where something uses it: the IPv6 flow label, a
    // per-flow source, GUE's source port.
    let hash = if encap.outer_v4() && cfg.src_v4_flow_bits == 0 && !encap.gue() {
        0
    } else {
        outer_hash(flow)
    };
    let gue = GuePorts {
        src: gue_source_port(hash),
        dst: cfg.gue_port,
    };
    let written = if encap.outer_v4() {
        write_l2(ctx, &saved, dst_mac, src_mac, ETH_P_IP).ok_or(Counter::DropAdjust)?;
        let dst = v4_of_16(&real.addr);
        let src = flow_source(cfg.src_v4, cfg.src_v4_flow_bits, hash);
        outer::write_v4(ctx, l2.l3_off, encap, src, dst, tos, ip_len, gue)
    } else {
        write_l2(ctx, &saved, dst_mac, src_mac, ETH_P_IPV6).ok_or(Counter::DropAdjust)?;
        let src = flow_source(cfg.src_v6, cfg.src_v6_flow_bits, hash);
        outer::write_v6(
            ctx, l2.l3_off, encap, src, real.addr, tos, ip_len, hash, gue,
        )
    };
    written.ok_or(Counter::DropAdjust)?;
    Ok(how)
}
