//! The backends' decapsulator, run in the kernel with BPF_PROG_TEST_RUN on
//! fixture packets: tunnels to a local address lose exactly their outer
//! header; everything else, including tunnels for other hosts, passes
//! byte for byte untouched; malformed tunnels to us are dropped.
use std::net::IpAddr;

use aya::programs::{TestRun as _, TestRunOptions};
use lb_common::decap::{DecapCounter, DecapStats};
use lb_ctl::decap::Decapsulator;
use lb_tests::{
    balancer::ip,
    packet::{
        ETH_P_ARP, ETH_P_IP, IPPROTO_IPIP, IPPROTO_IPV6, Packet, TCP_SYN, encapsulated, eth_header,
        gue_encapsulated, ipv4_header,
    },
    require_root,
};

const LOCAL4: &str = "198.51.100.101";
const LOCAL6: &str = "2001:db8:200::1";
const OTHER4: &str = "198.51.100.102";
const OTHER6: &str = "2001:db8:200::2";
const LB4: &str = "192.0.2.254";
const LB6: &str = "2001:db8:ffff::254";
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xfe];
const BACKEND_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x65];

fn client_v4() -> Packet {
    Packet::tcp(ip("198.51.100.7"), 40_000, ip("203.0.113.10"), 80, TCP_SYN)
}

fn client_v6() -> Packet {
    Packet::tcp(
        ip("2001:db8:c::7"),
        40_000,
        ip("2001:db8:100::10"),
        443,
        TCP_SYN,
    )
}

/// `inner` inside a tunnel from the LB to `real`, as the balancer sends it.
fn tunnel(inner: &Packet, real: &str) -> Vec<u8> {
    let real = ip(real);
    let src = if real.is_ipv4() { ip(LB4) } else { ip(LB6) };
    encapsulated(inner, real, src, BACKEND_MAC, ROUTER_MAC, 0x12345)
}

/// The GUE port the fixtures' decapsulator opens.
const GUE_PORT: u16 = 6080;

/// `inner` in GUE from the LB to `real` (UDP to `port`), as the balancer
/// sends it.
fn gue_tunnel(inner: &Packet, real: &str, port: u16) -> Vec<u8> {
    let real = ip(real);
    let src = if real.is_ipv4() { ip(LB4) } else { ip(LB6) };
    gue_encapsulated(
        inner,
        real,
        src,
        (BACKEND_MAC, ROUTER_MAC),
        0x12345,
        (50_000, port),
    )
}

/// `inner` as the stack must receive it: the tunnel's MACs, its own
/// ethertype, the client's packet byte for byte.
fn opened(inner: &Packet) -> Vec<u8> {
    let mut p = inner.clone();
    p.eth_dst = BACKEND_MAC;
    p.eth_src = ROUTER_MAC;
    p.bytes()
}

struct Case {
    what: &'static str,
    input: Vec<u8>,
    /// `None`: passed untouched; `Some(bytes)`: passed as these bytes.
    output: Option<Vec<u8>>,
    drop: bool,
    counter: DecapCounter,
}

