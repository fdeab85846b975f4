//! The balancer's packet fixtures, in the style of Katran's: a table of
//! {description, input packet, expected verdict, expected output packet,
//! counter}, run through the real program with BPF_PROG_TEST_RUN and
//! compared byte for byte; then every counter is checked against the table.
use std::net::IpAddr;

use lb_common::{
    PROTO_TCP, PROTO_UDP,
    config::DEFAULT_GUE_PORT,
    encap::gue_source_port,
    hash::outer_hash,
    maps::{FlowKey, VIP_F_QUIC},
    stats::{Counter, Stats},
};
use lb_tests::{
    balancer::{
        LB_SRC_V4, LB_SRC_V6, ROUTER_MAC, TEST_MTU, TestBalancer, XDP_DROP, XDP_PASS, XDP_TX, ip,
        test_real as real,
    },
    packet::{
        ETH_P_ARP, L4, LB_MAC, Packet, TCP_ACK, TCP_PSH, TCP_SYN, echo_reply, encapsulated,
        eth_header, gue_encapsulated, too_big_reply,
    },
    require_root,
};

const CLIENT4: &str = "198.51.100.7";
const CLIENT6: &str = "2001:db8:c::7";
const VIP4: &str = "203.0.113.10";
const VIP4_PORTLESS: &str = "203.0.113.20";
const VIP4_TO_V6: &str = "203.0.113.30";
const VIP4_EMPTY: &str = "203.0.113.40";
const VIP6: &str = "2001:db8:100::10";
const VIP6_TO_V4: &str = "2001:db8:100::20";
const NOT_VIP4: &str = "203.0.113.99";
const NOT_VIP6: &str = "2001:db8:100::99";
const REAL1: &str = "198.51.100.101";
const REAL2: &str = "198.51.100.102";
const REAL3: &str = "2001:db8:200::1";
const REAL4: &str = "2001:db8:200::2";
const RING: u32 = 13;
/// VIPs whose reals take GUE, one per family pair (outer, inner).
const VIP4_GUE: &str = "203.0.113.50";
const VIP6_GUE: &str = "2001:db8:100::50";
const VIP4_GUE_TO_V6: &str = "203.0.113.51";
const VIP6_GUE_TO_V4: &str = "2001:db8:100::51";
const REAL5_GUE: &str = "198.51.100.105";
const REAL6_GUE: &str = "2001:db8:200::6";
/// A QUIC VIP (UDP 443) with two reals, ids 7 and 8.
const VIP4_QUIC: &str = "203.0.113.52";
const REAL7: &str = "198.51.100.107";
const REAL8: &str = "198.51.100.108";

/// What the balancer should do with a packet.
enum Expect {
    /// Passed untouched.
    Pass,
    /// Dropped.
    Drop,
    /// Sent out as these bytes.
    Tx(Vec<u8>),
}

struct Case {
    what: &'static str,
    input: Vec<u8>,
    expect: Expect,
    /// The counters (besides the verdict's) this packet adds one to.
    counters: &'static [Counter],
}

/// The balancer with the fixture VIPs.
fn balancer() -> TestBalancer {
    let mut lb = TestBalancer::new(4096);
    lb.add_vip(VIP4, 80, PROTO_TCP, &[real(1, REAL1)], RING);
    lb.add_vip(VIP4, 53, PROTO_UDP, &[real(2, REAL2)], RING);
    lb.add_vip(VIP6, 443, PROTO_TCP, &[real(3, REAL3)], RING);
    lb.add_vip(VIP6, 53, PROTO_UDP, &[real(3, REAL3)], RING);
    lb.add_vip(VIP4_PORTLESS, 0, PROTO_TCP, &[real(1, REAL1)], RING);
    lb.add_vip(VIP4_TO_V6, 80, PROTO_TCP, &[real(4, REAL4)], RING);
    lb.add_vip(VIP4_EMPTY, 80, PROTO_TCP, &[], RING);
    lb.add_vip(VIP6_TO_V4, 80, PROTO_TCP, &[real(1, REAL1)], RING);
    lb.add_vip(VIP4_GUE, 80, PROTO_TCP, &[real(5, REAL5_GUE)], RING);
    lb.add_vip(VIP6_GUE, 80, PROTO_UDP, &[real(6, REAL6_GUE)], RING);
    lb.add_vip(VIP4_GUE_TO_V6, 80, PROTO_TCP, &[real(6, REAL6_GUE)], RING);
    lb.add_vip(VIP6_GUE_TO_V4, 80, PROTO_TCP, &[real(5, REAL5_GUE)], RING);
    lb.set_gue(5);
    lb.set_gue(6);
    lb.add_vip_with_flags(
        VIP4_QUIC,
        443,
        PROTO_UDP,
        &[real(7, REAL7), real(8, REAL8)],
        RING,
        VIP_F_QUIC,
    );
    lb
}

