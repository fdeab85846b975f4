//! QUIC connection-id routing, run in the kernel (BPF_PROG_TEST_RUN): a
//! table of packets to QUIC and plain UDP VIPs, each with the real it must
//! reach and the counters it must move; then every layout of the id in
//! connection ids of every length (1 to 20 bytes), and layouts lb-ctl
//! would refuse, which must fall back.
use std::net::IpAddr;

use lb_common::{
    PROTO_UDP,
    maps::{FlowKey, REAL_STATE_DOWN, REAL_STATE_DRAINING, VIP_F_QUIC},
    stats::{Counter, Stats},
};
use lb_tests::{
    balancer::{TestBalancer, XDP_TX, ip, outer_dst, predict, test_config, test_real as real},
    packet::Packet,
    require_root,
};

const QUIC4: &str = "203.0.113.60";
const QUIC6: &str = "2001:db8:100::60";
const PLAIN4: &str = "203.0.113.61";
const PORT: u16 = 443;
const RING: u32 = 13;

/// The VIPs: QUIC over IPv4 (reals 21-24: 23 draining, 24 down), QUIC
/// over IPv6 (real 26), and a plain UDP VIP (real 25).
fn balancer() -> TestBalancer {
    let mut lb = TestBalancer::new(4096);
    let quic_reals = [
        real(21, "198.51.100.121"),
        real(22, "198.51.100.122"),
        real(23, "198.51.100.123"),
        real(24, "198.51.100.124"),
    ];
    lb.add_vip_with_flags(QUIC4, PORT, PROTO_UDP, &quic_reals, RING, VIP_F_QUIC);
    lb.add_vip(PLAIN4, PORT, PROTO_UDP, &[real(25, "198.51.100.125")], RING);
    lb.add_vip_with_flags(
        QUIC6,
        PORT,
        PROTO_UDP,
        &[real(26, "2001:db8:200::26")],
        RING,
        VIP_F_QUIC,
    );
    for (id, state) in [(23, REAL_STATE_DRAINING), (24, REAL_STATE_DOWN)] {
        let mut r = lb.dp.real(id).unwrap();
        r.state = state;
        lb.dp.set_real(id, &r).unwrap();
    }
    lb
}

/// A short-header QUIC payload: first byte 0x40, a `cid_len`-byte
/// destination connection id with `id` big-endian in `id_len` bytes at
/// `offset` (other bytes 0xee), then 24 bytes of protected payload.
fn short_header(cid_len: usize, offset: usize, id_len: usize, id: u32) -> Vec<u8> {
    let mut p = vec![0x40];
    let mut cid = vec![0xee; cid_len];
    let bytes = id.to_be_bytes();
    cid[offset..offset + id_len].copy_from_slice(&bytes[4 - id_len..]);
    p.extend_from_slice(&cid);
    p.extend_from_slice(&[0x5a; 24]);
    p
}

/// The default layout: 8-byte ids, the real's id in bytes 1-2.
fn cid_for(id: u32) -> Vec<u8> {
    short_header(8, 1, 2, id)
}

/// A long-header (Initial) payload whose client-chosen id happens to
/// name real 22 where a short header's would.
fn long_header() -> Vec<u8> {
    long(0xc0, 1, &cid_for(22)[1..9])
}

/// A long-header payload: `first` byte, `version`, the id `cid` with its
/// length, then 30 bytes.
fn long(first: u8, version: u32, cid: &[u8]) -> Vec<u8> {
    let mut p = vec![first];
    p.extend_from_slice(&version.to_be_bytes());
    p.push(cid.len() as u8);
    p.extend_from_slice(cid);
    p.extend_from_slice(&[0; 30]);
    p
}

/// A QUIC v1 Handshake whose server-chosen id (of `len` bytes) names
/// `id` in bytes 1-2.
fn handshake(len: usize, id: u32) -> Vec<u8> {
    long(0xe0, 1, &short_header(len, 1, 2, id)[1..=len])
}

fn udp(src: &str, sport: u16, dst: &str, payload: &[u8]) -> Packet {
    Packet::udp(ip(src), sport, ip(dst), PORT).with_payload(payload)
}

