//! The controller: one task owns the desired state (the VIPs), the data
//! plane, the reconciler and the health table. API requests, probe results,
//! reloads and the stats sampler reach it as messages, so no state is shared
//! or locked.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    time::Instant,
};

use lb_common::{
    maps::{REAL_STATE_DOWN, REAL_STATE_DRAINING, REAL_STATE_UP, Traffic},
    stats::{Counter, Stats},
};
use tokio::sync::{mpsc, oneshot};

use super::{
    announce::{self, AddressHealth, AddressState},
    dataplane_config, state_file,
};
use crate::{
    api::pb,
    bgp::{
        Announcement, Prefix,
        speaker::{self, SpeakerHandle},
    },
    config::{self, RealConfig, Settings, VipConfig},
    dataplane::Dataplane,
    health::{HealthTable, ProbeKey, ProbeResult},
    reconcile::{ApplyReport, RealSpec, Reconciler, VipId, VipSpec},
};

/// A change asked through the API.
#[derive(Debug, Clone)]
pub enum Change {
    AddVip(VipConfig),
    DelVip(VipId),
    AddReal(VipId, RealConfig),
    DelReal(VipId, IpAddr),
    SetWeight(VipId, IpAddr, u32),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

/// A message to the controller.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<pb::StatusReply>),
    ListVips(oneshot::Sender<pb::ListVipsReply>),
    Change(Change, oneshot::Sender<Result<String, RequestError>>),
    Stats(oneshot::Sender<pb::StatsReply>),
    Health(oneshot::Sender<pb::HealthReply>),
    Reload(oneshot::Sender<Result<String, RequestError>>),
    BgpStatus(oneshot::Sender<pb::BgpStatusReply>),
    /// Prometheus text.
    Metrics(oneshot::Sender<String>),
}

/// Counters at one instant, for rates.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    stats: Stats,
    vips: BTreeMap<u32, Traffic>,
    reals: BTreeMap<u32, Traffic>,
}

/// Everything the daemon runs.
pub struct Controller {
    pub config_path: PathBuf,
    pub settings: Settings,
    pub vips: Vec<VipConfig>,
    pub dp: Dataplane,
    pub reconciler: Reconciler,
    pub health: HealthTable,
    pub results: mpsc::Sender<ProbeResult>,
    pub started: Instant,
    pub adopted: bool,
    pub iface_mac: Option<[u8; 6]>,
    /// Health of reals as the adopted data plane had it (restart: no flap).
    pub adopted_health: BTreeMap<IpAddr, bool>,
    /// The last two samples of the counters.
    samples: (Option<Sample>, Option<Sample>),
    /// The BGP speaker, with a `[bgp]` section.
    pub speaker: Option<SpeakerHandle>,
    /// The announcement policy's memory of each VIP address (hold-down,
    /// inherited announcements): see [`announce`].
    addresses: BTreeMap<IpAddr, AddressState>,
    /// The interface driver's XDP_TX failures at the last tick, and when
    /// lb-ctl last warned of a rise.
    nic_tx_errors: Option<u64>,
    nic_warned: Option<Instant>,
}

/// The prober that decides for real `r` of VIP `v`.
pub fn probe_key(v: &VipConfig, r: &RealConfig) -> ProbeKey {
    let check = v.check_of(r).clone();
    ProbeKey {
        addr: r.address,
        port: check.port.unwrap_or(v.port),
        check,
    }
}

