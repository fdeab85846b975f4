//! The reconciler against the real kernel maps: desired state in, minimal
//! writes out, adoption after a restart, bad input refused with the maps
//! left as they were.
use std::{net::IpAddr, path::PathBuf};

use lb_common::maps::{REAL_F_GUE, REAL_STATE_DOWN, REAL_STATE_DRAINING, REAL_STATE_UP};
use lb_ctl::{
    dataplane::{Dataplane, LoadOptions},
    maglev::RingSize,
    reconcile::{ApplyReport, RealSpec, ReconcileError, Reconciler, VipSpec},
    vocab::{Proto, VipId},
};
use lb_tests::{
    balancer::{TestReal, ip, maglev_ring},
    netns::unique_tag,
    require_root,
};

fn vip(addr: &str, port: u16, reals: &[(&str, u32)]) -> VipSpec {
    VipSpec {
        id: VipId {
            addr: ip(addr),
            port,
            proto: Proto::Tcp,
        },
        ring_size: RingSize::new(251).unwrap(),
        no_conn_table: false,
        quic: false,
        reals: reals
            .iter()
            .map(|(a, w)| RealSpec {
                addr: ip(a),
                weight: *w,
                healthy: true,
                gue: false,
            })
            .collect(),
    }
}

fn load(pin_dir: Option<PathBuf>) -> Dataplane {
    Dataplane::load(&LoadOptions {
        conn_table_size: 1024,
        conn_table_size_v6: 1024,
        pin_dir,
        ..LoadOptions::default()
    })
    .expect("load")
}

/// The ring user space expects for `spec`, with the reconciler's ids.
fn expected_ring(r: &Reconciler, spec: &VipSpec) -> Vec<u32> {
    let reals: Vec<TestReal> = spec
        .reals
        .iter()
        .map(|x| TestReal {
            id: r.real_id(&spec.id, &x.addr).unwrap(),
            addr: x.addr,
            weight: if x.healthy { x.weight } else { 0 },
        })
        .collect();
    maglev_ring(&reals, spec.ring_size.get())
}

#[test]
fn apply_writes_what_differs_and_nothing_more() {
    if !require_root("apply_writes_what_differs_and_nothing_more") {
        return;
    }
    let mut dp = load(None);
    let mut r = Reconciler::new();
    let mut state = vec![
        vip(
            "203.0.113.10",
            80,
            &[
                ("198.51.100.1", 1),
                ("198.51.100.2", 1),
                ("198.51.100.3", 2),
            ],
        ),
        vip(
            "2001:db8:100::10",
            443,
            &[("2001:db8:200::1", 1), ("2001:db8:200::2", 1)],
        ),
    ];
    let rep = r.apply(&mut dp, &state).unwrap();
    assert_eq!((rep.vips_added, rep.reals_added), (2, 5));
    assert_eq!(rep.slots_written, 2 * 251);
    for spec in &state {
        let (_, vip_id) = r.vip_ids().find(|(k, _)| **k == spec.id).unwrap();
        assert_eq!(
            dp.ring(vip_id).unwrap(),
            expected_ring(&r, spec),
            "kernel ring of {}",
            spec.id
        );
    }
    assert_eq!(
        r.apply(&mut dp, &state).unwrap(),
        ApplyReport::default(),
        "same state: no writes"
    );

    // Drain one real, mark one down, remove one: only their slots move.
    let drained = state[0].reals[0].addr;
    let down = state[0].reals[1].addr;
    state[0].reals[0].weight = 0;
    state[0].reals[1].healthy = false;
    let removed_id = r.real_id(&state[1].id, &state[1].reals[1].addr).unwrap();
    state[1].reals.pop();
    let rep = r.apply(&mut dp, &state).unwrap();
    assert_eq!(rep.reals_removed, 1);
    assert_eq!(rep.reals_changed, 2);
    assert!(
        rep.slots_written > 0 && rep.slots_written < 2 * 251,
        "only moved slots: {}",
        rep.slots_written
    );
    let id = |a: &IpAddr| r.real_id(&state[0].id, a).unwrap();
    assert_eq!(dp.real(id(&drained)).unwrap().state, REAL_STATE_DRAINING);
    assert_eq!(dp.real(id(&down)).unwrap().state, REAL_STATE_DOWN);
    assert_eq!(
        dp.real(id(&state[0].reals[2].addr)).unwrap().state,
        REAL_STATE_UP
    );
    assert_eq!(
        dp.real(removed_id).unwrap().family,
        0,
        "removed real's slot cleared"
    );
    let ring0 = dp.ring(0).unwrap();
    assert!(
        ring0.iter().all(|&s| s == id(&state[0].reals[2].addr)),
        "only the up real is in the ring"
    );

    // A VIP that goes is gone from the kernel.
    state.pop();
    let rep = r.apply(&mut dp, &state).unwrap();
    assert_eq!(rep.vips_removed, 1);
    assert_eq!(dp.vips().unwrap().len(), 1);
}

