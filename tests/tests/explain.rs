//! `lb-ctl explain` against the kernel: for thousands of flows, what
//! `explain` reads from the pinned maps (verdict, counter, real, outer
//! addresses, MTU outcome) is what the program does with the flow's packet
//! under BPF_PROG_TEST_RUN; again after reals change, with flows in the
//! connection table (hits, and rehashes of flows whose real went down).
use std::{net::SocketAddr, path::PathBuf};

use lb_common::{
    PROTO_TCP, PROTO_UDP,
    maps::{REAL_STATE_DOWN, Real},
    stats::Counter,
};
use lb_ctl::{
    dataplane::LoadOptions,
    explain::{FlowQuery, explain, pinned::PinnedMaps},
    vocab::Proto,
};
use lb_tests::{
    balancer::{Rng, TestBalancer, TestReal, XDP_DROP, XDP_PASS, XDP_TX, ip, outer_dst, outer_src},
    netns::unique_tag,
    packet::Packet,
    require_root,
};

/// The pin directory, removed on drop.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn reals(first_id: u32, addrs: &[&str]) -> Vec<TestReal> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| TestReal {
            id: first_id + i as u32,
            addr: ip(a),
            weight: 1,
        })
        .collect()
}

/// One flow of the test: where it goes, and its IP packet's payload.
#[derive(Clone, Copy, Debug)]
struct Flow {
    proto: Proto,
    src: SocketAddr,
    dst: SocketAddr,
    payload: usize,
}

impl Flow {
    fn packet(&self) -> Packet {
        let p = match self.proto {
            Proto::Tcp => Packet::tcp(
                self.src.ip(),
                self.src.port(),
                self.dst.ip(),
                self.dst.port(),
                0x10,
            ),
            Proto::Udp => Packet::udp(
                self.src.ip(),
                self.src.port(),
                self.dst.ip(),
                self.dst.port(),
            ),
        };
        p.with_payload(&vec![0x5a; self.payload])
    }
}

fn flows(n: usize) -> Vec<Flow> {
    let mut rng = Rng::new(0x5eed);
    // (destination, protocol, family of the clients)
    let targets: [(&str, u16, Proto, bool); 8] = [
        ("203.0.113.10", 80, Proto::Tcp, false),   // 5 IPv4 reals
        ("203.0.113.20", 5353, Proto::Udp, false), // port-less, IPv6 reals
        ("2001:db8:f::10", 443, Proto::Tcp, true), // 4 IPv6 reals
        ("2001:db8:f::11", 53, Proto::Udp, true),  // an IPv4 real: dropped
        ("203.0.113.10", 81, Proto::Tcp, false),   // a VIP address, no such port
        ("203.0.113.99", 80, Proto::Tcp, false),   // not a VIP
        ("203.0.113.30", 80, Proto::Tcp, false),   // a VIP with an empty ring
        ("203.0.113.10", 80, Proto::Udp, false),   // the address, not the protocol
    ];
    (0..n)
        .map(|_| {
            let r = rng.next_u64();
            let (dst, port, proto, v6) = targets[(r % targets.len() as u64) as usize];
            let (src, sport) = rng.client(v6);
            // One packet in 16 is big: past the MTU once encapsulated.
            let payload = if (r >> 8).is_multiple_of(16) {
                1460
            } else {
                (r >> 16) as usize % 200
            };
            Flow {
                proto,
                src: SocketAddr::new(src, sport),
                dst: SocketAddr::new(ip(dst), port),
                payload,
            }
        })
        .collect()
}

