//! The controller: one task owns the desired state (the VIPs), the data
//! plane, the reconciler and the health table. API requests, probe results,
//! reloads and the stats sampler reach it as messages, in one loop
//! (`daemon::run`), and [`Controller::handle`] answers them. The decisions
//! are pure functions elsewhere: desired-state edits ([`crate::api::edits`]),
//! the BGP announcement policy ([`super::announce`]). The controller's
//! other sides have their own files: all-or-nothing changes and reloads
//! ([`super::changes`]), feeding the BGP speaker ([`super::announcing`]),
//! the API's views and rates ([`super::views`]). The BGP speaker's status
//! view is the one value shared with another task (the speaker writes peers
//! and announced routes into it, behind a mutex).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    time::Instant,
};

use tokio::sync::mpsc;

pub use crate::health::probe_key;

use super::{announce::AddressState, views::Sample};
use crate::{
    api::commands::{Command, MetricsSnapshot},
    bgp::speaker::SpeakerHandle,
    config::{Settings, VipConfig},
    dataplane::Dataplane,
    health::{HealthTable, ProbeKey, ProbeResult},
    reconcile::{ApplyReport, RealSpec, ReconcileError, Reconciler, VipSpec},
    vocab::Encapsulation,
};

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
    pub(super) samples: (Option<Sample>, Option<Sample>),
    /// The BGP speaker, with a `[bgp]` section.
    pub speaker: Option<SpeakerHandle>,
    /// The announcement policy's memory of each VIP address (hold-down,
    /// inherited announcements): see [`announce`].
    pub(super) addresses: BTreeMap<IpAddr, AddressState>,
    /// The interface driver's XDP_TX failures at the last tick, and when
    /// lb-ctl last warned of a rise.
    pub(super) nic_tx_errors: Option<u64>,
    pub(super) nic_warned: Option<Instant>,
    /// Fleet mode: the store revision the VIPs are.
    pub fleet_revision: Option<i64>,
    /// Fleet mode: the checker's results and whether they are believed.
    pub(super) fleet_health: Option<super::fleet_health::FleetHealthView>,
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
            fleet_revision: None,
            fleet_health: None,
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
                quic: v.quic,
                reals: v
                    .reals
                    .iter()
                    .map(|r| RealSpec {
                        addr: r.address,
                        weight: r.weight,
                        healthy: self.health.healthy(&probe_key(v, r)),
                        gue: v.encap_of(r) == Encapsulation::Gue,
                    })
                    .collect(),
            })
            .collect()
    }

    /// Starts and stops probers for the VIPs, then makes the data plane
    /// hold them.
    pub fn apply(&mut self) -> Result<ApplyReport, ReconcileError> {
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
        let report = self.reconciler.apply(&mut self.dp, &specs)?;
        if !report.is_empty() {
            tracing::info!(?report, "data plane updated");
        }
        self.update_bgp();
        Ok(report)
    }

    /// A probe result: on a transition, the VIPs using that prober change.
    pub fn on_probe(&mut self, result: ProbeResult) {
        let key = &result.key;
        if let Some(healthy) = self.health.record(&result) {
            let vips: Vec<String> = self
                .vips
                .iter()
                .filter(|v| v.reals.iter().any(|r| probe_key(v, r) == *key))
                .map(|v| v.id().to_string())
                .collect();
            if healthy {
                tracing::info!(real = %key.addr, port = key.port, check = %key.check, ?vips, "real is up");
            } else {
                let why = result.outcome.as_ref().err().map(ToString::to_string);
                tracing::warn!(real = %key.addr, port = key.port, check = %key.check, ?vips, why = why.unwrap_or_default(), "real is down");
            }
            if let Err(e) = self.apply() {
                tracing::error!(error = %crate::errors::chain(&e), "applying a health change failed");
            }
        }
    }

    /// Answers one message.
    pub fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Status(tx) => drop(tx.send(self.status())),
            Command::ListVips(tx) => drop(tx.send(self.list_vips())),
            Command::Change(c, tx) => drop(tx.send(self.change(c).map_err(Into::into))),
            Command::Stats(tx) => drop(tx.send(self.stats_reply())),
            Command::Health(tx) => drop(tx.send(self.health_reply())),
            Command::Reload(tx) => drop(tx.send(self.reload().map_err(Into::into))),
            Command::BgpStatus(tx) => drop(tx.send(self.bgp_status())),
            Command::Metrics(tx) => drop(tx.send(MetricsSnapshot {
                stats: self.stats_reply(),
                vips: self.list_vips(),
                health: self.health_reply(),
                bgp: self.bgp_status(),
                uptime_s: self.started.elapsed().as_secs(),
            })),
        }
    }
}
