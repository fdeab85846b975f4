//! The decision on maps held in memory: one case per branch of the
//! program's path, each naming the verdict and the counter it must give.
//! The fixture (`Maps`, `maps()`) is shared with `detail_tests.rs`.
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
};

use lb_common::{
    config::{CONFIG_F_ICMP_TOO_BIG, Config},
    hash::flow_hash,
    maps::{
        AddrKey, Conn, FlowKey, REAL_STATE_DOWN, REAL_STATE_DRAINING, REAL_STATE_UP, Real, VipKey,
        VipMeta,
    },
};

use super::{FlowQuery, MapsView, explain};
use crate::vocab::{Proto, VipId};

#[derive(Default, Clone)]
pub(super) struct Maps {
    pub(super) vips: HashMap<VipKey, VipMeta>,
    gens: HashMap<u32, u32>,
    pub(super) reals: HashMap<u32, Real>,
    rings: HashMap<u32, Vec<u32>>,
    conns: Vec<(FlowKey, Conn)>,
    pub(super) config: Option<Config>,
}

impl MapsView for Maps {
    fn vip(&self, key: &VipKey) -> Option<VipMeta> {
        self.vips.get(key).copied()
    }
    fn is_vip_addr(&self, key: &AddrKey) -> bool {
        self.vips
            .keys()
            .any(|k| k.addr == key.addr && k.family == key.family)
    }
    fn vips_on(&self, addr: IpAddr) -> Vec<VipId> {
        let mut v: Vec<VipId> = self
            .vips
            .keys()
            .filter(|k| k.ip() == Some(addr))
            .map(|k| VipId {
                addr,
                port: k.port,
                proto: Proto::from_number(k.proto).unwrap(),
            })
            .collect();
        v.sort();
        v
    }
    fn vip_generation(&self, vip_id: u32) -> Option<u32> {
        self.gens.get(&vip_id).copied()
    }
    fn real(&self, real_id: u32) -> Option<Real> {
        self.reals.get(&real_id).copied()
    }
    fn ring_slot(&self, vip_id: u32, slot: u32) -> Option<u32> {
        self.rings.get(&vip_id)?.get(slot as usize).copied()
    }
    fn conn(&self, flow: &FlowKey) -> Option<Conn> {
        self.conns.iter().find(|(k, _)| k == flow).map(|(_, c)| *c)
    }
    fn config(&self) -> Option<Config> {
        self.config
    }
}

pub(super) fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// VIP 0: 203.0.113.10:80/tcp, ring of 7 slots alternating reals 1 and 2.
/// VIP 1: 203.0.113.20/udp (every port), real 3 (IPv6). VIP 2:
/// 2001:db8:f::10:53/udp, real 4 (IPv4: IPv6-in-IPv4). VIP 3:
/// 203.0.113.30:80/tcp, an empty ring.
pub(super) fn maps() -> Maps {
    let mut m = Maps::default();
    let vip = |m: &mut Maps, a: &str, port, proto: Proto, id| {
        m.vips.insert(
            VipKey::new(addr(a), port, proto.number()),
            VipMeta {
                vip_id: id,
                ring_size: 7,
                flags: 0,
                generation: 5,
            },
        );
        m.gens.insert(id, 5);
    };
    vip(&mut m, "203.0.113.10", 80, Proto::Tcp, 0);
    vip(&mut m, "203.0.113.20", 0, Proto::Udp, 1);
    vip(&mut m, "2001:db8:f::10", 53, Proto::Udp, 2);
    vip(&mut m, "203.0.113.30", 80, Proto::Tcp, 3);
    m.reals
        .insert(1, Real::new(addr("192.0.2.11"), REAL_STATE_UP, 1));
    m.reals
        .insert(2, Real::new(addr("192.0.2.12"), REAL_STATE_UP, 1));
    m.reals
        .insert(3, Real::new(addr("2001:db8:a::3"), REAL_STATE_UP, 1));
    m.reals
        .insert(4, Real::new(addr("192.0.2.14"), REAL_STATE_UP, 1));
    m.rings.insert(0, vec![1, 2, 1, 2, 1, 2, 1]);
    m.rings.insert(1, vec![3; 7]);
    m.rings.insert(2, vec![4; 7]);
    m.rings.insert(3, vec![0; 7]);
    let mut cfg = Config {
        mtu: 1500,
        flags: CONFIG_F_ICMP_TOO_BIG,
        ..Config::default()
    };
    cfg.src_v4 = [192, 0, 2, 254];
    cfg.src_v6 = addr16("2001:db8:ffff::254");
    m.config = Some(cfg);
    m
}

pub(super) fn addr16(s: &str) -> [u8; 16] {
    match addr(s) {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(_) => unreachable!(),
    }
}

pub(super) fn q(proto: Proto, src: &str, dst: &str) -> FlowQuery {
    FlowQuery {
        proto,
        src: src.parse::<SocketAddr>().unwrap(),
        dst: dst.parse::<SocketAddr>().unwrap(),
        size: None,
    }
}

