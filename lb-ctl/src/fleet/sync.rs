//! A fleet host follows the store: "list then watch". It reads everything
//! under `config/` at one revision, offers this host's VIPs of that
//! revision to the controller (which validates them with the host's own
//! rules and applies them, or refuses them whole), writes the answer to
//! `hosts/<host>/status` (ACK: the applied revision; NACK: the refused
//! revision and why), then watches from the next revision and offers each
//! new revision whole (a burst of revisions within [`COALESCE`] is one
//! offer). A watch cancelled by compaction re-lists (what vanished is
//! removed, as the offer is the whole state). A lost store changes
//! nothing: the controller keeps what it has (the last known good state),
//! and the sync reconnects with jittered backoff.
//!
//! It follows the checker's results (`health/`, `checkers/round`) the same
//! way, in the same watch, and hands them to the controller, which decides
//! whether to believe them ([`super::health`]).
use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use etcd_client::{EventType, WatchOptions};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};

use super::{
    health::FleetHealth,
    schema::{Desired, HostStatus, Refusal},
    store::{Store, StoreError},
};
use crate::{config::FleetSettings, config::VipConfig, errors::chain};

/// Revisions arriving within this time of the first are offered as one.
pub const COALESCE: Duration = Duration::from_millis(30);
/// A host's session key vanishes this long after the host lost the store.
const SESSION_TTL: Duration = Duration::from_secs(10);
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One revision's VIPs for this host, offered to the controller; it
/// answers with a summary (applied) or why it refused them.
#[derive(Debug)]
pub struct Offer {
    pub revision: i64,
    pub vips: Vec<VipConfig>,
    pub reply: oneshot::Sender<Result<String, String>>,
}

/// What the sync tells the controller.
#[derive(Debug)]
pub enum ToController {
    /// A revision's VIPs for this host.
    Offer(Offer),
    /// The checker's results and heartbeat as they are now (sent on every
    /// change of `health/` or `checkers/`, so each heartbeat arrives).
    Health(FleetHealth),
}

/// Exponential backoff with jitter (each wait between half and all of the
/// current bound).
struct Backoff {
    bound: Duration,
    seed: u64,
}

impl Backoff {
    fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos() as u64);
        Backoff {
            bound: BACKOFF_MIN,
            seed: nanos ^ (u64::from(std::process::id()) << 32) | 1,
        }
    }

    fn next(&mut self) -> Duration {
        // xorshift64
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let half = self.bound / 2;
        let jitter = half.mul_f64((self.seed % 1000) as f64 / 1000.0);
        let wait = half + jitter;
        self.bound = (self.bound * 2).min(BACKOFF_MAX);
        wait
    }

    fn reset(&mut self) {
        self.bound = BACKOFF_MIN;
    }
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Why a session with the store ended.
enum End {
    /// The watch fell behind a compaction: list again at once.
    Compacted(i64),
    /// The controller is gone (the daemon stops).
    Stopped,
}

/// The host's side of the store, across sessions.
struct Host {
    settings: FleetSettings,
    messages: mpsc::Sender<ToController>,
    status: HostStatus,
}