/// Where the ring sends `p`'s flow.
fn ring_real(lb: &TestBalancer, vip_id: u32, p: &Packet, reals: &[(u32, &str)]) -> IpAddr {
    let sport = match p.l4 {
        lb_tests::packet::L4::Udp { sport, .. } => sport,
        _ => unreachable!("UDP"),
    };
    let flow = FlowKey::new(p.src, sport, p.dst, PORT, PROTO_UDP);
    let id = predict(&lb.dp.ring(vip_id).unwrap(), &flow);
    ip(reals.iter().find(|(i, _)| *i == id).expect("a ring real").1)
}

/// The outer destination of an encapsulated frame, 802.1Q tag or not.
fn dst_of(frame: &[u8]) -> Option<IpAddr> {
    if frame.len() > 18 && frame[12..14] == [0x81, 0x00] {
        let mut untagged = frame[..12].to_vec();
        untagged.extend_from_slice(&frame[16..]);
        return outer_dst(&untagged);
    }
    outer_dst(frame)
}

fn delta(after: &Stats, before: &Stats, c: Counter) -> u64 {
    after.get(c) - before.get(c)
}

#[test]
fn quic_vips_route_short_headers_by_connection_id_and_fall_back_otherwise() {
    if !require_root("quic_vips_route_short_headers_by_connection_id_and_fall_back_otherwise") {
        return;
    }
    use Counter::*;
    let mut lb = balancer();
    // The ring was built with all four (states change later, as when
    // lb-ctl has not rewritten it yet).
    let ring = [
        (21, "198.51.100.121"),
        (22, "198.51.100.122"),
        (23, "198.51.100.123"),
        (24, "198.51.100.124"),
        (26, "2001:db8:200::26"),
    ];
    // (what, packet, expected real: Some(address) or None = the ring's,
    // counters that move by one, counters that must not move)
    let c = "198.51.100.7";
    let c6 = "2001:db8:c::7";
    let cases: Vec<(&str, Packet, Option<&str>, Vec<Counter>)> = vec![
        (
            "short header naming real 22",
            udp(c, 50_000, QUIC4, &cid_for(22)),
            Some("198.51.100.122"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "the same id from another port (NAT rebinding): still real 22",
            udp(c, 50_001, QUIC4, &cid_for(22)),
            Some("198.51.100.122"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "the same id from another address (migration): still real 22",
            udp("198.51.100.8", 40_000, QUIC4, &cid_for(22)),
            Some("198.51.100.122"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "802.1Q-tagged short header naming real 21",
            udp(c, 50_002, QUIC4, &cid_for(21)).with_vlan(5),
            Some("198.51.100.121"),
            vec![ConnMiss, QuicRouted, Vlan],
        ),
        (
            "a draining real keeps its connections",
            udp(c, 50_003, QUIC4, &cid_for(23)),
            Some("198.51.100.123"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "long header (Initial): the client's id is not ours",
            udp(c, 50_004, QUIC4, &long_header()),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "a v1 Handshake: the server chose that id, real 22",
            udp(c, 50_020, QUIC4, &handshake(8, 22)),
            Some("198.51.100.122"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "a v1 Handshake with a 20-byte id (its length is in the header)",
            udp(c, 50_021, QUIC4, &handshake(20, 21)),
            Some("198.51.100.121"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "a Handshake whose id is too short for the real's id",
            udp(c, 50_022, QUIC4, &long(0xe0, 1, &[0x01, 0x00])),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "a Handshake claiming a 21-byte id",
            udp(c, 50_023, QUIC4, &long(0xe0, 1, &[0x01; 21])),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "a Handshake cut inside its id",
            udp(c, 50_024, QUIC4, &handshake(8, 22)[..10]),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "another QUIC version's long header (v2): not read",
            udp(
                c,
                50_025,
                QUIC4,
                &long(0xe0, 0x6b33_43cf, &cid_for(22)[1..9]),
            ),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "a 0-RTT long header: the client's id",
            udp(c, 50_026, QUIC4, &long(0xd0, 1, &cid_for(22)[1..9])),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "a down real: unknown, the ring",
            udp(c, 50_005, QUIC4, &cid_for(24)),
            None,
            vec![ConnMiss, QuicUnknownId],
        ),
        (
            "another VIP's real: unknown, the ring",
            udp(c, 50_006, QUIC4, &cid_for(25)),
            None,
            vec![ConnMiss, QuicUnknownId],
        ),
        (
            "id 0 (no real)",
            udp(c, 50_007, QUIC4, &cid_for(0)),
            None,
            vec![ConnMiss, QuicUnknownId],
        ),
        (
            "an id past every slot in use",
            udp(c, 50_008, QUIC4, &cid_for(0xfff0)),
            None,
            vec![ConnMiss, QuicUnknownId],
        ),
        (
            "payload one byte short of the id",
            udp(c, 50_009, QUIC4, &cid_for(22)[..8]),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "payload exactly first byte + id",
            udp(c, 50_010, QUIC4, &cid_for(22)[..9]),
            Some("198.51.100.122"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "an empty datagram",
            udp(c, 50_011, QUIC4, &[]),
            None,
            vec![ConnMiss, QuicFallback],
        ),
        (
            "QUIC over IPv6 naming real 26",
            udp(c6, 50_012, QUIC6, &cid_for(26)),
            Some("2001:db8:200::26"),
            vec![ConnMiss, QuicRouted],
        ),
        (
            "a plain UDP VIP does not read the id",
            udp(c, 50_013, PLAIN4, &cid_for(22)),
            Some("198.51.100.125"),
            vec![ConnMiss],
        ),
        (
            "the Initial's flow again: a connection-table hit, no id read",
            udp(c, 50_004, QUIC4, &cid_for(21)),
            None,
            vec![ConnHit],
        ),
    ];
    let quic_counters = [QuicRouted, QuicFallback, QuicUnknownId];
    for (what, p, want, moved) in cases {
        let want = want.map_or_else(
            || {
                let vip_id = if p.dst == ip(QUIC4) { 0 } else { 2 };
                ring_real(&lb, vip_id, &p, &ring)
            },
            ip,
        );
        let before = lb.dp.stats().unwrap();
        let r = lb.run(&p.bytes());
        let after = lb.dp.stats().unwrap();
        assert_eq!(r.verdict, XDP_TX, "{what}");
        assert_eq!(dst_of(&r.output), Some(want), "{what}");
        for c in moved.iter().chain(&quic_counters) {
            let want = u64::from(moved.contains(c));
            assert_eq!(delta(&after, &before, *c), want, "{what}: {}", c.name());
        }
    }
}

/// Every layout lb-ctl accepts (ids of 1 to 4 bytes at every offset of
/// ids of 1 to 20 bytes) routes; layouts it refuses fall back.
#[test]
fn every_connection_id_layout_routes_and_bad_layouts_fall_back() {
    if !require_root("every_connection_id_layout_routes_and_bad_layouts_fall_back") {
        return;
    }
    let mut lb = balancer();
    let mut cfg = test_config();
    let mut sport = 1_000u16;
    let mut routed = 0;
    for cid_len in 1..=20usize {
        for id_len in 1..=4usize.min(cid_len) {
            for offset in 0..=cid_len - id_len {
                cfg.quic_cid_len = cid_len as u8;
                cfg.quic_id_offset = offset as u8;
                cfg.quic_id_len = id_len as u8;
                lb.dp.set_config(&cfg).unwrap();
                sport += 1;
                let p = udp(
                    "198.51.100.9",
                    sport,
                    QUIC4,
                    &short_header(cid_len, offset, id_len, 22),
                );
                let r = lb.run(&p.bytes());
                assert_eq!(
                    outer_dst(&r.output),
                    Some(ip("198.51.100.122")),
                    "id of {id_len} bytes at {offset} of {cid_len}"
                );
                routed += 1;
            }
        }
    }
    assert_eq!(routed, 724, "layouts tried");
    // Layouts lb-ctl refuses, written raw: never routed, always sent.
    for (cid_len, offset, id_len) in [(0, 0, 1), (21, 1, 2), (8, 1, 0), (8, 1, 5), (8, 7, 2)] {
        cfg.quic_cid_len = cid_len;
        cfg.quic_id_offset = offset;
        cfg.quic_id_len = id_len;
        lb.dp.set_config(&cfg).unwrap();
        sport += 1;
        let before = lb.dp.stats().unwrap().get(Counter::QuicFallback);
        let p = udp(
            "198.51.100.9",
            sport,
            QUIC4,
            &short_header(21.min(usize::from(cid_len).max(8)), 0, 4, 22),
        );
        let r = lb.run(&p.bytes());
        assert_eq!(r.verdict, XDP_TX, "layout {cid_len}/{offset}/{id_len}");
        assert_eq!(
            lb.dp.stats().unwrap().get(Counter::QuicFallback),
            before + 1,
            "layout {cid_len}/{offset}/{id_len} falls back"
        );
    }
}
