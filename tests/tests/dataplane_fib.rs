//! FIB mode: the balancer asks the kernel's routing and neighbour tables
//! for the next hop toward each real. Run in a namespace with a real route
//! and neighbour entries, through BPF_PROG_TEST_RUN with the packet arriving
//! on that namespace's interface.
use lb_common::{PROTO_TCP, config::MAC_MODE_FIB};
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

#[test]
fn fib_mode_takes_next_hop_macs_from_the_kernel() {
    if !require_root("fib_mode_takes_next_hop_macs_from_the_kernel") {
        return;
    }
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

    lb_ns.run(|| {
        // FIB mode looks up routes as a router does: forwarding on.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .expect("enable forwarding in the namespace");
        let ifindex = ifindex(&lb_if);
        let mut lb = TestBalancer::new(1024);
        let mut cfg = lb.dp.config().unwrap();
        cfg.mac_mode = MAC_MODE_FIB;
        lb.dp.set_config(&cfg).unwrap();
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
