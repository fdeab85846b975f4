//! The benchmarks' own XDP programs, run in the kernel (BPF_PROG_TEST_RUN):
//! a bench that counts wrongly reports wrong figures, so what they count and
//! write is checked here.
//!
//! - `lb_bench_restore` with `vary`: the flow sequence masked to N flows,
//!   and the IPv4 header checksum recomputed when asked (the lab bench's
//!   frames reach kernel stacks, which drop a bad checksum); with
//!   `VARY_PER_CPU`, each CPU's flows apart from the others'.
//! - `lb_bench_sink` (the lab bench's backends): which packets it counts
//!   and drops, and that everything else, malformed or cut short, passes
//!   uncounted.
//! - `lb_bench_fwd` (the lab bench's floor forwarder): which packets it
//!   redirects, with which Ethernet addresses, and that it changes nothing
//!   else.
use std::collections::BTreeSet;

use aya::{
    Ebpf,
    maps::{Array, PerCpuArray, ProgramArray},
    programs::{TestRun as _, TestRunOptions, Xdp},
};
use lb_common::bench::{
    BENCH_FRAME_LEN, BenchFrame, BenchHop, SinkCounts, SinkMatch, VARY_FIX_IPV4_CHECKSUM,
    VARY_FLOWS, VARY_PER_CPU,
};
use lb_tests::{
    packet::{CLIENT_MAC, LB_MAC, Packet, bench_frame, checksum, encapsulated},
    require_root,
};

const XDP_ABORTED: u32 = 0;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_TX: u32 = 3;
const XDP_REDIRECT: u32 = 4;

const VIP: &str = "203.0.113.10";
const PORT: u16 = 5300;

fn load() -> Ebpf {
    Ebpf::load(lb_ctl::programs::OBJECT).expect("load the object")
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut Xdp {
    let prog: &mut Xdp = ebpf.program_mut(name).unwrap().try_into().unwrap();
    if prog.fd().is_err() {
        prog.load().unwrap_or_else(|e| panic!("load {name}: {e}"));
    }
    prog
}

/// The bench object with `lb_bench_restore` tail-calling `lb_bench_tx`.
fn restore_to_tx() -> Ebpf {
    let mut ebpf = load();
    let tx = program(&mut ebpf, "lb_bench_tx")
        .fd()
        .unwrap()
        .try_clone()
        .unwrap();
    ProgramArray::try_from(ebpf.map_mut("LB_BENCH_JUMP").unwrap())
        .unwrap()
        .set(0, &tx, 0)
        .unwrap();
    ebpf
}

/// One run of `name` on `input`: its verdict and output.
fn run(ebpf: &mut Ebpf, name: &str, input: &[u8]) -> (u32, Vec<u8>) {
    let mut out = vec![0u8; input.len().max(64) + 256];
    let r = program(ebpf, name)
        .test_run(TestRunOptions {
            data_in: Some(input),
            data_out: Some(&mut out),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    out.truncate(r.data_size_out as usize);
    (r.return_value, out)
}

fn udp_to(dst: &str, port: u16) -> Packet {
    Packet::udp(
        "198.51.100.7".parse().unwrap(),
        4000,
        dst.parse().unwrap(),
        port,
    )
}

#[test]
fn restore_repeats_n_flows_and_fixes_the_ipv4_checksum() {
    if !require_root("restore_repeats_n_flows_and_fixes_the_ipv4_checksum") {
        return;
    }
    let mut ebpf = restore_to_tx();
    let frame = bench_frame(&udp_to(VIP, PORT));
    for (vary, flows, fixed) in [
        (VARY_FLOWS | VARY_FIX_IPV4_CHECKSUM, 4u32, true),
        (VARY_FLOWS, 4, false),
        (VARY_FLOWS | VARY_FIX_IPV4_CHECKSUM, 0, true),
    ] {
        let template = BenchFrame::varying(&frame, vary, flows);
        Array::<_, BenchFrame>::try_from(ebpf.map_mut("LB_BENCH_FRAME").unwrap())
            .unwrap()
            .set(0, template, 0)
            .unwrap();
        let mut seen = BTreeSet::new();
        for _ in 0..16 {
            let (verdict, out) = run(&mut ebpf, "lb_bench_restore", &frame);
            assert_eq!(
                verdict, XDP_TX,
                "vary {vary}: the wrapper tail-calls lb_bench_tx"
            );
            assert_eq!(out.len(), BENCH_FRAME_LEN);
            let port = u16::from_be_bytes([out[34], out[35]]);
            let addr_byte = out[14 + 15];
            seen.insert((addr_byte, port));
            let header_ok = checksum(&[&out[14..34]]) == 0;
            assert_eq!(
                header_ok,
                fixed || addr_byte == frame[14 + 15],
                "vary {vary}: checksum"
            );
            // Only the source's last byte, the IPv4 checksum and the source
            // port change.
            assert_eq!(out[..24], frame[..24]);
            assert_eq!(out[26..29], frame[26..29]);
            assert_eq!(out[36..], frame[36..]);
        }
        match flows {
            0 => assert_eq!(seen.len(), 16, "a new flow every packet: {seen:?}"),
            n => {
                assert_eq!(seen.len(), n as usize, "{n} flows repeated: {seen:?}");
                assert!(seen.iter().all(|&(a, p)| a == 0 && u32::from(p) < n));
            }
        }
    }
}

/// `VARY_PER_CPU` (the data-plane bench's rows on every CPU at once):
/// each CPU counts its own sequence and puts its number in the top 2 of
/// the 24 bits, so the CPUs' flows never meet.
#[test]
fn restore_per_cpu_flows_are_disjoint_between_cpus() {
    if !require_root("restore_per_cpu_flows_are_disjoint_between_cpus") {
        return;
    }
    let mut ebpf = restore_to_tx();
    let frame = bench_frame(&udp_to(VIP, PORT));
    for (flows, per_cpu_seq) in [(0u32, 1u32 << 22), (8, 8)] {
        let template = BenchFrame::varying(&frame, VARY_FLOWS | VARY_PER_CPU, flows);
        Array::<_, BenchFrame>::try_from(ebpf.map_mut("LB_BENCH_FRAME").unwrap())
            .unwrap()
            .set(0, template, 0)
            .unwrap();
        let cpus = aya::util::online_cpus().unwrap();
        let mut all = BTreeSet::new();
        for &cpu in cpus.iter().take(4) {
            // Each CPU in its own thread: the run happens on the caller's CPU.
            let seen = std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        lb_tests::pin_to_cpu(cpu);
                        let mut seen = BTreeSet::new();
                        for _ in 0..12 {
                            let (verdict, out) = run(&mut ebpf, "lb_bench_restore", &frame);
                            assert_eq!(verdict, XDP_TX);
                            seen.insert(
                                u32::from(out[14 + 15]) << 16
                                    | u32::from(u16::from_be_bytes([out[34], out[35]])),
                            );
                        }
                        seen
                    })
                    .join()
                    .unwrap()
            });
            for &n in &seen {
                assert_eq!(
                    n >> 22,
                    cpu & 3,
                    "CPU {cpu}'s flow {n:#x} carries its number"
                );
                assert!(n & 0x3f_ffff < per_cpu_seq, "flow {n:#x} within the mask");
            }
            let expect = if flows == 0 { 12 } else { flows as usize };
            assert_eq!(seen.len(), expect, "CPU {cpu}: {seen:?}");
            assert!(
                all.is_disjoint(&seen),
                "CPU {cpu} repeats another CPU's flow"
            );
            all.extend(seen);
        }
    }
}

