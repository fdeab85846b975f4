//! The balancer: for a TCP/UDP packet to a VIP, pick the real (connection
//! table, else the VIP's Maglev ring), encapsulate toward it and send it
//! back out. Everything else is passed untouched or dropped with a reason.
use aya_ebpf::{helpers::generated::bpf_ktime_get_ns, programs::XdpContext};
use lb_common::{
    NO_REAL,
    config::{CONFIG_F_ICMP_ECHO, CONFIG_F_ICMP_TOO_BIG, Config},
    hash::{flow_hash, vip_filter_slot},
    maps::{
        AddrKey, Conn, FlowKey, REAL_STATE_DRAINING, REAL_STATE_UP, Real, VIP_F_NO_CONN_TABLE,
        VipKey, VipMeta,
    },
    stats::Counter,
};

use crate::{
    encap, icmp,
    maps::{
        JUMP_ICMP_TOO_BIG, LB_CONFIG, LB_CONN_RATE, LB_CONNS, LB_JUMP, LB_REALS, LB_RINGS,
        LB_VIP_ADDRS, LB_VIP_FILTER, LB_VIP_GENS, LB_VIPS,
    },
    parse::{self, Parsed, Unbalanceable},
    stats::{self, Verdict},
};

#[inline(always)]
pub fn balance(ctx: &XdpContext) -> Verdict {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    match parse::parse(ctx) {
        Parsed::Truncated => Verdict::pass(Counter::PassTruncated),
        Parsed::NotIp => Verdict::pass(Counter::PassNotIp),
        Parsed::Unbalanceable {
            l2,
            family,
            dst,
            why,
        } => {
            if l2.vlan {
                stats::count(Counter::Vlan);
            }
            if !maybe_vip(&dst) || !is_vip_addr(family, &dst) {
                return Verdict::pass(Counter::PassNotVip);
            }
            match why {
                Unbalanceable::Ipv4Options => Verdict::drop(Counter::DropIpv4Options),
                Unbalanceable::Fragment => Verdict::drop(Counter::DropFragment),
                Unbalanceable::UnknownProto => Verdict::drop(Counter::DropUnknownProto),
                Unbalanceable::TruncatedL4 => Verdict::drop(Counter::DropTruncated),
                Unbalanceable::Icmp => {
                    let answer = config().is_some_and(|c| c.flags & CONFIG_F_ICMP_ECHO != 0);
                    if answer && icmp::echo_reply(ctx, l2, family) {
                        return Verdict::tx(Counter::IcmpEchoReply);
                    }
                    // "Fragmentation needed" / "packet too big" about a
                    // real's reply: lb_icmp_too_big passes it to the real
                    // (a tail call, so that its stack is its own). It comes
                    // back here only if that program is not loaded.
                    // SAFETY: the slot holds an XDP program or nothing.
                    unsafe { LB_JUMP.tail_call(ctx, JUMP_ICMP_TOO_BIG) };
                    Verdict::drop(Counter::DropIcmp)
                }
            }
        }
        Parsed::Flow {
            l2,
            flow,
            ip_len,
            tos,
        } => {
            if l2.vlan {
                stats::count(Counter::Vlan);
            }
            if !maybe_vip(&flow.dst) {
                return Verdict::pass(not_vip(&flow));
            }
            // Established flows first: a usable connection names the VIP
            // and the real, with no VIP lookup.
            let (vip_id, real_id, real, conn_counter) = match established(&flow) {
                Established::Hit {
                    vip_id,
                    real_id,
                    real,
                } => (vip_id, real_id, real, Counter::ConnHit),
                found => {
                    let Some(meta) = lookup_vip(&flow) else {
                        return Verdict::pass(not_vip(&flow));
                    };
                    let counter = if matches!(found, Established::Stale) {
                        Counter::ConnRehash
                    } else {
                        Counter::ConnMiss
                    };
                    match new_flow(&flow, &meta, true) {
                        Ok((real_id, real)) => (meta.vip_id, real_id, real, counter),
                        Err(reason) => return Verdict::drop(reason),
                    }
                }
            };
            // The IP header must not claim more bytes than the frame has.
            if usize::from(ip_len) > ctx.data_end() - ctx.data() - l2.l3_off {
                return Verdict::drop(Counter::DropTruncated);
            }
            let Some(cfg) = config() else {
                return Verdict::drop(Counter::DropNoSource);
            };
            stats::count(conn_counter);
            let ok = encap::encapsulate(ctx, l2, &flow, real, cfg, ip_len, tos);
            match ok {
                Ok(how) => {
                    stats::traffic(vip_id, real_id, frame_len);
                    how.verdict()
                }
                Err(Counter::DropMtu) if cfg.flags & CONFIG_F_ICMP_TOO_BIG != 0 => {
                    stats::count(Counter::DropMtu);
                    if icmp::too_big(ctx, l2, flow.family, cfg) {
                        Verdict::tx(Counter::IcmpTooBigSent)
                    } else {
                        Verdict::drop_only()
                    }
                }
                Err(reason) => Verdict::drop(reason),
            }
        }
    }
}

