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
use std::time::{Duration, Instant};

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
}
