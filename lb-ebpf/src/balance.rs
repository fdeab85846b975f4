//! The balancer: for a TCP/UDP packet to a VIP, pick the real (connection
//! table, else, for a QUIC VIP, the real its connection id names, else the
//! VIP's Maglev ring), encapsulate toward it and send it back out.
//! Everything else is passed untouched or dropped with a reason.
use aya_ebpf::{helpers::generated::bpf_ktime_get_ns, programs::XdpContext};
use lb_common::{
    FAMILY_V4, NO_REAL, PROTO_UDP,
    config::{CONFIG_F_ICMP_ECHO, CONFIG_F_ICMP_TOO_BIG, Config},
    encap::Encap,
    hash::{flow_hash, vip_filter_slot},
    maps::{
        AddrKey, Conn, FlowKey, REAL_F_GUE, REAL_STATE_DRAINING, REAL_STATE_UP, Real,
        VIP_F_NO_CONN_TABLE, VIP_F_QUIC, VipKey, VipMeta,
    },
    stats::Counter,
};

use crate::{
    echo::{self, Echo},
    encap, icmp,
    maps::{
        JUMP_ICMP_TOO_BIG, LB_CONFIG, LB_CONN_RATE, LB_CONNS_V4, LB_CONNS_V6, LB_JUMP, LB_REALS,
        LB_RINGS, LB_VIP_ADDRS, LB_VIP_FILTER, LB_VIP_GENS, LB_VIPS,
    },
    parse::{self, Parsed, Unbalanceable},
    quic::{self, Cid},
    stats::{self, Verdict},
};
use lb_ebpf::headers::{IPV4_LEN, IPV6_LEN, UDP_LEN};

