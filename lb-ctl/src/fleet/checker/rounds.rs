//! The active checker's rounds: its targets (every real of the store),
//! the verdicts of its probes, and the fenced writes that publish them
//! (verdicts and heartbeat, each round).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use etcd_client::{LeaderKey, PutOptions, TxnOp};
use tokio::sync::mpsc;

use super::{WRITE_TIMEOUT, fenced};
use crate::{
    config::CheckKind,
    errors::chain,
    fleet::{
        schema::{HealthDoc, Round},
        store::{Store, StoreError},
    },
    health::{HealthTable, ProbeKey, ProbeResult, probe_key},
    vocab::VipId,
};

/// The active checker's targets and what it wrote.
pub(super) struct Leading {
    pub(super) id: String,
    pub(super) store: Store,
    pub(super) leader: LeaderKey,
    pub(super) table: HealthTable,
    pub(super) results: mpsc::Sender<ProbeResult>,
    /// Each prober and the (VIP, real) pairs it decides for.
    pub(super) targets: BTreeMap<ProbeKey, Vec<(VipId, IpAddr)>>,
    /// Pairs whose verdict is in the store, as written.
    pub(super) written: BTreeMap<(VipId, IpAddr), bool>,
    /// Verdicts changed since the last round, to publish with the next.
    pub(super) changed: BTreeMap<ProbeKey, (bool, String)>,
    pub(super) round: u64,
    /// The last round's write failed (logged once until one succeeds).
    pub(super) failing: bool,
}

impl Leading {
    /// Reads the desired state and probes its reals; results of reals that
    /// left are deleted. Returns the revision read; `None`: fenced out.
    pub(super) async fn retarget(&mut self) -> Result<Option<i64>, StoreError> {
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
    pub(super) fn on_result(&mut self, r: &ProbeResult) {
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
    /// heartbeat. `false`: fenced out. A write that fails or takes too
    /// long keeps its verdicts for the next round (leadership stays: the
    /// lease keeper and the fence decide that).
    pub(super) async fn heartbeat(&mut self) -> bool {
        self.round += 1;
        let mut ops = Vec::new();
        let changed = std::mem::take(&mut self.changed);
        for (key, (up, error)) in &changed {
            ops.extend(self.verdict_ops(key, *up, error));
        }
        let mut round = Round {
            checker: self.id.clone(),
            round: self.round,
            up: 0,
            down: 0,
            unknown: 0,
            at_ms: crate::fleet::sync::now_ms(),
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
        let written = tokio::time::timeout(WRITE_TIMEOUT, self.fenced(ops))
            .await
            .unwrap_or(Err(StoreError::TimedOut("writing health results")));
        match written {
            Ok(leads) => {
                if self.failing {
                    tracing::info!(round = self.round, "checker: rounds are written again");
                    self.failing = false;
                }
                leads
            }
            Err(e) => {
                if !self.failing {
                    tracing::warn!(error = %chain(&e), "checker: a round was not written; its verdicts go with the next");
                    self.failing = true;
                }
                // No result was taken in since (results are taken in
                // between rounds only): put the verdicts back as they were.
                self.changed = changed;
                self.store.keep_live_members().await;
                true
            }
        }
    }

    /// Runs `ops` only while this checker leads. `Ok(false)`: it does not.
    async fn fenced(&mut self, ops: Vec<TxnOp>) -> Result<bool, StoreError> {
        fenced(&mut self.store.client, &self.leader, ops).await
    }
}
