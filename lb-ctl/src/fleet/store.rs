//! The fleet's store: etcd through `etcd-client`, with the few operations
//! lb needs: a prefix read at one revision (paged), the desired state
//! written in one transaction guarded by revision, hosts' status.
use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp};

use super::schema::{Desired, HostStatus, Keys, diff};
use crate::config::FleetSettings;

/// Keys read per request when listing a prefix.
const PAGE: i64 = 500;

/// How often an idle-looking connection with streams is pinged (above
/// etcd's 5 s minimum).
const KEEP_ALIVE: Duration = Duration::from_secs(6);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the fleet's store at {endpoints}")]
    Connect {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("{what}")]
    Etcd {
        what: &'static str,
        #[source]
        source: etcd_client::Error,
    },
    #[error(
        "the store's desired state changed at revision {changed}, after revision {expected}: read it again (lb-ctl fleet get) and re-apply"
    )]
    Conflict { expected: i64, changed: i64 },
    #[error("the store's desired state is not valid: {0}")]
    Invalid(String),
    #[error("{0}: no answer in time")]
    TimedOut(&'static str),
}

/// What `apply` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The store's revision with the change (or the one read, if none).
    pub revision: i64,
    pub puts: usize,
    pub deletes: usize,
}

/// A prefix read at one revision.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub revision: i64,
    /// Key, value and the revision the key last changed at.
    pub kvs: BTreeMap<String, (Vec<u8>, i64)>,
}

impl Listing {
    /// The latest revision any key of the listing changed at (0: none).
    pub fn last_change(&self) -> i64 {
        self.kvs.values().map(|(_, r)| *r).max().unwrap_or(0)
    }

    pub fn values(&self) -> BTreeMap<String, Vec<u8>> {
        self.kvs
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }
}

/// A connection to the fleet's store.
pub struct Store {
    pub client: Client,
    pub keys: Keys,
    /// Every configured member, and those taken out of the client's
    /// balance because they did not answer a probe.
    members: Vec<String>,
    left_out: BTreeSet<String>,
    probe_timeout: Duration,
}

/// One past the last key with `prefix` (etcd's prefix range end).
pub fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

impl Store {
    /// Connects (each request then times out after `dial_timeout`; HTTP/2
    /// pings find a silent connection within `KEEP_ALIVE` + `dial_timeout`).
    pub async fn connect(f: &FleetSettings) -> Result<Store, StoreError> {
        Self::connect_with(f, Some(f.dial_timeout)).await
    }

    /// Connects; requests time out after `request_timeout` if given (an
    /// election campaign waits as long as another leads: it takes none).
    pub async fn connect_with(
        f: &FleetSettings,
        request_timeout: Option<Duration>,
    ) -> Result<Store, StoreError> {
        // HTTP/2 pings find a connection whose member went silent. etcd
        // answers a client that pings more often than every 5 s
        // (`--grpc-keepalive-min-time`), or pings a connection without
        // streams, with GOAWAY: such pings made every connection of a
        // 3-member balance break every 2 s. Pings go every 6 s, only on
        // connections with streams; requests have their own timeout.
        let mut options = ConnectOptions::new()
            .with_connect_timeout(f.dial_timeout)
            .with_keep_alive(KEEP_ALIVE, f.dial_timeout)
            .with_keep_alive_while_idle(false);
        if let Some(t) = request_timeout {
            options = options.with_timeout(t);
        }
        let client = Client::connect(&f.endpoints, Some(options))
            .await
            .map_err(|source| StoreError::Connect {
                endpoints: f.endpoints.join(","),
                source,
            })?;
        let mut store = Store {
            client,
            keys: Keys::new(&f.prefix),
            members: f.endpoints.clone(),
            left_out: BTreeSet::new(),
            probe_timeout: f.dial_timeout.min(Duration::from_secs(1)),
        };
        store.keep_live_members().await;
        // The channel connects lazily: one request proves it.
        store
            .client
            .status()
            .await
            .map_err(|source| StoreError::Connect {
                endpoints: f.endpoints.join(","),
                source,
            })?;
        Ok(store)
    }

    /// Probes every configured member on its own and keeps in the
    /// client's balance only those that answer (all of them when none
    /// does); how many answered. The client balances requests over its
    /// members without knowing which are down: with one of three down,
    /// about one request in three would fail. Called at connect and by
    /// long-lived users when a request failed; a member that answers
    /// again is put back (members that stay are not touched, so streams
    /// open on them go on).
    pub async fn keep_live_members(&mut self) -> usize {
        let mut probes = tokio::task::JoinSet::new();
        for member in self.members.clone() {
            let t = self.probe_timeout;
            probes.spawn(async move {
                let options = ConnectOptions::new()
                    .with_connect_timeout(t)
                    .with_timeout(t);
                let answered = tokio::time::timeout(t, async {
                    let mut c = Client::connect([member.as_str()], Some(options))
                        .await
                        .ok()?;
                    c.status().await.ok()
                })
                .await
                .ok()
                .flatten()
                .is_some();
                (member, answered)
            });
        }
        let answers: Vec<(String, bool)> = probes.join_all().await;
        let live = answers.iter().filter(|(_, ok)| *ok).count();
        if live == 0 {
            return 0;
        }
        for (member, answered) in answers {
            let out = self.left_out.contains(&member);
            if answered && out {
                if self.client.add_endpoint(&member).await.is_ok() {
                    self.left_out.remove(&member);
                    tracing::info!(%member, "fleet: an etcd member answers again; requests go to it again");
                }
            } else if !answered && !out && self.client.remove_endpoint(&member).await.is_ok() {
                self.left_out.insert(member.clone());
                tracing::warn!(%member, "fleet: an etcd member does not answer; requests go to the others");
            }
        }
        live
    }