#[inline(always)]
pub fn config() -> Option<&'static Config> {
    LB_CONFIG.get(0)
}

/// The counter of a packet not for a VIP: replies from a VIP are told
/// apart (they should never reach an LB host).
#[inline(always)]
fn not_vip(flow: &FlowKey) -> Counter {
    if maybe_vip(&flow.src) && is_vip_addr(flow.family, &flow.src) {
        Counter::PassFromVip
    } else {
        Counter::PassNotVip
    }
}

/// False if `addr` is certainly not a VIP address (one array read).
#[inline(always)]
fn maybe_vip(addr: &[u8; 16]) -> bool {
    LB_VIP_FILTER
        .get(vip_filter_slot(addr))
        .is_some_and(|&n| n != 0)
}

#[inline(always)]
fn is_vip_addr(family: u8, addr: &[u8; 16]) -> bool {
    let key = AddrKey {
        addr: *addr,
        family,
        _pad: [0; 3],
    };
    // SAFETY: the value is only tested for presence.
    unsafe { LB_VIP_ADDRS.get(key) }.is_some()
}

/// The VIP of `flow`: (address, port, protocol), else the port-less VIP.
#[inline(always)]
pub fn lookup_vip(flow: &FlowKey) -> Option<VipMeta> {
    let mut key = VipKey {
        addr: flow.dst,
        port: flow.dport,
        proto: flow.proto,
        family: flow.family,
    };
    // SAFETY: values are copied out; lb-ctl replaces them whole.
    if let Some(meta) = unsafe { LB_VIPS.get(key) } {
        return Some(*meta);
    }
    key.port = 0;
    unsafe { LB_VIPS.get(key) }.copied()
}

/// What the connection table says of a flow.
pub enum Established {
    /// A connection whose VIP and real are still the ones it was made with,
    /// and the real takes established flows (up or draining).
    Hit {
        vip_id: u32,
        real_id: u32,
        real: &'static Real,
    },
    /// A connection whose VIP or real changed or went down: hash again.
    Stale,
    /// No connection.
    Miss,
}

#[inline(always)]
pub fn established(flow: &FlowKey) -> Established {
    // SAFETY: the value is copied out at once.
    let Some(conn) = unsafe { LB_CONNS.get(flow) }.copied() else {
        return Established::Miss;
    };
    if let Some(real) = LB_REALS.get(conn.real_id)
        && real.generation == conn.real_generation
        && (real.state == REAL_STATE_UP || real.state == REAL_STATE_DRAINING)
        && LB_VIP_GENS
            .get(conn.vip_id)
            .is_some_and(|&g| g == conn.vip_generation)
    {
        return Established::Hit {
            vip_id: conn.vip_id,
            real_id: conn.real_id,
            real,
        };
    }
    Established::Stale
}

/// The ring's real for a new (or re-hashed) flow of the VIP `meta`,
/// remembered in the connection table if `remember` (and the VIP does not
/// opt out).
#[inline(always)]
pub fn new_flow(
    flow: &FlowKey,
    meta: &VipMeta,
    remember: bool,
) -> Result<(u32, &'static Real), Counter> {
    let slot = flow_hash(flow) % meta.ring_size.max(1);
    let Some(&real_id) = LB_RINGS.get_value(meta.vip_id, &slot) else {
        return Err(Counter::DropNoReal);
    };
    if real_id == NO_REAL {
        return Err(Counter::DropNoReal);
    }
    let Some(real) = LB_REALS.get(real_id) else {
        return Err(Counter::DropRealInvalid);
    };
    // A ring may still name a real that just went down until lb-ctl
    // rewrites it; it is sent there meanwhile. An unused slot is a bug.
    if real.family == 0 {
        return Err(Counter::DropRealInvalid);
    }
    if remember && meta.flags & VIP_F_NO_CONN_TABLE == 0 && conn_rate_allows_one() {
        let conn = Conn {
            real_id,
            real_generation: real.generation,
            vip_id: meta.vip_id,
            vip_generation: meta.generation,
        };
        if LB_CONNS.insert(flow, conn, 0).is_err() {
            stats::count(Counter::ConnInsertFailed);
        }
    }
    Ok((real_id, real))
}

/// Whether this CPU may remember one more connection in the current
/// one-second window (`Config::max_conn_rate`; 0 = always). A refusal is
/// counted; the flow is still sent to its real.
#[inline(always)]
fn conn_rate_allows_one() -> bool {
    let limit = match config() {
        Some(c) if c.max_conn_rate != 0 => c.max_conn_rate,
        _ => return true,
    };
    let Some(rate) = LB_CONN_RATE.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: this CPU's own value; XDP programs do not preempt each other
    // on one CPU.
    let rate = unsafe { &mut *rate };
    // SAFETY: a helper with no arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if now.wrapping_sub(rate.window_start_ns) >= 1_000_000_000 {
        rate.window_start_ns = now;
        rate.remembered = 0;
    }
    if rate.remembered >= limit {
        stats::count(Counter::ConnRateLimited);
        return false;
    }
    rate.remembered += 1;
    true
}
