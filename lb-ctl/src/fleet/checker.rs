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
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::Duration,
};

use etcd_client::{
    Compare, CompareOp, LeaderKey, PutOptions, ResignOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::{mpsc, watch};

use super::{
    schema::{HealthDoc, Round},
    store::{Store, StoreError},
};
use crate::{
    config::{CheckKind, FleetSettings},
    errors::chain,
    health::{HealthTable, ProbeKey, ProbeResult, probe_key},
    vocab::VipId,
};

/// How often the active checker publishes.
pub const ROUND: Duration = Duration::from_millis(500);

const FENCED: &str = "a write was refused: this checker no longer leads (fenced)";

/// Why leading ended.
enum Ended {
    /// Asked to stop: resigned.
    Stopped,
    /// Leadership lost; campaign again.
    SteppedDown(String),
}

/// The active checker's targets and what it wrote.
struct Leading {
    id: String,
    store: Store,
    leader: LeaderKey,
    table: HealthTable,
    results: mpsc::Sender<ProbeResult>,
    /// Each prober and the (VIP, real) pairs it decides for.
    targets: BTreeMap<ProbeKey, Vec<(VipId, IpAddr)>>,
    /// Pairs whose verdict is in the store, as written.
    written: BTreeMap<(VipId, IpAddr), bool>,
    /// Verdicts changed since the last round, to publish with the next.
    changed: BTreeMap<ProbeKey, (bool, String)>,
    round: u64,
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
    let (lost_tx, mut lost) = watch::channel(false);
    let (mut keeper, mut kept) = store
        .client
        .lease_keep_alive(lease)
        .await
        .map_err(etcd("keeping the checker's lease"))?;
    let keeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(lease_ttl / 3);
        loop {
            tick.tick().await;
            let alive = async {
                keeper.keep_alive().await.ok()?;
                let resp = kept.message().await.ok()??;
                (resp.ttl() > 0).then_some(())
            };
            if tokio::time::timeout(lease_ttl / 3, alive)
                .await
                .ok()
                .flatten()
                .is_none()
            {
                let _ = lost_tx.send(true);
                return;
            }
        }
    });
    tracing::info!(%id, lease = format!("{lease:x}"), "checker: campaigning");
    let election = store.keys.election();
    let campaign = store.client.campaign(election.as_str(), id, lease);
    let leader = tokio::select! {
        resp = campaign => resp.map_err(etcd("campaigning"))?.take_leader(),
        _ = lost.changed() => {
            keeping.abort();
            return Ok(Ended::SteppedDown("the lease expired while campaigning".into()));
        }
        _ = stop.changed() => {
            keeping.abort();
            let _ = tokio::time::timeout(lease_ttl, store.client.lease_revoke(lease)).await;
            return Ok(Ended::Stopped);
        }
    };
    let Some(leader) = leader else {
        keeping.abort();
        return Err(StoreError::Invalid(
            "the election answered without a leader key".into(),
        ));
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
    };
    let ended = leading.lead(&mut results_rx, &mut lost, stop).await;
    keeping.abort();
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
        let etcd = |what| move |source| StoreError::Etcd { what, source };
        let Some(revision) = self.retarget().await? else {
            return Ok(Ended::SteppedDown(FENCED.into()));
        };
        let config = self.store.keys.config();
        let mut changes = self
            .store
            .client
            .watch(
                config.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .map_err(etcd("watching the desired state"))?;
        let mut heartbeat = tokio::time::interval(ROUND);
        loop {
            let written = tokio::select! {
                _ = stop.changed() => return Ok(Ended::Stopped),
                _ = lost.changed() => return Ok(Ended::SteppedDown("the lease expired".into())),
                msg = changes.message() => {
                    msg.map_err(etcd("watching the desired state"))?
                        .ok_or_else(|| StoreError::Invalid("the store ended the watch".into()))?;
                    self.retarget().await?.is_some()
                }
                Some(r) = results.recv() => {
                    self.on_result(&r);
                    true
                }
                _ = heartbeat.tick() => self.heartbeat().await?,
            };
            if !written {
                return Ok(Ended::SteppedDown(FENCED.into()));
            }
        }
    }

    /// Reads the desired state and probes its reals; results of reals that
    /// left are deleted. Returns the revision read; `None`: fenced out.
    async fn retarget(&mut self) -> Result<Option<i64>, StoreError> {
        let (desired, listing) = self.store.desired().await?;
        let mut targets: BTreeMap<ProbeKey, Vec<(VipId, IpAddr)>> = BTreeMap::new();
        for v in desired.vips.values() {
            for r in &v.reals {
                targets
                    .entry(probe_key(v, r))
                    .or_default()
                    .push((v.id(), r.address));
            }
        }
        let keys: BTreeSet<ProbeKey> = targets.keys().cloned().collect();
        // Unknown until the first probe says.
        self.table.sync(&keys, |_| false, &self.results);
        self.targets = targets;
        let pairs: BTreeSet<(VipId, IpAddr)> = self.targets.values().flatten().copied().collect();
        let gone: Vec<(VipId, IpAddr)> = self
            .written
            .keys()
            .filter(|p| !pairs.contains(p))
            .copied()
            .collect();
        let mut ops: Vec<TxnOp> = gone
            .iter()
            .map(|(v, r)| TxnOp::delete(self.store.keys.health(v, r), None))
            .collect();
        // Checks that never probe (`none`) are up from the start.
        let always: Vec<ProbeKey> = self
            .targets
            .iter()
            .filter(|(k, pairs)| {
                k.check.kind == CheckKind::None
                    && pairs.iter().any(|p| !self.written.contains_key(p))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in &always {
            ops.extend(self.verdict_ops(k, true, ""));
        }
        if !self.fenced(ops).await? {
            return Ok(None);
        }
        for p in gone {
            self.written.remove(&p);
        }
        Ok(Some(listing.revision))
    }

    /// The puts of verdict `up` for every pair prober `key` decides for.
    fn verdict_ops(&mut self, key: &ProbeKey, up: bool, error: &str) -> Vec<TxnOp> {
        let lease = self.leader.lease();
        let pairs = self.targets.get(key).cloned().unwrap_or_default();
        let mut ops = Vec::new();
        for (vip, real) in pairs {
            let doc = HealthDoc {
                up,
                checker: self.id.clone(),
                error: error.to_owned(),
            };
            let json = serde_json::to_vec(&doc).expect("health docs serialize");
            ops.push(TxnOp::put(
                self.store.keys.health(&vip, &real),
                json,
                Some(PutOptions::new().with_lease(lease)),
            ));
            self.written.insert((vip, real), up);
        }
        ops
    }

    /// One probe result: the first of a target is taken as it is, later
    /// ones through rise and fall; a change waits for the next round.
    fn on_result(&mut self, r: &ProbeResult) {
        let Some(state) = self.table.state(&r.key) else {
            return;
        };
        let up = if state.confirmed {
            match self.table.record(r) {
                Some(up) => up,
                None => return,
            }
        } else {
            self.table.verdict(&r.key, r.outcome.is_ok());
            r.outcome.is_ok()
        };
        let error = r
            .outcome
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info!(real = %r.key.addr, port = r.key.port, up, %error, "checker: verdict");
        self.changed.insert(r.key.clone(), (up, error));
    }

    /// Publishes the round: the verdicts changed since the last, and the
    /// heartbeat. `Ok(false)`: fenced out.
    async fn heartbeat(&mut self) -> Result<bool, StoreError> {
        self.round += 1;
        let mut ops = Vec::new();
        for (key, (up, error)) in std::mem::take(&mut self.changed) {
            ops.extend(self.verdict_ops(&key, up, &error));
        }
        let mut round = Round {
            checker: self.id.clone(),
            round: self.round,
            up: 0,
            down: 0,
            unknown: 0,
            at_ms: super::sync::now_ms(),
        };
        for (key, pairs) in &self.targets {
            let n = pairs.len();
            match self.table.state(key) {
                Some(s) if s.confirmed && s.healthy => round.up += n,
                Some(s) if s.confirmed => round.down += n,
                _ => round.unknown += n,
            }
        }
        let json = serde_json::to_vec(&round).expect("rounds serialize");
        ops.push(TxnOp::put(
            self.store.keys.round(),
            json,
            Some(PutOptions::new().with_lease(self.leader.lease())),
        ));
        self.fenced(ops).await
    }

    /// Runs `ops` only while this checker leads. `Ok(false)`: it does not.
    async fn fenced(&mut self, ops: Vec<TxnOp>) -> Result<bool, StoreError> {
        fenced(&mut self.store.client, &self.leader, ops).await
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
