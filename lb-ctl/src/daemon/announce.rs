//! When a VIP address is announced by BGP: the policy of one LB host, as a
//! pure function of what the health checks say and of the time, so that
//! every rule has a unit test without a router.
//!
//! - An address is announced once every VIP on it has `min_healthy` reals
//!   that **its own checks** confirmed healthy (rise successes in a row),
//!   and has stayed so for the hold-down. A restart that adopted the pinned
//!   maps knows which reals were up, which keeps forwarding steady, but
//!   that is not a reason to announce: the backends may have died meanwhile.
//! - Withdrawal is never delayed: an address whose VIPs fall below
//!   `min_healthy` is withdrawn at once.
//! - An address that an adopted gobgpd was still announcing when lb-ctl
//!   started (lb-ctl crashed and came back; the routes never left) is
//!   *inherited*: it stays announced while the adopted health says so,
//!   until the checks have confirmed it (then it is an ordinary announced
//!   address, no hold-down) or taken it below `min_healthy` (withdrawn).
use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{
    bgp::{Announcement, BgpSettings, Prefix},
    config::{RealConfig, VipConfig},
};

/// What the health checks say of one VIP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHealth {
    /// Every VIP on the address has `min_healthy` reals confirmed healthy
    /// by their own checks; else why not.
    pub confirmed: Result<(), String>,
    /// The same, counting reals that are healthy only as adopted from the
    /// pinned maps (not yet confirmed).
    pub provisional: Result<(), String>,
}

/// What the policy remembers of one VIP address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressState {
    /// Since when the address has been confirmed healthy.
    pub healthy_since: Option<Instant>,
    /// An adopted gobgpd was announcing it when lb-ctl started, and the
    /// checks have not decided yet.
    pub inherited: bool,
}

/// Whether to announce the address now (`Ok`) or why not (`Err`), updating
/// its state.
pub fn decide(
    now: Instant,
    hold_down: Duration,
    health: &AddressHealth,
    state: &mut AddressState,
) -> Result<(), String> {
    if state.inherited {
        match (&health.provisional, &health.confirmed) {
            (Err(why), _) => {
                state.inherited = false;
                state.healthy_since = None;
                return Err(why.clone());
            }
            (Ok(()), Ok(())) => {
                // Announced all along: no hold-down now.
                state.inherited = false;
                state.healthy_since = Some(now.checked_sub(hold_down).unwrap_or(now));
                return Ok(());
            }
            (Ok(()), Err(_)) => return Ok(()),
        }
    }
    if let Err(why) = &health.confirmed {
        state.healthy_since = None;
        return Err(why.clone());
    }
    let since = *state.healthy_since.get_or_insert(now);
    let healthy_for = now.duration_since(since);
    if healthy_for < hold_down {
        return Err(format!(
            "hold-down: healthy for {healthy_for:?} of {hold_down:?}"
        ));
    }
    Ok(())
}

/// What a real's checks say: healthy (as adopted or confirmed), and
/// confirmed healthy by its own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RealHealth {
    pub healthy: bool,
    pub confirmed: bool,
}

/// For each VIP address: whether every VIP on it has at least
/// `min_healthy` healthy reals (weight above 0), by confirmed checks and
/// provisionally. `health` says what real `r` of VIP `v` is.
pub fn address_health(
    vips: &[VipConfig],
    health: impl Fn(&VipConfig, &RealConfig) -> RealHealth,
) -> BTreeMap<IpAddr, AddressHealth> {
    let mut out: BTreeMap<IpAddr, AddressHealth> = BTreeMap::new();
    for v in vips {
        let states: Vec<RealHealth> = v
            .reals
            .iter()
            .filter(|r| r.weight > 0)
            .map(|r| health(v, r))
            .collect();
        let healthy = states.iter().filter(|h| h.healthy).count() as u32;
        let confirmed = states.iter().filter(|h| h.healthy && h.confirmed).count() as u32;
        let entry = out.entry(v.address).or_insert(AddressHealth {
            confirmed: Ok(()),
            provisional: Ok(()),
        });
        let short = |n: u32| {
            format!(
                "VIP {}: {n} of {} reals healthy, {} needed",
                v.id(),
                v.reals.len(),
                v.min_healthy
            )
        };
        if entry.provisional.is_ok() && healthy < v.min_healthy {
            entry.provisional = Err(short(healthy));
        }
        if entry.confirmed.is_ok() && confirmed < v.min_healthy {
            entry.confirmed = Err(if healthy >= v.min_healthy {
                format!(
                    "VIP {}: waiting for its health checks to confirm the reals ({confirmed} of {} confirmed, {} needed)",
                    v.id(),
                    v.reals.len(),
                    v.min_healthy
                )
            } else {
                short(healthy)
            });
        }
    }
    out
}

/// What to announce at `now` (with the hold-down, communities, MED, next
/// hop), and what is withheld and why; `states` is the policy's memory of
/// each address, updated.
pub fn announcements(
    vips: &[VipConfig],
    health: BTreeMap<IpAddr, AddressHealth>,
    b: &BgpSettings,
    states: &mut BTreeMap<IpAddr, AddressState>,
    now: Instant,
) -> (Vec<Announcement>, Vec<(Prefix, String)>) {
    let mut wanted = Vec::new();
    let mut withheld = Vec::new();
    states.retain(|a, _| health.contains_key(a));
    for (addr, h) in health {
        let prefix = Prefix::host(addr);
        let state = states.entry(addr).or_default();
        if let Err(why) = decide(now, b.hold_down, &h, state) {
            withheld.push((prefix, why));
            continue;
        }
        let next_hop = match addr {
            IpAddr::V4(_) => b.next_hop_v4.map(IpAddr::V4),
            IpAddr::V6(_) => b.next_hop_v6.map(IpAddr::V6),
        };
        let Some(next_hop) = next_hop else {
            withheld.push((
                prefix,
                "no next hop for its family (next_hop_v4/v6 or source_v4/v6)".into(),
            ));
            continue;
        };
        let vip = vips.iter().find(|v| v.address == addr);
        wanted.push(Announcement {
            prefix,
            next_hop,
            communities: vip
                .and_then(|v| v.communities.clone())
                .unwrap_or_else(|| b.communities.clone()),
            med: vip.and_then(|v| v.med).unwrap_or(b.med),
        });
    }
    (wanted, withheld)
}

#[cfg(test)]
#[path = "announce_tests.rs"]
mod tests;
