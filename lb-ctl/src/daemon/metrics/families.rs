//! The metric families: a [`MetricsSnapshot`] of the controller turned into
//! a `prometheus-client` registry. Typed families with typed label sets;
//! names, escaping and the exposition format are the library's.
//!
//! The balancer's own counters are in [`super::dataplane`].
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeMetric},
    metrics::{TypedMetric, counter::Counter, family::Family, gauge::Gauge},
    registry::{Metric, Registry},
};

use crate::{
    api::{commands::MetricsSnapshot, pb},
    vocab::{RealState, VipId},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipLabel {
    vip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VipRealLabels {
    vip: String,
    real: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    real: String,
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeFailureLabels {
    real: String,
    check: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NeighborLabel {
    neighbor: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PrefixLabel {
    prefix: String,
}

/// Registers a family of metrics of kind `M` whose samples are `samples`,
/// each set by `set`.
fn register<L, M>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
    set: fn(&M, u64),
) where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
    M: Metric + EncodeMetric + TypedMetric + Default + Clone,
{
    let family = Family::<L, M>::default();
    for (labels, value) in samples {
        set(&family.get_or_create(&labels), value);
    }
    registry.register(name, help, family);
}

pub(super) fn counters<L>(
    r: &mut Registry,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    register::<L, Counter>(r, name, help, samples, |c, v| {
        c.inc_by(v);
    });
}

fn gauges<L>(r: &mut Registry, name: &str, help: &str, samples: impl IntoIterator<Item = (L, u64)>)
where
    L: Clone + std::fmt::Debug + std::hash::Hash + Eq + EncodeLabelSet + Send + Sync + 'static,
{
    register::<L, Gauge>(r, name, help, samples, |g, v| {
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
    });
}

fn single_gauge(r: &mut Registry, name: &str, help: &str, value: u64) {
    let g = Gauge::<i64>::default();
    g.set(i64::try_from(value).unwrap_or(i64::MAX));
    r.register(name, help, g);
}

pub(super) fn single_counter(r: &mut Registry, name: &str, help: &str, value: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(value);
    r.register(name, help, c);
}

fn vip_label(v: Option<&pb::Vip>) -> String {
    v.and_then(|v| VipId::try_from(v).ok())
        .map_or_else(String::new, |id| id.to_string())
}

/// Every family lb reports, filled from `s`. Help texts end without a full
/// stop: the library adds one.
pub fn registry(s: &MetricsSnapshot) -> Registry {
    let mut r = Registry::with_prefix("lb");
    single_gauge(&mut r, "up", "1 while lb-ctl runs", 1);
    single_gauge(
        &mut r,
        "uptime_seconds",
        "Seconds since lb-ctl started",
        s.uptime_s,
    );
    super::dataplane::families(&mut r, &s.stats);
    traffic(&mut r, s);
    health(&mut r, &s.health);
    if s.bgp.enabled {
        bgp(&mut r, &s.bgp);
    }
    r
}

fn traffic(r: &mut Registry, s: &MetricsSnapshot) {
    let vips = || {
        s.stats.vips.iter().map(|v| {
            (
                VipLabel {
                    vip: vip_label(v.vip.as_ref()),
                },
                v.traffic.unwrap_or_default(),
            )
        })
    };
    counters(
        r,
        "vip_packets",
        "Packets sent to a VIP's reals",
        vips().map(|(l, t)| (l, t.packets)),
    );
    counters(
        r,
        "vip_bytes",
        "Bytes sent to a VIP's reals (as the clients sent them)",
        vips().map(|(l, t)| (l, t.bytes)),
    );
    let reals = || {
        s.stats.vips.iter().flat_map(|v| {
            let vip = vip_label(v.vip.as_ref());
            v.reals.iter().map(move |r| {
                (
                    VipRealLabels {
                        vip: vip.clone(),
                        real: r.address.clone(),
                    },
                    r.traffic.unwrap_or_default(),
                )
            })
        })
    };
    counters(
        r,
        "real_packets",
        "Packets sent to a real of a VIP",
        reals().map(|(l, t)| (l, t.packets)),
    );
    counters(
        r,
        "real_bytes",
        "Bytes sent to a real of a VIP",
        reals().map(|(l, t)| (l, t.bytes)),
    );
    let configured = || {
        s.vips.vips.iter().flat_map(|v| {
            let vip = vip_label(v.vip.as_ref());
            v.reals.iter().map(move |r| {
                (
                    VipRealLabels {
                        vip: vip.clone(),
                        real: r.address.clone(),
                    },
                    r,
                )
            })
        })
    };
    gauges(
        r,
        "real_up",
        "1 when a real of a VIP is in the ring (healthy, weight above 0)",
        configured().map(|(l, real)| (l, u64::from(real.state.parse() == Ok(RealState::Up)))),
    );
    gauges(
        r,
        "real_weight",
        "A real's configured weight",
        configured().map(|(l, real)| (l, u64::from(real.weight))),
    );
}

fn health(r: &mut Registry, health: &pb::HealthReply) {
    let probes = || {
        health.reals.iter().map(|h| {
            (
                ProbeLabels {
                    real: h.address.clone(),
                    check: h.check.clone(),
                },
                h,
            )
        })
    };
    counters(
        r,
        "health_checks",
        "Probes run, per real and check",
        probes().map(|(l, h)| (l, h.checks)),
    );
    counters(
        r,
        "health_transitions",
        "Up/down transitions, per real and check",
        probes().map(|(l, h)| (l, h.transitions)),
    );
    gauges(
        r,
        "health_healthy",
        "1 when the prober says healthy",
        probes().map(|(l, h)| (l, u64::from(h.healthy))),
    );
    counters(
        r,
        "health_probe_failures",
        "Failed probes, per real, check and reason (timeout, refused, unreachable, status, ...)",
        health.reals.iter().flat_map(|h| {
            h.failures_by_reason.iter().map(|(reason, n)| {
                (
                    ProbeFailureLabels {
                        real: h.address.clone(),
                        check: h.check.clone(),
                        reason: reason.clone(),
                    },
                    *n,
                )
            })
        }),
    );
}

fn bgp(r: &mut Registry, bgp: &pb::BgpStatusReply) {
    gauges(
        r,
        "bgp_peer_established",
        "1 while the BGP session is established",
        bgp.peers.iter().map(|p| {
            (
                NeighborLabel {
                    neighbor: p.address.clone(),
                },
                u64::from(p.state == "established"),
            )
        }),
    );
    let announced = bgp.announced.iter().map(|a| (&a.prefix, 1));
    let withheld = bgp.withheld.iter().map(|w| (&w.prefix, 0));
    gauges(
        r,
        "bgp_announced",
        "1 for each announced VIP prefix, 0 for each withheld one",
        announced
            .chain(withheld)
            .map(|(p, v)| (PrefixLabel { prefix: p.clone() }, v)),
    );
    single_counter(
        r,
        "bgp_gobgpd_restarts",
        "Times lb-ctl started gobgpd again",
        u64::from(bgp.gobgpd_restarts),
    );
}
