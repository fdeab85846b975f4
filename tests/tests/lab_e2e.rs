//! End to end in the lab: clients reach the VIPs over TCP (HTTP) and UDP,
//! IPv4 and IPv6 (an IPv6 VIP with IPv4 reals too), through the router,
//! the LB hosts' XDP balancer and the backends' decapsulator; backends
//! answer clients directly.
use std::{collections::BTreeMap, net::IpAddr};

use lb_common::decap::DecapStats;
use lb_ctl::vocab::{Encapsulation, Proto, VipId};
use lb_tests::{
    lab::{
        HTTP_PORT, Lab, LabOptions, UDP_PORT, VIP4, VIP6,
        client::{HttpConn, http_get, udp_echo, udp_exchange},
        test_bins,
        topology::{Leaf, backend_by_name},
    },
    netns::unique_tag,
    require_root,
};

fn vip(addr: &str, port: u16, proto: Proto) -> VipId {
    VipId {
        addr: addr.parse().unwrap(),
        port,
        proto,
    }
}

fn lab(prefix: &str) -> Lab {
    Lab::up(LabOptions::new(
        &format!("lbt{prefix}{}", unique_tag()),
        test_bins(),
    ))
    .expect("lab up")
}

/// Sends `n` requests per client per VIP; checks every answer came from the
/// backend the answering site's ring predicts; returns answers per backend.
fn requests_follow_predictions(lab: &Lab, n: usize) -> BTreeMap<String, usize> {
    let mut per_backend = BTreeMap::new();
    let vips = [
        vip(VIP4, HTTP_PORT, Proto::Tcp),
        vip(VIP6, HTTP_PORT, Proto::Tcp),
        vip(VIP4, UDP_PORT, Proto::Udp),
        vip(VIP6, UDP_PORT, Proto::Udp),
    ];
    for client in ["c1", "c2"] {
        let ns = lab.ns(client);
        for v in &vips {
            for i in 0..n {
                let reply = match v.proto {
                    Proto::Tcp => http_get(&ns, v.addr, v.port),
                    Proto::Udp => udp_echo(&ns, v.addr, v.port),
                }
                .unwrap_or_else(|e| panic!("{client} -> {v} request {i}: {e:#}"));
                let backend = backend_by_name(&reply.backend)
                    .unwrap_or_else(|| panic!("unknown backend {}", reply.backend));
                let site = backend.site.expect("site");
                let predicted = lab.predict(site, v, reply.local);
                assert_eq!(
                    predicted,
                    Some(backend.name),
                    "{client} {} -> {v}: site {site} answered from {}",
                    reply.local,
                    backend.name
                );
                *per_backend.entry(reply.backend).or_insert(0) += 1;
            }
        }
    }
    per_backend
}

#[test]
fn clients_reach_vips_and_backends_answer_directly() {
    if !require_root("clients_reach_vips_and_backends_answer_directly") {
        return;
    }
    let lab = lab("e");
    const N: usize = 25;
    let per_backend = requests_follow_predictions(&lab, N);
    eprintln!("answers per backend: {per_backend:?}");
    let total: usize = per_backend.values().sum();
    assert_eq!(total, 2 * 4 * N, "every request answered");
    // Both sites and all four backends served (ECMP at the router, Maglev
    // at each site): with 200 flows, a backend missing would mean broken
    // spreading, not chance (each backend's share is about 1/4).
    for b in ["a1", "a2", "b1", "b2"] {
        assert!(
            per_backend.get(b).copied().unwrap_or(0) > 0,
            "backend {b} answered nothing: {per_backend:?}"
        );
    }

    // What the LB hosts forwarded is what the backends decapsulated, and
    // no reply went through an LB host: a packet from a VIP would count
    // as pass_from_vip there.
    let mut forwarded = 0;
    for site in ['A', 'B'] {
        let s = lab.lb_stats(site).unwrap();
        forwarded += s.xdp_tx;
        assert_eq!(s.xdp_drop, 0, "site {site} dropped nothing: {s:?}");
        assert_eq!(
            s.pass_from_vip, 0,
            "site {site} saw replies from a VIP: {s:?}"
        );
    }
    let mut decapsulated = 0;
    for b in ["a1", "a2", "b1", "b2"] {
        let d = lab.decap_stats(b).unwrap();
        decapsulated += d.decap_ipip + d.decap_ip6ip6;
    }
    assert_eq!(
        forwarded, decapsulated,
        "every forwarded packet reached a backend"
    );
    assert!(
        forwarded >= total as u64,
        "at least one packet per request went through an LB host"
    );
}

