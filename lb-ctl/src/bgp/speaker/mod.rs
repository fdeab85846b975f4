//! The BGP speaker task: runs gobgpd (or adopts one already running at the
//! API address, e.g. left by a crashed lb-ctl, or an operator's), starts
//! BGP and adds the neighbors, and keeps the announced paths equal to the
//! wanted ones. If gobgpd dies it is started again and everything is
//! re-announced. On shutdown every path is withdrawn, and the speaker waits
//! until no neighbor's adj-rib-out holds one, before stopping BGP.
//!
//! gobgpd is started in its own session (`setsid`), so that it outlives a
//! crash of lb-ctl: the routes stay while the pinned XDP program goes on
//! forwarding, and the restarted lb-ctl adopts it.
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    process::Child,
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
};

pub use super::running::announced_by_running_gobgpd;
mod error;
mod gobgpd;

pub use error::SpeakerError;
use error::api;

use super::{
    Announcement, BgpSettings, Prefix,
    gobgp::{self, Gobgp},
    running::stop_process,
};

/// How often gobgpd is checked and the peers' states refreshed.
const TICK: Duration = Duration::from_millis(500);
/// How long a started gobgpd may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for withdrawals to leave.
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(3);

/// A peer as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerView {
    pub address: String,
    pub asn: u32,
    pub state: String,
    pub uptime_s: u64,
}

/// What the speaker knows, for `lb-ctl bgp status`.
#[derive(Debug, Clone, Default)]
pub struct BgpView {
    pub gobgpd: String,
    pub restarts: u32,
    pub peers: Vec<PeerView>,
    pub announced: Vec<Announcement>,
    /// Set by the controller: VIP addresses not announced, and why.
    pub withheld: Vec<(Prefix, String)>,
    pub last_error: String,
    /// Announcements refused by the hijack guard.
    pub refused: u64,
}

/// The controller's handle on the speaker.
pub struct SpeakerHandle {
    desired: watch::Sender<Vec<Announcement>>,
    pub view: Arc<Mutex<BgpView>>,
    shutdown: mpsc::Sender<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl SpeakerHandle {
    /// Sets what should be announced.
    pub fn announce(&self, wanted: Vec<Announcement>) {
        self.desired.send_if_modified(|cur| {
            if *cur == wanted {
                false
            } else {
                *cur = wanted;
                true
            }
        });
    }

    /// Withdraws everything, waits for it to leave, stops BGP.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.shutdown.send(tx).await.is_ok() {
            let _ = rx.await;
        }
        let _ = self.task.await;
    }
}

/// Starts the speaker task, wanting `initial` announced. The pid of a
/// gobgpd it starts is written to `pid_file`, where a successor lb-ctl (after
/// a crash) finds it to stop it on its own graceful stop.
pub fn spawn(
    settings: BgpSettings,
    initial: Vec<Announcement>,
    pid_file: PathBuf,
) -> SpeakerHandle {
    let (desired, desired_rx) = watch::channel(initial);
    let (shutdown, shutdown_rx) = mpsc::channel(1);
    let view = Arc::new(Mutex::new(BgpView::default()));
    let speaker = Speaker {
        settings,
        client: None,
        child: None,
        adopted_pid: None,
        pid_file,
        announced: BTreeMap::new(),
        view: view.clone(),
    };
    let task = tokio::spawn(speaker.run(desired_rx, shutdown_rx));
    SpeakerHandle {
        desired,
        view,
        shutdown,
        task,
    }
}

struct Speaker {
    settings: BgpSettings,
    client: Option<Gobgp>,
    /// The gobgpd this speaker started, if it did.
    child: Option<Child>,
    /// The managed gobgpd a crashed predecessor started, adopted here (its
    /// pid from `pid_file`, checked against `/proc`).
    adopted_pid: Option<u32>,
    /// Where the managed gobgpd's pid is recorded.
    pid_file: PathBuf,
    /// What gobgpd has from us now.
    announced: BTreeMap<Prefix, Announcement>,
    view: Arc<Mutex<BgpView>>,
}

impl Speaker {
    fn note_error(&self, e: &SpeakerError) {
        let msg = crate::errors::chain(e);
        tracing::warn!(error = %msg, "bgp");
        self.view.lock().expect("view").last_error = msg;
    }