#[test]
fn every_branch_gives_the_programs_verdict_and_counter() {
    let web = q(Proto::Tcp, "198.51.100.7:40000", "203.0.113.10:80");
    let slot = flow_hash(&web.key()) % 7;
    let ring_real = [1, 2, 1, 2, 1, 2, 1][slot as usize];
    let conn = |real_id, real_generation, vip_generation| Conn {
        real_id,
        real_generation,
        vip_id: 0,
        vip_generation,
    };
    let with_conn = |c: Conn| {
        let mut m = maps();
        m.conns.push((web.key(), c));
        m
    };
    let other = if ring_real == 1 { 2 } else { 1 };
    let with_real_state = |state| {
        let mut m = with_conn(conn(other, 1, 5));
        m.reals.insert(
            other,
            Real::new(
                addr(if other == 1 {
                    "192.0.2.11"
                } else {
                    "192.0.2.12"
                }),
                state,
                1,
            ),
        );
        m
    };
    let no_source = {
        let mut m = maps();
        m.config.as_mut().unwrap().src_v4 = [0; 4];
        m
    };
    let big = FlowQuery {
        size: Some(1481),
        ..web
    };
    let fits = FlowQuery {
        size: Some(1480),
        ..web
    };
    let no_icmp = {
        let mut m = maps();
        m.config.as_mut().unwrap().flags = 0;
        m
    };
    // (what, maps, flow, verdict, counter, the real it goes to)
    type Case<'a> = (&'a str, Maps, FlowQuery, &'a str, &'a str, Option<u32>);
    let cases: Vec<Case> = vec![
        (
            "a new flow: the ring's real",
            maps(),
            web,
            "forward",
            "conn_miss",
            Some(ring_real),
        ),
        (
            "a connection in use",
            with_conn(conn(other, 1, 5)),
            web,
            "forward",
            "conn_hit",
            Some(other),
        ),
        (
            "a draining real keeps its flows",
            with_real_state(REAL_STATE_DRAINING),
            web,
            "forward",
            "conn_hit",
            Some(other),
        ),
        (
            "a down real's flows move",
            with_real_state(REAL_STATE_DOWN),
            web,
            "forward",
            "conn_rehash",
            Some(ring_real),
        ),
        (
            "a reused real slot",
            with_conn(conn(other, 0, 5)),
            web,
            "forward",
            "conn_rehash",
            Some(ring_real),
        ),
        (
            "a changed VIP",
            with_conn(conn(other, 1, 4)),
            web,
            "forward",
            "conn_rehash",
            Some(ring_real),
        ),
        (
            "no VIP on the address",
            maps(),
            q(Proto::Tcp, "198.51.100.7:1", "203.0.113.99:80"),
            "pass",
            "pass_not_vip",
            None,
        ),
        (
            "a VIP address, another port",
            maps(),
            q(Proto::Tcp, "198.51.100.7:1", "203.0.113.10:81"),
            "pass",
            "pass_not_vip",
            None,
        ),
        (
            "a reply from a VIP",
            maps(),
            q(Proto::Tcp, "203.0.113.10:80", "198.51.100.7:1"),
            "pass",
            "pass_from_vip",
            None,
        ),
        (
            "a port-less VIP",
            maps(),
            q(Proto::Udp, "198.51.100.7:1", "203.0.113.20:5353"),
            "forward",
            "conn_miss",
            Some(3),
        ),
        (
            "IPv6 to an IPv4 real (IPv6-in-IPv4)",
            maps(),
            q(Proto::Udp, "[2001:db8:c::7]:1", "[2001:db8:f::10]:53"),
            "forward",
            "conn_miss",
            Some(4),
        ),
        (
            "an empty ring",
            maps(),
            q(Proto::Tcp, "198.51.100.7:1", "203.0.113.30:80"),
            "drop",
            "drop_no_real",
            None,
        ),
        (
            "no outer source",
            no_source,
            web,
            "drop",
            "drop_no_source",
            None,
        ),
        (
            "a packet past the MTU",
            maps(),
            big,
            "drop",
            "drop_mtu",
            None,
        ),
        (
            "a packet that just fits",
            maps(),
            fits,
            "forward",
            "conn_miss",
            Some(ring_real),
        ),
        (
            "past the MTU, no ICMP",
            no_icmp,
            big,
            "drop",
            "drop_mtu",
            None,
        ),
    ];
    for (what, m, flow, verdict, counter, real) in cases {
        let e = explain(&m, &flow);
        assert_eq!(
            (e.verdict.as_str(), e.reason.as_str()),
            (verdict, counter),
            "{what}: {e:?}"
        );
        if let Some(id) = real {
            assert_eq!(
                e.real.as_ref().map(|r| r.real_id),
                Some(id),
                "{what}: {e:?}"
            );
        }
        assert!(!e.why.is_empty(), "{what}");
    }
}
