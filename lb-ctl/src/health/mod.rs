//! Health checks run by the daemon. One prober task per distinct (real
//! address, port, check): a real checked alike by several VIPs is probed
//! once per interval, not once per VIP. Results go to the controller,
//! which applies rise/fall here ([`HealthTable::record`]) and rebuilds the
//! rings of the VIPs whose reals changed state.
//!
//! In fleet mode the verdicts may come from the fleet's checker instead
//! ([`HealthTable::verdict`]): the probers then stop
//! ([`HealthTable::set_probing`]) and the states stay, so that local probing
//! resumes from them, without a flap, when fleet results go stale.
mod probe;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

pub use probe::{ProbeError, probe};
use tokio::{sync::mpsc, task::JoinHandle, time::MissedTickBehavior};

use crate::config::{Check, CheckKind, RealConfig, VipConfig};

/// What one prober checks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeKey {
    pub addr: IpAddr,
    pub port: u16,
    pub check: Check,
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

/// A probe's outcome, sent to the controller.
#[derive(Debug)]
pub struct ProbeResult {
    pub key: ProbeKey,
    pub outcome: Result<(), ProbeError>,
}

/// The state of one prober.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeState {
    pub healthy: bool,
    /// This prober's own results decided `healthy` (`rise` successes or
    /// `fall` failures in a row). False while the state is only the one a
    /// restart found in the adopted data plane: enough to keep forwarding
    /// as before, not enough to start announcing a VIP.
    pub confirmed: bool,
    /// Consecutive successes / failures.
    pub successes: u32,
    pub failures: u32,
    pub checks: u64,
    pub transitions: u64,
    pub last_error: String,
    /// Failed probes so far, by [`ProbeError::reason`].
    pub failures_by_reason: BTreeMap<&'static str, u64>,
}

/// Every prober, its state and its task.
#[derive(Debug, Default)]
pub struct HealthTable {
    probes: BTreeMap<ProbeKey, (ProbeState, Option<JoinHandle<()>>)>,
    /// Verdicts come from elsewhere (the fleet's checker): no probers run.
    paused: bool,
}

impl HealthTable {
    /// Makes the set of probers `wanted`: starts the new ones (healthy at
    /// first if `initially_healthy` says so), stops the ones no longer
    /// wanted. Results are sent to `results`.
    pub fn sync(
        &mut self,
        wanted: &BTreeSet<ProbeKey>,
        initially_healthy: impl Fn(&ProbeKey) -> bool,
        results: &mpsc::Sender<ProbeResult>,
    ) {
        let gone: Vec<ProbeKey> = self
            .probes
            .keys()
            .filter(|k| !wanted.contains(k))
            .cloned()
            .collect();
        for k in gone {
            if let Some((_, Some(task))) = self.probes.remove(&k) {
                task.abort();
            }
        }
        for k in wanted {
            if self.probes.contains_key(k) {
                continue;
            }
            let always = k.check.kind == CheckKind::None;
            let state = ProbeState {
                healthy: always || initially_healthy(k),
                confirmed: always,
                ..ProbeState::default()
            };
            let task = (!always && !self.paused)
                .then(|| tokio::spawn(run_prober(k.clone(), results.clone())));
            self.probes.insert(k.clone(), (state, task));
        }
    }

    /// Runs the probers (`on`), or stops them and keeps their states (the
    /// verdicts then come through [`Self::verdict`]). Returns whether
    /// anything changed.
    pub fn set_probing(&mut self, on: bool, results: &mpsc::Sender<ProbeResult>) -> bool {
        if self.paused != on {
            return false;
        }
        self.paused = !on;
        for (k, (state, task)) in &mut self.probes {
            if k.check.kind == CheckKind::None {
                continue;
            }
            if on {
                // Rise and fall count afresh from the state as it is.
                state.successes = 0;
                state.failures = 0;
                *task = Some(tokio::spawn(run_prober(k.clone(), results.clone())));
            } else if let Some(t) = task.take() {
                t.abort();
            }
        }
        true
    }

    /// Whether the probers run.
    pub fn probing(&self) -> bool {
        !self.paused
    }

    /// A verdict from elsewhere (the fleet's checker), taken as it is: no
    /// rise or fall here. Returns the new health on a transition.
    pub fn verdict(&mut self, key: &ProbeKey, healthy: bool) -> Option<bool> {
        let (state, _) = self.probes.get_mut(key)?;
        if key.check.kind == CheckKind::None {
            return None;
        }
        state.confirmed = true;
        if state.healthy == healthy {
            return None;
        }
        state.healthy = healthy;
        state.transitions += 1;
        Some(healthy)
    }

    /// Applies one result: rise and fall counts. Returns the new health on
    /// a transition.
    pub fn record(&mut self, result: &ProbeResult) -> Option<bool> {
        if self.paused {
            // A result of a prober stopped a moment ago.
            return None;
        }
        let (state, _) = self.probes.get_mut(&result.key)?;
        let check = &result.key.check;
        state.checks += 1;
        match &result.outcome {
            Ok(()) => {
                state.successes += 1;
                state.failures = 0;
                if state.successes >= check.rise {
                    state.confirmed = true;
                    if !state.healthy {
                        state.healthy = true;
                        state.transitions += 1;
                        return Some(true);
                    }
                }
            }
            Err(e) => {
                state.failures += 1;
                state.successes = 0;
                state.last_error = e.to_string();
                *state.failures_by_reason.entry(e.reason()).or_default() += 1;
                if state.failures >= check.fall {
                    state.confirmed = true;
                    if state.healthy {
                        state.healthy = false;
                        state.transitions += 1;
                        return Some(false);
                    }
                }
            }
        }
        None
    }

    /// The state of prober `key`.
    pub fn state(&self, key: &ProbeKey) -> Option<&ProbeState> {
        self.probes.get(key).map(|(s, _)| s)
    }

    /// Whether the prober `key` says healthy (unknown keys are not).
    pub fn healthy(&self, key: &ProbeKey) -> bool {
        self.probes.get(key).is_some_and(|(s, _)| s.healthy)
    }

    /// Whether the prober `key`'s own results say healthy: not just the
    /// state a restart adopted.
    pub fn confirmed_healthy(&self, key: &ProbeKey) -> bool {
        self.probes
            .get(key)
            .is_some_and(|(s, _)| s.healthy && s.confirmed)
    }

    /// Every prober and its state.
    pub fn states(&self) -> impl Iterator<Item = (&ProbeKey, &ProbeState)> {
        self.probes.iter().map(|(k, (s, _))| (k, s))
    }

    /// How many probers run (not counting `none` checks).
    pub fn running(&self) -> usize {
        self.probes.values().filter(|(_, t)| t.is_some()).count()
    }
}

impl Drop for HealthTable {
    fn drop(&mut self) {
        for (_, task) in self.probes.values() {
            if let Some(t) = task {
                t.abort();
            }
        }
    }
}

async fn run_prober(key: ProbeKey, results: mpsc::Sender<ProbeResult>) {
    let mut tick = tokio::time::interval(key.check.interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let outcome = probe(&key.check, key.addr, key.port).await;
        if results
            .send(ProbeResult {
                key: key.clone(),
                outcome,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