#[test]
fn sink_counts_forwarded_test_packets_and_passes_the_rest() {
    if !require_root("sink_counts_forwarded_test_packets_and_passes_the_rest") {
        return;
    }
    let mut ebpf = load();
    let want = SinkMatch {
        vip: VIP.parse::<std::net::Ipv4Addr>().unwrap().octets(),
        port: PORT.to_be(),
        _pad: 0,
    };
    Array::<_, SinkMatch>::try_from(ebpf.map_mut("LB_BENCH_SINK_MATCH").unwrap())
        .unwrap()
        .set(0, want, 0)
        .unwrap();
    let outer = |inner: &Packet| {
        encapsulated(
            inner,
            "192.0.2.2".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            LB_MAC,
            CLIENT_MAC,
            0,
        )
    };
    let tunnelled = outer(&udp_to(VIP, PORT));
    let plain = udp_to("192.0.2.2", PORT).bytes();
    let counted = [
        ("tunnelled to the VIP", tunnelled.clone(), counts(1, 0, 0)),
        ("DNAT-rewritten", plain.clone(), counts(0, 1, 0)),
    ];
    // Everything else passes to the stack, counted as passed only.
    let mut passed: Vec<(&str, Vec<u8>)> = vec![
        (
            "tunnelled to another VIP",
            outer(&udp_to("203.0.113.11", PORT)),
        ),
        ("another port", udp_to("192.0.2.2", 80).bytes()),
        (
            "tunnelled, cut in the inner header",
            tunnelled[..40].to_vec(),
        ),
    ];
    passed.extend(not_plain_udp("192.0.2.2"));
    let cases = counted
        .into_iter()
        .map(|(w, p, c)| (w, p, XDP_DROP, c))
        .chain(
            passed
                .into_iter()
                .map(|(w, p)| (w, p, XDP_PASS, counts(0, 0, 1))),
        );
    for (what, input, verdict, delta) in cases {
        let before = sink_counts(&ebpf);
        let (got, _) = run(&mut ebpf, "lb_bench_sink", &input);
        assert_eq!(got, verdict, "{what}: verdict");
        let after = sink_counts(&ebpf);
        let moved = counts(
            after.tunnelled - before.tunnelled,
            after.plain - before.plain,
            after.passed - before.passed,
        );
        assert_eq!(moved, delta, "{what}: counters");
    }
}

