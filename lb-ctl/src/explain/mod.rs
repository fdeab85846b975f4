//! `lb-ctl explain`: what the balancer does with one flow now, and why, as
//! the kernel program would decide it: the VIP it matches (or why none),
//! the connection table's entry, the flow hash, the ring slot and its real,
//! the real's state, the encapsulation and outer addresses, and whether a
//! packet of a given size fits. Read from the maps ([`MapsView`]: the
//! pinned maps in [`pinned`], never written) with lb-common's hash, the
//! same function the program runs. The decision itself ([`explain`]) is
//! pure, so that every branch has a unit test; `tests/tests/explain.rs`
//! checks it against the kernel for thousands of flows.
mod explanation;
pub mod pinned;
mod render;

use std::net::{IpAddr, SocketAddr};

use crate::vocab::{Proto, RealState, VipId};
use lb_common::{
    FAMILY_V4, NO_REAL,
    config::{CONFIG_F_ICMP_TOO_BIG, Config, flow_source},
    encap::{Encap, gue_source_port},
    hash::{flow_hash, outer_hash},
    maps::{
        AddrKey, Conn, FlowKey, REAL_F_GUE, Real, VIP_F_NO_CONN_TABLE, VIP_F_QUIC, VipKey, VipMeta,
    },
};

/// What the balancer's maps hold, as [`explain`] reads them.
pub trait MapsView {
    /// `LB_VIPS` at `key`.
    fn vip(&self, key: &VipKey) -> Option<VipMeta>;
    /// Whether `LB_VIP_ADDRS` has the address (some VIP is on it).
    fn is_vip_addr(&self, key: &AddrKey) -> bool;
    /// Every VIP on the address (for the "why none" answer).
    fn vips_on(&self, addr: IpAddr) -> Vec<VipId>;
    /// `LB_VIP_GENS[vip_id]`.
    fn vip_generation(&self, vip_id: u32) -> Option<u32>;
    /// `LB_REALS[real_id]`.
    fn real(&self, real_id: u32) -> Option<Real>;
    /// Slot `slot` of VIP `vip_id`'s ring (`None`: no ring).
    fn ring_slot(&self, vip_id: u32, slot: u32) -> Option<u32>;
    /// `flow` in its family's connection table (`LB_CONNS_V4` or `LB_CONNS_V6`).
    fn conn(&self, flow: &FlowKey) -> Option<Conn>;
    /// `LB_CONFIG[0]`.
    fn config(&self) -> Option<Config>;
}

/// The flow asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowQuery {
    pub proto: Proto,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// An IP packet length to check against the MTU.
    pub size: Option<u16>,
}

impl FlowQuery {
    /// The flow key the program builds from such a packet.
    pub fn key(&self) -> FlowKey {
        FlowKey::new(
            self.src.ip(),
            self.src.port(),
            self.dst.ip(),
            self.dst.port(),
            self.proto.number(),
        )
    }
}

fn real_view(id: u32, r: &Real) -> RealView {
    RealView {
        real_id: id,
        address: r.ip().map_or_else(|| "?".to_owned(), |a| a.to_string()),
        state: RealState::from_map(r.state)
            .map_or_else(|| format!("unknown ({})", r.state), |s| s.to_string()),
        generation: r.generation,
    }
}

impl Explanation {
    fn new(q: &FlowQuery, hash: u32) -> Self {
        Self {
            flow: format!("{} {} -> {}", q.proto, q.src, q.dst),
            flow_hash: hash,
            verdict: String::new(),
            reason: String::new(),
            why: String::new(),
            vip: None,
            connection: None,
            ring_slot: None,
            ring_real: None,
            real: None,
            encap: None,
            size: None,
            health: None,
        }
    }

    fn decided(mut self, verdict: &str, reason: &str, why: String) -> Self {
        self.verdict = verdict.to_owned();
        self.reason = reason.to_owned();
        self.why = why;
        self
    }
}

/// Why a connection no longer applies, or `None` if it does (the program's
/// `established`).
fn stale(view: &impl MapsView, conn: &Conn) -> Option<String> {
    let Some(real) = view.real(conn.real_id) else {
        return Some(format!("real {} is not in the maps", conn.real_id));
    };
    if real.generation != conn.real_generation {
        return Some(format!(
            "real slot {} was reused (generation {} now, {} then)",
            conn.real_id, real.generation, conn.real_generation
        ));
    }
    match RealState::from_map(real.state) {
        Some(RealState::Up | RealState::Draining) => {}
        _ => return Some(format!("real {} is down", conn.real_id)),
    }
    if view.vip_generation(conn.vip_id) != Some(conn.vip_generation) {
        return Some(format!(
            "VIP {} changed since (generation {:?} now, {} then)",
            conn.vip_id,
            view.vip_generation(conn.vip_id),
            conn.vip_generation
        ));
    }
    None
}

