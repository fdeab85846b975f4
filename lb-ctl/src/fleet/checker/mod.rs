//! `lb-ctl checker`: fleet-wide health checking. Several replicas run;
//! etcd's election API on a lease (TTL `lease_ttl`) makes exactly one
//! active. The active checker probes every real of every VIP in the store
//! once (with the daemon's own probers, [`crate::health`]), writes each
//! verdict to `health/<vip>/<real>` and a heartbeat to `checkers/round`
//! every second, all bound to its lease.
//!
//! Every write is fenced: a transaction that succeeds only while the
//! checker's election key exists with the revision it was created at. A
//! checker paused or cut off past its lease loses that key (and with it
//! every result it wrote, in one revision), so its late writes are refused
//! and it steps down: two checkers' results never mix. A new leader starts
//! every target as unknown and writes each one's first probe as it is (no
//! waiting rise x interval to confirm what was already known); after that,
//! rise and fall apply. A clean stop resigns at once and revokes the lease.
//!
//! This module campaigns and runs the leader's loop; [`rounds`] is what a
//! leader probes and writes.
mod rounds;

use std::{collections::BTreeMap, time::Duration};

use etcd_client::{Compare, CompareOp, LeaderKey, ResignOptions, Txn, TxnOp, WatchOptions};
use rounds::Leading;
use tokio::sync::{mpsc, watch};

use super::store::{Store, StoreError};
use crate::{
    config::FleetSettings,
    errors::chain,
    health::{HealthTable, ProbeResult},
};

/// How often the active checker publishes.
pub const ROUND: Duration = Duration::from_millis(500);

/// How long one write (or the re-read of the desired state) may take. A
/// request caught in an etcd leader election can wait seconds for etcd's
/// own timeout; given up after this, it is made again at the next round
/// as a new request, which the new leader answers.
const WRITE_TIMEOUT: Duration = ROUND;

const FENCED: &str = "a write was refused: this checker no longer leads (fenced)";

/// Why leading ended.
enum Ended {
    /// Asked to stop: resigned.
    Stopped,
    /// Leadership lost; campaign again.
    SteppedDown(String),
}