/// Follows the store until the controller goes away. `applied` is the
/// revision the controller starts with (from the LKG file), if any.
pub async fn run(
    settings: FleetSettings,
    messages: mpsc::Sender<ToController>,
    applied: Option<i64>,
) {
    let mut host = Host {
        status: HostStatus::new(&settings.host, applied),
        settings,
        messages,
    };
    let mut backoff = Backoff::new();
    loop {
        match host.session(&mut backoff).await {
            Ok(End::Stopped) => return,
            Ok(End::Compacted(at)) => {
                tracing::info!(
                    compacted = at,
                    "fleet: the watch fell behind a compaction; listing the store again"
                );
            }
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %chain(&e), retry_in = ?wait, "fleet: the store is out of reach; keeping the last known good state (forwarding and BGP unchanged)");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

impl Host {
    async fn session(&mut self, backoff: &mut Backoff) -> Result<End, StoreError> {
        let mut store = Store::connect(&self.settings).await?;
        let lease = store.lease(SESSION_TTL).await?;
        let etcd = |what| move |source| StoreError::Etcd { what, source };
        let (mut keeper, mut kept) = store
            .client
            .lease_keep_alive(lease)
            .await
            .map_err(etcd("keeping the session's lease"))?;
        let (start, end) = store.keys.followed();
        let config = store.keys.config();
        let listing = store.list_range(&start, end.as_bytes()).await?;
        backoff.reset();
        let mut kvs = listing.values();
        tracing::info!(
            revision = listing.revision,
            keys = kvs.len(),
            "fleet: listed the store"
        );
        if !self.offer(&mut store, lease, listing.revision, &kvs).await
            || !self.send_health(&store, &kvs).await
        {
            return Ok(End::Stopped);
        }
        let mut stream = store
            .client
            .watch(
                start.as_str(),
                Some(
                    WatchOptions::new()
                        .with_range(end.as_str())
                        .with_start_revision(listing.revision + 1),
                ),
            )
            .await
            .map_err(etcd("watching the store"))?;
        let mut keep_alive = tokio::time::interval(SESSION_TTL / 3);
        // What changed since the last offer: the revision, whether config/
        // changed (else only health did), and when to offer.
        let mut pending: Option<(i64, bool, Instant)> = None;
        loop {
            let due = pending.map(|(_, _, at)| at);
            tokio::select! {
                msg = stream.message() => {
                    let Some(resp) = msg.map_err(etcd("watching the store"))? else {
                        return Err(StoreError::Invalid("the store ended the watch".into()));
                    };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            return Ok(End::Compacted(resp.compact_revision()));
                        }
                        return Err(StoreError::Invalid(format!("the store cancelled the watch: {}", resp.cancel_reason())));
                    }
                    if resp.events().is_empty() {
                        continue;
                    }
                    let mut config_changed = false;
                    // The state now is the store's at the last event's
                    // revision (the header's may be later: writes to keys
                    // not followed, or followed ones still to come).
                    let mut revision = 0;
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        revision = revision.max(kv.mod_revision());
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        config_changed |= key.starts_with(&config);
                        match ev.event_type() {
                            EventType::Put => kvs.insert(key, kv.value().to_vec()),
                            EventType::Delete => kvs.remove(&key),
                        };
                    }
                    pending = Some(match pending {
                        None => (revision, config_changed, Instant::now() + COALESCE),
                        Some((_, c, at)) => (revision, c || config_changed, at),
                    });
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    let (revision, config_changed, _) = pending.take().expect("due only when pending");
                    if config_changed && !self.offer(&mut store, lease, revision, &kvs).await {
                        return Ok(End::Stopped);
                    }
                    if !self.send_health(&store, &kvs).await {
                        return Ok(End::Stopped);
                    }
                }
                _ = keep_alive.tick() => keeper.keep_alive().await.map_err(etcd("keeping the session's lease"))?,
                msg = kept.message() => {
                    if msg.map_err(etcd("keeping the session's lease"))?.is_none_or(|r| r.ttl() <= 0) {
                        return Err(StoreError::Invalid("the session's lease expired".into()));
                    }
                }
            }
        }
    }

    /// Sends the checker's results in `kvs` to the controller. `false`
    /// when the controller is gone.
    async fn send_health(&mut self, store: &Store, kvs: &BTreeMap<String, Vec<u8>>) -> bool {
        let (health, unreadable) = FleetHealth::from_kvs(
            &store.keys,
            kvs.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        );
        for u in unreadable {
            tracing::warn!(what = %u, "fleet: a health result cannot be read; its real stays as it is");
        }
        self.messages
            .send(ToController::Health(health))
            .await
            .is_ok()
    }

    /// Offers revision `revision` (the keys under `config/`) to the
    /// controller and writes its answer to the store. `false` when the
    /// controller is gone.
    async fn offer(
        &mut self,
        store: &mut Store,
        lease: i64,
        revision: i64,
        kvs: &BTreeMap<String, Vec<u8>>,
    ) -> bool {
        let config = store.keys.config();
        let wanted = Desired::from_kvs(
            &store.keys,
            kvs.iter()
                .filter(|(k, _)| k.starts_with(&config))
                .map(|(k, v)| (k.as_bytes(), v.as_slice())),
        )
        .and_then(|d| d.for_host(&self.settings.host));
        let answer = match wanted {
            Err(why) => Err(why),
            Ok(vips) => {
                let count = vips.len();
                let (reply, answer) = oneshot::channel();
                let offer = Offer {
                    revision,
                    vips,
                    reply,
                };
                if self
                    .messages
                    .send(ToController::Offer(offer))
                    .await
                    .is_err()
                {
                    return false;
                }
                match answer.await {
                    Ok(a) => a.map(|summary| (summary, count)),
                    Err(_) => return false,
                }
            }
        };
        match answer {
            Ok((summary, count)) => {
                tracing::info!(revision, %summary, "fleet: applied");
                self.status.applied_revision = Some(revision);
                self.status.vips = count;
                self.status.refused = None;
            }
            Err(error) => {
                tracing::error!(revision, %error, "fleet: revision refused; the previous state stays");
                self.status.refused = Some(Refusal { revision, error });
            }
        }
        self.status.updated_ms = now_ms();
        if let Err(e) = store.put_status(&self.status, lease).await {
            tracing::warn!(error = %chain(&e), "fleet: could not write this host's status");
        }
        true
    }
}

/// The first state of a host that has no LKG file: waits for the store,
/// reads this host's VIPs and checks them with `accept` (the host's own
/// rules); a refused revision is reported in the host's status and waited
/// out. Returns the revision and the VIPs.
pub async fn first_state(
    settings: &FleetSettings,
    accept: impl Fn(&[VipConfig]) -> Result<(), String>,
) -> (i64, Vec<VipConfig>) {
    let mut backoff = Backoff::new();
    loop {
        let attempt = async {
            let mut store = Store::connect(settings).await?;
            let (desired, listing) = store.desired().await?;
            let vips = desired
                .for_host(&settings.host)
                .map_err(StoreError::Invalid)?;
            if let Err(why) = accept(&vips) {
                let lease = store.lease(SESSION_TTL).await?;
                let status = HostStatus {
                    refused: Some(Refusal {
                        revision: listing.revision,
                        error: why.clone(),
                    }),
                    updated_ms: now_ms(),
                    ..HostStatus::new(&settings.host, None)
                };
                store.put_status(&status, lease).await?;
                return Err(StoreError::Invalid(why));
            }
            Ok((listing.revision, vips))
        };
        match attempt.await {
            Ok(first) => return first,
            Err(e) => {
                let wait = backoff.next();
                tracing::warn!(error = %chain(&e), retry_in = ?wait, "fleet: no last known good state yet and no usable state from the store; waiting (the pinned maps, if any, keep forwarding)");
                tokio::time::sleep(wait).await;
            }
        }
    }
}
