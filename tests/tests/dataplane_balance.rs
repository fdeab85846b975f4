//! How the balancer in the kernel spreads and pins flows: the kernel's
//! choice equals user space's prediction from the shared flow hash; flows
//! stay on their real when reals are added and move when it goes; shares
//! follow weights; past `max_conn_rate` new flows are sent but not
//! remembered.
use std::{
    collections::HashMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_common::{
    PROTO_TCP, PROTO_UDP,
    config::flow_source,
    hash::outer_hash,
    maps::{FlowKey, REAL_STATE_DOWN, REAL_STATE_UP, Real},
    stats::Counter,
};
use lb_tests::{
    balancer::{
        Rng, TestBalancer, TestReal, XDP_TX, ip, maglev_ring, outer_dst, outer_src, predict,
        test_config,
    },
    packet::{Packet, TCP_ACK, TCP_SYN},
    require_root,
};

const VIP: &str = "203.0.113.10";
const VIP6: &str = "2001:db8:100::10";
const M: u32 = 65_537;

fn reals(n: u32, weights: &[u32]) -> Vec<TestReal> {
    (0..n)
        .map(|i| TestReal {
            id: i + 1,
            addr: IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 100 + i as u8)),
            weight: weights.get(i as usize).copied().unwrap_or(1),
        })
        .collect()
}

fn reals6(n: u32, weights: &[u32]) -> Vec<TestReal> {
    (0..n)
        .map(|i| TestReal {
            id: i + 1,
            addr: IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x200,
                0,
                0,
                0,
                0,
                i as u16 + 1,
            )),
            weight: weights.get(i as usize).copied().unwrap_or(1),
        })
        .collect()
}

/// Sends one packet of the flow and returns the real it was sent to.
fn send(
    lb: &mut TestBalancer,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
    proto: u8,
    flags: u8,
) -> IpAddr {
    let p = if proto == PROTO_TCP {
        Packet::tcp(src, sport, dst, dport, flags)
    } else {
        Packet::udp(src, sport, dst, dport)
    };
    let out = lb.run(&p.bytes());
    assert_eq!(
        out.verdict, XDP_TX,
        "flow {src}:{sport} -> {dst}:{dport} was not forwarded"
    );
    outer_dst(&out.output).expect("an encapsulated frame")
}

#[test]
fn kernel_picks_the_real_user_space_predicts_for_10000_flows() {
    if !require_root("kernel_picks_the_real_user_space_predicts_for_10000_flows") {
        return;
    }
    let mut lb = TestBalancer::new(32_768);
    let rs = reals(7, &[1, 2, 1, 3, 1, 1, 2]);
    lb.add_vip(VIP, 80, PROTO_TCP, &rs, M);
    lb.add_vip(VIP, 53, PROTO_UDP, &rs, M);
    let ring = maglev_ring(&rs, M);
    assert_eq!(
        lb.dp.ring(0).unwrap(),
        ring,
        "the kernel's ring is what user space built"
    );
    let by_id: HashMap<u32, IpAddr> = rs.iter().map(|r| (r.id, r.addr)).collect();
    let mut rng = Rng::new(7);
    for i in 0..10_000 {
        let (src, sport) = rng.client(false);
        let (proto, dport) = if i % 2 == 0 {
            (PROTO_TCP, 80)
        } else {
            (PROTO_UDP, 53)
        };
        let predicted = by_id[&predict(&ring, &FlowKey::new(src, sport, ip(VIP), dport, proto))];
        let got = send(&mut lb, src, sport, ip(VIP), dport, proto, TCP_SYN);
        assert_eq!(got, predicted, "flow {i}: {src}:{sport} proto {proto}");
    }
}