/// Runs every flow once; checks explain against the kernel for each.
/// Returns how many of each reason explain gave.
fn check_round(
    lb: &mut TestBalancer,
    maps: &PinnedMaps,
    flows: &[Flow],
) -> std::collections::BTreeMap<String, usize> {
    let mut reasons = std::collections::BTreeMap::new();
    for (i, f) in flows.iter().enumerate() {
        let packet = f.packet();
        let ip_len = packet.ip_bytes().len() as u16;
        let e = explain(
            maps,
            &FlowQuery {
                proto: f.proto,
                src: f.src,
                dst: f.dst,
                size: Some(ip_len),
            },
        );
        *reasons.entry(e.reason.clone()).or_insert(0) += 1;
        let counted = Counter::ALL
            .iter()
            .copied()
            .find(|c| c.name() == e.reason)
            .unwrap_or_else(|| panic!("{} is not a counter", e.reason));
        // Counters are read around one packet in 10 (a syscall per CPU).
        let before = (i % 10 == 0).then(|| lb.dp.stats().unwrap().get(counted));
        let r = lb.run(&packet.bytes());
        if let Some(before) = before {
            let after = lb.dp.stats().unwrap().get(counted);
            assert_eq!(after, before + 1, "{f:?}: explain says {}", e.reason);
        }
        match e.verdict.as_str() {
            "forward" => {
                assert_eq!(r.verdict, XDP_TX, "{f:?}: {e:?}");
                let real = e.real.as_ref().unwrap();
                let encap = e.encap.as_ref().unwrap();
                assert_eq!(
                    outer_dst(&r.output).map(|a| a.to_string()),
                    Some(real.address.clone()),
                    "{f:?}: explain names another real: {e:?}"
                );
                assert_eq!(
                    outer_src(&r.output).map(|a| a.to_string()),
                    Some(encap.outer_src.clone()),
                    "{f:?}"
                );
                assert_eq!(
                    r.output.len() - packet.bytes().len(),
                    usize::from(encap.overhead),
                    "{f:?}: the overhead explain names"
                );
                // GUE: the UDP ports explain names are the ones sent.
                let outer_ip = if r.output[12..14] == [0x86, 0xdd] {
                    40
                } else {
                    20
                };
                let udp = &r.output[14 + outer_ip..];
                let sent = (encap.kind.starts_with("gue")).then(|| {
                    (
                        u16::from_be_bytes([udp[0], udp[1]]),
                        u16::from_be_bytes([udp[2], udp[3]]),
                    )
                });
                assert_eq!(sent, encap.udp_ports, "{f:?}: {e:?}");
            }
            "pass" => assert_eq!(r.verdict, XDP_PASS, "{f:?}: {e:?}"),
            "drop" if e.reason == "drop_mtu" => {
                // Dropped, or answered with ICMP too big (IPv4: with DF).
                assert!(r.verdict == XDP_DROP || r.verdict == XDP_TX, "{f:?}: {e:?}");
                if r.verdict == XDP_TX {
                    assert_eq!(
                        outer_dst(&r.output),
                        Some(f.src.ip()),
                        "the answer goes to the client"
                    );
                }
            }
            "drop" => assert_eq!(r.verdict, XDP_DROP, "{f:?}: {e:?}"),
            other => panic!("verdict {other}"),
        }
    }
    reasons
}

#[test]
fn explain_names_what_the_kernel_does_with_every_flow() {
    if !require_root("explain_names_what_the_kernel_does_with_every_flow") {
        return;
    }
    let pins = Pins(PathBuf::from(format!(
        "/sys/fs/bpf/lbt-explain-{}",
        unique_tag()
    )));
    let mut lb = TestBalancer::with_options(&LoadOptions {
        conn_table_size: 1 << 16,
        conn_table_size_v6: 1 << 16,
        pin_dir: Some(pins.0.clone()),
        ..LoadOptions::default()
    });
    let web = reals(
        1,
        &[
            "192.0.2.11",
            "192.0.2.12",
            "192.0.2.13",
            "192.0.2.14",
            "192.0.2.15",
        ],
    );
    let web_vip = lb.add_vip("203.0.113.10", 80, PROTO_TCP, &web, 251);
    lb.add_vip(
        "203.0.113.20",
        0,
        PROTO_UDP,
        &reals(6, &["2001:db8:a::21", "2001:db8:a::22", "2001:db8:a::23"]),
        251,
    );
    lb.add_vip(
        "2001:db8:f::10",
        443,
        PROTO_TCP,
        &reals(
            9,
            &[
                "2001:db8:a::31",
                "2001:db8:a::32",
                "2001:db8:a::33",
                "2001:db8:a::34",
            ],
        ),
        251,
    );
    lb.add_vip(
        "2001:db8:f::11",
        53,
        PROTO_UDP,
        &reals(13, &["192.0.2.41"]),
        251,
    );
    lb.add_vip("203.0.113.30", 80, PROTO_TCP, &[], 251);
    // The port-less UDP VIP's reals take GUE (over IPv6, IPv4 inside).
    for id in 6..=8 {
        lb.set_gue(id);
    }
    let maps = PinnedMaps::open(&pins.0).expect("the pinned maps");
    let flows = flows(3000);

    // Round 1: an empty connection table.
    let first = check_round(&mut lb, &maps, &flows);
    for reason in ["conn_miss", "pass_not_vip", "drop_no_real", "drop_mtu"] {
        assert!(
            first.get(reason).copied().unwrap_or(0) > 20,
            "{reason}: {first:?}"
        );
    }
    assert!(!first.contains_key("conn_hit"), "{first:?}");

    // Round 2: the same flows; TCP and UDP flows are in the table now.
    let second = check_round(&mut lb, &maps, &flows);
    assert!(
        second.get("conn_hit").copied().unwrap_or(0) > 500,
        "{second:?}"
    );

    // Real 3 goes down and real 1 gets more weight: flows on real 3 are
    // hashed again, the others keep their connection.
    lb.dp
        .set_real(3, &Real::new(ip("192.0.2.13"), REAL_STATE_DOWN, 1))
        .unwrap();
    let mut changed = web.clone();
    changed.retain(|r| r.id != 3);
    changed[0].weight = 3;
    lb.set_ring(web_vip, &changed, 251);
    let third = check_round(&mut lb, &maps, &flows);
    assert!(
        third.get("conn_rehash").copied().unwrap_or(0) > 20,
        "{third:?}"
    );
    assert!(
        third.get("conn_hit").copied().unwrap_or(0) > 500,
        "{third:?}"
    );
    drop(maps);
}
