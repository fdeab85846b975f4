//! Keeping an etcd lease alive across the loss of one member: keep-alives
//! go over a stream to one member; when that member dies (or the Raft
//! group is electing a leader) a keep-alive fails, the stream is opened
//! again (the client's channel balances over every member), and the lease
//! counts as lost only when its TTL, measured from before the last
//! keep-alive that was answered, has passed. One failed keep-alive is not
//! a lost lease: a checker that stepped down for it would hand the
//! leadership over at every member restart.
use std::time::Duration;

use etcd_client::{Client, LeaseKeepAliveStream, LeaseKeeper};
use tokio::{sync::watch, task::JoinHandle, time::Instant};

/// A lease kept alive by a task, until this is dropped (on every way out
/// of its user: a lease kept alive by a forgotten task would keep an
/// election key of a failed campaign standing, ahead of every live
/// candidate, for ever).
pub struct Kept(JoinHandle<()>);

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps `lease` alive from now on; the receiver turns true when it is
/// lost.
pub fn spawn(client: Client, lease: i64, ttl: Duration) -> (Kept, watch::Receiver<bool>) {
    let (lost_tx, lost) = watch::channel(false);
    (Kept(tokio::spawn(keep(client, lease, ttl, lost_tx))), lost)
}

/// Keeps `lease` (granted with `ttl`) alive until it is lost, then says
/// so on `lost` and returns.
async fn keep(mut client: Client, lease: i64, ttl: Duration, lost: watch::Sender<bool>) {
    let mut alive_until = Instant::now() + ttl;
    let mut stream: Option<(LeaseKeeper, LeaseKeepAliveStream)> = None;
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let sent = Instant::now();
        let renewed = tokio::time::timeout(ttl / 3, async {
            if stream.is_none() {
                stream = Some(client.lease_keep_alive(lease).await.ok()?);
            }
            let (keeper, answers) = stream.as_mut()?;
            keeper.keep_alive().await.ok()?;
            let answer = answers.message().await.ok()??;
            Some(answer.ttl())
        })
        .await
        .ok()
        .flatten();
        match renewed {
            Some(secs) if secs > 0 => {
                alive_until = sent + Duration::from_secs(secs as u64);
                if failing {
                    tracing::info!(lease = format!("{lease:x}"), "lease kept alive again");
                    failing = false;
                }
            }
            // TTL 0: the store says the lease is gone.
            Some(_) => {
                let _ = lost.send(true);
                return;
            }
            None => {
                stream = None;
                if !failing {
                    tracing::warn!(
                        lease = format!("{lease:x}"),
                        "a lease keep-alive went unanswered; trying again until the lease would expire"
                    );
                    failing = true;
                }
                if Instant::now() >= alive_until {
                    let _ = lost.send(true);
                    return;
                }
            }
        }
    }
}