/// Runs a checker until `stop` says so.
pub async fn run(
    settings: FleetSettings,
    id: String,
    lease_ttl: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match campaign_and_lead(&settings, &id, lease_ttl, &mut stop).await {
            Ok(Ended::Stopped) => return,
            Ok(Ended::SteppedDown(why)) => {
                tracing::warn!(%why, "checker: stepped down; campaigning again");
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), "checker: the store is out of reach; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn campaign_and_lead(
    settings: &FleetSettings,
    id: &str,
    lease_ttl: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, StoreError> {
    let etcd = |what| move |source| StoreError::Etcd { what, source };
    let mut store = Store::connect_with(settings, None).await?;
    let lease = store.lease(lease_ttl).await?;
    // The lease is kept alive beside the campaign (which waits as long as
    // another checker leads); `lost` turns true when it cannot be.
    let (keeping, mut lost) = super::lease::spawn(store.client.clone(), lease, lease_ttl);
    tracing::info!(%id, lease = format!("{lease:x}"), "checker: campaigning");
    let election = store.keys.election();
    let campaign = store.client.campaign(election.as_str(), id, lease);
    let (campaigned, ended) = tokio::select! {
        resp = campaign => (resp.map_err(etcd("campaigning")).map(|mut r| r.take_leader()), None),
        _ = lost.changed() => (Ok(None), Some(Ended::SteppedDown("the lease expired while campaigning".into()))),
        _ = stop.changed() => (Ok(None), Some(Ended::Stopped)),
    };
    let leader = match (campaigned, ended) {
        (Ok(Some(leader)), None) => leader,
        (campaigned, ended) => {
            // Not leading: the lease goes (bounded), and with it any key a
            // broken campaign left in the election's queue.
            drop(keeping);
            let _ = tokio::time::timeout(lease_ttl, store.client.lease_revoke(lease)).await;
            return match (campaigned, ended) {
                (Err(e), _) => Err(e),
                (Ok(_), Some(ended)) => Ok(ended),
                (Ok(_), None) => Err(StoreError::Invalid(
                    "the election answered without a leader key".into(),
                )),
            };
        }
    };
    tracing::info!(%id, "checker: leading; probing every real of the store");
    let (results, mut results_rx) = mpsc::channel(1024);
    let mut leading = Leading {
        id: id.to_owned(),
        store,
        leader,
        table: HealthTable::default(),
        results,
        targets: BTreeMap::new(),
        written: BTreeMap::new(),
        changed: BTreeMap::new(),
        round: 0,
        failing: false,
    };
    let ended = leading.lead(&mut results_rx, &mut lost, stop).await;
    drop(keeping);
    // Leading ended: give the lease back at once (best effort, bounded),
    // so that neither this checker's results nor its place in the election
    // outlive it by a TTL (a new campaign would queue behind its old key).
    let client = &mut leading.store.client;
    if matches!(ended, Ok(Ended::Stopped)) {
        let resign = ResignOptions::new().with_leader(leading.leader.clone());
        let _ = tokio::time::timeout(lease_ttl, client.resign(Some(resign))).await;
    }
    let _ = tokio::time::timeout(lease_ttl, client.lease_revoke(lease)).await;
    if matches!(ended, Ok(Ended::Stopped)) {
        tracing::info!(%id, "checker: resigned");
    }
    ended
}

impl Leading {
    async fn lead(
        &mut self,
        results: &mut mpsc::Receiver<ProbeResult>,
        lost: &mut watch::Receiver<bool>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Ended, StoreError> {
        let Some(revision) = self.retarget().await? else {
            return Ok(Ended::SteppedDown(FENCED.into()));
        };
        let mut changes = Some(self.watch_config(revision).await?);
        let mut heartbeat = tokio::time::interval(ROUND);
        loop {
            let next_change = async {
                match changes.as_mut() {
                    Some(w) => w.message().await,
                    None => std::future::pending().await,
                }
            };
            let written = tokio::select! {
                _ = stop.changed() => return Ok(Ended::Stopped),
                _ = lost.changed() => return Ok(Ended::SteppedDown("the lease expired".into())),
                msg = next_change => match msg {
                    Ok(Some(_)) => self.retarget_or_later(&mut changes, false).await,
                    // The member serving the watch went away: another
                    // one is asked at the next round.
                    Ok(None) | Err(_) => {
                        tracing::warn!("checker: the watch of the desired state ended; watching again");
                        changes = None;
                        true
                    }
                },
                Some(r) = results.recv() => {
                    self.on_result(&r);
                    true
                }
                _ = heartbeat.tick() => {
                    let leads = changes.is_some() || self.retarget_or_later(&mut changes, true).await;
                    leads && self.heartbeat().await
                }
            };
            if !written {
                return Ok(Ended::SteppedDown(FENCED.into()));
            }
        }
    }

    /// Watches `config/` from after `revision`.
    async fn watch_config(
        &mut self,
        revision: i64,
    ) -> Result<etcd_client::WatchStream, StoreError> {
        let config = self.store.keys.config();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        self.store
            .client
            .watch(config.as_str(), Some(options))
            .await
            .map_err(|source| StoreError::Etcd {
                what: "watching the desired state",
                source,
            })
    }

    /// Re-reads the desired state and watches it again (`rewatch`) or
    /// goes on with `changes`; a store that does not answer in time leaves
    /// `changes` empty, to try again at the next round, and leadership as
    /// it is. `false`: fenced out.
    async fn retarget_or_later(
        &mut self,
        changes: &mut Option<etcd_client::WatchStream>,
        rewatch: bool,
    ) -> bool {
        let again = async {
            let Some(revision) = self.retarget().await? else {
                return Ok(None);
            };
            if rewatch {
                *changes = Some(self.watch_config(revision).await?);
            }
            Ok::<_, StoreError>(Some(()))
        };
        let failed = match tokio::time::timeout(2 * WRITE_TIMEOUT, again).await {
            Ok(Ok(Some(()))) => return true,
            Ok(Ok(None)) => return false,
            Ok(Err(e)) => chain(&e),
            Err(_) => "no answer in time".to_owned(),
        };
        tracing::warn!(error = %failed, "checker: re-reading the desired state failed; trying again at the next round");
        *changes = None;
        // A member that went away takes no more of the requests.
        self.store.keep_live_members().await;
        true
    }
}

/// Runs `ops` in one transaction that succeeds only while `leader`'s
/// election key exists with the revision it was created at (the fence).
/// `Ok(false)`: it does not; nothing was written.
pub async fn fenced(
    client: &mut etcd_client::Client,
    leader: &LeaderKey,
    ops: Vec<TxnOp>,
) -> Result<bool, StoreError> {
    if ops.is_empty() {
        return Ok(true);
    }
    let leads = Compare::create_revision(leader.key(), CompareOp::Equal, leader.rev());
    let resp = client
        .txn(Txn::new().when([leads]).and_then(ops))
        .await
        .map_err(|source| StoreError::Etcd {
            what: "writing health results",
            source,
        })?;
    Ok(resp.succeeded())
}

/// The checkers as the store knows them: each candidate's id, the leader
/// first. The lowest creation revision leads; a candidate's key is never
/// changed after its campaign creates it (no proclaim), so its last change
/// is its creation.
pub async fn candidates(store: &mut Store) -> Result<Vec<String>, StoreError> {
    let listing = store.list(&format!("{}/", store.keys.election())).await?;
    let mut by_rev: Vec<(i64, String)> = listing
        .kvs
        .values()
        .map(|(value, rev)| (*rev, String::from_utf8_lossy(value).into_owned()))
        .collect();
    by_rev.sort();
    Ok(by_rev.into_iter().map(|(_, id)| id).collect())
}