/// A QUIC short header whose 8-byte connection id names real `id`
/// (default layout: bytes 1-2), then `rest` bytes of payload.
fn quic_short(id: u16, rest: usize) -> Vec<u8> {
    let id = id.to_be_bytes();
    let mut p = vec![0x41, 0x9c, id[0], id[1], 1, 2, 3, 4, 5];
    p.resize(9 + rest, 0x77);
    p
}

/// Toward `real` (an address): the real, the balancer's outer source of
/// its family, and the outer hash of `p`'s flow.
fn outer(p: &Packet, real: &str) -> (IpAddr, IpAddr, u32) {
    let real = ip(real);
    let src = if real.is_ipv4() {
        ip(LB_SRC_V4)
    } else {
        ip(LB_SRC_V6)
    };
    let (sport, dport) = match p.l4 {
        L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } => (sport, dport),
        _ => panic!("not TCP/UDP"),
    };
    let proto = if matches!(p.l4, L4::Tcp { .. }) {
        PROTO_TCP
    } else {
        PROTO_UDP
    };
    let hash = outer_hash(&FlowKey::new(p.src, sport, p.dst, dport, proto));
    (real, src, hash)
}

/// `p` encapsulated toward `real`, as the balancer must send it.
fn encap(p: &Packet, real: &str) -> Vec<u8> {
    let (real, src, hash) = outer(p, real);
    encapsulated(p, real, src, ROUTER_MAC, LB_MAC, hash & 0xf_ffff)
}

/// `p` in GUE toward `real`, as the balancer must send it: UDP from the
/// flow's source port (`gue_source_port` of its outer hash) to the
/// configured port, checksum 0.
fn gue(p: &Packet, real: &str) -> Vec<u8> {
    let (real, src, hash) = outer(p, real);
    gue_encapsulated(
        p,
        real,
        src,
        (ROUTER_MAC, LB_MAC),
        hash & 0xf_ffff,
        (gue_source_port(hash), DEFAULT_GUE_PORT),
    )
}

fn tcp(src: &str, dst: &str, dport: u16, flags: u8) -> Packet {
    Packet::tcp(ip(src), 40_000, ip(dst), dport, flags)
}

fn udp(src: &str, dst: &str, dport: u16) -> Packet {
    Packet::udp(ip(src), 40_001, ip(dst), dport)
}

fn cut(p: &Packet, len: usize) -> Vec<u8> {
    p.bytes()[..len].to_vec()
}