#[test]
fn long_lived_connections_survive_backend_changes() {
    if !require_root("long_lived_connections_survive_backend_changes") {
        return;
    }
    let mut lab = lab("k");
    // Site A only, so that every flow's site is known.
    lab.route_vips(&['A']).unwrap();
    let ns = lab.ns("c1");
    let vip4: IpAddr = VIP4.parse().unwrap();
    let mut conns: Vec<(HttpConn, String)> = (0..30)
        .map(|_| {
            let mut c = HttpConn::open(&ns, vip4, HTTP_PORT).expect("connect");
            let first = c.get().expect("first request");
            (c, first)
        })
        .collect();

    // A backend is added: the new ring moves some flows, but established
    // connections keep their backend (connection table).
    lab.set_backends('A', &["a1", "a2", "a3"]).unwrap();
    let v = vip(VIP4, HTTP_PORT, Proto::Tcp);
    let moved = conns
        .iter()
        .filter(|(c, b)| lab.predict('A', &v, c.local) != Some(b.as_str()))
        .count();
    assert!(moved > 0, "the new ring would move some of the 30 flows");
    for (c, first) in &mut conns {
        assert_eq!(
            &c.get().expect("request on a kept connection"),
            first,
            "kept connection stayed on its backend"
        );
    }
    // New connections use the new ring, a3 included.
    let mut seen = BTreeMap::new();
    for _ in 0..40 {
        let r = http_get(&ns, vip4, HTTP_PORT).expect("new connection");
        assert_eq!(lab.predict('A', &v, r.local), Some(r.backend.as_str()));
        *seen.entry(r.backend).or_insert(0) += 1;
    }
    assert!(
        seen.contains_key("a3"),
        "the added backend gets new connections: {seen:?}"
    );

    // A backend is removed: new connections avoid it.
    lab.set_backends('A', &["a2", "a3"]).unwrap();
    for _ in 0..40 {
        let r = http_get(&ns, vip4, HTTP_PORT).expect("new connection");
        assert_ne!(r.backend, "a1", "removed backend got a new connection");
    }
}