/// The VIP of `q`: (address, port, protocol), else the port-less VIP.
fn lookup_vip(view: &impl MapsView, q: &FlowQuery) -> Option<(VipMeta, VipId)> {
    let exact = VipId {
        addr: q.dst.ip(),
        port: q.dst.port(),
        proto: q.proto,
    };
    let portless = VipId { port: 0, ..exact };
    [exact, portless].into_iter().find_map(|id| {
        view.vip(&VipKey::new(id.addr, id.port, id.proto.number()))
            .map(|meta| (meta, id))
    })
}

fn vip_match(meta: &VipMeta, id: &VipId) -> VipMatch {
    VipMatch {
        vip: id.to_string(),
        vip_id: meta.vip_id,
        ring_size: meta.ring_size,
        portless: id.port == 0,
        no_conn_table: meta.flags & VIP_F_NO_CONN_TABLE != 0,
        quic: meta.flags & VIP_F_QUIC != 0,
    }
}

/// What the program does with `q`'s packets now.
pub fn explain(view: &impl MapsView, q: &FlowQuery) -> Explanation {
    let key = q.key();
    let hash = flow_hash(&key);
    let mut e = Explanation::new(q, hash);
    let vip = lookup_vip(view, q);

    // Established flows first: a usable connection names VIP and real.
    let mut rehash = false;
    if let Some(c) = view.conn(&key) {
        let why_stale = stale(view, &c);
        rehash = why_stale.is_some();
        e.connection = Some(ConnView {
            real_id: c.real_id,
            real_generation: c.real_generation,
            vip_id: c.vip_id,
            vip_generation: c.vip_generation,
            stale: why_stale,
        });
        if !rehash {
            e.vip = vip.as_ref().map(|(m, id)| vip_match(m, id));
            let real = view.real(c.real_id).expect("checked by stale()");
            e.real = Some(real_view(c.real_id, &real));
            let why = "a connection in the table names the real".to_owned();
            return leave(view, q, &key, e, &real, "conn_hit", why);
        }
    }

    let Some((meta, vip_id)) = vip else {
        let to_vip_addr = view.is_vip_addr(&AddrKey::new(q.dst.ip()));
        let why = if to_vip_addr {
            let on: Vec<String> = view
                .vips_on(q.dst.ip())
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "{} has VIPs ({}) but none for {}/{}",
                q.dst.ip(),
                on.join(", "),
                q.dst.port(),
                q.proto
            )
        } else {
            format!("no VIP on {}", q.dst.ip())
        };
        return if view.is_vip_addr(&AddrKey::new(q.src.ip())) {
            e.decided(
                "pass",
                "pass_from_vip",
                format!("{why}; its source is a VIP: a real's reply reached the LB host (direct server return should never do that)"),
            )
        } else {
            e.decided("pass", "pass_not_vip", why)
        };
    };
    e.vip = Some(vip_match(&meta, &vip_id));
    let slot = hash % meta.ring_size.max(1);
    e.ring_slot = Some(slot);
    let in_slot = view.ring_slot(meta.vip_id, slot);
    e.ring_real = in_slot;
    let real_id = match in_slot {
        Some(id) if id != NO_REAL => id,
        _ => {
            let why = format!("VIP {vip_id} has no usable real (ring slot {slot} is empty)");
            return e.decided("drop", "drop_no_real", why);
        }
    };
    let Some(real) = view.real(real_id).filter(|r| r.family != 0) else {
        let why = format!("ring slot {slot} names real {real_id}, which is unused");
        return e.decided("drop", "drop_real_invalid", why);
    };
    e.real = Some(real_view(real_id, &real));
    let (reason, why) = if rehash {
        (
            "conn_rehash",
            format!(
                "the connection no longer applies; hashed onto the ring of {vip_id}: slot {slot}"
            ),
        )
    } else {
        (
            "conn_miss",
            format!("no connection; hashed onto the ring of {vip_id}: slot {slot}"),
        )
    };
    leave(view, q, &key, e, &real, reason, why)
}

