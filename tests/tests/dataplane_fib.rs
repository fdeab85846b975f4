//! FIB mode: the balancer asks the kernel's routing and neighbour tables
//! for the next hop toward each real. Run in a namespace with a real route
//! and neighbour entries, through BPF_PROG_TEST_RUN with the packet arriving
//! on that namespace's interface.
use std::time::Duration;

use lb_common::{
    PROTO_TCP,
    config::MAC_MODE_FIB,
    maps::{REAL_STATE_UP, Real},
};
use lb_tests::{
    balancer::{LB_SRC_V4, TestBalancer, TestReal, XDP_DROP, XDP_PASS, XDP_TX, ifindex, ip},
    netns::{self, Netns},
    packet::{Packet, TCP_SYN, encapsulated},
    require_root,
};

const ROUTER_V4: &str = "192.0.2.1";
const ROUTER_MAC: &str = "02:00:00:00:aa:01";
const NEXT_HOP_NO_NEIGH: &str = "192.0.2.2";

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// The namespace of these tests: the balancer's interface with our
/// source address, reals in 198.51.100.0/25 via a router whose MAC is
/// known, reals in 198.51.100.128/25 via a next hop whose MAC is not (yet).
struct FibLab {
    lb_ns: Netns,
    _other: Netns,
    lb_if: String,
    lb_mac: [u8; 6],
}

fn fib_lab() -> FibLab {
    let lb_ns = Netns::new("fib");
    let other = Netns::new("fibpeer");
    let tag = netns::unique_tag();
    let (lb_if, peer_if) = (format!("f{tag}"), format!("g{tag}"));
    netns::veth(&lb_ns, &lb_if, &other, &peer_if);
    lb_ns.ip(&["addr", "add", &format!("{LB_SRC_V4}/24"), "dev", &lb_if]);
    // Reals in 198.51.100.0/25 via a router whose MAC is known; reals in
    // 198.51.100.128/25 via a next hop whose MAC is not (yet).
    lb_ns.ip(&[
        "route",
        "add",
        "198.51.100.0/25",
        "via",
        ROUTER_V4,
        "dev",
        &lb_if,
    ]);
    lb_ns.ip(&[
        "route",
        "add",
        "198.51.100.128/25",
        "via",
        NEXT_HOP_NO_NEIGH,
        "dev",
        &lb_if,
    ]);
    lb_ns.ip(&[
        "neigh",
        "add",
        ROUTER_V4,
        "lladdr",
        ROUTER_MAC,
        "dev",
        &lb_if,
        "nud",
        "permanent",
    ]);
    let lb_mac = {
        let out = String::from_utf8(lb_ns.ip(&["-br", "link", "show", &lb_if]).stdout).unwrap();
        mac(out.split_whitespace().nth(2).expect("MAC in ip -br link"))
    };
    FibLab {
        lb_ns,
        _other: other,
        lb_if,
        lb_mac,
    }
}

/// A balancer in FIB mode, in the lab's namespace with forwarding on
/// (FIB mode looks up routes as a router does).
fn fib_balancer() -> TestBalancer {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .expect("enable forwarding in the namespace");
    let mut lb = TestBalancer::new(1024);
    let mut cfg = lb.dp.config().unwrap();
    cfg.mac_mode = MAC_MODE_FIB;
    lb.dp.set_config(&cfg).unwrap();
    lb
}