#[test]
fn bad_desired_state_is_refused_and_changes_nothing() {
    if !require_root("bad_desired_state_is_refused_and_changes_nothing") {
        return;
    }
    let mut dp = load(None);
    let mut r = Reconciler::new();
    let good = vec![vip("203.0.113.10", 80, &[("198.51.100.1", 1)])];
    r.apply(&mut dp, &good).unwrap();
    let before = dp.ring(0).unwrap();

    let dup = vec![good[0].clone(), good[0].clone()];
    assert!(matches!(
        r.apply(&mut dp, &dup),
        Err(ReconcileError::DuplicateVip(_))
    ));
    let twice = vec![vip(
        "203.0.113.10",
        80,
        &[("198.51.100.1", 1), ("198.51.100.1", 2)],
    )];
    assert!(matches!(
        r.apply(&mut dp, &twice),
        Err(ReconcileError::DuplicateReal { .. })
    ));

    assert_eq!(dp.vips().unwrap().len(), 1);
    assert_eq!(dp.ring(0).unwrap(), before);
    assert_eq!(r.apply(&mut dp, &good).unwrap(), ApplyReport::default());
}

#[test]
fn a_restarted_controller_adopts_the_pinned_state() {
    if !require_root("a_restarted_controller_adopts_the_pinned_state") {
        return;
    }
    struct Pins(PathBuf);
    impl Drop for Pins {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/lbt-rec-{}",
        unique_tag()
    )));
    let state = vec![
        vip(
            "203.0.113.10",
            80,
            &[("198.51.100.1", 1), ("198.51.100.2", 3)],
        ),
        vip("203.0.113.11", 0, &[("198.51.100.1", 1)]),
    ];
    {
        let mut dp = load(Some(pins.0.clone()));
        Reconciler::new().apply(&mut dp, &state).unwrap();
    }
    let mut dp = load(Some(pins.0.clone()));
    let mut r = Reconciler::adopt(&dp).unwrap();
    assert_eq!(r.vip_ids().count(), 2);
    assert_eq!(
        r.apply(&mut dp, &state).unwrap(),
        ApplyReport::default(),
        "adopted: nothing to write"
    );
}

/// A real's encapsulation is written into its slot (`REAL_F_GUE`); a
/// change rewrites the slot in place (same id and generation, so its
/// connections stay), and a restarted controller adopts it unchanged.
#[test]
fn a_reals_encapsulation_is_written_changed_in_place_and_adopted() {
    if !require_root("a_reals_encapsulation_is_written_changed_in_place_and_adopted") {
        return;
    }
    let mut dp = load(None);
    let mut r = Reconciler::new();
    let mut state = vec![vip(
        "203.0.113.10",
        80,
        &[("198.51.100.1", 1), ("198.51.100.2", 1)],
    )];
    state[0].reals[0].gue = true;
    r.apply(&mut dp, &state).unwrap();
    let id = |r: &Reconciler, a: &str| r.real_id(&state[0].id, &ip(a)).unwrap();
    let (gue_id, ipip_id) = (id(&r, "198.51.100.1"), id(&r, "198.51.100.2"));
    let flags = |dp: &Dataplane, id| dp.real(id).unwrap().flags;
    assert_eq!(flags(&dp, gue_id), REAL_F_GUE);
    assert_eq!(flags(&dp, ipip_id), 0);
    let before = dp.real(gue_id).unwrap();
    let ring = dp.ring(0).unwrap();

    state[0].reals[0].gue = false;
    state[0].reals[1].gue = true;
    let report = r.apply(&mut dp, &state).unwrap();
    assert_eq!(report.reals_changed, 2, "{report:?}");
    assert_eq!((report.reals_added, report.reals_removed), (0, 0));
    assert_eq!(flags(&dp, gue_id), 0);
    assert_eq!(flags(&dp, ipip_id), REAL_F_GUE);
    let after = dp.real(gue_id).unwrap();
    assert_eq!(
        (after.generation, after.addr, after.state),
        (before.generation, before.addr, before.state),
        "the same slot, rewritten"
    );
    assert_eq!(dp.ring(0).unwrap(), ring, "the ring does not move");

    let mut adopted = Reconciler::adopt(&dp).unwrap();
    assert_eq!(
        adopted.apply(&mut dp, &state).unwrap().reals_changed,
        0,
        "adopted with its encapsulation: nothing to rewrite"
    );
}