fn cases() -> Vec<Case> {
    use Counter::*;
    use Expect::*;
    let mut v = Vec::new();
    let mut add = |what, input: Vec<u8>, expect, counters| {
        v.push(Case {
            what,
            input,
            expect,
            counters,
        })
    };

    // Balanced traffic.
    let p = tcp(CLIENT4, VIP4, 80, TCP_SYN);
    add(
        "v4 TCP SYN to a VIP: IPv4-in-IPv4 to its real",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT4, VIP4, 80, TCP_ACK | TCP_PSH);
    add(
        "v4 TCP non-SYN of the same flow: connection table hit",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnHit],
    );
    let p = Packet::tcp(ip(CLIENT4), 40_100, ip(VIP4), 80, TCP_ACK);
    add(
        "v4 TCP non-SYN of a new flow: hashed (mid-flow after a failover)",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnMiss],
    );
    let p = udp(CLIENT4, VIP4, 53);
    add(
        "v4 UDP to a VIP",
        p.bytes(),
        Tx(encap(&p, REAL2)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT6, VIP6, 443, TCP_SYN);
    add(
        "v6 TCP SYN to a VIP: IPv6-in-IPv6",
        p.bytes(),
        Tx(encap(&p, REAL3)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT6, VIP6, 443, TCP_ACK);
    add(
        "v6 TCP non-SYN of the same flow",
        p.bytes(),
        Tx(encap(&p, REAL3)),
        &[ConnHit],
    );
    let p = udp(CLIENT6, VIP6, 53);
    add(
        "v6 UDP to a VIP",
        p.bytes(),
        Tx(encap(&p, REAL3)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT4, VIP4_PORTLESS, 8080, TCP_SYN);
    add(
        "v4 TCP to a port-less VIP, any port",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT4, VIP4_TO_V6, 80, TCP_SYN);
    add(
        "v4 TCP to a VIP with an IPv6 real: IPv4-in-IPv6",
        p.bytes(),
        Tx(encap(&p, REAL4)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT4, VIP4, 80, TCP_SYN).with_vlan(42);
    add(
        "802.1Q-tagged v4 TCP: the tag is kept",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnHit],
    );
    let p = Packet::tcp(ip(CLIENT6), 40_200, ip(VIP6), 443, TCP_SYN).with_vlan(7);
    add(
        "802.1Q-tagged v6 TCP",
        p.bytes(),
        Tx(encap(&p, REAL3)),
        &[ConnMiss],
    );
    let p = Packet::tcp(ip(CLIENT4), 40_300, ip(VIP4), 80, TCP_SYN).with_tos(0xb8);
    add(
        "TOS is copied to the outer header",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnMiss],
    );
    let p = Packet::tcp(ip(CLIENT4), 40_400, ip(VIP4), 80, TCP_ACK).with_payload(&[0x55; 1440]);
    add(
        "v4 packet exactly at the MTU once encapsulated",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnMiss],
    );

    // Not for a VIP: passed untouched.
    add(
        "v4 TCP to a non-VIP address",
        tcp(CLIENT4, NOT_VIP4, 80, TCP_SYN).bytes(),
        Pass,
        &[PassNotVip],
    );
    add(
        "v6 TCP to a non-VIP address",
        tcp(CLIENT6, NOT_VIP6, 443, TCP_SYN).bytes(),
        Pass,
        &[PassNotVip],
    );
    add(
        "VIP address, port no VIP serves",
        tcp(CLIENT4, VIP4, 8080, TCP_SYN).bytes(),
        Pass,
        &[PassNotVip],
    );
    add(
        "VIP address, protocol the port-less VIP does not serve",
        udp(CLIENT4, VIP4_PORTLESS, 53).bytes(),
        Pass,
        &[PassNotVip],
    );
    add(
        "a real's reply from the VIP to a client (should bypass the LB)",
        Packet::tcp(ip(VIP4), 80, ip(CLIENT4), 40_000, TCP_SYN | TCP_ACK).bytes(),
        Pass,
        &[PassFromVip],
    );
    let mut arp = eth_header([0xff; 6], [2, 0, 0, 0, 0, 1], None, ETH_P_ARP);
    arp.extend_from_slice(&[0u8; 28]);
    add("ARP", arp, Pass, &[PassNotIp]);
    let p = tcp(CLIENT4, VIP4, 80, TCP_SYN);
    // (BPF_PROG_TEST_RUN refuses frames shorter than an Ethernet header.)
    add(
        "Ethernet header and nothing more",
        cut(&p, 14),
        Pass,
        &[PassTruncated],
    );
    add(
        "cut inside the 802.1Q tag",
        cut(&p.clone().with_vlan(3), 16),
        Pass,
        &[PassTruncated],
    );
    add(
        "cut inside the IPv4 header",
        cut(&p, 14 + 12),
        Pass,
        &[PassTruncated],
    );
    add(
        "cut inside the IPv6 header",
        cut(&tcp(CLIENT6, VIP6, 443, TCP_SYN), 14 + 30),
        Pass,
        &[PassTruncated],
    );
    add(
        "IPv4 with options to a non-VIP",
        tcp(CLIENT4, NOT_VIP4, 80, TCP_SYN)
            .with_ipv4_options(&[1, 1, 1, 0])
            .bytes(),
        Pass,
        &[PassNotVip],
    );
    add(
        "ICMP to a non-VIP",
        Packet::icmp(ip(CLIENT4), ip(NOT_VIP4), 8, 0).bytes(),
        Pass,
        &[PassNotVip],
    );
    add(
        "v4 fragment to a non-VIP",
        tcp(CLIENT4, NOT_VIP4, 80, TCP_ACK)
            .with_frag(0x2000)
            .bytes(),
        Pass,
        &[PassNotVip],
    );

    // For a VIP, but not balanceable: dropped with a reason.
    add(
        "v4 cut inside the TCP ports",
        cut(&p, 14 + 20 + 2),
        Drop,
        &[DropTruncated],
    );
    add(
        "v6 cut inside the UDP ports",
        cut(&udp(CLIENT6, VIP6, 53), 14 + 40 + 3),
        Drop,
        &[DropTruncated],
    );
    add(
        "v4 cut after the ports (IP length longer than the frame)",
        cut(&p, 14 + 20 + 10),
        Drop,
        &[DropTruncated],
    );
    add(
        "IPv4 with options to a VIP",
        tcp(CLIENT4, VIP4, 80, TCP_SYN)
            .with_ipv4_options(&[1, 1, 1, 0])
            .bytes(),
        Drop,
        &[DropIpv4Options],
    );
    add(
        "v4 first fragment (MF) to a VIP",
        tcp(CLIENT4, VIP4, 80, TCP_ACK).with_frag(0x2000).bytes(),
        Drop,
        &[DropFragment],
    );
    add(
        "v4 later fragment (offset) to a VIP",
        Packet::raw(ip(CLIENT4), ip(VIP4), 6)
            .with_frag(0x00b9)
            .bytes(),
        Drop,
        &[DropFragment],
    );
    add(
        "v6 fragment header to a VIP",
        tcp(CLIENT6, VIP6, 443, TCP_ACK).with_frag(0x0001).bytes(),
        Drop,
        &[DropFragment],
    );
    add(
        "GRE to a VIP address",
        Packet::raw(ip(CLIENT4), ip(VIP4), 47).bytes(),
        Drop,
        &[DropUnknownProto],
    );
    add(
        "ICMP destination unreachable to a VIP",
        Packet::icmp(ip(CLIENT4), ip(VIP4), 3, 1).bytes(),
        Drop,
        &[DropIcmp],
    );
    add(
        "VIP with no reals",
        tcp(CLIENT4, VIP4_EMPTY, 80, TCP_SYN).bytes(),
        Drop,
        &[DropNoReal],
    );
    let p = tcp(CLIENT6, VIP6_TO_V4, 80, TCP_SYN);
    add(
        "v6 TCP SYN to a VIP with an IPv4 real: IPv6-in-IPv4",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT6, VIP6_TO_V4, 80, TCP_ACK).with_tos(0xb8);
    add(
        "v6 TCP non-SYN of the same flow, traffic class 0xb8: the outer TOS",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnHit],
    );
    let p = tcp(CLIENT6, VIP6_TO_V4, 80, TCP_ACK).with_vlan(9);
    add(
        "802.1Q-tagged v6 to an IPv4 real: the tag is kept",
        p.bytes(),
        Tx(encap(&p, REAL1)),
        &[ConnHit],
    );
    let big = Packet::tcp(ip(CLIENT4), 40_500, ip(VIP4), 80, TCP_ACK).with_payload(&[0x66; 1441]);
    add(
        "v4 over the MTU without DF",
        big.bytes(),
        Drop,
        &[ConnMiss, DropMtu],
    );

    // ICMP "too big" about a real's reply (it left from the VIP, so the
    // router's error comes here): sent on to the real that owns the flow,
    // whole, inside the tunnel; no connection is created for it.
    let reply = Packet::tcp(ip(VIP4), 80, ip(CLIENT4), 40_000, TCP_ACK).with_payload(&[0x11; 64]);
    let too_big =
        Packet::icmp(ip("192.0.2.1"), ip(VIP4), 3, 4).with_payload(&reply.ip_bytes()[..28]);
    add(
        "ICMP fragmentation needed about a reply: to the flow's real",
        too_big.bytes(),
        Tx(encapsulated(
            &too_big,
            ip(REAL1),
            ip(LB_SRC_V4),
            ROUTER_MAC,
            LB_MAC,
            0,
        )),
        &[IcmpTooBigForwarded],
    );
    let reply = Packet::udp(ip(VIP4), 53, ip(CLIENT4), 40_001);
    let too_big =
        Packet::icmp(ip("192.0.2.1"), ip(VIP4), 3, 4).with_payload(&reply.ip_bytes()[..28]);
    add(
        "... about a UDP reply",
        too_big.bytes(),
        Tx(encapsulated(
            &too_big,
            ip(REAL2),
            ip(LB_SRC_V4),
            ROUTER_MAC,
            LB_MAC,
            0,
        )),
        &[IcmpTooBigForwarded],
    );
    let reply6 = Packet::tcp(ip(VIP6), 443, ip(CLIENT6), 40_000, TCP_ACK).with_payload(&[0x22; 64]);
    let too_big6 =
        Packet::icmp(ip("2001:db8:ffff::1"), ip(VIP6), 2, 0).with_payload(&reply6.ip_bytes()[..48]);
    let label = outer_hash(&FlowKey::new(ip(CLIENT6), 40_000, ip(VIP6), 443, PROTO_TCP)) & 0xf_ffff;
    add(
        "ICMPv6 packet too big about a reply: to the flow's real",
        too_big6.bytes(),
        Tx(encapsulated(
            &too_big6,
            ip(REAL3),
            ip(LB_SRC_V6),
            ROUTER_MAC,
            LB_MAC,
            label,
        )),
        &[IcmpTooBigForwarded],
    );
    let forged = Packet::tcp(ip(NOT_VIP4), 80, ip(CLIENT4), 40_000, TCP_ACK);
    let too_big =
        Packet::icmp(ip("192.0.2.1"), ip(VIP4), 3, 4).with_payload(&forged.ip_bytes()[..28]);
    add(
        "... quoting a packet not sent from the VIP: dropped",
        too_big.bytes(),
        Drop,
        &[DropIcmp],
    );
    let odd = Packet::tcp(ip(VIP4), 8080, ip(CLIENT4), 40_000, TCP_ACK);
    let too_big = Packet::icmp(ip("192.0.2.1"), ip(VIP4), 3, 4).with_payload(&odd.ip_bytes()[..28]);
    add(
        "... about a port no VIP serves: dropped",
        too_big.bytes(),
        Drop,
        &[DropIcmp],
    );
    let cut = Packet::icmp(ip("192.0.2.1"), ip(VIP4), 3, 4).with_payload(&reply.ip_bytes()[..22]);
    add(
        "... with the quote cut before the ports: dropped",
        cut.bytes(),
        Drop,
        &[DropIcmp],
    );

    // Answered by the balancer itself.
    let ping = Packet::icmp(ip(CLIENT4), ip(VIP4), 8, 0);
    add(
        "ICMP echo request to a VIP: echo reply",
        ping.bytes(),
        Tx(echo_reply(&ping)),
        &[IcmpEchoReply],
    );
    let ping6 = Packet::icmp(ip(CLIENT6), ip(VIP6), 128, 0);
    add(
        "ICMPv6 echo request to a VIP: echo reply",
        ping6.bytes(),
        Tx(echo_reply(&ping6)),
        &[IcmpEchoReply],
    );
    let mut big_df =
        Packet::tcp(ip(CLIENT4), 40_600, ip(VIP4), 80, TCP_ACK).with_payload(&[0x77; 1441]);
    big_df.frag = 0x4000;
    let mtu4 = u32::from(TEST_MTU) - 20;
    add(
        "v4 over the MTU with DF: ICMP fragmentation needed",
        big_df.bytes(),
        Tx(too_big_reply(&big_df, mtu4)),
        &[ConnMiss, DropMtu, IcmpTooBigSent],
    );
    let big6 = Packet::tcp(ip(CLIENT6), 40_700, ip(VIP6), 443, TCP_ACK).with_payload(&[0x88; 1401]);
    let mtu6 = u32::from(TEST_MTU) - 40;
    add(
        "v6 over the MTU: ICMPv6 packet too big",
        big6.bytes(),
        Tx(too_big_reply(&big6, mtu6)),
        &[ConnMiss, DropMtu, IcmpTooBigSent],
    );
    let mut big_4in6 =
        Packet::tcp(ip(CLIENT4), 40_800, ip(VIP4_TO_V6), 80, TCP_ACK).with_payload(&[0x99; 1421]);
    big_4in6.frag = 0x4000;
    add(
        "v4 to an IPv6 real over the MTU: the too-big carries mtu - 40 (IPv4-in-IPv6)",
        big_4in6.bytes(),
        Tx(too_big_reply(&big_4in6, u32::from(TEST_MTU) - 40)),
        &[ConnMiss, DropMtu, IcmpTooBigSent],
    );

    let fits_6in4 =
        Packet::tcp(ip(CLIENT6), 40_900, ip(VIP6_TO_V4), 80, TCP_ACK).with_payload(&[0x5a; 1420]);
    add(
        "v6 to an IPv4 real, exactly the MTU once encapsulated (1480 + 20)",
        fits_6in4.bytes(),
        Tx(encap(&fits_6in4, REAL1)),
        &[ConnMiss],
    );
    let big_6in4 =
        Packet::tcp(ip(CLIENT6), 40_901, ip(VIP6_TO_V4), 80, TCP_ACK).with_payload(&[0x5b; 1421]);
    add(
        "v6 to an IPv4 real, a byte over: the too-big carries mtu - 20 (IPv6-in-IPv4)",
        big_6in4.bytes(),
        Tx(too_big_reply(&big_6in4, u32::from(TEST_MTU) - 20)),
        &[ConnMiss, DropMtu, IcmpTooBigSent],
    );

    // GUE: a UDP header between the outer IP header and the client's
    // packet, in every family pair; the MTU check counts its 8 bytes.
    let p = tcp(CLIENT4, VIP4_GUE, 80, TCP_SYN);
    add(
        "v4 TCP SYN to a GUE real: GUE over IPv4",
        p.bytes(),
        Tx(gue(&p, REAL5_GUE)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT4, VIP4_GUE, 80, TCP_ACK).with_vlan(21);
    add(
        "802.1Q-tagged v4 TCP of the same GUE flow: a hit, the tag kept",
        p.bytes(),
        Tx(gue(&p, REAL5_GUE)),
        &[ConnHit],
    );
    let p = udp(CLIENT6, VIP6_GUE, 80).with_tos(0x28);
    add(
        "v6 UDP to a GUE real: GUE over IPv6, traffic class kept",
        p.bytes(),
        Tx(gue(&p, REAL6_GUE)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT4, VIP4_GUE_TO_V6, 80, TCP_SYN);
    add(
        "v4 TCP to an IPv6 GUE real: GUE over IPv6 carrying IPv4",
        p.bytes(),
        Tx(gue(&p, REAL6_GUE)),
        &[ConnMiss],
    );
    let p = tcp(CLIENT6, VIP6_GUE_TO_V4, 80, TCP_SYN);
    add(
        "v6 TCP to an IPv4 GUE real: GUE over IPv4 carrying IPv6",
        p.bytes(),
        Tx(gue(&p, REAL5_GUE)),
        &[ConnMiss],
    );
    let fits_gue =
        Packet::tcp(ip(CLIENT4), 41_000, ip(VIP4_GUE), 80, TCP_ACK).with_payload(&[0x3c; 1432]);
    add(
        "v4 to a GUE real, exactly the MTU once encapsulated (1472 + 28)",
        fits_gue.bytes(),
        Tx(gue(&fits_gue, REAL5_GUE)),
        &[ConnMiss],
    );
    let mut big_gue =
        Packet::tcp(ip(CLIENT4), 41_001, ip(VIP4_GUE), 80, TCP_ACK).with_payload(&[0x3d; 1433]);
    big_gue.frag = 0x4000;
    add(
        "v4 with DF to a GUE real, a byte over: the too-big carries mtu - 28",
        big_gue.bytes(),
        Tx(too_big_reply(&big_gue, u32::from(TEST_MTU) - 28)),
        &[ConnMiss, DropMtu, IcmpTooBigSent],
    );
    let big_gue6 = Packet::udp(ip(CLIENT6), 41_002, ip(VIP6_GUE), 80).with_payload(&[0x3e; 1405]);
    add(
        "v6 to an IPv6 GUE real, a byte over: the too-big carries mtu - 48",
        big_gue6.bytes(),
        Tx(too_big_reply(&big_gue6, u32::from(TEST_MTU) - 48)),
        &[ConnMiss, DropMtu, IcmpTooBigSent],
    );

    // QUIC: the connection id names the real, whatever the client's port.
    for (what, sport, id, real) in [
        ("QUIC short header naming real 8", 44_000, 8, REAL8),
        (
            "the same connection from another port: real 8",
            44_001,
            8,
            REAL8,
        ),
        ("QUIC short header naming real 7", 44_002, 7, REAL7),
        (
            "an id of exactly the header's length naming real 7",
            44_003,
            7,
            REAL7,
        ),
    ] {
        let rest = if sport == 44_003 { 0 } else { 30 };
        let p =
            Packet::udp(ip(CLIENT4), sport, ip(VIP4_QUIC), 443).with_payload(&quic_short(id, rest));
        add(
            what,
            p.bytes(),
            Tx(encap(&p, real)),
            &[ConnMiss, QuicRouted],
        );
    }
    let p = Packet::udp(ip(CLIENT6), 44_004, ip(VIP6), 53).with_payload(&quic_short(3, 30));
    add(
        "a connection id to a VIP that is not QUIC: not read",
        p.bytes(),
        Tx(encap(&p, REAL3)),
        &[ConnMiss],
    );

    // Length fields that lie (the parser trusts none of them).
    let syn = tcp(CLIENT4, VIP4, 80, TCP_SYN).bytes();
    let set16 = |b: &[u8], at: usize, v: u16| {
        let mut b = b.to_vec();
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        b
    };
    add(
        "v4 total length 10, below the header",
        set16(&syn, 14 + 2, 10),
        Drop,
        &[DropMalformed],
    );
    let mut ihl4 = syn.clone();
    ihl4[14] = 0x44;
    add("v4 header length 16 bytes", ihl4, Drop, &[DropMalformed]);
    add(
        "v4 total length 24: the TCP header lies past it (padding holds the rest)",
        set16(&syn, 14 + 2, 24),
        Drop,
        &[DropTruncated],
    );
    add(
        "the same to an address that is no VIP: not ours, passed",
        set16(&tcp(CLIENT4, NOT_VIP4, 80, TCP_SYN).bytes(), 14 + 2, 10),
        Pass,
        &[PassNotVip],
    );
    let syn6 = tcp(CLIENT6, VIP6, 443, TCP_SYN).bytes();
    add(
        "v6 payload length 0xfffe (wraps when 40 is added in 16 bits)",
        set16(&syn6, 14 + 4, 0xfffe),
        Drop,
        &[DropTruncated],
    );
    add(
        "v6 payload length 4: the TCP header lies past it",
        set16(&syn6, 14 + 4, 4),
        Drop,
        &[DropTruncated],
    );

    // Echo requests that must not be answered.
    for (what, src) in [
        ("echo request from a multicast source", "224.0.0.5"),
        ("echo request from the broadcast address", "255.255.255.255"),
        ("echo request from 0.0.0.0", "0.0.0.0"),
    ] {
        add(
            what,
            Packet::icmp(ip(src), ip(VIP4), 8, 0).bytes(),
            Drop,
            &[DropEchoSource],
        );
    }
    add(
        "ICMPv6 echo request from a multicast source",
        Packet::icmp(ip("ff02::1"), ip(VIP6), 128, 0).bytes(),
        Drop,
        &[DropEchoSource],
    );
    let mut bad_sum = Packet::icmp(ip(CLIENT4), ip(VIP4), 8, 0).bytes();
    bad_sum[14 + 20 + 2] ^= 0x5a;
    add(
        "echo request with a wrong ICMP checksum",
        bad_sum,
        Drop,
        &[DropEchoChecksum],
    );
    let mut bad_sum6 = Packet::icmp(ip(CLIENT6), ip(VIP6), 128, 0).bytes();
    bad_sum6[14 + 40 + 2] ^= 0x5a;
    add(
        "ICMPv6 echo request with a wrong checksum",
        bad_sum6,
        Drop,
        &[DropEchoChecksum],
    );
    let ping_bytes = Packet::icmp(ip(CLIENT4), ip(VIP4), 8, 0).bytes();
    let long = (ping_bytes.len() - 14 + 8) as u16;
    add(
        "echo request whose IP length exceeds the frame",
        set16(&ping_bytes, 14 + 2, long),
        Drop,
        &[DropTruncated],
    );
    v
}

fn hex(b: &[u8]) -> String {
    b.chunks(16)
        .map(|c| {
            c.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fixtures() {
    if !require_root("fixtures") {
        return;
    }
    let mut lb = balancer();
    let cases = cases();
    assert!(
        cases.len() >= 30,
        "at least 30 fixtures, have {}",
        cases.len()
    );
    let mut expected = Stats::default();
    let mut failures = Vec::new();
    for case in &cases {
        let out = lb.run(&case.input);
        let (verdict, bytes, verdict_counter) = match &case.expect {
            Expect::Pass => (XDP_PASS, case.input.clone(), Counter::XdpPass),
            Expect::Drop => (XDP_DROP, case.input.clone(), Counter::XdpDrop),
            Expect::Tx(b) => (XDP_TX, b.clone(), Counter::XdpTx),
        };
        for &c in case.counters {
            bump(&mut expected, c);
        }
        bump(&mut expected, verdict_counter);
        if out.verdict != verdict {
            failures.push(format!(
                "{}: verdict {} (expected {verdict})",
                case.what, out.verdict
            ));
        } else if verdict != XDP_DROP && out.output != bytes {
            failures.push(format!(
                "{}: output differs\n--- got ({} bytes)\n{}\n--- expected ({} bytes)\n{}",
                case.what,
                out.output.len(),
                hex(&out.output),
                bytes.len(),
                hex(&bytes)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );

    // Every counter equals what the table says, one for one.
    let stats = lb.dp.stats().expect("stats");
    for &c in Counter::ALL {
        if c == Counter::Vlan {
            continue;
        }
        assert_eq!(stats.get(c), expected.get(c), "counter {}", c.name());
    }
    assert_eq!(stats.get(Counter::Vlan), 4, "four complete tagged fixtures");
    // Per-VIP and per-real traffic: VIP 0 (VIP4:80) got its six TX
    // fixtures and the ICMP error about one of its replies.
    let vip0 = lb.dp.vip_traffic(0).expect("vip stats");
    let real1 = lb.dp.real_traffic(1).expect("real stats");
    assert_eq!(vip0.packets, 7, "VIP4:80 forwarded packets");
    // Real 1 also serves the IPv6 VIP of IPv6-in-IPv4: its four
    // forwarded fixtures (the one over the MTU is answered, not sent).
    assert_eq!(
        real1.packets, 12,
        "real 1 (VIP4:80, port-less VIP, IPv6-in-IPv4) packets"
    );
    assert!(vip0.bytes > 1500, "bytes are counted");
}

fn bump(s: &mut Stats, c: Counter) {
    // Stats is Counter::COUNT u64s in counter order.
    let words: &mut [u64; Counter::COUNT] = unsafe { &mut *(s as *mut Stats).cast() };
    words[c as usize] += 1;
}

#[test]
fn reflect_mode_sends_back_to_the_sender_mac() {
    if !require_root("reflect_mode_sends_back_to_the_sender_mac") {
        return;
    }
    let mut lb = balancer();
    let mut cfg = lb.dp.config().unwrap();
    cfg.mac_mode = lb_common::config::MAC_MODE_REFLECT;
    lb.dp.set_config(&cfg).unwrap();
    let p = tcp(CLIENT4, VIP4, 80, TCP_SYN);
    let out = lb.run(&p.bytes());
    assert_eq!(out.verdict, XDP_TX);
    let label = 0; // IPv4 outer: no flow label.
    let want = encapsulated(&p, ip(REAL1), ip(LB_SRC_V4), p.eth_src, p.eth_dst, label);
    assert_eq!(out.output, want);
}

#[test]
fn icmp_answers_follow_the_config_flags() {
    if !require_root("icmp_answers_follow_the_config_flags") {
        return;
    }
    let mut lb = balancer();
    let mut cfg = lb.dp.config().unwrap();
    cfg.flags = 0;
    lb.dp.set_config(&cfg).unwrap();
    let ping = Packet::icmp(ip(CLIENT4), ip(VIP4), 8, 0);
    assert_eq!(
        lb.run(&ping.bytes()).verdict,
        XDP_DROP,
        "no echo reply when off"
    );
    let mut big_df =
        Packet::tcp(ip(CLIENT4), 40_600, ip(VIP4), 80, TCP_ACK).with_payload(&[0x77; 1441]);
    big_df.frag = 0x4000;
    assert_eq!(
        lb.run(&big_df.bytes()).verdict,
        XDP_DROP,
        "no too-big when off"
    );
    let stats = lb.dp.stats().unwrap();
    assert_eq!(stats.drop_icmp, 1);
    assert_eq!(stats.drop_mtu, 1);
    assert_eq!(stats.icmp_too_big_sent, 0);
}

#[test]
fn a_vip_whose_ring_is_removed_drops_with_no_real() {
    if !require_root("a_vip_whose_ring_is_removed_drops_with_no_real") {
        return;
    }
    let mut lb = balancer();
    let established = tcp(CLIENT4, VIP4, 80, TCP_SYN);
    assert_eq!(lb.run(&established.bytes()).verdict, XDP_TX);
    lb.dp.remove_ring(0).expect("remove ring");
    assert!(lb.dp.ring(0).is_err(), "ring forgotten");
    let p = Packet::tcp(ip(CLIENT4), 41_000, ip(VIP4), 80, TCP_SYN);
    assert_eq!(lb.run(&p.bytes()).verdict, XDP_DROP);
    assert_eq!(lb.dp.stats().unwrap().drop_no_real, 1);
    // Its established flow still has its connection and real.
    assert_eq!(lb.run(&established.bytes()).verdict, XDP_TX);
    // Removing the VIP too: its traffic, established flows included, is
    // passed untouched again (the connection died with the VIP).
    lb.dp
        .remove_vip(&lb_common::maps::VipKey::new(ip(VIP4), 80, PROTO_TCP))
        .unwrap();
    assert_eq!(lb.run(&p.bytes()).verdict, XDP_PASS);
    assert_eq!(lb.run(&established.bytes()).verdict, XDP_PASS);
}