    async fn run(
        mut self,
        mut desired: watch::Receiver<Vec<Announcement>>,
        mut shutdown: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.ensure_running().await {
                        self.note_error(&e);
                        continue;
                    }
                    self.refresh_peers().await;
                    let wanted = desired.borrow().clone();
                    self.reconcile(&wanted).await;
                }
                Ok(()) = desired.changed() => {
                    let wanted = desired.borrow_and_update().clone();
                    if self.client.is_some() {
                        self.reconcile(&wanted).await;
                    }
                }
                Some(done) = shutdown.recv() => {
                    self.stop().await;
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    /// Makes sure a configured gobgpd answers: adopts one at the API
    /// address, else starts one (if managed); starts BGP and adds missing
    /// neighbors.
    async fn ensure_running(&mut self) -> Result<(), SpeakerError> {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            tracing::error!(%status, "gobgpd exited; starting it again and announcing again");
            self.child = None;
            self.client = None;
        }
        if let Some(c) = &mut self.client {
            match c.global().await {
                Ok(g) if g.asn != 0 => return Ok(()),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "gobgpd does not answer; connecting again");
                    self.client = None;
                }
            }
        }
        let fresh = self.client.is_none();
        if fresh {
            self.connect_or_start().await?;
        }
        let global = self
            .client
            .as_mut()
            .expect("connected above")
            .global()
            .await
            .map_err(api("GetBgp"))?;
        if global.asn == 0 {
            let c = self.client.as_mut().expect("connected above");
            c.start(&self.settings).await.map_err(api("StartBgp"))?;
            tracing::info!(asn = self.settings.asn, router_id = %self.settings.router_id, "BGP started");
            // A fresh BGP instance holds none of our paths.
            self.announced.clear();
        } else if global.asn != self.settings.asn {
            return Err(SpeakerError::WrongAs {
                api: self.settings.api,
                running: global.asn,
                configured: self.settings.asn,
            });
        } else if fresh {
            tracing::info!(api = %self.settings.api, "adopted a running gobgpd");
            // Whatever it holds is re-announced (idempotent) or withdrawn.
            self.announced = self.adopt_paths().await;
        }
        let c = self.client.as_mut().expect("connected above");
        let peers = c.peers().await.map_err(api("ListPeer"))?;
        for n in &self.settings.neighbors {
            let known = peers.iter().any(|p| {
                p.conf
                    .as_ref()
                    .is_some_and(|c| c.neighbor_address == n.address.to_string())
            });
            if !known {
                c.add_peer(n)
                    .await
                    .map_err(api(format!("AddPeer {}", n.address)))?;
                tracing::info!(neighbor = %n.address, asn = n.asn, "BGP neighbor added");
            }
        }
        Ok(())
    }

    async fn refresh_peers(&mut self) {
        let Some(c) = &mut self.client else { return };
        match c.peers().await {
            Ok(peers) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let view: Vec<PeerView> = peers
                    .iter()
                    .map(|p| {
                        let conf = p.conf.clone().unwrap_or_default();
                        let since = p
                            .timers
                            .as_ref()
                            .and_then(|t| t.state.as_ref())
                            .and_then(|s| s.uptime.as_ref())
                            .map_or(0, |t| t.seconds.max(0) as u64);
                        PeerView {
                            address: conf.neighbor_address,
                            asn: conf.peer_asn,
                            state: gobgp::session_state(p).to_owned(),
                            uptime_s: if since > 0 {
                                now.saturating_sub(since)
                            } else {
                                0
                            },
                        }
                    })
                    .collect();
                self.view.lock().expect("view").peers = view;
            }
            Err(e) => self.note_error(&api("ListPeer")(e)),
        }
    }

    /// Announces what is wanted and not announced (or changed); withdraws
    /// what is announced and no longer wanted. The hijack guard refuses any
    /// prefix outside the anycast prefixes.
    async fn reconcile(&mut self, wanted: &[Announcement]) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        let mut errors = Vec::new();
        let mut refused = 0;
        let want: BTreeMap<Prefix, &Announcement> = wanted
            .iter()
            .filter(|a| {
                let ok = self.settings.may_announce(a.prefix.addr)
                    && a.prefix.len == if a.prefix.addr.is_ipv4() { 32 } else { 128 };
                if !ok {
                    refused += 1;
                    errors.push(SpeakerError::Refused(a.prefix));
                }
                ok
            })
            .map(|a| (a.prefix, a))
            .collect();
        let stale: Vec<Announcement> = self
            .announced
            .iter()
            .filter(|(p, _)| !want.contains_key(p))
            .map(|(_, a)| a.clone())
            .collect();
        for a in stale {
            match c.withdraw(&a).await {
                Ok(()) => {
                    tracing::info!(prefix = %a.prefix, "withdrawn");
                    self.announced.remove(&a.prefix);
                }
                Err(e) => errors.push(api(format!("withdraw {}", a.prefix))(e)),
            }
        }
        for (p, a) in want {
            if self.announced.get(&p) == Some(a) {
                continue;
            }
            match c.announce(a).await {
                Ok(()) => {
                    tracing::info!(prefix = %p, next_hop = %a.next_hop, "announced");
                    self.announced.insert(p, a.clone());
                }
                Err(e) => errors.push(api(format!("announce {p}"))(e)),
            }
        }
        let mut v = self.view.lock().expect("view");
        v.announced = self.announced.values().cloned().collect();
        v.refused += refused;
        if let Some(e) = errors.first() {
            let msg = crate::errors::chain(e);
            tracing::error!(error = %msg, errors = errors.len(), "bgp");
            v.last_error = msg;
        }
    }

    /// Withdraws everything, waits until no neighbor is sent any of it (or
    /// a timeout), then stops BGP and the gobgpd this speaker started. An
    /// operator's gobgpd (`manage = false`) is left running, its sessions
    /// up: it may carry more than lb's routes.
    async fn stop(&mut self) {
        self.reconcile(&[]).await;
        if let Some(c) = &mut self.client {
            let start = Instant::now();
            'wait: while start.elapsed() < WITHDRAW_TIMEOUT {
                for n in &self.settings.neighbors {
                    for probe in ["0.0.0.0", "::"] {
                        let fam = gobgp::family(probe.parse().expect("address"));
                        if !c
                            .prefixes(Some(n.address), fam)
                            .await
                            .unwrap_or_default()
                            .is_empty()
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue 'wait;
                        }
                    }
                }
                tracing::info!(took = ?start.elapsed(), "every route withdrawn from every neighbor");
                break;
            }
            // The routers act on the withdrawal within a round trip.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if self.settings.manage {
                let _ = c.stop().await;
            }
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
            tracing::info!("gobgpd stopped");
        } else if let Some(pid) = self.adopted_pid.take() {
            // The gobgpd a crashed predecessor started: stopped alike.
            stop_process(pid).await;
            tracing::info!(pid, "adopted gobgpd stopped");
        }
        if self.settings.manage {
            let _ = std::fs::remove_file(&self.pid_file);
        }
    }
}