#[test]
fn flows_stay_when_reals_are_added_and_move_when_their_real_goes() {
    if !require_root("flows_stay_when_reals_are_added_and_move_when_their_real_goes") {
        return;
    }
    let mut lb = TestBalancer::new(32_768);
    let first = reals(3, &[]);
    let vip_id = lb.add_vip(VIP, 80, PROTO_TCP, &first, M);
    let mut rng = Rng::new(11);
    let flows: Vec<(IpAddr, u16)> = (0..300).map(|_| rng.client(false)).collect();
    let placed: Vec<IpAddr> = flows
        .iter()
        .map(|&(s, p)| send(&mut lb, s, p, ip(VIP), 80, PROTO_TCP, TCP_SYN))
        .collect();

    // Add four reals: the new ring would move many flows, but established
    // ones stay where they are (connection table).
    let more = reals(7, &[]);
    for r in &more[3..] {
        lb.dp
            .set_real(r.id, &Real::new(r.addr, REAL_STATE_UP, 1))
            .unwrap();
    }
    let ring = lb.set_ring(vip_id, &more, M);
    let would_move = flows
        .iter()
        .zip(&placed)
        .filter(|&(&(s, p), &real)| {
            let id = predict(&ring, &FlowKey::new(s, p, ip(VIP), 80, PROTO_TCP));
            more[id as usize - 1].addr != real
        })
        .count();
    assert!(
        would_move > 100,
        "the new ring moves many flows ({would_move}), so stickiness is tested"
    );
    for (&(s, p), &real) in flows.iter().zip(&placed) {
        assert_eq!(
            send(&mut lb, s, p, ip(VIP), 80, PROTO_TCP, TCP_ACK),
            real,
            "flow {s}:{p} kept its real"
        );
    }

    // Mark real 1 down (ring rebuilt without it): its flows move, the
    // others stay.
    let down = first[0];
    lb.dp
        .set_real(down.id, &Real::new(down.addr, REAL_STATE_DOWN, 1))
        .unwrap();
    let without: Vec<TestReal> = more.iter().copied().filter(|r| r.id != down.id).collect();
    lb.set_ring(vip_id, &without, M);
    let mut moved = 0;
    for (&(s, p), &real) in flows.iter().zip(&placed) {
        let now = send(&mut lb, s, p, ip(VIP), 80, PROTO_TCP, TCP_ACK);
        if real == down.addr {
            assert_ne!(now, down.addr, "flow {s}:{p} left the down real");
            moved += 1;
        } else {
            assert_eq!(now, real, "flow {s}:{p} on a healthy real stayed");
        }
    }
    assert!(moved > 0, "some flows were on the real marked down");
    let stats = lb.dp.stats().unwrap();
    assert_eq!(
        stats.conn_rehash, moved,
        "each moved flow was hashed again once"
    );

    // Remove real 2 entirely and give its slot to a new real: a reused id
    // (new generation) does not inherit the old real's flows.
    let gone = first[1];
    let reused = TestReal {
        id: gone.id,
        addr: ip("198.51.100.200"),
        weight: 1,
    };
    lb.dp
        .set_real(gone.id, &Real::new(reused.addr, REAL_STATE_UP, 2))
        .unwrap();
    let after: Vec<TestReal> = without
        .iter()
        .copied()
        .filter(|r| r.id != gone.id)
        .collect();
    let ring = lb.set_ring(vip_id, &after, M);
    for (&(s, p), &real) in flows.iter().zip(&placed) {
        if real == gone.addr {
            let now = send(&mut lb, s, p, ip(VIP), 80, PROTO_TCP, TCP_ACK);
            let id = predict(&ring, &FlowKey::new(s, p, ip(VIP), 80, PROTO_TCP));
            assert_ne!(
                now, reused.addr,
                "flow {s}:{p} not inherited by the slot's new real"
            );
            assert_eq!(
                now,
                more[id as usize - 1].addr,
                "flow {s}:{p} hashed onto the new ring"
            );
        }
    }
}

