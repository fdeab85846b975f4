//! `lb-ctl fleet status`: what every host applied or refused, whether it
//! is connected, and how far the store's desired state is ahead of it.
use serde::{Deserialize, Serialize};

use super::{
    schema::{HostStatus, Round},
    store::{Store, StoreError},
};

/// One host as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostView {
    #[serde(flatten)]
    pub status: HostStatus,
    /// Its session key exists (it reached the store within its lease).
    pub connected: bool,
    /// It applied the desired state's last change.
    pub current: bool,
}

/// The fleet as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetStatus {
    /// The store's revision when read.
    pub revision: i64,
    /// The revision of the desired state's last change.
    pub config_revision: i64,
    pub hosts: Vec<HostView>,
    /// Checker candidates by id, the leader first.
    pub checkers: Vec<String>,
    /// The active checker's last heartbeat, if one leads.
    pub round: Option<Round>,
    /// Its age by this machine's clock (clocks may differ).
    pub round_age_ms: Option<u64>,
    /// Status keys that could not be read, with why.
    pub unreadable: Vec<String>,
}

/// Reads every host's status and session.
pub async fn read(store: &mut Store) -> Result<FleetStatus, StoreError> {
    let config = store.list(&store.keys.config()).await?;
    let states = store.list(&store.keys.host_states()).await?;
    let mut hosts = Vec::new();
    let mut unreadable = Vec::new();
    for (key, (value, _)) in &states.kvs {
        if !key.ends_with("/status") {
            continue;
        }
        match serde_json::from_slice::<HostStatus>(value) {
            Ok(status) => {
                let connected = states
                    .kvs
                    .contains_key(&store.keys.host_session(&status.host));
                let current = status
                    .applied_revision
                    .is_some_and(|r| r >= config.last_change());
                hosts.push(HostView {
                    status,
                    connected,
                    current,
                });
            }
            Err(e) => unreadable.push(format!("{key}: {e}")),
        }
    }
    let checkers = super::checker::candidates(store).await?;
    let round_key = store.keys.round();
    let round = store
        .list(&round_key)
        .await?
        .kvs
        .get(&round_key)
        .and_then(|(v, _)| serde_json::from_slice::<Round>(v).ok());
    let round_age_ms = round
        .as_ref()
        .map(|r| super::sync::now_ms().saturating_sub(r.at_ms));
    Ok(FleetStatus {
        checkers,
        round,
        round_age_ms,
        revision: states.revision.max(config.revision),
        config_revision: config.last_change(),
        hosts,
        unreadable,
    })
}