/// Gives site A's `vips` the reals a1 and a2 by the addresses `addr_of`
/// picks, reached by `encap`; sends 20 requests per client per VIP and
/// checks each answer came from the backend the ring predicts, both
/// backends served, and site A dropped nothing. Returns how many tunnels
/// the backends' decapsulators opened meanwhile, by `opened`.
fn served_through(
    lab: &mut Lab,
    vips: &[VipId],
    addr_of: fn(&Leaf) -> IpAddr,
    encap: Encapsulation,
    opened: fn(&DecapStats) -> u64,
) -> u64 {
    const BACKENDS: [&str; 2] = ["a1", "a2"];
    lab.route_vips(&['A']).unwrap();
    let addrs: Vec<IpAddr> = BACKENDS
        .iter()
        .map(|b| addr_of(backend_by_name(b).unwrap()))
        .collect();
    for v in vips {
        lab.set_reals('A', v, &addrs, encap).unwrap();
    }
    let count = |lab: &Lab| -> u64 {
        BACKENDS
            .iter()
            .map(|b| opened(&lab.decap_stats(b).unwrap()))
            .sum()
    };
    let before = count(lab);
    let mut per_backend = BTreeMap::new();
    for client in ["c1", "c2"] {
        let ns = lab.ns(client);
        for v in vips {
            for i in 0..20 {
                let reply = match v.proto {
                    Proto::Tcp => http_get(&ns, v.addr, v.port),
                    Proto::Udp => udp_echo(&ns, v.addr, v.port),
                }
                .unwrap_or_else(|e| panic!("{client} -> {v} request {i}: {e:#}"));
                assert_eq!(
                    lab.predict('A', v, reply.local),
                    Some(reply.backend.as_str()),
                    "{client} -> {v}: answered from {}",
                    reply.backend
                );
                *per_backend.entry(reply.backend).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        per_backend.keys().map(String::as_str).collect::<Vec<_>>(),
        BACKENDS,
        "both reals served: {per_backend:?}"
    );
    let s = lab.lb_stats('A').unwrap();
    assert_eq!(
        (s.drop_family, s.xdp_drop),
        (0, 0),
        "nothing dropped: {s:?}"
    );
    count(lab) - before
}

/// An IPv6 VIP whose reals are IPv4 addresses only (IPv6-in-IPv4): clients
/// reach it over UDP and HTTP, the backends' decapsulator opens the
/// tunnels, and every answer comes, directly, from the backend the ring
/// predicts.
#[test]
fn an_ipv6_vip_with_ipv4_only_reals_answers_through_ipv6_in_ipv4() {
    if !require_root("an_ipv6_vip_with_ipv4_only_reals_answers_through_ipv6_in_ipv4") {
        return;
    }
    let mut lab = lab("6");
    let vips = [
        vip(VIP6, UDP_PORT, Proto::Udp),
        vip(VIP6, HTTP_PORT, Proto::Tcp),
    ];
    let tunnels = served_through(&mut lab, &vips, Leaf::addr4, Encapsulation::Ipip, |d| {
        d.decap_ip6ip
    });
    // 40 datagrams and 40 connections (several packets each), all through
    // IPv6-in-IPv4 tunnels.
    assert!(tunnels >= 40 + 3 * 40, "{tunnels} tunnels opened");
}

/// VIPs whose reals take GUE (UDP to the backends' GUE port), IPv4 over
/// IPv4 and IPv6 over IPv6: every request through GUE, answered directly
/// by the predicted backend.
#[test]
fn vips_in_gue_answer_through_the_backends_gue_decapsulation() {
    if !require_root("vips_in_gue_answer_through_the_backends_gue_decapsulation") {
        return;
    }
    let mut lab = lab("u");
    let v4 = [
        vip(VIP4, UDP_PORT, Proto::Udp),
        vip(VIP4, HTTP_PORT, Proto::Tcp),
    ];
    let tunnels = served_through(&mut lab, &v4, Leaf::addr4, Encapsulation::Gue, |d| {
        d.decap_gue
    });
    assert!(tunnels >= 40 + 3 * 40, "{tunnels} GUE tunnels over IPv4");
    let v6 = [
        vip(VIP6, UDP_PORT, Proto::Udp),
        vip(VIP6, HTTP_PORT, Proto::Tcp),
    ];
    let tunnels = served_through(&mut lab, &v6, Leaf::addr6, Encapsulation::Gue, |d| {
        d.decap_gue6
    });
    assert!(tunnels >= 40 + 3 * 40, "{tunnels} GUE tunnels over IPv6");
}

/// A short-header QUIC datagram whose 8-byte destination connection id
/// carries `real_id` in bytes 1-2 (lb's default layout), as a server of
/// that real would have issued it.
fn quic_short_header(real_id: u32) -> Vec<u8> {
    let id = u16::try_from(real_id).expect("a 2-byte id").to_be_bytes();
    let mut p = vec![0x40, 0x01, id[0], id[1], 0x11, 0x22, 0x33, 0x44, 0x55];
    p.extend_from_slice(b"protected payload");
    p
}

/// A QUIC VIP: datagrams whose connection id names a backend reach that
/// backend from any client port (NAT rebinding), also from ports the ring
/// would send to the other one; an Initial (long header) goes where the
/// ring says.
#[test]
fn a_quic_connection_stays_on_its_backend_when_the_client_port_changes() {
    if !require_root("a_quic_connection_stays_on_its_backend_when_the_client_port_changes") {
        return;
    }
    let mut lab = lab("q");
    lab.route_vips(&['A']).unwrap();
    let v = vip(VIP4, UDP_PORT, Proto::Udp);
    lab.make_quic('A', &v).unwrap();
    let before = lab.lb_stats('A').unwrap();
    let ns = lab.ns("c1");
    let mut ring_elsewhere = 0;
    for (backend, ports) in [("a1", 41_000..41_010), ("a2", 42_000..42_010)] {
        let id = lab.real_id('A', &v, backend).expect("its real id");
        let payload = quic_short_header(id);
        for port in ports {
            let reply = udp_exchange(&ns, v.addr, v.port, port, &payload)
                .unwrap_or_else(|e| panic!("from port {port}: {e:#}"));
            assert_eq!(reply.backend, backend, "from port {port}: id {id}");
            if lab.predict('A', &v, reply.local) != Some(backend) {
                ring_elsewhere += 1;
            }
        }
    }
    assert!(
        ring_elsewhere > 0,
        "some of the 20 ports hash to the other backend: the id, not the ring, chose"
    );
    // An Initial: the client's own id; the ring decides.
    let mut initial = vec![0xc0, 0, 0, 0, 1, 8];
    initial.extend_from_slice(&quic_short_header(1)[1..9]);
    initial.extend_from_slice(&[0; 32]);
    for port in 43_000..43_005 {
        let reply = udp_exchange(&ns, v.addr, v.port, port, &initial).unwrap();
        assert_eq!(
            lab.predict('A', &v, reply.local),
            Some(reply.backend.as_str()),
            "an Initial from port {port} follows the ring"
        );
    }
    let after = lab.lb_stats('A').unwrap();
    assert!(
        after.quic_routed - before.quic_routed >= 20,
        "{} routed by id",
        after.quic_routed - before.quic_routed
    );
    assert!(after.quic_fallback - before.quic_fallback >= 5);
    assert_eq!(after.quic_unknown_id, before.quic_unknown_id);
}

#[test]
fn lab_down_removes_everything_after_a_crash() {
    if !require_root("lab_down_removes_everything_after_a_crash") {
        return;
    }
    let prefix = format!("lbtd{}", unique_tag());
    let mut opts = LabOptions::new(&prefix, test_bins());
    // As if the process that built the lab died: nothing is cleaned on drop.
    opts.keep = true;
    drop(Lab::up(opts).expect("lab up"));
    assert!(lb_tests::lab::is_up(&prefix));
    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/{prefix}"));
    assert!(pins.exists(), "balancers and decapsulators are pinned");

    lb_tests::lab::down(&prefix);
    let listed = String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(!listed.contains(&prefix), "namespaces left: {listed}");
    assert!(!pins.exists(), "pins left");
    // Running down again (nothing there) is harmless.
    lb_tests::lab::down(&prefix);
}

#[test]
fn path_mtu_discovery_works_for_replies_through_the_lb() {
    if !require_root("path_mtu_discovery_works_for_replies_through_the_lb") {
        return;
    }
    // The router's link toward c1 carries 1400 bytes, the client and the
    // backends 1500: a backend's full-size reply makes the router send
    // "fragmentation needed" to the reply's source, the VIP; that reaches
    // an LB host, which must pass it to the backend of the flow, or the
    // transfer stalls (Linux does not probe for black holes by default).
    let lab = lab("p");
    lab.route_vips(&['A']).unwrap();
    lb_tests::netns::ip(&["-n", &lab.ns("r"), "link", "set", "c1", "mtu", "1400"]);
    let vip4: IpAddr = VIP4.parse().unwrap();
    for _ in 0..4 {
        let mut c = HttpConn::open(&lab.ns("c1"), vip4, HTTP_PORT).unwrap();
        let body = c.get_path("/big").expect("a 16 kB answer arrives");
        assert_eq!(body.len(), 16_000);
    }
    let s = lab.lb_stats('A').unwrap();
    assert!(
        s.icmp_too_big_forwarded > 0,
        "the router's ICMP went through the LB host: {s:?}"
    );
}
