//! The controller's answers to the API: status, VIPs, health, stats (with
//! rates from the last two samples), BGP status. Read-only views of the
//! controller's state.
use std::{collections::BTreeMap, time::Instant};

use lb_common::{
    maps::Traffic,
    stats::{Counter, Stats},
};

use super::controller::{Controller, probe_key};
use crate::{api::pb, config::RealConfig, reconcile::RealSpec, vocab::Encapsulation};

/// Counters at one instant, for rates.
#[derive(Debug, Clone)]
pub(super) struct Sample {
    at: Instant,
    stats: Stats,
    vips: BTreeMap<u32, Traffic>,
    reals: BTreeMap<u32, Traffic>,
}

impl Controller {
    pub fn bgp_status(&self) -> pb::BgpStatusReply {
        let (Some(b), Some(sp)) = (&self.settings.bgp, &self.speaker) else {
            return pb::BgpStatusReply::default();
        };
        let v = sp.view.lock().expect("view").clone();
        pb::BgpStatusReply {
            enabled: true,
            asn: b.asn,
            router_id: b.router_id.to_string(),
            gobgpd: v.gobgpd,
            gobgpd_restarts: v.restarts,
            peers: v
                .peers
                .iter()
                .map(|p| pb::BgpPeer {
                    address: p.address.clone(),
                    asn: p.asn,
                    state: p.state.clone(),
                    uptime_s: p.uptime_s,
                })
                .collect(),
            announced: v
                .announced
                .iter()
                .map(|a| pb::BgpRoute {
                    prefix: a.prefix.to_string(),
                    next_hop: a.next_hop.to_string(),
                    communities: a.communities.iter().map(ToString::to_string).collect(),
                    med: a.med,
                })
                .collect(),
            withheld: v
                .withheld
                .iter()
                .map(|(p, why)| pb::BgpWithheld {
                    prefix: p.to_string(),
                    reason: why.clone(),
                })
                .collect(),
            last_error: v.last_error,
            anycast_prefixes: b.anycast_prefixes.iter().map(ToString::to_string).collect(),
        }
    }

    /// One line for systemd's status: what runs, in numbers.
    pub fn summary(&self) -> String {
        let s = self.status();
        format!(
            "{} VIPs, {} reals, {} healthy on {}",
            s.vips, s.reals, s.reals_healthy, s.interface
        )
    }

    pub fn status(&self) -> pb::StatusReply {
        let reals: Vec<&RealConfig> = self.vips.iter().flat_map(|v| &v.reals).collect();
        let healthy = self
            .vips
            .iter()
            .flat_map(|v| v.reals.iter().map(move |r| probe_key(v, r)))
            .filter(|k| self.health.healthy(k))
            .count();
        pb::StatusReply {
            version: env!("CARGO_PKG_VERSION").into(),
            interface: self.settings.daemon.interface.clone(),
            xdp_mode: format!("{:?}", self.settings.daemon.mode).to_lowercase(),
            pin_dir: self.settings.daemon.pin_dir.display().to_string(),
            config: self.config_path.display().to_string(),
            state_file: self.settings.state_path().display().to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            adopted: self.adopted,
            vips: self.vips.len() as u32,
            reals: reals.len() as u32,
            reals_healthy: healthy as u32,
            fleet_revision: self.fleet_revision.unwrap_or(0),
            health_source: self.health_source(),
            fleet_endpoints: self
                .settings
                .fleet
                .as_ref()
                .map_or_else(Vec::new, |f| f.endpoints.clone()),
            fleet_prefix: self
                .settings
                .fleet
                .as_ref()
                .map_or_else(String::new, |f| f.prefix.clone()),
        }
    }

