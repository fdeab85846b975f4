//! `lb-ctl daemon`: attach the balancer to the configured interface (or
//! adopt the program and maps already pinned), keep the kernel in line with
//! the desired state (config file, control API, health checks), serve the
//! control API, reload on SIGHUP, and leave the program attached on exit.
//!
//! The desired VIPs come from the state file when there is one (changes
//! made through the API survive a restart), else from the config file; a
//! reload replaces them with the config file's.
mod announce;
mod announcing;
mod changes;
mod controller;
mod fleet_health;
pub mod metrics;
pub mod notify;
pub mod state_file;
mod views;

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

pub use controller::Controller;

pub use crate::api::commands::{Change, Command, RequestError};
use lb_common::config::{
    CONFIG_F_ICMP_ECHO, CONFIG_F_ICMP_TOO_BIG, Config, MAC_MODE_FIB, MAC_MODE_GATEWAY,
    MAC_MODE_REFLECT,
};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    api,
    bgp::Prefix,
    config::{self, DataplaneSettings, NextHop},
    dataplane::{self, Dataplane, DataplaneError, LoadOptions},
    fleet, iface,
    programs::{self, Program, ProgramsError},
    reconcile::Reconciler,
};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] config::LoadError),
    #[error(transparent)]
    State(#[from] state_file::StateError),
    #[error("the VIPs to start with are not valid: {0}")]
    Vips(String),
    #[error("interface {name}")]
    Iface {
        name: String,
        #[source]
        source: iface::IfaceError,
    },
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error(transparent)]
    Programs(#[from] ProgramsError),
    #[error("adopting the pinned state failed")]
    Adopt(#[source] crate::reconcile::ReconcileError),
    #[error("applying the desired state failed")]
    Apply(#[source] crate::reconcile::ReconcileError),
    #[error(transparent)]
    Api(#[from] api::server::ServeError),
    #[error("signal handling")]
    Signal(#[source] std::io::Error),
}

/// The data plane's run-time settings from the configuration.
pub fn dataplane_config(d: &DataplaneSettings, iface_mac: Option<[u8; 6]>) -> Config {
    let mut cfg = Config {
        mtu: d.mtu,
        max_conn_rate: d.max_conn_rate,
        gue_port: d.gue_port,
        quic_cid_len: d.quic_cid_len,
        quic_id_offset: d.quic_id_offset,
        quic_id_len: d.quic_id_len,
        ..Config::default()
    };
    if let Some(a) = d.source_v4 {
        cfg.src_v4 = a.octets();
    }
    if let Some(a) = d.source_v6 {
        cfg.src_v6 = a.octets();
    }
    // A prefix: the network, and the host bits vary per flow.
    if let Some(Prefix {
        addr: IpAddr::V4(a),
        len,
    }) = d.source_v4_prefix
    {
        cfg.src_v4 = a.octets();
        cfg.src_v4_flow_bits = 32 - len;
    }
    if let Some(Prefix {
        addr: IpAddr::V6(a),
        len,
    }) = d.source_v6_prefix
    {
        cfg.src_v6 = a.octets();
        cfg.src_v6_flow_bits = 128 - len;
    }
    match d.next_hop {
        NextHop::Reflect => cfg.mac_mode = MAC_MODE_REFLECT,
        NextHop::Fib => cfg.mac_mode = MAC_MODE_FIB,
        NextHop::Gateway(mac) => {
            cfg.mac_mode = MAC_MODE_GATEWAY;
            cfg.gateway_mac = mac;
            cfg.iface_mac = iface_mac.unwrap_or_default();
        }
    }
    if d.icmp_echo {
        cfg.flags |= CONFIG_F_ICMP_ECHO;
    }
    if d.icmp_too_big {
        cfg.flags |= CONFIG_F_ICMP_TOO_BIG;
    }
    cfg
}

/// Where the desired VIPs at start come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipSource {
    /// The state file (changes made through the API).
    StateFile,
    /// The configuration file (no state file yet).
    ConfigFile,
    /// Fleet mode: the last known good state, of this store revision.
    FleetLkg(Option<i64>),
    /// Fleet mode without an LKG file: the store, once it answers.
    FleetStore,
}

/// The settings and the desired VIPs the daemon starts with, read and
/// checked as a start does: the configuration file, then the state file
/// (in fleet mode the LKG file) if there is one, the VIPs checked against
/// the file's settings.
pub fn desired_state(
    config_path: &Path,
) -> Result<(config::Settings, Vec<config::VipConfig>, VipSource), DaemonError> {
    let settings = config::load(config_path)?;
    let saved = state_file::load_with_revision(settings.state_path())?;
    let (vips, source) = match (saved, &settings.fleet) {
        (Some((v, rev)), Some(_)) => (v, VipSource::FleetLkg(rev)),
        (None, Some(_)) => (Vec::new(), VipSource::FleetStore),
        (Some((v, _)), None) => (v, VipSource::StateFile),
        (None, None) => (settings.vips.clone(), VipSource::ConfigFile),
    };
    config::validate_vips(&vips, &settings.dataplane, settings.bgp.as_ref())
        .map_err(DaemonError::Vips)?;
    Ok((settings, vips, source))
}

/// `lb-ctl daemon --check-config`: what a start would do with the file at
/// `config_path`, in words; `Err` where a start would fail on the file or
/// the state file. An interface that does not exist here is a note, not a
/// failure (the file may be checked on another machine).
pub fn check_config(config_path: &Path) -> Result<String, DaemonError> {
    let (settings, vips, source) = desired_state(config_path)?;
    let reals: usize = vips.iter().map(|v| v.reals.len()).sum();
    let from = match source {
        VipSource::StateFile => format!(
            "from the state file {}",
            settings.daemon.state_file.display()
        ),
        VipSource::ConfigFile => "from the file".to_owned(),
        VipSource::FleetLkg(rev) => format!(
            "from the fleet's last known good state {} (revision {})",
            settings.state_path().display(),
            rev.map_or("unknown".to_owned(), |r| r.to_string())
        ),
        VipSource::FleetStore => {
            "from the fleet's store at start (no last known good state yet)".to_owned()
        }
    };
    let mut summary = format!(
        "{}: OK: {} VIPs {from}, {reals} reals; BGP {}",
        config_path.display(),
        vips.len(),
        if settings.bgp.is_some() { "on" } else { "off" },
    );
    if iface::lookup(&settings.daemon.interface).is_err() {
        summary.push_str(&format!(
            " (note: no interface {} on this host)",
            settings.daemon.interface
        ));
    }
    for advice in config::advice::ring_advice(&vips) {
        summary.push_str(&format!("\nnote: {advice}"));
    }
    Ok(summary)
}

/// Runs the daemon until SIGTERM or SIGINT, telling systemd through
/// `notify` (see [`notify`]).
pub async fn run(config_path: &Path, notify: notify::Notifier) -> Result<(), DaemonError> {
    let (settings, mut vips, source) = desired_state(config_path)?;
    let mut fleet_revision = None;
    match source {
        VipSource::StateFile => {
            tracing::info!(file = %settings.daemon.state_file.display(), vips = vips.len(), "VIPs from the state file");
        }
        VipSource::ConfigFile => {}
        VipSource::FleetLkg(rev) => {
            tracing::info!(file = %settings.state_path().display(), vips = vips.len(), revision = ?rev, "fleet: starting from the last known good state");
            fleet_revision = rev;
        }
        VipSource::FleetStore => {
            let fleet = settings.fleet.as_ref().expect("fleet mode");
            tracing::info!(endpoints = ?fleet.endpoints, host = %fleet.host, "fleet: no last known good state; waiting for the store");
            let (rev, first) = fleet::sync::first_state(fleet, |v| {
                config::validate_vips(v, &settings.dataplane, settings.bgp.as_ref())
            })
            .await;
            state_file::save_with_revision(settings.state_path(), &first, Some(rev))?;
            tracing::info!(
                revision = rev,
                vips = first.len(),
                "fleet: first state from the store"
            );
            (vips, fleet_revision) = (first, Some(rev));
        }
    }
    for advice in config::advice::ring_advice(&vips) {
        tracing::warn!("{advice}");
    }
    let d = &settings.daemon;
    let iface = iface::lookup(&d.interface).map_err(|source| DaemonError::Iface {
        name: d.interface.clone(),
        source,
    })?;

    let adopted = dataplane::is_pinned(&d.pin_dir);
    let mut dp = Dataplane::load(&LoadOptions {
        conn_table_size: settings.dataplane.conn_table_size,
        conn_table_size_v6: settings.dataplane.conn_table_size_v6,
        max_reals: settings.dataplane.max_reals,
        pin_dir: Some(d.pin_dir.clone()),
        ..LoadOptions::default()
    })?;
    // VIP and real maps of another layout (another version) were created
    // afresh: the state starts as on a first start.
    let adopted = adopted
        && !dp
            .replaced_pins()
            .iter()
            .any(|r| r.name == lb_common::maps::names::VIPS);
    dp.set_config(&dataplane_config(&settings.dataplane, iface.mac))?;
    let attached = programs::attach_or_update_pinned(
        dp.program(),
        Program::Balance,
        &d.interface,
        d.mode,
        &d.pin_dir,
    )?;
    tracing::info!(
        interface = %d.interface,
        mode = ?d.mode,
        pin_dir = %d.pin_dir.display(),
        adopted,
        ?attached,
        conn_table_v4 = settings.dataplane.conn_table_size,
        conn_table_v6 = settings.dataplane.conn_table_size_v6,
        "balancer attached"
    );
    if d.mode != programs::AttachMode::Generic
        && crate::nic::driver(&d.interface).is_ok_and(|drv| drv == "veth")
    {
        tracing::warn!(interface = %d.interface, "{}", crate::nic::VETH_NATIVE_WARNING);
    }
    let reconciler = if adopted {
        Reconciler::adopt(&dp).map_err(DaemonError::Adopt)?
    } else {
        Reconciler::new()
    };

    let (results_tx, mut results_rx) = mpsc::channel(1024);
    let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(64);
    let socket: PathBuf = d.socket.clone();
    let mut ctl = Controller::new(
        config_path.to_owned(),
        settings,
        vips,
        dp,
        reconciler,
        results_tx,
        adopted,
        iface.mac,
    );
    ctl.fleet_revision = fleet_revision;
    ctl.apply().map_err(DaemonError::Apply)?;
    ctl.start_bgp().await;
    let (fleet_tx, mut fleet_rx) = mpsc::channel::<fleet::sync::ToController>(16);
    let fleet_sync = ctl
        .settings
        .fleet
        .clone()
        .map(|f| tokio::spawn(fleet::sync::run(f, fleet_tx, fleet_revision)));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = api::server::bind(&socket)?;
    let cmd_tx_metrics = cmd_tx.clone();
    let server = tokio::spawn(api::server::serve(server, cmd_tx, async {
        let _ = stop_rx.await;
    }));
    let metrics = ctl.settings.daemon.metrics.map(|addr| {
        let commands = cmd_tx_metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, commands).await {
                tracing::error!(%addr, error = %e, "metrics endpoint stopped");
            }
        })
    });
    tracing::info!(socket = %socket.display(), "ready");
    notify.ready(&ctl.summary());
    // The watchdog beats from this loop: a hung controller stops it.
    let mut watchdog = tokio::time::interval(
        notify
            .watchdog_interval()
            .unwrap_or(std::time::Duration::from_secs(3600)),
    );

    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signal)?;
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    // Hold-downs end between health events.
    let mut bgp_tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            Some(cmd) = cmd_rx.recv() => ctl.handle(cmd),
            Some(result) = results_rx.recv() => ctl.on_probe(result),
            Some(msg) = fleet_rx.recv() => match msg {
                fleet::sync::ToController::Offer(offer) => {
                    let answer = ctl.fleet_offer(offer.revision, offer.vips);
                    let _ = offer.reply.send(answer.map_err(|e| crate::errors::chain(&e)));
                }
                fleet::sync::ToController::Health(h) => ctl.on_fleet_health(h),
            },
            _ = tick.tick() => ctl.tick(),
            _ = bgp_tick.tick() => ctl.update_bgp(),
            _ = watchdog.tick() => if notify.watchdog_interval().is_some() {
                notify.watchdog();
            },
            _ = hup.recv() => {
                notify.reloading();
                match ctl.reload() {
                    Ok(summary) => tracing::info!(%summary, "SIGHUP: reloaded"),
                    Err(e) => tracing::error!(error = %crate::errors::chain(&e), "SIGHUP: the configuration was refused; nothing changed"),
                }
                notify.ready(&ctl.summary());
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    notify.stopping();
    if let Some(speaker) = ctl.speaker.take() {
        tracing::info!("stopping: withdrawing every route first");
        speaker.shutdown().await;
    }
    tracing::info!("stopping; the balancer stays attached and keeps forwarding");
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(f) = fleet_sync {
        f.abort();
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}