/// Sends `n` random new flows and returns how many each real got.
fn spread(lb: &mut TestBalancer, n: usize, v6: bool, seed: u64) -> HashMap<IpAddr, usize> {
    let mut rng = Rng::new(seed);
    let vip = if v6 { ip(VIP6) } else { ip(VIP) };
    let mut counts = HashMap::new();
    for _ in 0..n {
        let (src, sport) = rng.client(v6);
        *counts
            .entry(send(lb, src, sport, vip, 80, PROTO_TCP, TCP_SYN))
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn flows_spread_evenly_and_by_weight() {
    if !require_root("flows_spread_evenly_and_by_weight") {
        return;
    }
    const FLOWS: usize = 100_000;
    // Equal reals: each within ±3% of 1/5. IPv6 clients so that 100,000
    // flows are distinct (the IPv4 client range is one /24).
    let mut lb = TestBalancer::new(1 << 18);
    let equal = reals6(5, &[]);
    lb.add_vip(VIP6, 80, PROTO_TCP, &equal, M);
    let counts = spread(&mut lb, FLOWS, true, 3);
    for r in &equal {
        let share = counts.get(&r.addr).copied().unwrap_or(0) as f64 / FLOWS as f64;
        assert!(
            (share - 0.2).abs() <= 0.2 * 0.03,
            "real {} got {:.4} of flows",
            r.addr,
            share
        );
    }

    // Weighted reals 1:2:3:4: shares in proportion, ±3%.
    let mut lb = TestBalancer::new(1 << 18);
    let weighted = reals6(4, &[1, 2, 3, 4]);
    lb.add_vip(VIP6, 80, PROTO_TCP, &weighted, M);
    let counts = spread(&mut lb, FLOWS, true, 5);
    for r in &weighted {
        let want = f64::from(r.weight) / 10.0;
        let share = counts.get(&r.addr).copied().unwrap_or(0) as f64 / FLOWS as f64;
        assert!(
            (share - want).abs() <= want * 0.03,
            "real {} weight {} got {share:.4}, want {want:.2}",
            r.addr,
            r.weight
        );
    }
}

/// Keeps the calling thread on the CPU it runs on: the rate limit is per
/// CPU, and `BPF_PROG_TEST_RUN` runs the program on the caller's CPU.
fn stay_on_this_cpu() {
    // SAFETY: plain syscalls on a zeroed, then filled, cpu_set_t.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        assert_eq!(rc, 0, "sched_setaffinity");
    }
}

#[test]
fn past_max_conn_rate_new_flows_are_sent_but_not_remembered() {
    if !require_root("past_max_conn_rate_new_flows_are_sent_but_not_remembered") {
        return;
    }
    stay_on_this_cpu();
    const LIMIT: u32 = 100;
    const FLOWS: u32 = 150;
    let rs = reals(3, &[]);
    let ring = maglev_ring(&rs, M);
    let by_id: HashMap<u32, IpAddr> = rs.iter().map(|r| (r.id, r.addr)).collect();
    // One window is a second and the flood below takes milliseconds; on a
    // machine stalled past the second, start again on a fresh balancer.
    for attempt in 0..3 {
        let mut lb = TestBalancer::new(32_768);
        lb.add_vip(VIP, 80, PROTO_TCP, &rs, M);
        let mut cfg = test_config();
        cfg.max_conn_rate = LIMIT;
        lb.dp.set_config(&cfg).expect("config");
        let mut rng = Rng::new(40 + attempt);
        let flows: Vec<(IpAddr, u16)> = (0..FLOWS).map(|_| rng.client(false)).collect();
        let start = Instant::now();
        for &(src, sport) in &flows {
            let got = send(&mut lb, src, sport, ip(VIP), 80, PROTO_TCP, TCP_SYN);
            let key = FlowKey::new(src, sport, ip(VIP), 80, PROTO_TCP);
            assert_eq!(got, by_id[&predict(&ring, &key)], "sent to its ring's real");
        }
        if start.elapsed() >= Duration::from_millis(900) {
            eprintln!(
                "attempt {attempt}: the flood took {:?}; again",
                start.elapsed()
            );
            continue;
        }
        let remembered: Vec<bool> = flows
            .iter()
            .map(|&(src, sport)| {
                let key = FlowKey::new(src, sport, ip(VIP), 80, PROTO_TCP);
                lb.dp.conn(&key).expect("read").is_some()
            })
            .collect();
        let expected: Vec<bool> = (0..FLOWS).map(|i| i < LIMIT).collect();
        assert_eq!(
            remembered, expected,
            "the first {LIMIT} flows of the second are remembered, no others"
        );
        let stats = lb.dp.stats().expect("stats");
        assert_eq!(stats.get(Counter::ConnMiss), u64::from(FLOWS));
        assert_eq!(
            stats.get(Counter::ConnRateLimited),
            u64::from(FLOWS - LIMIT)
        );
        assert_eq!(stats.get(Counter::XdpTx), u64::from(FLOWS));
        // A remembered flow is still a connection-table hit.
        let (src, sport) = flows[0];
        send(&mut lb, src, sport, ip(VIP), 80, PROTO_TCP, TCP_ACK);
        assert_eq!(lb.dp.stats().unwrap().get(Counter::ConnHit), 1);
        // The next second has room again.
        std::thread::sleep(Duration::from_millis(1100).saturating_sub(start.elapsed()));
        let (src, sport) = flows[FLOWS as usize - 1];
        send(&mut lb, src, sport, ip(VIP), 80, PROTO_TCP, TCP_ACK);
        let key = FlowKey::new(src, sport, ip(VIP), 80, PROTO_TCP);
        assert!(
            lb.dp.conn(&key).expect("read").is_some(),
            "a flow left out last second is remembered in the next"
        );
        assert_eq!(
            lb.dp.stats().unwrap().get(Counter::ConnRateLimited),
            u64::from(FLOWS - LIMIT)
        );
        return;
    }
    panic!("three floods of {FLOWS} packets each took over 900 ms");
}

#[test]
fn outer_sources_vary_per_flow_inside_the_configured_prefix() {
    if !require_root("outer_sources_vary_per_flow_inside_the_configured_prefix") {
        return;
    }
    let mut lb = TestBalancer::new(32_768);
    lb.add_vip(VIP, 80, PROTO_TCP, &reals(3, &[]), M);
    let rs6: Vec<TestReal> = reals6(3, &[])
        .into_iter()
        .map(|r| TestReal { id: r.id + 10, ..r })
        .collect();
    lb.add_vip(VIP6, 80, PROTO_TCP, &rs6, M);
    // 198.51.100.0/24 and 2001:db8:5::/112, as lb-ctl writes them.
    let (base4, bits4) = ([198, 51, 100, 0], 8);
    let base6 = std::net::Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 0).octets();
    let bits6 = 16;
    let mut cfg = test_config();
    cfg.src_v4 = base4;
    cfg.src_v4_flow_bits = bits4;
    cfg.src_v6 = base6;
    cfg.src_v6_flow_bits = bits6;
    lb.dp.set_config(&cfg).expect("config");
    let mut rng = Rng::new(9);
    for v6 in [false, true] {
        let mut sources = std::collections::HashSet::new();
        for _ in 0..500 {
            let (src, sport) = rng.client(v6);
            let vip = ip(if v6 { VIP6 } else { VIP });
            let out = lb.run(&Packet::tcp(src, sport, vip, 80, TCP_SYN).bytes());
            assert_eq!(out.verdict, XDP_TX);
            let hash = outer_hash(&FlowKey::new(src, sport, vip, 80, PROTO_TCP));
            let expected = if v6 {
                IpAddr::from(flow_source(base6, bits6, hash))
            } else {
                IpAddr::from(flow_source(base4, bits4, hash))
            };
            let got = outer_src(&out.output).expect("encapsulated");
            assert_eq!(got, expected, "outer source of {src}:{sport}");
            if !v6 {
                // The header checksum covers the new source.
                let hdr = &out.output[14..34];
                let sum: u32 = hdr
                    .chunks(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                    .sum();
                let folded = (sum & 0xffff) + (sum >> 16);
                assert_eq!((folded & 0xffff) + (folded >> 16), 0xffff, "checksum");
            }
            sources.insert(got);
        }
        // 500 flows over 256 (IPv4) or 65,536 (IPv6) sources.
        let least = if v6 { 490 } else { 180 };
        assert!(
            sources.len() >= least,
            "{} distinct outer sources for 500 flows (v6: {v6})",
            sources.len()
        );
    }
    // Without flow bits, one source.
    lb.dp.set_config(&test_config()).expect("config");
    let (src, sport) = rng.client(false);
    let out = lb.run(&Packet::tcp(src, sport, ip(VIP), 80, TCP_SYN).bytes());
    assert_eq!(
        outer_src(&out.output),
        Some(IpAddr::from(test_config().src_v4))
    );
}