impl Controller {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_path: PathBuf,
        settings: Settings,
        vips: Vec<VipConfig>,
        dp: Dataplane,
        reconciler: Reconciler,
        results: mpsc::Sender<ProbeResult>,
        adopted: bool,
        iface_mac: Option<[u8; 6]>,
    ) -> Self {
        let adopted_health = reconciler.real_health();
        Controller {
            config_path,
            settings,
            vips,
            dp,
            reconciler,
            health: HealthTable::default(),
            results,
            started: Instant::now(),
            adopted,
            iface_mac,
            adopted_health,
            samples: (None, None),
            speaker: None,
            addresses: BTreeMap::new(),
            nic_tx_errors: None,
            nic_warned: None,
        }
    }

    /// Starts the BGP speaker (with a `[bgp]` section). When the data plane
    /// was adopted (lb-ctl restarted) and a gobgpd still announces some of
    /// the VIP addresses (lb-ctl crashed, its routes stayed), those stay
    /// announced until the health checks decide; nothing else is announced
    /// before its own checks confirm it (see [`announce`]).
    pub async fn start_bgp(&mut self) {
        let Some(settings) = self.settings.bgp.clone() else {
            return;
        };
        if self.adopted {
            let ours: BTreeSet<IpAddr> = self.vips.iter().map(|v| v.address).collect();
            let still = speaker::announced_by_running_gobgpd(&settings).await;
            let inherited: Vec<IpAddr> = still.intersection(&ours).copied().collect();
            if !inherited.is_empty() {
                tracing::info!(
                    ?inherited,
                    "gobgpd still announces these VIP addresses: kept until the health checks decide"
                );
            }
            for addr in inherited {
                self.addresses.entry(addr).or_default().inherited = true;
            }
        }
        let (wanted, withheld) = self.announcements();
        let pid_file = self.settings.daemon.socket.with_extension("gobgpd.pid");
        let handle = speaker::spawn(settings, wanted, pid_file);
        handle.view.lock().expect("view").withheld = withheld;
        self.speaker = Some(handle);
    }

    /// For each VIP address: whether every VIP on it has at least
    /// `min_healthy` healthy reals, by confirmed checks and provisionally.
    fn address_health(&self) -> BTreeMap<IpAddr, AddressHealth> {
        let mut out: BTreeMap<IpAddr, AddressHealth> = BTreeMap::new();
        for v in &self.vips {
            let usable = || v.reals.iter().filter(|r| r.weight > 0);
            let healthy = usable()
                .filter(|r| self.health.healthy(&probe_key(v, r)))
                .count() as u32;
            let confirmed = usable()
                .filter(|r| self.health.confirmed_healthy(&probe_key(v, r)))
                .count() as u32;
            let entry = out.entry(v.address).or_insert(AddressHealth {
                confirmed: Ok(()),
                provisional: Ok(()),
            });
            let short = |n: u32| {
                format!(
                    "VIP {}: {n} of {} reals healthy, {} needed",
                    v.id(),
                    v.reals.len(),
                    v.min_healthy
                )
            };
            if entry.provisional.is_ok() && healthy < v.min_healthy {
                entry.provisional = Err(short(healthy));
            }
            if entry.confirmed.is_ok() && confirmed < v.min_healthy {
                entry.confirmed = Err(if healthy >= v.min_healthy {
                    format!(
                        "VIP {}: waiting for its health checks to confirm the reals ({confirmed} of {} confirmed, {} needed)",
                        v.id(),
                        v.reals.len(),
                        v.min_healthy
                    )
                } else {
                    short(healthy)
                });
            }
        }
        out
    }

    /// What to announce now (with the hold-down), and what is withheld.
    fn announcements(&mut self) -> (Vec<Announcement>, Vec<(Prefix, String)>) {
        let Some(b) = self.settings.bgp.clone() else {
            return (Vec::new(), Vec::new());
        };
        let now = Instant::now();
        let mut wanted = Vec::new();
        let mut withheld = Vec::new();
        let health = self.address_health();
        self.addresses.retain(|a, _| health.contains_key(a));
        for (addr, h) in health {
            let prefix = Prefix::host(addr);
            let state = self.addresses.entry(addr).or_default();
            if let Err(why) = announce::decide(now, b.hold_down, &h, state) {
                withheld.push((prefix, why));
                continue;
            }
            let next_hop = match addr {
                IpAddr::V4(_) => b.next_hop_v4.map(IpAddr::V4),
                IpAddr::V6(_) => b.next_hop_v6.map(IpAddr::V6),
            };
            let Some(next_hop) = next_hop else {
                withheld.push((
                    prefix,
                    "no next hop for its family (next_hop_v4/v6 or source_v4/v6)".into(),
                ));
                continue;
            };
            let vip = self.vips.iter().find(|v| v.address == addr);
            wanted.push(Announcement {
                prefix,
                next_hop,
                communities: vip
                    .and_then(|v| v.communities.clone())
                    .unwrap_or_else(|| b.communities.clone()),
                med: vip.and_then(|v| v.med).unwrap_or(b.med),
            });
        }
        (wanted, withheld)
    }

    /// Tells the speaker what to announce now.
    pub fn update_bgp(&mut self) {
        if self.speaker.is_none() {
            return;
        }
        let (wanted, withheld) = self.announcements();
        let speaker = self.speaker.as_ref().expect("checked above");
        speaker.view.lock().expect("view").withheld = withheld;
        speaker.announce(wanted);
    }

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

    /// The desired state for the reconciler: configured reals with their
    /// health.
    fn specs(&self) -> Vec<VipSpec> {
        self.vips
            .iter()
            .map(|v| VipSpec {
                id: v.id(),
                ring_size: v.ring(),
                no_conn_table: v.no_conn_table,
                reals: v
                    .reals
                    .iter()
                    .map(|r| RealSpec {
                        addr: r.address,
                        weight: r.weight,
                        healthy: self.health.healthy(&probe_key(v, r)),
                    })
                    .collect(),
            })
            .collect()
    }

    /// Starts and stops probers for the VIPs, then makes the data plane
    /// hold them.
    pub fn apply(&mut self) -> Result<ApplyReport, RequestError> {
        let wanted: BTreeSet<ProbeKey> = self
            .vips
            .iter()
            .flat_map(|v| v.reals.iter().map(move |r| probe_key(v, r)))
            .collect();
        let adopted = &self.adopted_health;
        self.health.sync(
            &wanted,
            |k| adopted.get(&k.addr).copied().unwrap_or(false),
            &self.results,
        );
        let specs = self.specs();
        let report = self
            .reconciler
            .apply(&mut self.dp, &specs)
            .map_err(|e| RequestError::Internal(format!("{e:#}")))?;
        if !report.is_empty() {
            tracing::info!(?report, "data plane updated");
        }
        self.update_bgp();
        Ok(report)
    }

    /// A probe result: on a transition, the VIPs using that prober change.
    pub fn on_probe(&mut self, result: ProbeResult) {
        let key = result.key.clone();
        let outcome = result.outcome.clone();
        if let Some(healthy) = self.health.record(result) {
            let vips: Vec<String> = self
                .vips
                .iter()
                .filter(|v| v.reals.iter().any(|r| probe_key(v, r) == key))
                .map(|v| v.id().to_string())
                .collect();
            if healthy {
                tracing::info!(real = %key.addr, port = key.port, check = %key.check, ?vips, "real is up");
            } else {
                let why = outcome.err().unwrap_or_default();
                tracing::warn!(real = %key.addr, port = key.port, check = %key.check, ?vips, %why, "real is down");
            }
            if let Err(e) = self.apply() {
                tracing::error!(error = %e, "applying a health change failed");
            }
        }
    }

    /// Applies an API change; on success the state file is rewritten.
    pub fn change(&mut self, change: Change) -> Result<String, RequestError> {
        let before = self.vips.clone();
        let summary = self.edit(change)?;
        config::validate_vips(
            &self.vips,
            &self.settings.dataplane,
            self.settings.bgp.as_ref(),
        )
        .map_err(|e| {
            self.vips = before.clone();
            RequestError::Invalid(e)
        })?;
        if let Err(e) = self.apply() {
            self.vips = before;
            let _ = self.apply();
            return Err(e);
        }
        if let Err(e) = state_file::save(&self.settings.daemon.state_file, &self.vips) {
            self.vips = before;
            let _ = self.apply();
            return Err(RequestError::Internal(format!("{e:#}")));
        }
        tracing::info!(%summary, "changed through the API");
        Ok(summary)
    }

    fn vip_mut(&mut self, id: &VipId) -> Result<&mut VipConfig, RequestError> {
        self.vips
            .iter_mut()
            .find(|v| v.id() == *id)
            .ok_or_else(|| RequestError::NotFound(format!("no VIP {id}")))
    }

    fn edit(&mut self, change: Change) -> Result<String, RequestError> {
        Ok(match change {
            Change::AddVip(v) => {
                let id = v.id();
                if self.vips.iter().any(|x| x.id() == id) {
                    return Err(RequestError::Exists(format!("VIP {id} exists already")));
                }
                let n = v.reals.len();
                self.vips.push(v);
                format!("added VIP {id} with {n} reals")
            }
            Change::DelVip(id) => {
                let before = self.vips.len();
                self.vips.retain(|v| v.id() != id);
                if self.vips.len() == before {
                    return Err(RequestError::NotFound(format!("no VIP {id}")));
                }
                format!("removed VIP {id}")
            }
            Change::AddReal(id, r) => {
                let v = self.vip_mut(&id)?;
                if v.reals.iter().any(|x| x.address == r.address) {
                    return Err(RequestError::Exists(format!(
                        "VIP {id} has real {} already",
                        r.address
                    )));
                }
                let msg = format!("added real {} (weight {}) to VIP {id}", r.address, r.weight);
                v.reals.push(r);
                msg
            }
            Change::DelReal(id, addr) => {
                let v = self.vip_mut(&id)?;
                let before = v.reals.len();
                v.reals.retain(|r| r.address != addr);
                if v.reals.len() == before {
                    return Err(RequestError::NotFound(format!(
                        "VIP {id} has no real {addr}"
                    )));
                }
                format!("removed real {addr} from VIP {id}")
            }
            Change::SetWeight(id, addr, weight) => {
                let v = self.vip_mut(&id)?;
                let r = v
                    .reals
                    .iter_mut()
                    .find(|r| r.address == addr)
                    .ok_or_else(|| {
                        RequestError::NotFound(format!("VIP {id} has no real {addr}"))
                    })?;
                let old = std::mem::replace(&mut r.weight, weight);
                if weight == 0 {
                    format!("draining real {addr} of VIP {id} (weight {old} -> 0)")
                } else {
                    format!("real {addr} of VIP {id}: weight {old} -> {weight}")
                }
            }
        })
    }

    /// Re-reads the configuration file; a bad file changes nothing.
    pub fn reload(&mut self) -> Result<String, RequestError> {
        let new =
            config::load(&self.config_path).map_err(|e| RequestError::Invalid(format!("{e:#}")))?;
        let mut notes = Vec::new();
        if new.daemon != self.settings.daemon {
            notes.push("[daemon] changes take effect at the next start".to_owned());
        }
        if new.dataplane.conn_table_size != self.settings.dataplane.conn_table_size {
            notes.push("conn_table_size takes effect at the next start".to_owned());
        }
        if new.bgp != self.settings.bgp {
            let what = match (&self.settings.bgp, &new.bgp) {
                (None, Some(_)) => "a [bgp] section was added",
                (Some(_), None) => "the [bgp] section was removed",
                _ => "the [bgp] section changed",
            };
            notes.push(format!(
                "{what}: NOT applied; BGP keeps its current settings until the next start"
            ));
        }
        let mut dataplane = new.dataplane.clone();
        dataplane.conn_table_size = self.settings.dataplane.conn_table_size;
        let before_vips = std::mem::replace(&mut self.vips, new.vips.clone());
        let before_dp = std::mem::replace(&mut self.settings.dataplane, dataplane);
        let result = self
            .dp
            .set_config(&dataplane_config(&self.settings.dataplane, self.iface_mac))
            .map_err(|e| RequestError::Internal(format!("{e:#}")))
            .and_then(|()| self.apply());
        match result {
            Ok(report) => {
                if let Err(e) = state_file::save(&self.settings.daemon.state_file, &self.vips) {
                    tracing::error!(error = %e, "reloaded, but the state file could not be written");
                }
                let summary = format!(
                    "reloaded {}: {} VIPs; {report:?}{}",
                    self.config_path.display(),
                    self.vips.len(),
                    if notes.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", notes.join("; "))
                    }
                );
                tracing::info!(%summary, "configuration reloaded");
                Ok(summary)
            }
            Err(e) => {
                self.vips = before_vips;
                self.settings.dataplane = before_dp;
                let _ = self
                    .dp
                    .set_config(&dataplane_config(&self.settings.dataplane, self.iface_mac));
                let _ = self.apply();
                Err(e)
            }
        }
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
            state_file: self.settings.daemon.state_file.display().to_string(),
            uptime_s: self.started.elapsed().as_secs(),
            adopted: self.adopted,
            vips: self.vips.len() as u32,
            reals: reals.len() as u32,
            reals_healthy: healthy as u32,
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
                            };
                            pb::RealInfo {
                                address: r.address.to_string(),
                                weight: r.weight,
                                state: match spec.state() {
                                    REAL_STATE_UP => "up",
                                    REAL_STATE_DRAINING => "draining",
                                    REAL_STATE_DOWN => "down",
                                    _ => "unknown",
                                }
                                .into(),
                                healthy,
                                real_id: self.reconciler.real_id(&id, &r.address).unwrap_or(0),
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
    fn sample(&self) -> Option<Sample> {
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

    /// Takes a sample for rates (called every second).
    pub fn tick(&mut self) {
        if let Some(s) = self.sample() {
            self.samples = (self.samples.1.take(), Some(s));
        }
        self.watch_nic();
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

    fn nic_stats(&self) -> pb::NicStats {
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

    /// Answers one message.
    pub fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Status(tx) => drop(tx.send(self.status())),
            Command::ListVips(tx) => drop(tx.send(self.list_vips())),
            Command::Change(c, tx) => drop(tx.send(self.change(c))),
            Command::Stats(tx) => drop(tx.send(self.stats_reply())),
            Command::Health(tx) => drop(tx.send(self.health_reply())),
            Command::Reload(tx) => drop(tx.send(self.reload())),
            Command::BgpStatus(tx) => drop(tx.send(self.bgp_status())),
            Command::Metrics(tx) => {
                let (stats, vips, health, bgp) = (
                    self.stats_reply(),
                    self.list_vips(),
                    self.health_reply(),
                    self.bgp_status(),
                );
                drop(tx.send(super::metrics::render(&super::metrics::Snapshot {
                    stats: &stats,
                    vips: &vips,
                    health: &health,
                    bgp: &bgp,
                    uptime_s: self.started.elapsed().as_secs(),
                })));
            }
        }
    }
}
