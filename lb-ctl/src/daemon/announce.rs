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
mod tests {
    use super::*;

    const HOLD: Duration = Duration::from_secs(2);

    fn health(confirmed: bool, provisional: bool) -> AddressHealth {
        let r = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err("0 of 2 reals healthy".to_owned())
            }
        };
        AddressHealth {
            confirmed: r(confirmed),
            provisional: r(provisional),
        }
    }

    #[test]
    fn a_confirmed_address_is_announced_after_the_hold_down() {
        let t0 = Instant::now();
        let mut st = AddressState::default();
        assert!(decide(t0, HOLD, &health(true, true), &mut st).is_err());
        let err = decide(
            t0 + Duration::from_secs(1),
            HOLD,
            &health(true, true),
            &mut st,
        );
        assert!(err.unwrap_err().starts_with("hold-down"));
        assert_eq!(
            decide(t0 + HOLD, HOLD, &health(true, true), &mut st),
            Ok(())
        );
        // Withdrawal is immediate, and the hold-down starts over.
        let t1 = t0 + Duration::from_secs(5);
        assert!(decide(t1, HOLD, &health(false, false), &mut st).is_err());
        assert!(decide(t1, HOLD, &health(true, true), &mut st).is_err());
        assert_eq!(
            decide(t1 + HOLD, HOLD, &health(true, true), &mut st),
            Ok(())
        );
    }

    #[test]
    fn adopted_health_alone_never_starts_an_announcement() {
        // A restart found the reals up in the pinned maps; its own checks
        // have not confirmed them: not announced, however long it waits.
        let t0 = Instant::now();
        let mut st = AddressState::default();
        for s in 0..10 {
            let err = decide(
                t0 + Duration::from_secs(s),
                HOLD,
                &health(false, true),
                &mut st,
            );
            assert_eq!(err, Err("0 of 2 reals healthy".to_owned()));
        }
        // Once confirmed, the hold-down still applies.
        let t1 = t0 + Duration::from_secs(10);
        assert!(decide(t1, HOLD, &health(true, true), &mut st).is_err());
        assert_eq!(
            decide(t1 + HOLD, HOLD, &health(true, true), &mut st),
            Ok(())
        );
    }

    #[test]
    fn an_inherited_announcement_is_kept_until_the_checks_decide() {
        let t0 = Instant::now();
        let mut st = AddressState {
            inherited: true,
            ..AddressState::default()
        };
        // Not confirmed yet, healthy as adopted: kept (never withdrawn).
        assert_eq!(decide(t0, HOLD, &health(false, true), &mut st), Ok(()));
        // Confirmed: stays announced, no hold-down, no longer inherited.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(decide(t1, HOLD, &health(true, true), &mut st), Ok(()));
        assert!(!st.inherited);
        assert_eq!(decide(t1, HOLD, &health(true, true), &mut st), Ok(()));
    }

    #[test]
    fn an_inherited_announcement_whose_reals_died_is_withdrawn() {
        let t0 = Instant::now();
        let mut st = AddressState {
            inherited: true,
            ..AddressState::default()
        };
        assert_eq!(decide(t0, HOLD, &health(false, true), &mut st), Ok(()));
        // The checks took the reals down: withdrawn, and from then on the
        // ordinary rules hold (confirmation and hold-down).
        assert!(decide(t0, HOLD, &health(false, false), &mut st).is_err());
        assert!(!st.inherited);
        assert!(decide(t0, HOLD, &health(false, true), &mut st).is_err());
        assert!(decide(t0, HOLD, &health(true, true), &mut st).is_err());
    }

    mod whole_policy {
        use super::*;
        use crate::{
            bgp::Community,
            config::{Check, RealConfig, VipConfig},
            vocab::Proto,
        };

        fn vip(addr: &str, port: u16, reals: &[(&str, u32)], min_healthy: u32) -> VipConfig {
            VipConfig {
                address: addr.parse().unwrap(),
                port,
                protocol: Proto::Tcp,
                ring_size: 13,
                no_conn_table: false,
                health: Check::none(),
                min_healthy,
                communities: None,
                med: None,
                reals: reals
                    .iter()
                    .map(|(a, w)| RealConfig {
                        address: a.parse().unwrap(),
                        weight: *w,
                        health: None,
                    })
                    .collect(),
            }
        }

        fn bgp() -> BgpSettings {
            BgpSettings {
                asn: 65001,
                router_id: "192.0.2.2".parse().unwrap(),
                anycast_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
                gobgpd: "/usr/bin/gobgpd".into(),
                api: "127.0.0.1:50051".parse().unwrap(),
                manage: true,
                listen_port: -1,
                hold_down: HOLD,
                next_hop_v4: Some("192.0.2.2".parse().unwrap()),
                next_hop_v6: None,
                communities: vec!["65001:1".parse::<Community>().unwrap()],
                med: 10,
                neighbors: Vec::new(),
            }
        }

        #[test]
        fn an_address_needs_every_vip_on_it_to_have_min_healthy_usable_reals() {
            let vips = [
                vip(
                    "203.0.113.10",
                    80,
                    &[("192.0.2.18", 1), ("192.0.2.22", 1)],
                    2,
                ),
                vip(
                    "203.0.113.10",
                    443,
                    &[("192.0.2.18", 1), ("192.0.2.22", 0)],
                    1,
                ),
                vip("203.0.113.11", 80, &[("192.0.2.30", 1)], 1),
            ];
            let up = |_: &VipConfig, r: &RealConfig| RealHealth {
                healthy: r.address.to_string() != "192.0.2.30",
                confirmed: true,
            };
            let h = address_health(&vips, up);
            assert_eq!(
                h[&"203.0.113.10".parse::<IpAddr>().unwrap()].confirmed,
                Ok(())
            );
            let down = &h[&"203.0.113.11".parse::<IpAddr>().unwrap()];
            assert!(
                down.confirmed
                    .as_ref()
                    .unwrap_err()
                    .contains("0 of 1 reals healthy")
            );
            // A drained real (weight 0) does not count: :443 has one.
            let only_22 = |_: &VipConfig, r: &RealConfig| RealHealth {
                healthy: r.address.to_string() == "192.0.2.22",
                confirmed: true,
            };
            let h = address_health(&vips, only_22);
            let a = &h[&"203.0.113.10".parse::<IpAddr>().unwrap()];
            assert!(
                a.confirmed
                    .as_ref()
                    .unwrap_err()
                    .contains("VIP 203.0.113.10:80/tcp: 1 of 2")
            );
            // Healthy as adopted but unconfirmed: provisional only.
            let adopted = |_: &VipConfig, _: &RealConfig| RealHealth {
                healthy: true,
                confirmed: false,
            };
            let h = address_health(&vips, adopted);
            let a = &h[&"203.0.113.10".parse::<IpAddr>().unwrap()];
            assert_eq!(a.provisional, Ok(()));
            assert!(
                a.confirmed
                    .as_ref()
                    .unwrap_err()
                    .contains("waiting for its health checks")
            );
        }

        #[test]
        fn announcements_carry_next_hop_communities_and_med_after_the_hold_down() {
            let mut v = vip("203.0.113.10", 80, &[("192.0.2.18", 1)], 1);
            v.med = Some(5);
            let vips = [v, vip("2001:db8:f::10", 80, &[("2001:db8:a1::2", 1)], 1)];
            let up = |_: &VipConfig, _: &RealConfig| RealHealth {
                healthy: true,
                confirmed: true,
            };
            let mut states = BTreeMap::new();
            let t0 = Instant::now();
            let (wanted, withheld) =
                announcements(&vips, address_health(&vips, up), &bgp(), &mut states, t0);
            assert!(wanted.is_empty(), "hold-down first");
            assert_eq!(withheld.len(), 2);
            let (wanted, withheld) = announcements(
                &vips,
                address_health(&vips, up),
                &bgp(),
                &mut states,
                t0 + HOLD,
            );
            assert_eq!(wanted.len(), 1, "{withheld:?}");
            let a = &wanted[0];
            assert_eq!(a.prefix.to_string(), "203.0.113.10/32");
            assert_eq!(a.next_hop.to_string(), "192.0.2.2");
            assert_eq!((a.med, a.communities.len()), (5, 1));
            assert_eq!(withheld.len(), 1);
            assert!(withheld[0].1.contains("no next hop"), "{withheld:?}");
        }
    }
}
