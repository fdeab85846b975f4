//! The controller's side of BGP: starting the speaker, and handing it what
//! the announcement policy ([`super::announce`]) decides from the health
//! table and the time.
use std::{collections::BTreeSet, net::IpAddr, time::Instant};

use super::{
    announce::{self, RealHealth},
    controller::{Controller, probe_key},
};
use crate::bgp::{Announcement, Prefix, speaker};

impl Controller {
    /// Starts the BGP speaker (with a `[bgp]` section). When the data plane
    /// was adopted (lb-ctl restarted) and a gobgpd still announces some of
    /// the VIP addresses (lb-ctl crashed, its routes stayed), those stay
    /// announced until the health checks decide; nothing else is announced
    /// before its own checks confirm it (see [`announce`]).
    pub async fn start_bgp(&mut self) {
        let Some(settings) = self.settings.bgp.clone() else {
            return;
        };
        if self.adopted {
            let ours: BTreeSet<IpAddr> = self.vips.iter().map(|v| v.address).collect();
            let still = speaker::announced_by_running_gobgpd(&settings).await;
            let inherited: Vec<IpAddr> = still.intersection(&ours).copied().collect();
            if !inherited.is_empty() {
                tracing::info!(
                    ?inherited,
                    "gobgpd still announces these VIP addresses: kept until the health checks decide"
                );
            }
            for addr in inherited {
                self.addresses.entry(addr).or_default().inherited = true;
            }
        }
        let (wanted, withheld) = self.announcements();
        let pid_file = self.settings.daemon.socket.with_extension("gobgpd.pid");
        let handle = speaker::spawn(settings, wanted, pid_file);
        handle.view.lock().expect("view").withheld = withheld;
        self.speaker = Some(handle);
    }

    /// What to announce now, and what is withheld (see [`announce`]).
    fn announcements(&mut self) -> (Vec<Announcement>, Vec<(Prefix, String)>) {
        let Some(b) = &self.settings.bgp else {
            return (Vec::new(), Vec::new());
        };
        let health = &self.health;
        let by_address = announce::address_health(&self.vips, |v, r| {
            let key = probe_key(v, r);
            RealHealth {
                healthy: health.healthy(&key),
                confirmed: health.confirmed_healthy(&key),
            }
        });
        announce::announcements(
            &self.vips,
            by_address,
            b,
            &mut self.addresses,
            Instant::now(),
        )
    }

    /// Tells the speaker what to announce now.
    pub fn update_bgp(&mut self) {
        if self.speaker.is_none() {
            return;
        }
        let (wanted, withheld) = self.announcements();
        let speaker = self.speaker.as_ref().expect("checked above");
        speaker.view.lock().expect("view").withheld = withheld;
        speaker.announce(wanted);
    }
}