/// The encapsulation and size checks of a packet going to `real`.
#[allow(clippy::too_many_arguments)]
fn leave(
    view: &impl MapsView,
    q: &FlowQuery,
    key: &FlowKey,
    mut e: Explanation,
    real: &Real,
    reason: &str,
    why: String,
) -> Explanation {
    let Some(cfg) = view.config() else {
        return e.decided(
            "drop",
            "drop_no_source",
            "the data plane has no configuration".to_owned(),
        );
    };
    let encap = match Encap::choose(key.family, real.family, real.flags & REAL_F_GUE != 0) {
        Ok(encap) => encap,
        Err(_) => {
            return e.decided(
                "drop",
                "drop_family",
                format!("{why}; but the real's address family is unknown"),
            );
        }
    };
    let outer_src: Option<IpAddr> = if encap.outer_v4() {
        (cfg.src_v4 != [0; 4]).then(|| {
            let src = if cfg.src_v4_flow_bits == 0 {
                cfg.src_v4
            } else {
                flow_source(cfg.src_v4, cfg.src_v4_flow_bits, outer_hash(key))
            };
            IpAddr::from(src)
        })
    } else {
        (cfg.src_v6 != [0; 16]).then(|| {
            IpAddr::from(flow_source(
                cfg.src_v6,
                cfg.src_v6_flow_bits,
                outer_hash(key),
            ))
        })
    };
    let Some(outer_src) = outer_src else {
        return e.decided(
            "drop",
            "drop_no_source",
            format!("{why}; but no outer source address is configured for the real's family"),
        );
    };
    e.encap = Some(EncapView {
        kind: match encap {
            Encap::Ip4in4 => "ipip",
            Encap::Ip6in6 => "ip6ip6",
            Encap::Ip4in6 => "ip4in6",
            Encap::Ip6in4 => "ip6in4",
            Encap::Gue4in4 => "gue4in4",
            Encap::Gue6in6 => "gue6in6",
            Encap::Gue4in6 => "gue4in6",
            Encap::Gue6in4 => "gue6in4",
        }
        .to_owned(),
        outer_src: outer_src.to_string(),
        outer_dst: real.ip().map_or_else(|| "?".to_owned(), |a| a.to_string()),
        overhead: encap.overhead(),
        udp_ports: encap
            .gue()
            .then(|| (gue_source_port(outer_hash(key)), cfg.gue_port)),
    });
    if let Some(size) = q.size {
        let fits =
            cfg.mtu == 0 || u32::from(size) + u32::from(encap.overhead()) <= u32::from(cfg.mtu);
        let outcome = if fits {
            "fits".to_owned()
        } else if cfg.flags & CONFIG_F_ICMP_TOO_BIG != 0 {
            format!(
                "too big: dropped (drop_mtu) and the client told MTU {} ({}; IPv4 only when the client set DF)",
                encap.inner_mtu(cfg.mtu),
                if key.family == FAMILY_V4 {
                    "ICMP fragmentation needed"
                } else {
                    "ICMPv6 packet too big"
                }
            )
        } else {
            "too big: dropped (drop_mtu), the client is not told (icmp_too_big = false)".to_owned()
        };
        e.size = Some(SizeView {
            size,
            mtu: cfg.mtu,
            fits,
            outcome,
        });
        if !fits {
            return e.decided(
                "drop",
                "drop_mtu",
                format!("{why}; but a {size}-byte packet exceeds the MTU once encapsulated"),
            );
        }
    }
    e.decided("forward", reason, why)
}

pub use explanation::{
    ConnView, EncapView, Explanation, HealthDetail, RealView, SizeView, VipMatch,
};

/// Adds what the daemon's health checks say of `e`'s real (the probe of
/// that real for that VIP; any probe of the address if the VIP is unknown).
pub fn add_health(e: &mut Explanation, health: &crate::api::pb::HealthReply) {
    let Some(real) = &e.real else { return };
    let vip = e.vip.as_ref().map(|v| v.vip.clone());
    let for_vip = |h: &&crate::api::pb::RealHealth| {
        vip.as_ref().is_none_or(|want| {
            h.vips
                .iter()
                .filter_map(|v| VipId::try_from(v).ok())
                .any(|id| id.to_string() == *want)
        })
    };
    e.health = health
        .reals
        .iter()
        .filter(|h| h.address == real.address)
        .find(for_vip)
        .map(|h| HealthDetail {
            check: h.check.clone(),
            healthy: h.healthy,
            last_error: h.last_error.clone(),
            failures_by_reason: h
                .failures_by_reason
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        });
}
pub use render::text;

#[cfg(test)]
mod detail_tests;
#[cfg(test)]
mod tests;
