//! The fleet's keys and values in etcd (docs/FLEET.md has the table):
//! every key starts with the configured prefix (`/lb/v1/`), every value is
//! JSON. The desired state is everything under `config/`; it is read at one
//! revision into a [`Desired`], refused whole when any key or value under
//! it is not understood, and cut down to one host's VIPs.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{
    config::{FleetFile, VipConfig, valid_host_id},
    vocab::VipId,
};

/// The keys of one fleet (one prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

const CONFIG: &str = "config/";
const VIPS: &str = "config/vips/";
const HOSTS: &str = "config/hosts/";
const HOST_STATE: &str = "hosts/";
const HEALTH: &str = "health/";
const CHECKERS: &str = "checkers/";

impl Keys {
    /// `prefix` starts and ends with `/` (checked by the configuration).
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The desired state: everything under it.
    pub fn config(&self) -> String {
        format!("{}{CONFIG}", self.prefix)
    }

    /// A VIP with its check and reals: `config/vips/203.0.113.10:80/tcp`.
    pub fn vip(&self, id: &VipId) -> String {
        format!("{}{VIPS}{id}", self.prefix)
    }

    /// Which VIPs `host` serves: `config/hosts/<host>`.
    pub fn host_config(&self, host: &str) -> String {
        format!("{}{HOSTS}{host}", self.prefix)
    }

    /// Every host's status and session keys.
    pub fn host_states(&self) -> String {
        format!("{}{HOST_STATE}", self.prefix)
    }

    /// What `host` applied or refused last ([`HostStatus`]); kept when the
    /// host goes away.
    pub fn host_status(&self, host: &str) -> String {
        format!("{}{HOST_STATE}{host}/status", self.prefix)
    }

    /// Every health result.
    pub fn health_all(&self) -> String {
        format!("{}{HEALTH}", self.prefix)
    }

    /// The active checker's result for real `real` of VIP `vip` (bound to
    /// the checker's lease).
    pub fn health(&self, vip: &VipId, real: &std::net::IpAddr) -> String {
        format!("{}{HEALTH}{vip}/{real}", self.prefix)
    }

    /// The checkers' election (etcd's election API; each candidate's key
    /// is under it, bound to its lease, holding its id).
    pub fn election(&self) -> String {
        format!("{}{CHECKERS}leader", self.prefix)
    }

    /// The active checker's heartbeat: one [`Round`] a second.
    pub fn round(&self) -> String {
        format!("{}{CHECKERS}round", self.prefix)
    }

    /// What a host follows: `checkers/`, `config/` and `health/` (keys
    /// sort in that order, and before `hosts/`, which it does not follow).
    pub fn followed(&self) -> (String, String) {
        (
            format!("{}{CHECKERS}", self.prefix),
            format!("{}{HOST_STATE}", self.prefix),
        )
    }

    /// Exists while `host` is connected (bound to its lease).
    pub fn host_session(&self, host: &str) -> String {
        format!("{}{HOST_STATE}{host}/session", self.prefix)
    }
}

/// A host's entry under `config/hosts/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDoc {
    /// The VIPs it serves, written `ADDRESS:PORT/PROTOCOL`.
    pub vips: Vec<String>,
}

/// A revision a host refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub revision: i64,
    pub error: String,
}

/// `hosts/<host>/status`: the host's ACK (applied revision) or NACK
/// (refused revision and why), as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostStatus {
    pub host: String,
    /// The last revision whose VIPs the host's maps hold.
    pub applied_revision: Option<i64>,
    /// VIPs it serves at that revision.
    pub vips: usize,
    /// The last revision refused since the applied one, if any.
    pub refused: Option<Refusal>,
    /// When this was written (milliseconds since the Unix epoch).
    pub updated_ms: u64,
    /// lb-ctl's version on the host.
    pub version: String,
}

