//! Nanoseconds per packet of the balancer, from BPF_PROG_TEST_RUN, median of
//! several runs, with the floors measured in the same run.
//!
//! Method (see docs/BENCHMARKS.md): live frames (`xdp_live_frames`) on one
//! end of a veth pair whose peer drops with XDP, so `XDP_TX` really
//! transmits; every frame first goes through `lb_bench_restore`, which
//! rewrites the original bytes (live frames do not) and tail-calls the
//! program measured. The floors go through the same wrapper. The counters
//! are checked after each run: every packet must have taken the path being
//! measured. The pass path is measured with plain `repeat` (nothing is
//! rewritten) so that the stack's own cost is not counted.
//!
//! Run with `cargo xtask bench dataplane` (root).
use std::{net::IpAddr, time::Duration};

use aya::{
    maps::{Array, ProgramArray},
    programs::{ProgramFd, TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use lb_common::{
    PROTO_TCP,
    bench::{BENCH_FRAME_LEN, BenchFrame},
    stats::{Counter, Stats},
};
use lb_ctl::dataplane::LoadOptions;
use lb_tests::{
    balancer::{TestBalancer, TestReal, ifindex, ip, test_config, xdp_md},
    netns::{self, Netns},
    packet::{Packet, TCP_ACK},
};

/// Packets per run.
const PACKETS: u32 = 2_000_000;
/// Runs per figure (the median is reported).
const RUNS: usize = 5;
/// Frames per live-frames batch (a NAPI budget).
const BATCH: u32 = 64;
/// Connection table size, and how many distinct flows fill it first.
const CONN_TABLE: u32 = 1 << 20;
const PREFILL: u32 = (1 << 20) + (1 << 17);

const VIP4: &str = "203.0.113.10";
const VIP6: &str = "2001:db8:100::10";

fn frame(p: &Packet) -> [u8; BENCH_FRAME_LEN] {
    let mut p = p.clone();
    let header = p.bytes().len() - p.payload.len();
    p.payload = vec![0x5a; BENCH_FRAME_LEN - header];
    p.bytes()
        .try_into()
        .expect("frame of BENCH_FRAME_LEN bytes")
}

struct Bench {
    lb: TestBalancer,
    ifindex: u32,
}

impl Bench {
    fn prog_fd(&mut self, name: &str) -> ProgramFd {
        let xdp: &mut Xdp = self
            .lb
            .dp
            .ebpf_mut()
            .program_mut(name)
            .unwrap()
            .try_into()
            .unwrap();
        if xdp.fd().is_err() {
            xdp.load().unwrap_or_else(|e| panic!("load {name}: {e}"));
        }
        xdp.fd().unwrap().try_clone().unwrap()
    }

    fn set_target(&mut self, name: &str) {
        let fd = if name == "lb_balance" {
            self.lb.dp.program().fd().unwrap().try_clone().unwrap()
        } else {
            self.prog_fd(name)
        };
        let map = self.lb.dp.ebpf_mut().map_mut("LB_BENCH_JUMP").unwrap();
        let mut jump = ProgramArray::try_from(map).unwrap();
        jump.set(0, &fd, 0).unwrap();
    }

    fn set_frame(&mut self, bytes: [u8; BENCH_FRAME_LEN], vary: bool) {
        let map = self.lb.dp.ebpf_mut().map_mut("LB_BENCH_FRAME").unwrap();
        let mut arr = Array::<_, BenchFrame>::try_from(map).unwrap();
        let f = BenchFrame {
            vary: u32::from(vary),
            ..BenchFrame::from_bytes(&bytes)
        };
        arr.set(0, f, 0).unwrap();
    }

    /// One live-frames run of `packets` through the wrapper; ns per packet.
    fn live_run(&mut self, packets: u32) -> Duration {
        let _ = self.prog_fd("lb_bench_restore");
        let map = self.lb.dp.ebpf_mut().map_mut("LB_BENCH_FRAME").unwrap();
        let data = Array::<_, BenchFrame>::try_from(map)
            .unwrap()
            .get(&0, 0)
            .unwrap()
            .bytes();
        let md = xdp_md(data.len(), self.ifindex);
        let xdp: &mut Xdp = self
            .lb
            .dp
            .ebpf_mut()
            .program_mut("lb_bench_restore")
            .unwrap()
            .try_into()
            .unwrap();
        let r = xdp
            .test_run(TestRunOptions {
                data_in: Some(&data),
                ctx_in: Some(&md),
                repeat: packets,
                attrs: TestRunAttrs::new().xdp_live_frames(BATCH),
                ..Default::default()
            })
            .expect("live-frames test run");
        r.duration
    }

    fn stats(&self) -> Stats {
        self.lb.dp.stats().unwrap()
    }

    /// Median ns/packet over RUNS live runs; checks that every packet added
    /// one to each of `counters`.
    fn measure(&mut self, counters: &[Counter]) -> f64 {
        let mut samples = Vec::new();
        for _ in 0..RUNS {
            let before = self.stats();
            let d = self.live_run(PACKETS);
            let after = self.stats();
            for &c in counters {
                let delta = after.get(c) - before.get(c);
                assert_eq!(
                    delta,
                    u64::from(PACKETS),
                    "counter {} moved {delta} for {PACKETS} packets",
                    c.name()
                );
            }
            samples.push(d.as_nanos() as f64);
        }
        median(samples)
    }

    /// Median ns/packet over RUNS plain-repeat runs of `program` on `data`.
    fn measure_plain(&mut self, program: &str, data: &[u8], counters: &[Counter]) -> f64 {
        let _ = self.prog_fd(program);
        let mut samples = Vec::new();
        for _ in 0..RUNS {
            let before = self.stats();
            let xdp: &mut Xdp = if program == "lb_balance" {
                self.lb.dp.program()
            } else {
                self.lb
                    .dp
                    .ebpf_mut()
                    .program_mut(program)
                    .unwrap()
                    .try_into()
                    .unwrap()
            };
            let r = xdp
                .test_run(TestRunOptions {
                    data_in: Some(data),
                    repeat: PACKETS,
                    ..Default::default()
                })
                .expect("test run");
            let after = self.stats();
            for &c in counters {
                assert_eq!(
                    after.get(c) - before.get(c),
                    u64::from(PACKETS),
                    "counter {}",
                    c.name()
                );
            }
            samples.push(r.duration.as_nanos() as f64);
        }
        median(samples)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn reals(v6: bool) -> Vec<TestReal> {
    (0..10u32)
        .map(|i| TestReal {
            id: i + 1 + if v6 { 100 } else { 0 },
            addr: if v6 {
                IpAddr::V6(std::net::Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    0x200,
                    0,
                    0,
                    0,
                    0,
                    i as u16 + 1,
                ))
            } else {
                IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 100 + i as u8))
            },
            weight: 1,
        })
        .collect()
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the data-plane benchmark needs root (BPF_PROG_TEST_RUN, netns, XDP)");
        return;
    }
    let ns = Netns::new("bench");
    let tag = netns::unique_tag();
    let (tx_if, peer_if) = (format!("bt{tag}"), format!("bp{tag}"));
    netns::ip(&[
        "link",
        "add",
        &tx_if,
        "netns",
        ns.name(),
        "type",
        "veth",
        "peer",
        "name",
        &peer_if,
        "netns",
        ns.name(),
    ]);
    ns.ip(&["link", "set", &tx_if, "up"]);
    ns.ip(&["link", "set", &peer_if, "up"]);

    let rows = ns.run(|| {
        let ifindex = if std::env::var_os("LB_BENCH_LO").is_some() {
            1
        } else {
            ifindex(&tx_if)
        };
        let mut b = Bench {
            lb: TestBalancer::with_options(&LoadOptions {
                conn_table_size: CONN_TABLE,
                pin_dir: None,
                ..LoadOptions::default()
            }),
            ifindex,
        };
        b.lb.add_vip(VIP4, 80, PROTO_TCP, &reals(false), 65_537);
        b.lb.add_vip(VIP6, 80, PROTO_TCP, &reals(true), 65_537);
        // The peer drops what the measured end transmits (and gives veth
        // XDP_TX a receiver).
        let _ = b.prog_fd("lb_bench_drop");
        let drop: &mut Xdp =
            b.lb.dp
                .ebpf_mut()
                .program_mut("lb_bench_drop")
                .unwrap()
                .try_into()
                .unwrap();
        drop.attach(&peer_if, XdpMode::Driver)
            .expect("attach drop to the veth peer");

        let client4 = ip("198.51.100.7");
        let client6 = ip("2001:db8:c::7");
        let est4 = frame(&Packet::tcp(client4, 40_000, ip(VIP4), 80, TCP_ACK));
        let est6 = frame(&Packet::tcp(client6, 40_000, ip(VIP6), 80, TCP_ACK));
        let nonvip = frame(&Packet::tcp(
            client4,
            40_000,
            ip("203.0.113.99"),
            80,
            TCP_ACK,
        ));

        let mut rows: Vec<(String, f64)> = Vec::new();
        // Floors through the same wrapper.
        b.set_frame(est4, false);
        b.set_target("lb_bench_tx");
        rows.push(("floor: restore wrapper + XDP_TX".into(), b.measure(&[])));
        b.set_target("lb_bench_encap_floor");
        rows.push((
            "floor: restore wrapper + adjust_head(-20) + XDP_TX".into(),
            b.measure(&[]),
        ));

        // Fill the connection table with distinct flows, as on a busy host.
        b.set_target("lb_balance");
        b.set_frame(est4, true);
        b.live_run(PREFILL);
        let filled = b.lb.dp.stats().unwrap().conn_miss;
        assert!(
            filled >= u64::from(PREFILL),
            "prefill inserted {filled} flows"
        );

        rows.push((
            "new IPv4 flow every packet (miss + ring + insert, table full)".into(),
            b.measure(&[Counter::ConnMiss, Counter::XdpTx]),
        ));
        // A flood of new flows past max_conn_rate: sent, not remembered.
        let mut flood = test_config();
        flood.max_conn_rate = 1;
        b.lb.dp.set_config(&flood).unwrap();
        let limited = b.stats().get(Counter::ConnRateLimited);
        rows.push((
            "new IPv4 flow every packet past max_conn_rate (miss + ring, not remembered)".into(),
            b.measure(&[Counter::ConnMiss, Counter::XdpTx]),
        ));
        // One flow per second per CPU may still be remembered.
        let limited = b.stats().get(Counter::ConnRateLimited) - limited;
        assert!(
            limited + 1000 >= RUNS as u64 * u64::from(PACKETS),
            "only {limited} packets took the rate-limited path"
        );
        b.lb.dp.set_config(&test_config()).unwrap();
        b.set_frame(est4, false);
        b.live_run(1);
        rows.push((
            "established IPv4 TCP flow (connection-table hit, table full)".into(),
            b.measure(&[Counter::ConnHit, Counter::XdpTx]),
        ));
        // Capture (`lb-ctl capture`): off above; on, for traffic its
        // filter leaves out, and sampled with a reader's buffers open (the
        // buffers fill and later records are counted lost, as when a
        // reader falls behind: the cost of a record written is included).
        let mut capture = test_config();
        capture.capture_sample = 1;
        capture.capture_vip = 2; // VIP id 1 (IPv6) + 1: not this flow's
        capture.capture_snaplen = 256;
        b.lb.dp.set_config(&capture).unwrap();
        rows.push((
            "established IPv4, capture on, filtered out (another VIP)".into(),
            b.measure(&[Counter::ConnHit, Counter::XdpTx]),
        ));
        let events =
            b.lb.dp
                .ebpf_mut()
                .take_map("LB_CAPTURE")
                .expect("LB_CAPTURE");
        let mut events = aya::maps::PerfEventArray::try_from(events).unwrap();
        let _buffers: Vec<_> = aya::util::online_cpus()
            .unwrap()
            .into_iter()
            .map(|cpu| events.open(cpu, Some(64)).unwrap())
            .collect();
        for (sample, name) in [
            (
                1000,
                "established IPv4, capture on, 1 in 1000 packets, 256 bytes",
            ),
            (1, "established IPv4, capture on, every packet, 256 bytes"),
        ] {
            capture.capture_vip = 0;
            capture.capture_sample = sample;
            b.lb.dp.set_config(&capture).unwrap();
            rows.push((name.into(), b.measure(&[Counter::ConnHit, Counter::XdpTx])));
        }
        b.lb.dp.set_config(&test_config()).unwrap();
        b.set_frame(est6, false);
        b.live_run(1);
        rows.push((
            "established IPv6 TCP flow (connection-table hit, table full)".into(),
            b.measure(&[Counter::ConnHit, Counter::XdpTx]),
        ));
        rows.push((
            "plain repeat: lb_pass (floor of the pass path)".into(),
            b.measure_plain("lb_pass", &nonvip, &[]),
        ));
        rows.push((
            "plain repeat: non-VIP IPv4 packet, passed".into(),
            b.measure_plain(
                "lb_balance",
                &nonvip,
                &[Counter::PassNotVip, Counter::XdpPass],
            ),
        ));
        rows
    });

    let floor = rows[0].1;
    println!("| path | ns/packet (median of {RUNS} x {PACKETS}) | minus the XDP_TX floor |");
    println!("|---|---:|---:|");
    for (name, ns) in &rows {
        println!("| {name} | {ns:.1} | {:.1} |", ns - floor);
    }
    drop(ns);
}