    pub fn list_vips(&self) -> pb::ListVipsReply {
        let vips = self
            .vips
            .iter()
            .map(|v| {
                let id = v.id();
                let vip_id = self
                    .reconciler
                    .vip_ids()
                    .find(|(k, _)| **k == id)
                    .map_or(0, |(_, i)| i);
                pb::VipInfo {
                    min_healthy: v.min_healthy,
                    vip: Some((&id).into()),
                    ring_size: v.ring_size,
                    no_conn_table: v.no_conn_table,
                    quic: v.quic,
                    encap: v.encap.to_string(),
                    vip_id,
                    health: Some((&v.health).into()),
                    reals: v
                        .reals
                        .iter()
                        .map(|r| {
                            let healthy = self.health.healthy(&probe_key(v, r));
                            let spec = RealSpec {
                                addr: r.address,
                                weight: r.weight,
                                healthy,
                                gue: v.encap_of(r) == Encapsulation::Gue,
                            };
                            pb::RealInfo {
                                address: r.address.to_string(),
                                weight: r.weight,
                                state: spec.state().to_string(),
                                healthy,
                                real_id: self.reconciler.real_id(&id, &r.address).unwrap_or(0),
                                encap: v.encap_of(r).to_string(),
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        pb::ListVipsReply { vips }
    }

    pub fn health_reply(&self) -> pb::HealthReply {
        let reals = self
            .health
            .states()
            .map(|(k, s)| pb::RealHealth {
                address: k.addr.to_string(),
                check: format!("{} (port {})", k.check, k.port),
                healthy: s.healthy,
                successes: s.successes,
                failures: s.failures,
                checks: s.checks,
                transitions: s.transitions,
                last_error: s.last_error.clone(),
                failures_by_reason: s
                    .failures_by_reason
                    .iter()
                    .map(|(reason, n)| ((*reason).to_owned(), *n))
                    .collect(),
                vips: self
                    .vips
                    .iter()
                    .filter(|v| v.reals.iter().any(|r| probe_key(v, r) == *k))
                    .map(|v| (&v.id()).into())
                    .collect(),
            })
            .collect();
        pb::HealthReply { reals }
    }

    /// Reads every counter now.
    pub(super) fn sample(&self) -> Option<Sample> {
        let stats = self.dp.stats().ok()?;
        let mut vips = BTreeMap::new();
        let mut reals = BTreeMap::new();
        for (id, vip_id) in self.reconciler.vip_ids() {
            vips.insert(vip_id, self.dp.vip_traffic(vip_id).ok()?);
            if let Some(v) = self.vips.iter().find(|v| v.id() == *id) {
                for r in &v.reals {
                    if let Some(real_id) = self.reconciler.real_id(id, &r.address) {
                        reals.insert(real_id, self.dp.real_traffic(real_id).ok()?);
                    }
                }
            }
        }
        Some(Sample {
            at: Instant::now(),
            stats,
            vips,
            reals,
        })
    }

    pub(super) fn nic_stats(&self) -> pb::NicStats {
        let iface = &self.settings.daemon.interface;
        pb::NicStats {
            interface: iface.clone(),
            driver: crate::nic::driver(iface).unwrap_or_default(),
            xdp_tx_errors: crate::nic::xdp_tx_errors(iface),
        }
    }

    pub fn stats_reply(&self) -> pb::StatsReply {
        let now = self.sample();
        let (prev, last) = (&self.samples.0, &self.samples.1);
        let secs = match (prev, last) {
            (Some(p), Some(l)) => l.at.duration_since(p.at).as_secs_f64(),
            _ => 0.0,
        };
        let rate = |a: u64, b: u64| {
            if secs > 0.0 {
                b.saturating_sub(a) as f64 / secs
            } else {
                0.0
            }
        };
        let traffic = |t: Traffic, before: Option<Traffic>, after: Option<Traffic>| {
            let (b, a) = (before.unwrap_or_default(), after.unwrap_or_default());
            pb::Traffic {
                packets: t.packets,
                bytes: t.bytes,
                packets_per_s: rate(b.packets, a.packets),
                bits_per_s: rate(b.bytes, a.bytes) * 8.0,
            }
        };
        let Some(now) = now else {
            return pb::StatsReply {
                nic: Some(self.nic_stats()),
                ..pb::StatsReply::default()
            };
        };
        let counters = Counter::ALL
            .iter()
            .map(|&c| pb::Counter {
                name: c.name().into(),
                value: now.stats.get(c),
                rate: match (prev, last) {
                    (Some(p), Some(l)) => rate(p.stats.get(c), l.stats.get(c)),
                    _ => 0.0,
                },
            })
            .collect();
        let vips = self
            .vips
            .iter()
            .filter_map(|v| {
                let id = v.id();
                let (_, vip_id) = self.reconciler.vip_ids().find(|(k, _)| **k == id)?;
                let t = *now.vips.get(&vip_id)?;
                let pick =
                    |s: &Option<Sample>| s.as_ref().and_then(|s| s.vips.get(&vip_id).copied());
                Some(pb::VipStats {
                    vip: Some((&id).into()),
                    traffic: Some(traffic(t, pick(prev), pick(last))),
                    reals: v
                        .reals
                        .iter()
                        .filter_map(|r| {
                            let real_id = self.reconciler.real_id(&id, &r.address)?;
                            let t = *now.reals.get(&real_id)?;
                            let pick = |s: &Option<Sample>| {
                                s.as_ref().and_then(|s| s.reals.get(&real_id).copied())
                            };
                            Some(pb::RealStats {
                                address: r.address.to_string(),
                                traffic: Some(traffic(t, pick(prev), pick(last))),
                            })
                        })
                        .collect(),
                })
            })
            .collect();
        pb::StatsReply {
            counters,
            vips,
            nic: Some(self.nic_stats()),
        }
    }
}

/// Sampling for rates, and the interface's transmit errors.
impl Controller {
    /// Takes a sample for rates (called every second).
    pub fn tick(&mut self) {
        if let Some(s) = self.sample() {
            self.samples = (self.samples.1.take(), Some(s));
        }
        self.watch_nic();
        self.judge_fleet_health();
    }

    /// Warns (at most once a minute) when the driver drops frames the
    /// balancer sent with XDP_TX: on a veth, a peer without an XDP program.
    fn watch_nic(&mut self) {
        let now = crate::nic::xdp_tx_errors(&self.settings.daemon.interface);
        if let (Some(before), Some(now)) = (self.nic_tx_errors, now)
            && now > before
            && self
                .nic_warned
                .is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60))
        {
            tracing::warn!(
                interface = %self.settings.daemon.interface,
                xdp_tx_errors = now,
                new = now - before,
                "the driver dropped frames the balancer sent with XDP_TX: {}",
                crate::nic::VETH_NATIVE_WARNING
            );
            self.nic_warned = Some(Instant::now());
        }
        self.nic_tx_errors = now;
    }
}