    /// Every key under `prefix` at one revision, `PAGE` keys a request.
    pub async fn list(&mut self, prefix: &str) -> Result<Listing, StoreError> {
        self.list_range(prefix, &prefix_end(prefix)).await
    }

    /// Every key from `start` up to (not including) `end` at one revision,
    /// `PAGE` keys a request.
    pub async fn list_range(&mut self, start: &str, end: &[u8]) -> Result<Listing, StoreError> {
        let end = end.to_vec();
        let mut from = start.as_bytes().to_vec();
        let mut listing = Listing::default();
        let mut page = PAGE;
        loop {
            let options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(page)
                .with_revision(listing.revision);
            let resp = match self.client.get(from.clone(), Some(options)).await {
                Ok(resp) => resp,
                // A page larger than a gRPC message may be (4 MiB: VIPs
                // with many reals): ask for half as many keys.
                Err(etcd_client::Error::GRpcStatus(status))
                    if page > 1
                        && matches!(
                            status.code(),
                            tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
                        ) =>
                {
                    page /= 2;
                    continue;
                }
                Err(source) => {
                    return Err(StoreError::Etcd {
                        what: "reading the store",
                        source,
                    });
                }
            };
            if listing.revision == 0 {
                listing.revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                listing
                    .kvs
                    .insert(key, (kv.value().to_vec(), kv.mod_revision()));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(listing),
            }
        }
    }

    /// The desired state under `config/` now, and its listing.
    pub async fn desired(&mut self) -> Result<(Desired, Listing), StoreError> {
        let listing = self.list(&self.keys.config()).await?;
        let desired = Desired::from_kvs(
            &self.keys,
            listing
                .kvs
                .iter()
                .map(|(k, (v, _))| (k.as_bytes(), v.as_slice())),
        )
        .map_err(StoreError::Invalid)?;
        Ok((desired, listing))
    }

    /// Makes `config/` hold `wanted`, in one transaction that fails when
    /// anything under `config/` changed after the revision read (or after
    /// `if_revision`, when given).
    pub async fn apply(
        &mut self,
        wanted: &Desired,
        if_revision: Option<i64>,
    ) -> Result<Applied, StoreError> {
        let config = self.keys.config();
        let current = self.list(&config).await?;
        let expected = if_revision.unwrap_or(current.revision);
        if current.last_change() > expected {
            return Err(StoreError::Conflict {
                expected,
                changed: current.last_change(),
            });
        }
        let (puts, deletes) = diff(&current.values(), &wanted.to_kvs(&self.keys));
        if puts.is_empty() && deletes.is_empty() {
            return Ok(Applied {
                revision: current.revision,
                puts: 0,
                deletes: 0,
            });
        }
        let mut ops: Vec<TxnOp> = puts
            .iter()
            .map(|(k, v)| TxnOp::put(k.as_str(), v.clone(), None))
            .collect();
        ops.extend(deletes.iter().map(|k| TxnOp::delete(k.as_str(), None)));
        // Nothing under config/ changed since the read: every key's last
        // change is at most the revision read.
        let guard = Compare::mod_revision(config.as_str(), CompareOp::Less, current.revision + 1)
            .with_range(prefix_end(&config));
        let resp = self
            .client
            .txn(Txn::new().when([guard]).and_then(ops))
            .await
            .map_err(|source| StoreError::Etcd {
                what: "writing the desired state",
                source,
            })?;
        if !resp.succeeded() {
            let now = self.list(&config).await?;
            return Err(StoreError::Conflict {
                expected,
                changed: now.last_change(),
            });
        }
        Ok(Applied {
            revision: resp.header().map_or(0, |h| h.revision()),
            puts: puts.len(),
            deletes: deletes.len(),
        })
    }

    /// Writes `host`'s status (kept), and its session key bound to `lease`.
    pub async fn put_status(&mut self, status: &HostStatus, lease: i64) -> Result<(), StoreError> {
        let json = serde_json::to_vec(status).expect("statuses serialize");
        let ops = [
            TxnOp::put(self.keys.host_status(&status.host), json, None),
            TxnOp::put(
                self.keys.host_session(&status.host),
                status.updated_ms.to_string(),
                Some(PutOptions::new().with_lease(lease)),
            ),
        ];
        self.client
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(|source| StoreError::Etcd {
                what: "writing this host's status",
                source,
            })?;
        Ok(())
    }

    /// A lease of `ttl` (for a host's session key).
    pub async fn lease(&mut self, ttl: Duration) -> Result<i64, StoreError> {
        let resp = self
            .client
            .lease_grant(ttl.as_secs().max(1) as i64, None)
            .await
            .map_err(|source| StoreError::Etcd {
                what: "taking a lease",
                source,
            })?;
        Ok(resp.id())
    }
}
