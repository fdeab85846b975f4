//! Unit tests of the announcement policy.
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
        config::{RealConfig, VipConfig, fixtures},
    };

    fn vip(addr: &str, port: u16, reals: &[(&str, u32)], min_healthy: u32) -> VipConfig {
        VipConfig {
            min_healthy,
            reals: reals
                .iter()
                .map(|(a, w)| RealConfig {
                    weight: *w,
                    ..fixtures::real(a)
                })
                .collect(),
            ..fixtures::vip(addr, port)
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