#[test]
fn fib_mode_takes_next_hop_macs_from_the_kernel() {
    if !require_root("fib_mode_takes_next_hop_macs_from_the_kernel") {
        return;
    }
    let lab = fib_lab();
    let lb_mac = lab.lb_mac;
    lab.lb_ns.run(|| {
        let ifindex = ifindex(&lab.lb_if);
        let mut lb = fib_balancer();
        let real = |id, a: &str| TestReal {
            id,
            addr: ip(a),
            weight: 1,
        };
        lb.add_vip(
            "203.0.113.10",
            80,
            PROTO_TCP,
            &[real(1, "198.51.100.10")],
            13,
        );
        lb.add_vip(
            "203.0.113.11",
            80,
            PROTO_TCP,
            &[real(2, "198.51.100.200")],
            13,
        );
        lb.add_vip(
            "203.0.113.12",
            80,
            PROTO_TCP,
            &[real(3, "203.0.113.77")],
            13,
        );

        // Route and neighbour known: the router's MAC, from our MAC, XDP_TX.
        let p = Packet::tcp(ip("198.51.100.7"), 40_000, ip("203.0.113.10"), 80, TCP_SYN);
        let out = lb.run_from(&p.bytes(), Some(ifindex));
        assert_eq!(out.verdict, XDP_TX);
        let want = encapsulated(
            &p,
            ip("198.51.100.10"),
            ip(LB_SRC_V4),
            mac(ROUTER_MAC),
            lb_mac,
            0,
        );
        assert_eq!(out.output, want, "MACs from the FIB");

        // Route but no neighbour: the encapsulated packet goes to the stack,
        // still addressed to us at layer 2, so the kernel forwards it and
        // resolves the next hop.
        let p = Packet::tcp(ip("198.51.100.7"), 40_001, ip("203.0.113.11"), 80, TCP_SYN);
        let out = lb.run_from(&p.bytes(), Some(ifindex));
        assert_eq!(out.verdict, XDP_PASS);
        let want = encapsulated(
            &p,
            ip("198.51.100.200"),
            ip(LB_SRC_V4),
            p.eth_dst,
            p.eth_src,
            0,
        );
        assert_eq!(out.output, want);

        // No route to the real: dropped.
        let p = Packet::tcp(ip("198.51.100.7"), 40_002, ip("203.0.113.12"), 80, TCP_SYN);
        assert_eq!(lb.run_from(&p.bytes(), Some(ifindex)).verdict, XDP_DROP);

        let stats = lb.dp.stats().unwrap();
        assert_eq!(stats.xdp_tx, 1);
        assert_eq!(stats.pass_fib_no_neighbour, 1);
        assert_eq!(stats.drop_fib, 1);
    });
}