fn cases() -> Vec<Case> {
    use DecapCounter::*;
    let mut v = Vec::new();
    let mut pass = |what, input: Vec<u8>, output, counter| {
        v.push(Case {
            what,
            input,
            output,
            drop: false,
            counter,
        })
    };
    pass(
        "IPv4-in-IPv4 to us",
        tunnel(&client_v4(), LOCAL4),
        Some(opened(&client_v4())),
        DecapIpip,
    );
    pass(
        "IPv6-in-IPv6 to us",
        tunnel(&client_v6(), LOCAL6),
        Some(opened(&client_v6())),
        DecapIp6ip6,
    );
    pass(
        "IPv4-in-IPv6 to us",
        tunnel(&client_v4(), LOCAL6),
        Some(opened(&client_v4())),
        DecapIpip6,
    );
    pass(
        "IPv6-in-IPv4 to us",
        tunnel(&client_v6(), LOCAL4),
        Some(opened(&client_v6())),
        DecapIp6ip,
    );
    let tagged6 = client_v6().with_vlan(13);
    pass(
        "802.1Q-tagged IPv6-in-IPv4 to us: the tag stays",
        tunnel(&tagged6, LOCAL4),
        Some(opened(&tagged6)),
        DecapIp6ip,
    );
    pass(
        "IPv6-in-IPv4 for another host",
        tunnel(&client_v6(), OTHER4),
        None,
        PassNotLocal,
    );
    // GUE (variant 1: the client's IP packet right after UDP).
    for (what, inner, local, counter) in [
        (
            "GUE over IPv4, IPv4 inside, to us",
            client_v4(),
            LOCAL4,
            DecapGue,
        ),
        (
            "GUE over IPv4, IPv6 inside, to us",
            client_v6(),
            LOCAL4,
            DecapGue,
        ),
        (
            "GUE over IPv6, IPv4 inside, to us",
            client_v4(),
            LOCAL6,
            DecapGue6,
        ),
        (
            "GUE over IPv6, IPv6 inside, to us",
            client_v6(),
            LOCAL6,
            DecapGue6,
        ),
        (
            "802.1Q-tagged GUE over IPv4 to us: the tag stays",
            client_v6().with_vlan(14),
            LOCAL4,
            DecapGue,
        ),
    ] {
        pass(
            what,
            gue_tunnel(&inner, local, GUE_PORT),
            Some(opened(&inner)),
            counter,
        );
    }
    pass(
        "GUE for another host",
        gue_tunnel(&client_v4(), OTHER4, GUE_PORT),
        None,
        PassNotLocal,
    );
    pass(
        "GUE over IPv6 for another host",
        gue_tunnel(&client_v6(), OTHER6, GUE_PORT),
        None,
        PassNotLocal,
    );
    pass(
        "UDP to us on another port: a service's, untouched",
        gue_tunnel(&client_v4(), LOCAL4, GUE_PORT + 1),
        None,
        PassNotTunnel,
    );
    pass(
        "plain UDP over IPv6 to us, another port",
        Packet::udp(ip("2001:db8:c::7"), 1, ip(LOCAL6), 53).bytes(),
        None,
        PassNotTunnel,
    );
    pass(
        "UDP to the GUE port cut inside its header",
        gue_tunnel(&client_v4(), LOCAL4, GUE_PORT)[..14 + 20 + 6].to_vec(),
        None,
        PassTruncated,
    );
    let tagged = client_v4().with_vlan(12);
    pass(
        "802.1Q-tagged IPv4-in-IPv4 to us: the tag stays",
        tunnel(&tagged, LOCAL4),
        Some(opened(&tagged)),
        DecapIpip,
    );
    pass(
        "IPv4-in-IPv4 for another host",
        tunnel(&client_v4(), OTHER4),
        None,
        PassNotLocal,
    );
    pass(
        "IPv6-in-IPv6 for another host",
        tunnel(&client_v6(), OTHER6),
        None,
        PassNotLocal,
    );
    pass(
        "plain TCP to us",
        Packet::tcp(ip("198.51.100.7"), 1, ip(LOCAL4), 22, TCP_SYN).bytes(),
        None,
        PassNotTunnel,
    );
    pass(
        "plain TCP over IPv6 to us",
        Packet::tcp(ip("2001:db8:c::7"), 1, ip(LOCAL6), 22, TCP_SYN).bytes(),
        None,
        PassNotTunnel,
    );
    let mut arp = eth_header([0xff; 6], ROUTER_MAC, None, ETH_P_ARP);
    arp.extend_from_slice(&[0; 28]);
    pass("ARP", arp, None, PassNotIp);
    pass(
        "Ethernet header only",
        tunnel(&client_v4(), LOCAL4)[..14].to_vec(),
        None,
        PassTruncated,
    );
    pass(
        "cut inside the outer IPv4 header",
        tunnel(&client_v4(), LOCAL4)[..14 + 12].to_vec(),
        None,
        PassTruncated,
    );
    let mut with_options =
        Packet::raw(ip(LB4), ip(LOCAL4), IPPROTO_IPIP).with_ipv4_options(&[1, 1, 1, 0]);
    with_options.payload = client_v4().ip_bytes();
    pass(
        "outer IPv4 with options: left to the stack",
        with_options.bytes(),
        None,
        PassNotTunnel,
    );

    let mut drop = |what, input: Vec<u8>, counter| {
        v.push(Case {
            what,
            input,
            output: None,
            drop: true,
            counter,
        })
    };
    drop(
        "tunnel to us with the inner header cut",
        tunnel(&client_v4(), LOCAL4)[..14 + 20 + 10].to_vec(),
        DropBadInner,
    );
    // Protocol 4 announces IPv4 inside, but an IPv6 packet follows.
    let mut liar = eth_header(BACKEND_MAC, ROUTER_MAC, None, ETH_P_IP);
    let inner6 = client_v6().ip_bytes();
    let IpAddr::V4(lb4) = ip(LB4) else {
        unreachable!()
    };
    let IpAddr::V4(local4) = ip(LOCAL4) else {
        unreachable!()
    };
    liar.extend_from_slice(&ipv4_header(
        lb4,
        local4,
        IPPROTO_IPIP,
        inner6.len(),
        64,
        0,
        &[],
    ));
    liar.extend_from_slice(&inner6);
    drop("protocol 4 with an IPv6 packet inside", liar, DropBadInner);
    // Protocol 41 announces IPv6 inside, but an IPv4 packet follows.
    let mut liar = eth_header(BACKEND_MAC, ROUTER_MAC, None, ETH_P_IP);
    let inner4 = client_v4().ip_bytes();
    liar.extend_from_slice(&ipv4_header(
        lb4,
        local4,
        IPPROTO_IPV6,
        inner4.len(),
        64,
        0,
        &[],
    ));
    liar.extend_from_slice(&inner4);
    drop("protocol 41 with an IPv4 packet inside", liar, DropBadInner);
    // A GUE header of variant 0 (first bits 00) where the IP packet should
    // be: lb never sends one, and it is neither IPv4 nor IPv6.
    let mut variant0 = gue_tunnel(&client_v4(), LOCAL4, GUE_PORT);
    variant0[14 + 20 + 8] = 0x00;
    drop(
        "GUE to us with a variant-0 header inside",
        variant0,
        DropBadInner,
    );
    drop(
        "GUE to us with the inner header cut",
        gue_tunnel(&client_v6(), LOCAL6, GUE_PORT)[..14 + 40 + 8 + 20].to_vec(),
        DropBadInner,
    );
    drop(
        "GUE to us with nothing after the UDP header",
        gue_tunnel(&client_v4(), LOCAL4, GUE_PORT)[..14 + 20 + 8].to_vec(),
        DropBadInner,
    );
    drop(
        "IPv6-in-IPv4 to us with the inner header cut",
        tunnel(&client_v6(), LOCAL4)[..14 + 20 + 30].to_vec(),
        DropBadInner,
    );
    v
}

