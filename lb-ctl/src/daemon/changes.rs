//! Changing the desired state all or nothing: an API edit or a reload is
//! validated, applied to the data plane and saved; when a step fails, the
//! state before it is put back. A put-back that fails too is logged as an
//! error: the data plane may then differ from the desired state until the
//! next change or probe result applies it again.
use super::{controller::Controller, dataplane_config, state_file};
use crate::{
    api::{
        commands::{Change, RequestError},
        edits,
    },
    config::{self, LoadError, Settings, VipConfig},
    dataplane::DataplaneError,
    errors::chain,
    reconcile::ReconcileError,
};

/// Why a change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The edit itself does not fit the state (unknown VIP, real exists...).
    #[error(transparent)]
    Edit(RequestError),
    /// The state after the edit breaks a rule (`config::rules`).
    #[error("{0}")]
    Rule(String),
    /// The configuration file cannot be read or is not valid.
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("writing the data plane")]
    Apply(#[source] ReconcileError),
    #[error("writing the data plane's configuration")]
    DataplaneConfig(#[source] DataplaneError),
    #[error("saving the change")]
    Save(#[source] state_file::StateError),
    /// In fleet mode the VIPs are the store's.
    #[error(
        "this host follows the fleet's store ({endpoints}): change VIPs there (lb-ctl vip/real write to it; lb-ctl fleet apply)"
    )]
    FleetMode { endpoints: String },
}

impl From<ChangeError> for RequestError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::Edit(e) => e,
            ChangeError::Rule(_) | ChangeError::Load(_) | ChangeError::FleetMode { .. } => {
                RequestError::Invalid(chain(&e))
            }
            _ => RequestError::Internal(chain(&e)),
        }
    }
}

/// What a reload from `old` to `new` cannot change in a running daemon,
/// in words: it takes effect at the next start (or, for `[bgp]`, is not
/// applied at all until then).
pub fn reload_notes(old: &Settings, new: &Settings) -> Vec<String> {
    let mut notes = Vec::new();
    if new.daemon != old.daemon {
        notes.push("[daemon] changes take effect at the next start".to_owned());
    }
    if new.dataplane.conn_table_size != old.dataplane.conn_table_size {
        notes.push("conn_table_size takes effect at the next start".to_owned());
    }
    if new.dataplane.conn_table_size_v6 != old.dataplane.conn_table_size_v6 {
        notes.push("conn_table_size_v6 takes effect at the next start".to_owned());
    }
    if new.dataplane.max_reals != old.dataplane.max_reals {
        notes.push("max_reals takes effect at the next start".to_owned());
    }
    if new.bgp != old.bgp {
        let what = match (&old.bgp, &new.bgp) {
            (None, Some(_)) => "a [bgp] section was added",
            (Some(_), None) => "the [bgp] section was removed",
            _ => "the [bgp] section changed",
        };
        notes.push(format!(
            "{what}: NOT applied; BGP keeps its current settings until the next start"
        ));
    }
    notes
}

impl Controller {
    /// Puts `vips` back after a failed step of `what`, and applies them.
    fn put_back(&mut self, vips: Vec<VipConfig>, what: &str) {
        self.vips = vips;
        if let Err(e) = self.apply() {
            tracing::error!(
                error = %chain(&e),
                "{what} failed and putting the previous state back failed too: the data plane may differ from the desired state until the next change"
            );
        }
    }

    /// Applies an API change; on success the state file is rewritten.
    pub fn change(&mut self, change: Change) -> Result<String, ChangeError> {
        if let Some(f) = &self.settings.fleet {
            return Err(ChangeError::FleetMode {
                endpoints: f.endpoints.join(","),
            });
        }
        let before = self.vips.clone();
        let mut summary = edits::apply_change(&mut self.vips, change).map_err(ChangeError::Edit)?;
        if let Err(why) = config::validate_vips(
            &self.vips,
            &self.settings.dataplane,
            self.settings.bgp.as_ref(),
        ) {
            self.vips = before;
            return Err(ChangeError::Rule(why));
        }
        if let Err(e) = self.apply() {
            self.put_back(before, "an API change");
            return Err(ChangeError::Apply(e));
        }
        if let Err(e) = state_file::save(self.settings.state_path(), &self.vips) {
            self.put_back(before, "saving an API change");
            return Err(ChangeError::Save(e));
        }
        // Advice this change brought (a ring now small for its reals).
        let earlier = config::advice::ring_advice(&before);
        for advice in config::advice::ring_advice(&self.vips) {
            if !earlier.contains(&advice) {
                summary.push_str(&format!(" (note: {advice})"));
            }
        }
        tracing::info!(%summary, "changed through the API");
        Ok(summary)
    }