#[inline(always)]
pub fn balance(ctx: &XdpContext) -> Verdict {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    match parse::parse(ctx) {
        Parsed::Truncated => Verdict::pass(Counter::PassTruncated),
        Parsed::NotIp => Verdict::pass(Counter::PassNotIp),
        // A lying length: not ours to judge unless it is for a VIP.
        Parsed::Cut { family, dst } => for_vip_drop(family, &dst, Counter::DropTruncated),
        Parsed::Malformed { family, dst } => for_vip_drop(family, &dst, Counter::DropMalformed),
        Parsed::Unbalanceable {
            l2,
            family,
            dst,
            ip_len,
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
                    if answer {
                        match echo::echo_reply(ctx, l2, family, ip_len) {
                            Echo::Answered => return Verdict::tx(Counter::IcmpEchoReply),
                            Echo::Refused(why) => return Verdict::drop(why),
                            Echo::Other => {}
                        }
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
            let (vip_id, real_id, real, conn_counter, remember) = match established(&flow) {
                Established::Hit {
                    vip_id,
                    real_id,
                    real,
                } => (vip_id, real_id, real, Counter::ConnHit, None),
                found => {
                    let Some(meta) = lookup_vip(&flow) else {
                        return Verdict::pass(not_vip(&flow));
                    };
                    let counter = if matches!(found, Established::Stale) {
                        Counter::ConnRehash
                    } else {
                        Counter::ConnMiss
                    };
                    // A QUIC VIP: the connection id may name the real.
                    let mut routed = None;
                    if meta.flags & VIP_F_QUIC != 0
                        && flow.proto == PROTO_UDP
                        && let Some(cfg) = config()
                    {
                        let ip_hdr = if flow.family == FAMILY_V4 {
                            IPV4_LEN
                        } else {
                            IPV6_LEN
                        };
                        let payload_off = l2.l3_off + ip_hdr + UDP_LEN;
                        let payload_len = usize::from(ip_len).saturating_sub(ip_hdr + UDP_LEN);
                        match quic::route(ctx, payload_off, payload_len, &meta, cfg) {
                            Cid::Routed(real_id, real) => {
                                stats::count(Counter::QuicRouted);
                                routed = Some((real_id, real));
                            }
                            Cid::Fallback => stats::count(Counter::QuicFallback),
                            Cid::Unknown => stats::count(Counter::QuicUnknownId),
                        }
                    }
                    let picked = match routed {
                        Some(r) => Ok(r),
                        None => pick_real(&flow, &meta),
                    };
                    match picked {
                        Ok((real_id, real)) => (meta.vip_id, real_id, real, counter, Some(meta)),
                        Err(reason) => return Verdict::drop(reason),
                    }
                }
            };
            let Some(cfg) = config() else {
                return Verdict::drop(Counter::DropNoSource);
            };
            // The real's generation before encapsulating (the packet's
            // bytes change, the flow key and the real do not).
            let real_generation = real.generation;
            stats::count(conn_counter);
            // The encapsulation, chosen once: its overhead serves the MTU
            // check and the ICMP answer alike.
            let encap = match Encap::choose(flow.family, real.family, real.flags & REAL_F_GUE != 0)
            {
                Ok(encap) => encap,
                Err(reason) => return Verdict::drop(reason),
            };
            match encap::encapsulate(ctx, l2, &flow, real_id, real, cfg, encap, ip_len, tos) {
                Ok(how) => {
                    // Only a packet that leaves makes a connection.
                    if let Some(meta) = remember {
                        remember_flow(&flow, &meta, real_id, real_generation);
                    }
                    stats::traffic(vip_id, real_id, frame_len);
                    how.verdict().about(vip_id, real_id, conn_counter)
                }
                Err(Counter::DropMtu) if cfg.flags & CONFIG_F_ICMP_TOO_BIG != 0 => {
                    stats::count(Counter::DropMtu);
                    if icmp::too_big(ctx, l2, flow.family, encap.inner_mtu(cfg.mtu)) {
                        Verdict::tx(Counter::IcmpTooBigSent)
                    } else {
                        Verdict::drop_only()
                    }
                    .about(vip_id, real_id, Counter::DropMtu)
                }
                Err(reason) => Verdict::drop(reason).about(vip_id, real_id, conn_counter),
            }
        }
    }
}

/// Drops a packet to a VIP address for `reason`; passes anything else.
#[inline(always)]
fn for_vip_drop(family: u8, dst: &[u8; 16], reason: Counter) -> Verdict {
    if maybe_vip(dst) && is_vip_addr(family, dst) {
        Verdict::drop(reason)
    } else {
        Verdict::pass(Counter::PassNotVip)
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
    let conn = if flow.family == FAMILY_V4 {
        unsafe { LB_CONNS_V4.get(flow.v4()) }.copied()
    } else {
        unsafe { LB_CONNS_V6.get(flow) }.copied()
    };
    let Some(conn) = conn else {
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

/// The ring's real for a new (or re-hashed) flow of the VIP `meta`. Nothing
/// is remembered here: [`remember_flow`] does that once the packet leaves.
#[inline(always)]
pub fn pick_real(flow: &FlowKey, meta: &VipMeta) -> Result<(u32, &'static Real), Counter> {
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
    Ok((real_id, real))
}

/// Remembers `flow` in its family's connection table (unless the VIP opts out or
/// this CPU's `max_conn_rate` is spent).
#[inline(always)]
fn remember_flow(flow: &FlowKey, meta: &VipMeta, real_id: u32, real_generation: u32) {
    if meta.flags & VIP_F_NO_CONN_TABLE == 0 && conn_rate_allows_one() {
        let conn = Conn {
            real_id,
            real_generation,
            vip_id: meta.vip_id,
            vip_generation: meta.generation,
        };
        let inserted = if flow.family == FAMILY_V4 {
            LB_CONNS_V4.insert(flow.v4(), conn, 0)
        } else {
            LB_CONNS_V6.insert(flow, conn, 0)
        };
        if inserted.is_err() {
            stats::count(Counter::ConnInsertFailed);
        }
    }
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