/// A next hop the FIB gave is kept per CPU and real slot for 100 ms: a
/// neighbour change shows after that, not on the next packet; a missing
/// neighbour is not kept (the next packet asks again); a slot given to
/// another real (a new generation) is asked about at once; a packet longer
/// than the egress MTU the lookup reported asks again.
#[test]
fn fib_next_hops_are_kept_for_a_while_and_misses_are_not() {
    if !require_root("fib_next_hops_are_kept_for_a_while_and_misses_are_not") {
        return;
    }
    const NEW_ROUTER_MAC: &str = "02:00:00:00:aa:02";
    const NEXT_HOP_MAC: &str = "02:00:00:00:aa:03";
    let lab = fib_lab();
    let neigh = |verb: &str, addr: &str, lladdr: &str| {
        lab.lb_ns.ip(&[
            "neigh",
            verb,
            addr,
            "lladdr",
            lladdr,
            "dev",
            &lab.lb_if,
            "nud",
            "permanent",
        ]);
    };
    lab.lb_ns.run(|| {
        // The kept next hops are per CPU: every packet from one.
        lb_tests::pin_to_cpu(0);
        let ifindex = ifindex(&lab.lb_if);
        let mut lb = fib_balancer();
        let one = |id, a: &str| {
            [TestReal {
                id,
                addr: ip(a),
                weight: 1,
            }]
        };
        let vip_a = lb.add_vip("203.0.113.10", 80, PROTO_TCP, &one(1, "198.51.100.10"), 13);
        lb.add_vip("203.0.113.11", 80, PROTO_TCP, &one(2, "198.51.100.200"), 13);
        let send = |lb: &mut TestBalancer, vip: &str| {
            let p = Packet::tcp(ip("198.51.100.7"), 40_000, ip(vip), 80, TCP_SYN);
            let out = lb.run_from(&p.bytes(), Some(ifindex));
            let dst_mac: [u8; 6] = out.output[..6].try_into().unwrap();
            (out.verdict, dst_mac)
        };
        // The router's MAC changes under a kept next hop: the next packet
        // still gets the old one, if it comes within the 100 ms (the
        // change is an `ip` command; under load it can take longer, so up
        // to 10 tries, alternating the MAC, until one is quick enough)...
        let macs = [ROUTER_MAC, NEW_ROUTER_MAC];
        let mut kept_seen = false;
        let mut current = 0;
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(150));
            let start = std::time::Instant::now();
            assert_eq!(send(&mut lb, "203.0.113.10"), (XDP_TX, mac(macs[current])));
            neigh("replace", ROUTER_V4, macs[1 - current]);
            let after = send(&mut lb, "203.0.113.10");
            current = 1 - current;
            if start.elapsed() < Duration::from_millis(80) {
                assert_eq!(
                    after,
                    (XDP_TX, mac(macs[1 - current])),
                    "the next hop is kept for a while"
                );
                kept_seen = true;
                break;
            }
        }
        assert!(kept_seen, "no try changed the neighbour within 80 ms");
        // ...until it expires (100 ms, and a tick of the coarse clock).
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(
            send(&mut lb, "203.0.113.10"),
            (XDP_TX, mac(macs[current])),
            "an expired next hop is looked up again"
        );

        // No neighbour: to the stack, and nothing kept, so the next packet
        // after the neighbour appears goes straight to it.
        assert_eq!(send(&mut lb, "203.0.113.11").0, XDP_PASS);
        neigh("add", NEXT_HOP_NO_NEIGH, NEXT_HOP_MAC);
        assert_eq!(
            send(&mut lb, "203.0.113.11"),
            (XDP_TX, mac(NEXT_HOP_MAC)),
            "a missing neighbour is not kept"
        );

        // Slot 1 given to another real (behind the other next hop), with
        // a new generation: asked about at once, not served from slot 1's
        // kept next hop.
        let moved = Real {
            vip_id: vip_a,
            ..Real::new(ip("198.51.100.129"), REAL_STATE_UP, 2)
        };
        lb.dp.set_real(1, &moved).unwrap();
        assert_eq!(
            send(&mut lb, "203.0.113.10"),
            (XDP_TX, mac(NEXT_HOP_MAC)),
            "a slot with a new generation is looked up again"
        );

        // The link's MTU falls to 1300 and the kept next hop expires: the
        // next lookup keeps 1300 as the longest packet it takes. A longer
        // packet is not served from the kept next hop but asks the FIB,
        // which refuses it (`drop_fib`); a short one is still served.
        lab.lb_ns
            .ip(&["link", "set", "dev", &lab.lb_if, "mtu", "1300"]);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(send(&mut lb, "203.0.113.10"), (XDP_TX, mac(NEXT_HOP_MAC)));
        let refused = lb.dp.stats().unwrap().drop_fib;
        let mut long = Packet::tcp(ip("198.51.100.7"), 40_000, ip("203.0.113.10"), 80, TCP_SYN);
        // 20 + 20 + 1300 inside, 1360 with the outer header: over 1300,
        // under the balancer's own MTU (1500).
        long.payload = vec![0; 1300];
        assert_eq!(
            lb.run_from(&long.bytes(), Some(ifindex)).verdict,
            XDP_DROP,
            "a packet longer than the kept next hop takes asks the FIB"
        );
        assert_eq!(lb.dp.stats().unwrap().drop_fib, refused + 1);
        assert_eq!(
            send(&mut lb, "203.0.113.10"),
            (XDP_TX, mac(NEXT_HOP_MAC)),
            "a short packet is still served"
        );
    });
}
