//! The store edit as a pure function: each change does what it says, a
//! refused one (a table of cases) leaves the desired state as it was.
use std::{collections::BTreeSet, net::IpAddr};

use super::*;
use crate::{
    config::{
        RealConfig,
        fixtures::{real, vip},
    },
    vocab::VipId,
};

fn id(s: &str) -> VipId {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const A: &str = "203.0.113.10:80/tcp";
const B: &str = "203.0.113.11:80/tcp";

/// Two VIPs; host `site-a` serves both, `site-b` only B, others all.
fn fleet() -> Desired {
    let mut a = vip("203.0.113.10", 80);
    a.reals = vec![real("192.0.2.18"), real("192.0.2.22")];
    let b = vip("203.0.113.11", 80);
    Desired {
        vips: [(a.id(), a), (b.id(), b)].into_iter().collect(),
        hosts: [
            ("site-a".to_owned(), BTreeSet::from([id(A), id(B)])),
            ("site-b".to_owned(), BTreeSet::from([id(B)])),
        ]
        .into_iter()
        .collect(),
    }
}

#[test]
fn each_change_lands_in_the_desired_state() {
    let mut d = fleet();
    let said = edit_desired(&mut d, Change::AddVip(vip("203.0.113.12", 0))).unwrap();
    assert!(said.contains("added VIP 203.0.113.12:0/tcp"), "{said}");
    assert_eq!(d.vips.len(), 3);
    // A new VIP is served by hosts without a list; the lists stay as set.
    assert_eq!(d.hosts["site-b"], BTreeSet::from([id(B)]));

    edit_desired(&mut d, Change::AddReal(id(B), real("192.0.2.30"))).unwrap();
    assert_eq!(d.vips[&id(B)].reals, vec![real("192.0.2.30")]);
    let said = edit_desired(&mut d, Change::SetWeight(id(A), ip("192.0.2.18"), 0)).unwrap();
    assert!(said.starts_with("draining real 192.0.2.18"), "{said}");
    assert_eq!(d.vips[&id(A)].reals[0].weight, 0);
    edit_desired(&mut d, Change::DelReal(id(A), ip("192.0.2.22"))).unwrap();
    assert_eq!(d.vips[&id(A)].reals.len(), 1);
}

#[test]
fn a_removed_vip_leaves_every_host_list_that_named_it() {
    let mut d = fleet();
    let said = edit_desired(&mut d, Change::DelVip(id(B))).unwrap();
    assert!(said.contains("site-a, site-b"), "{said}");
    assert!(!d.vips.contains_key(&id(B)));
    assert_eq!(d.hosts["site-a"], BTreeSet::from([id(A)]));
    // site-b served only B: it now serves nothing (not every VIP).
    assert!(d.hosts["site-b"].is_empty());
    // What is written reads back as the same state: no host names a VIP
    // the store lacks, which every host would refuse.
    let keys = crate::fleet::schema::Keys::new("/lb/v1/");
    let kvs = d.to_kvs(&keys);
    let back = Desired::from_kvs(&keys, kvs.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
        .expect("the edited state reads back");
    assert_eq!(back, d);
}

#[test]
fn a_refused_change_leaves_the_desired_state_as_it_was() {
    let mut bad_ring = vip("203.0.113.12", 80);
    bad_ring.ring_size = 100;
    let mut loop_real = vip("203.0.113.13", 80);
    loop_real.reals = vec![real("203.0.113.10")];
    let heavy = RealConfig {
        weight: u32::MAX,
        ..real("192.0.2.40")
    };
    let cases: Vec<(&str, Change, &str)> = vec![
        (
            "VIP exists",
            Change::AddVip(vip("203.0.113.10", 80)),
            "already exists: VIP 203.0.113.10:80/tcp exists already",
        ),
        (
            "no such VIP",
            Change::DelVip(id("203.0.113.99:80/tcp")),
            "not found: no VIP",
        ),
        (
            "real exists",
            Change::AddReal(id(A), real("192.0.2.18")),
            "already exists",
        ),
        (
            "real of no VIP",
            Change::AddReal(id("203.0.113.99:80/tcp"), real("192.0.2.30")),
            "not found",
        ),
        (
            "no such real",
            Change::DelReal(id(A), ip("192.0.2.99")),
            "not found: VIP 203.0.113.10:80/tcp has no real",
        ),
        (
            "weight of no real",
            Change::SetWeight(id(A), ip("192.0.2.99"), 2),
            "not found",
        ),
        (
            "ring not prime",
            Change::AddVip(bad_ring),
            "refused: VIP 203.0.113.12:80/tcp",
        ),
        (
            "real is a VIP",
            Change::AddVip(loop_real),
            "is a VIP address",
        ),
        (
            "weight too large",
            Change::AddReal(id(B), heavy),
            "refused: VIP 203.0.113.11:80/tcp: real 192.0.2.40",
        ),
        (
            "loopback real",
            Change::AddReal(id(B), real("127.0.0.1")),
            "loopback",
        ),
    ];
    for (what, change, says) in cases {
        let mut d = fleet();
        let e = edit_desired(&mut d, change).expect_err(what).to_string();
        assert!(e.contains(says), "{what}: `{e}` does not say `{says}`");
        assert_eq!(d, fleet(), "{what} changed the desired state");
    }
}