#[test]
fn decap_fixtures() {
    if !require_root("decap_fixtures") {
        return;
    }
    let mut d = Decapsulator::load(None).expect("load the decapsulator");
    d.add_address(ip(LOCAL4)).unwrap();
    d.add_address(ip(LOCAL6)).unwrap();
    assert_eq!(d.addresses().len(), 2);
    assert_eq!(d.gue_port().unwrap(), 0, "GUE is off until a port is set");
    d.set_gue_port(GUE_PORT).unwrap();
    let mut expected = DecapStats::default();
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let mut out = vec![0u8; case.input.len() + 256];
        let r = d
            .program()
            .test_run(TestRunOptions {
                data_in: Some(&case.input),
                data_out: Some(&mut out),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        out.truncate(r.data_size_out as usize);
        let (verdict, verdict_counter) = if case.drop {
            (1, DecapCounter::XdpDrop)
        } else {
            (2, DecapCounter::XdpPass)
        };
        bump(&mut expected, case.counter);
        bump(&mut expected, verdict_counter);
        if r.return_value != verdict {
            failures.push(format!(
                "{}: verdict {} (expected {verdict})",
                case.what, r.return_value
            ));
            continue;
        }
        if !case.drop {
            let want = case.output.clone().unwrap_or_else(|| case.input.clone());
            if out != want {
                failures.push(format!(
                    "{}: output differs\n got {:02x?}\nwant {:02x?}",
                    case.what, out, want
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let stats = d.stats().unwrap();
    for &c in DecapCounter::ALL {
        assert_eq!(stats.get(c), expected.get(c), "counter {}", c.name());
    }
    // Removing an address stops opening its tunnels.
    d.remove_address(ip(LOCAL4)).unwrap();
    let input = tunnel(&client_v4(), LOCAL4);
    let mut out = vec![0u8; input.len() + 256];
    let r = d
        .program()
        .test_run(TestRunOptions {
            data_in: Some(&input),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        &out[..r.data_size_out as usize],
        &input[..],
        "left untouched"
    );
    assert_eq!(
        d.stats().unwrap().pass_not_local,
        expected.pass_not_local + 1
    );
    // With GUE off (port 0), a GUE packet to us is left to the stack.
    d.set_gue_port(0).unwrap();
    let input = gue_tunnel(&client_v4(), LOCAL6, GUE_PORT);
    let mut out = vec![0u8; input.len() + 256];
    let r = d
        .program()
        .test_run(TestRunOptions {
            data_in: Some(&input),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.return_value, 2, "passed");
    assert_eq!(&out[..r.data_size_out as usize], &input[..], "untouched");
    assert_eq!(
        d.stats().unwrap().pass_not_tunnel,
        expected.pass_not_tunnel + 1
    );
}

fn bump(s: &mut DecapStats, c: DecapCounter) {
    // DecapStats is DecapCounter::COUNT u64s in counter order.
    let words: &mut [u64; DecapCounter::COUNT] = unsafe { &mut *(s as *mut DecapStats).cast() };
    words[c as usize] += 1;
}
