//! `lb_icmp_too_big`: ICMP "fragmentation needed" / ICMPv6 "packet too
//! big" that routers send about a real's reply. The reply left from the
//! VIP, so the error comes back to an LB host; this program passes it, whole
//! and encapsulated, to the real that owns the flow, whose stack then
//! lowers its path MTU. The balancer tail-calls it for ICMP to a VIP that is
//! not an echo request: a cold path, kept out of the balancer's stack.
use aya_ebpf::programs::XdpContext;
use lb_common::{
    FAMILY_V4, FAMILY_V6,
    encap::Encap,
    maps::{FlowKey, REAL_F_GUE},
    stats::Counter,
};
use lb_ebpf::{headers::*, l2::parse_l2};

use crate::{
    balance::{Established, config, established, lookup_vip, pick_real},
    encap, icmp,
    stats::{self, Verdict},
};

#[inline(always)]
pub fn forward(ctx: &XdpContext) -> Verdict {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let Some((proto, l2)) = parse_l2(ctx) else {
        return Verdict::drop(Counter::DropIcmp);
    };
    let mut flow = FlowKey {
        family: match proto {
            ETH_P_IP => FAMILY_V4,
            ETH_P_IPV6 => FAMILY_V6,
            _ => return Verdict::drop(Counter::DropIcmp),
        },
        ..FlowKey::default()
    };
    let Some((ip_len, tos)) = icmp::too_big_flow(ctx, l2, &mut flow) else {
        return Verdict::drop(Counter::DropIcmp);
    };
    // The flow's real: its connection, else the ring; an ICMP error never
    // makes a connection (a forged one must not fill the table).
    let (vip_id, real_id, real) = match established(&flow) {
        Established::Hit {
            vip_id,
            real_id,
            real,
        } => (vip_id, real_id, real),
        _ => {
            let Some(meta) = lookup_vip(&flow) else {
                return Verdict::drop(Counter::DropIcmp);
            };
            match pick_real(&flow, &meta) {
                Ok((real_id, real)) => (meta.vip_id, real_id, real),
                Err(reason) => return Verdict::drop(reason),
            }
        }
    };
    let Some(cfg) = config() else {
        return Verdict::drop(Counter::DropNoSource);
    };
    let encap = match Encap::choose(flow.family, real.family, real.flags & REAL_F_GUE != 0) {
        Ok(encap) => encap,
        Err(reason) => return Verdict::drop(reason),
    };
    match encap::encapsulate(ctx, l2, &flow, real_id, real, cfg, encap, ip_len, tos) {
        Ok(how) => {
            stats::count(Counter::IcmpTooBigForwarded);
            stats::traffic(vip_id, real_id, frame_len);
            how.verdict()
                .about(vip_id, real_id, Counter::IcmpTooBigForwarded)
        }
        Err(reason) => Verdict::drop(reason),
    }
}
