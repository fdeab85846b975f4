//! The controller: one task owns the desired state (the VIPs), the data
//! plane, the reconciler and the health table. API requests, probe results,
//! reloads and the stats sampler reach it as messages, in one loop. The
//! decisions are pure functions elsewhere: desired-state edits
//! ([`super::edits`]), the BGP announcement policy ([`super::announce`]);
//! the API's views are in [`super::views`]. The BGP speaker's status view
//! is the one value shared with another task (the speaker writes peers and
//! announced routes into it, behind a mutex).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    path::PathBuf,
    time::Instant,
};

use tokio::sync::mpsc;

use super::{
    announce::{self, AddressState, RealHealth},
    dataplane_config, edits, state_file,
    views::Sample,
};
use crate::{
    api::commands::{Change, Command, MetricsSnapshot, RequestError},
    bgp::{
        Announcement, Prefix,
        speaker::{self, SpeakerHandle},
    },
    config::{self, RealConfig, Settings, VipConfig},
    dataplane::Dataplane,
    health::{HealthTable, ProbeKey, ProbeResult},
    reconcile::{ApplyReport, RealSpec, Reconciler, VipSpec},
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

    /// What to announce now, and what is withheld (see [`announce`]).
    fn announcements(&mut self) -> (Vec<Announcement>, Vec<(Prefix, String)>) {
        let Some(b) = &self.settings.bgp else {
            return (Vec::new(), Vec::new());
        };
        let health = &self.health;
        let by_address = announce::address_health(&self.vips, |v, r| {
            let key = probe_key(v, r);
            RealHealth {
                healthy: health.healthy(&key),
                confirmed: health.confirmed_healthy(&key),
            }
        });
        announce::announcements(
            &self.vips,
            by_address,
            b,
            &mut self.addresses,
            Instant::now(),
        )
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
                tracing::error!(error = %e, "applying a health change failed");
            }
        }
    }

    /// Applies an API change; on success the state file is rewritten.
    pub fn change(&mut self, change: Change) -> Result<String, RequestError> {
        let before = self.vips.clone();
        let summary = edits::apply_change(&mut self.vips, change)?;
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