    /// Re-reads the configuration file; a bad file changes nothing.
    pub fn reload(&mut self) -> Result<String, ChangeError> {
        let new = config::load(&self.config_path)?;
        let mut notes = reload_notes(&self.settings, &new);
        if new.fleet != self.settings.fleet {
            notes.push("[fleet] changes take effect at the next start".to_owned());
        }
        // In fleet mode the VIPs stay the store's.
        let new_vips = match self.settings.fleet {
            Some(_) => self.vips.clone(),
            None => new.vips.clone(),
        };
        notes.extend(config::advice::ring_advice(&new_vips));
        // The connection and real tables' sizes are fixed until the next
        // start.
        let mut dataplane = new.dataplane.clone();
        dataplane.conn_table_size = self.settings.dataplane.conn_table_size;
        dataplane.conn_table_size_v6 = self.settings.dataplane.conn_table_size_v6;
        dataplane.max_reals = self.settings.dataplane.max_reals;
        let before_vips = std::mem::replace(&mut self.vips, new_vips);
        let before_dp = std::mem::replace(&mut self.settings.dataplane, dataplane);
        let result = self
            .dp
            .set_config(&dataplane_config(&self.settings.dataplane, self.iface_mac))
            .map_err(ChangeError::DataplaneConfig)
            .and_then(|()| self.apply().map_err(ChangeError::Apply));
        let report = match result {
            Ok(report) => report,
            Err(e) => {
                self.settings.dataplane = before_dp;
                if let Err(back) = self
                    .dp
                    .set_config(&dataplane_config(&self.settings.dataplane, self.iface_mac))
                {
                    tracing::error!(error = %chain(&back), "a reload failed and the previous data-plane configuration could not be written back");
                }
                self.put_back(before_vips, "a reload");
                return Err(e);
            }
        };
        if let Err(e) = state_file::save_with_revision(
            self.settings.state_path(),
            &self.vips,
            self.fleet_revision,
        ) {
            tracing::error!(error = %chain(&e), "reloaded, but the state file could not be written");
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

    /// Fleet mode: revision `revision` of the store offers `vips` for this
    /// host. Checked with this host's rules and applied whole, or refused
    /// whole (the previous state stays); once applied, saved as the last
    /// known good state.
    pub fn fleet_offer(
        &mut self,
        revision: i64,
        vips: Vec<VipConfig>,
    ) -> Result<String, ChangeError> {
        config::validate_vips(&vips, &self.settings.dataplane, self.settings.bgp.as_ref())
            .map_err(ChangeError::Rule)?;
        let changed = vips != self.vips;
        if changed {
            let before = std::mem::replace(&mut self.vips, vips);
            if let Err(e) = self.apply() {
                self.put_back(before, "applying a fleet revision");
                return Err(ChangeError::Apply(e));
            }
        }
        self.fleet_revision = Some(revision);
        // The maps hold the revision now: a failed save is logged, not a
        // refusal (the next revision saves again).
        if let Err(e) =
            state_file::save_with_revision(self.settings.state_path(), &self.vips, Some(revision))
        {
            tracing::error!(error = %chain(&e), revision, "fleet: applied, but the last known good state could not be saved");
        }
        Ok(if changed {
            format!("{} VIPs", self.vips.len())
        } else {
            format!("{} VIPs, unchanged", self.vips.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = "[daemon]\ninterface = \"eth0\"\n\n[dataplane]\nsource_v4 = \"192.0.2.1\"\n";
    const BGP: &str = "\n[bgp]\nasn = 64512\nrouter_id = \"192.0.2.1\"\nanycast_prefixes = [\"203.0.113.0/24\"]\n\n[[bgp.neighbor]]\naddress = \"198.51.100.1\"\nasn = 64500\n";

    fn settings(text: &str) -> Settings {
        config::parse(Path::new("lb.toml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn a_reload_says_what_waits_for_the_next_start() {
        let base = settings(BASE);
        for (new, want) in [
            (BASE.to_owned(), vec![]),
            (
                BASE.replace("eth0", "eth1"),
                vec!["[daemon] changes take effect at the next start"],
            ),
            (
                // The IPv6 table's default is a quarter of the IPv4 one's.
                format!("{BASE}conn_table_size = 4096\n"),
                vec![
                    "conn_table_size takes effect at the next start",
                    "conn_table_size_v6 takes effect at the next start",
                ],
            ),
            (
                format!("{BASE}conn_table_size_v6 = 4096\n"),
                vec!["conn_table_size_v6 takes effect at the next start"],
            ),
            (
                format!("{BASE}max_reals = 131072\n"),
                vec!["max_reals takes effect at the next start"],
            ),
            (
                format!("{BASE}{BGP}"),
                vec![
                    "a [bgp] section was added: NOT applied; BGP keeps its current settings until the next start",
                ],
            ),
        ] {
            assert_eq!(reload_notes(&base, &settings(&new)), want, "{new}");
        }
        let with_bgp = settings(&format!("{BASE}{BGP}"));
        assert_eq!(
            reload_notes(&with_bgp, &base),
            [
                "the [bgp] section was removed: NOT applied; BGP keeps its current settings until the next start"
            ]
        );
        let changed = settings(&format!("{BASE}{}", BGP.replace("64500", "64501")));
        assert_eq!(
            reload_notes(&with_bgp, &changed),
            [
                "the [bgp] section changed: NOT applied; BGP keeps its current settings until the next start"
            ]
        );
    }

    #[test]
    fn refusals_are_invalid_and_failures_internal() {
        let io = || std::io::Error::other("disk full");
        type Wanted = fn(&RequestError) -> bool;
        let cases: [(ChangeError, Wanted); 3] = [
            (
                ChangeError::Rule("VIP x: no".into()),
                |e| matches!(e, RequestError::Invalid(m) if m == "VIP x: no"),
            ),
            (
                ChangeError::Edit(RequestError::NotFound("no VIP x".into())),
                |e| matches!(e, RequestError::NotFound(_)),
            ),
            (
                ChangeError::Save(state_file::StateError::Write {
                    path: "/s".into(),
                    source: io(),
                }),
                |e| matches!(e, RequestError::Internal(m) if m == "saving the change: cannot write the state file /s: disk full"),
            ),
        ];
        for (error, wanted) in cases {
            let shown = format!("{error:?}");
            let request = RequestError::from(error);
            assert!(wanted(&request), "{shown} became {request:?}");
        }
    }
}