#[test]
fn floor_forwarder_rewrites_macs_and_redirects_udp_only() {
    if !require_root("floor_forwarder_rewrites_macs_and_redirects_udp_only") {
        return;
    }
    let mut ebpf = load();
    let udp = |sport: u16| {
        Packet::udp(
            "198.51.100.7".parse().unwrap(),
            sport,
            VIP.parse().unwrap(),
            PORT,
        )
        .bytes()
    };
    // Before the hops are set: aborted, not sent anywhere.
    let (got, _) = run(&mut ebpf, "lb_bench_fwd", &udp(4000));
    assert_eq!(got, XDP_ABORTED, "no hops set");
    let hops = [
        BenchHop {
            ifindex: 1,
            dst_mac: [2, 0, 0, 0, 0, 0xb1],
            src_mac: [2, 0, 0, 0, 0, 0xf1],
        },
        BenchHop {
            ifindex: 1,
            dst_mac: [2, 0, 0, 0, 0, 0xb2],
            src_mac: [2, 0, 0, 0, 0, 0xf2],
        },
    ];
    {
        let mut map =
            Array::<_, BenchHop>::try_from(ebpf.map_mut("LB_BENCH_HOPS").unwrap()).unwrap();
        for (i, hop) in hops.iter().enumerate() {
            map.set(i as u32, *hop, 0).unwrap();
        }
    }
    // UDP: the hop of the source port's low bit, only the MACs changed.
    for sport in [4000u16, 4001, 0, 65535] {
        let input = udp(sport);
        let (got, out) = run(&mut ebpf, "lb_bench_fwd", &input);
        assert_eq!(got, XDP_REDIRECT, "sport {sport}");
        let hop = hops[usize::from(sport & 1)];
        let mut want = input.clone();
        want[0..6].copy_from_slice(&hop.dst_mac);
        want[6..12].copy_from_slice(&hop.src_mac);
        assert_eq!(out, want, "sport {sport}: the MACs and nothing else");
    }
    // Everything else: passed untouched.
    for (what, input) in not_plain_udp(VIP) {
        let (got, out) = run(&mut ebpf, "lb_bench_fwd", &input);
        assert_eq!(got, XDP_PASS, "{what}: verdict");
        assert_eq!(out, input, "{what}: untouched");
    }
}

/// Packets near a plain IPv4 UDP packet to `dst` and the test port that
/// are not one: another ethertype, IPv4 options, TCP, IPv6, and cut short.
fn not_plain_udp(dst: &str) -> Vec<(&'static str, Vec<u8>)> {
    let plain = udp_to(dst, PORT).bytes();
    let mut arp = plain.clone();
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut options = udp_to(dst, PORT);
    options.ipv4_options = vec![1, 1, 1, 0];
    let tcp = Packet::tcp(
        "198.51.100.7".parse().unwrap(),
        4000,
        dst.parse().unwrap(),
        PORT,
        0x10,
    );
    let ipv6 = Packet::udp(
        "2001:db8::1".parse().unwrap(),
        1,
        "2001:db8::2".parse().unwrap(),
        PORT,
    );
    vec![
        ("TCP to the port", tcp.bytes()),
        ("ARP", arp),
        ("IPv4 options", options.bytes()),
        ("IPv6", ipv6.bytes()),
        ("Ethernet only", plain[..14].to_vec()),
        ("cut in the IPv4 header", plain[..30].to_vec()),
        ("cut in the UDP ports", plain[..36].to_vec()),
    ]
}

fn counts(tunnelled: u64, plain: u64, passed: u64) -> SinkCounts {
    SinkCounts {
        tunnelled,
        plain,
        passed,
    }
}

fn sink_counts(ebpf: &Ebpf) -> SinkCounts {
    let map = PerCpuArray::<_, SinkCounts>::try_from(ebpf.map("LB_BENCH_SINK").unwrap()).unwrap();
    let per_cpu = map.get(&0, 0).unwrap();
    per_cpu.iter().fold(counts(0, 0, 0), |a, c| {
        counts(
            a.tunnelled + c.tunnelled,
            a.plain + c.plain,
            a.passed + c.passed,
        )
    })
}