impl HostStatus {
    /// A host's status before it applied or refused anything.
    pub fn new(host: &str, applied_revision: Option<i64>) -> Self {
        HostStatus {
            host: host.to_owned(),
            applied_revision,
            vips: 0,
            refused: None,
            updated_ms: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// `health/<vip>/<real>`: the active checker's verdict on one real.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthDoc {
    pub up: bool,
    /// The checker that wrote it.
    pub checker: String,
    /// Why it is down (the probe's error), if it is.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `checkers/round`: the active checker's heartbeat, with the share of
/// reals it finds down (hosts do not believe a checker that finds too many
/// down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Round {
    pub checker: String,
    /// Counts up with each heartbeat.
    pub round: u64,
    pub up: usize,
    pub down: usize,
    /// Targets not probed yet (a new leader's first probes).
    pub unknown: usize,
    /// When it was written, by the checker's clock (milliseconds since the
    /// Unix epoch); for people (`fleet status`), hosts judge freshness by
    /// when they receive it.
    pub at_ms: u64,
}

/// The desired state of the fleet: every VIP and the hosts that serve only
/// some of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub vips: BTreeMap<VipId, VipConfig>,
    /// Hosts with a `config/hosts/` entry; any other host serves every VIP.
    pub hosts: BTreeMap<String, BTreeSet<VipId>>,
}

impl From<FleetFile> for Desired {
    fn from(f: FleetFile) -> Self {
        Desired {
            vips: f.vips.into_iter().map(|v| (v.id(), v)).collect(),
            hosts: f.hosts,
        }
    }
}

impl Desired {
    /// Reads the keys and values under `config/` (one revision). The first
    /// key or value that is not understood refuses the whole revision.
    pub fn from_kvs<'a>(
        keys: &Keys,
        kvs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Desired, String> {
        let mut d = Desired::default();
        let config = keys.config();
        for (key, value) in kvs {
            let key = std::str::from_utf8(key)
                .map_err(|_| format!("a key under {config} is not UTF-8: {key:?}"))?;
            let rest = key
                .strip_prefix(&config)
                .ok_or_else(|| format!("{key}: not under {config}"))?;
            let value = std::str::from_utf8(value)
                .map_err(|_| format!("{key}: the value is not UTF-8 (JSON is)"))?;
            if let Some(id) = rest.strip_prefix("vips/") {
                let id: VipId = id.parse().map_err(|e| format!("{key}: {e}"))?;
                let vip: VipConfig =
                    serde_json::from_str(value).map_err(|e| format!("{key}: not a VIP ({e})"))?;
                if vip.id() != id {
                    return Err(format!("{key}: holds VIP {}, not {id}", vip.id()));
                }
                d.vips.insert(id, vip);
            } else if let Some(host) = rest.strip_prefix("hosts/") {
                valid_host_id(host).map_err(|e| format!("{key}: {e}"))?;
                let doc: HostDoc = serde_json::from_str(value)
                    .map_err(|e| format!("{key}: not a host's VIP list ({e})"))?;
                let mut served = BTreeSet::new();
                for v in &doc.vips {
                    let id: VipId = v.parse().map_err(|e| format!("{key}: {e}"))?;
                    if !served.insert(id) {
                        return Err(format!("{key}: VIP {id} is listed twice"));
                    }
                }
                d.hosts.insert(host.to_owned(), served);
            } else {
                return Err(format!(
                    "{key}: unknown key (this lb-ctl knows {config}vips/ and {config}hosts/)"
                ));
            }
        }
        Ok(d)
    }

    /// The VIPs `host` serves, in the order of their ids.
    pub fn for_host(&self, host: &str) -> Result<Vec<VipConfig>, String> {
        let Some(served) = self.hosts.get(host) else {
            return Ok(self.vips.values().cloned().collect());
        };
        served
            .iter()
            .map(|id| {
                self.vips.get(id).cloned().ok_or_else(|| {
                    format!("config/hosts/{host} lists VIP {id}, which the store does not have")
                })
            })
            .collect()
    }

    /// Every key under `config/` and its value.
    pub fn to_kvs(&self, keys: &Keys) -> BTreeMap<String, Vec<u8>> {
        let mut kvs = BTreeMap::new();
        for (id, vip) in &self.vips {
            kvs.insert(
                keys.vip(id),
                serde_json::to_vec(vip).expect("VIP configs serialize"),
            );
        }
        for (host, served) in &self.hosts {
            let doc = HostDoc {
                vips: served.iter().map(ToString::to_string).collect(),
            };
            kvs.insert(
                keys.host_config(host),
                serde_json::to_vec(&doc).expect("host docs serialize"),
            );
        }
        kvs
    }
}

/// What `apply` must write to make the store's `config/` hold `wanted`:
/// the keys to put (new or changed values) and the keys to delete.
pub fn diff(
    current: &BTreeMap<String, Vec<u8>>,
    wanted: &BTreeMap<String, Vec<u8>>,
) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let puts = wanted
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let deletes = current
        .keys()
        .filter(|k| !wanted.contains_key(*k))
        .cloned()
        .collect();
    (puts, deletes)
}

#[cfg(test)]
mod tests;
