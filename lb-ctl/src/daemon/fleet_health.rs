//! Fleet mode: the controller's side of fleet health. The sync hands it
//! the checker's verdicts and heartbeat ([`FleetHealth`]); the rule of
//! [`crate::fleet::health::source`] decides, on each message and each tick,
//! whether they are believed. Believed: the local probers stop (their
//! states stay) and each explicit verdict sets its real's state. Not
//! believed (no checker, stale heartbeat, too many reals down): the local
//! probers run again from the states as they are, as without a fleet.
use std::{collections::BTreeMap, net::IpAddr, time::Instant};

use super::controller::{Controller, probe_key};
use crate::{
    fleet::health::{FleetHealth, Source, Trust},
    vocab::VipId,
};

/// What the controller knows of the fleet's checker.
#[derive(Debug, Clone)]
pub struct FleetHealthView {
    pub health: FleetHealth,
    /// When the heartbeat last moved on (a new round, or a new checker).
    pub heard: Instant,
    pub source: Source,
    /// Reals the checker finds down that are still up here, and the round
    /// the verdict was first seen in: a down verdict is applied from the
    /// next round on, if the checker is still believed then (a failure of
    /// the checker's own path that spreads over two rounds is caught by the
    /// guard before it takes reals down).
    pub down_since: BTreeMap<(VipId, IpAddr), u64>,
}

impl Controller {
    /// The checker's results as the store has them now.
    pub fn on_fleet_health(&mut self, health: FleetHealth) {
        let now = Instant::now();
        let (heard, source, down_since) = match self.fleet_health.take() {
            Some(v) if v.health.round == health.round => (v.heard, v.source, v.down_since),
            Some(v) => (now, v.source, v.down_since),
            None => (now, Source::Local("starting".into()), BTreeMap::new()),
        };
        self.fleet_health = Some(FleetHealthView {
            health,
            heard,
            source,
            down_since,
        });
        self.judge_fleet_health();
    }

    /// Decides where verdicts come from now, and applies the checker's
    /// when they are believed.
    pub fn judge_fleet_health(&mut self) {
        let Some(trust) = self.settings.fleet.as_ref().map(Trust::of) else {
            return;
        };
        let Some(view) = &mut self.fleet_health else {
            return;
        };
        let source = crate::fleet::health::source(&view.health, view.heard.elapsed(), &trust);
        let switched = source.checker() != view.source.checker();
        view.source = source.clone();
        if switched {
            match &source {
                Source::Fleet { .. } => {
                    tracing::info!(%source, "fleet: health verdicts from the fleet's checker; local probes stop")
                }
                Source::Local(_) => {
                    tracing::warn!(%source, "fleet: health checked locally")
                }
            }
            self.health
                .set_probing(source.checker().is_none(), &self.results);
        }
        if source.checker().is_none() {
            view.down_since.clear();
            return;
        }
        let round = view.health.round.as_ref().map_or(0, |r| r.round);
        let verdicts = view.health.verdicts.clone();
        view.down_since
            .retain(|pair, _| verdicts.get(pair) == Some(&false));
        let mut changed = false;
        for v in &self.vips {
            for r in &v.reals {
                let pair = (v.id(), r.address);
                let Some(&up) = verdicts.get(&pair) else {
                    continue;
                };
                let key = probe_key(v, r);
                if !up && self.health.healthy(&key) {
                    let view = self.fleet_health.as_mut().expect("set above");
                    let since = *view.down_since.entry(pair).or_insert(round);
                    if since == round {
                        continue;
                    }
                }
                if self.health.verdict(&key, up).is_some() {
                    changed = true;
                    tracing::info!(vip = %v.id(), real = %r.address, up, "fleet: the checker's verdict");
                }
            }
        }
        if changed && let Err(e) = self.apply() {
            tracing::error!(error = %crate::errors::chain(&e), "applying a fleet health change failed");
        }
    }

    /// Where this host's health verdicts come from, in words.
    pub fn health_source(&self) -> String {
        match (&self.settings.fleet, &self.fleet_health) {
            (None, _) => "local".into(),
            (Some(_), None) => "local (no fleet health read yet)".into(),
            (Some(_), Some(v)) => v.source.to_string(),
        }
    }
}
