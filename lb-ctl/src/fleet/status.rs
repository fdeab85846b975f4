//! `lb-ctl fleet status`: what every host applied or refused, whether it
//! is connected, and how far the store's desired state is ahead of it.
use serde::{Deserialize, Serialize};

use super::{
    schema::HostStatus,
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
    Ok(FleetStatus {
        revision: states.revision.max(config.revision),
        config_revision: config.last_change(),
        hosts,
        unreadable,
    })
}
