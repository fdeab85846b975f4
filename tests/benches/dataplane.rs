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
//! With a baseline (`LB_BENCH_BASELINE` = another revision's balancer
//! object, which `cargo xtask bench dataplane --baseline REV` builds), both
//! balancers are loaded side by side, each with its own maps, set up alike,
//! and every path is run on both in turn, A B B A A B ..., so that drift on
//! this shared machine falls on both alike. Each path then gets the paired
//! ratio this tree / baseline (run i against run i), median and range;
//! the floors, the same code in both objects, show the noise.
//!
//! Rounds (`LB_BENCH_ROUNDS`, default 5 with a baseline, else 1): the
//! whole sequence (load both sides, fill their tables, every path) is
//! repeated with fresh loads, the runs shared out among the rounds, and
//! the side loaded first alternates. A load fixes where a side's programs
//! and tables sit in memory for as long as it lives, and one load can run
//! faster than the other on identical code (a run once had the identical
//! floor at 1.091); with rounds that falls on each side in turn, and the
//! per-round table shows it.
//!
//! `LB_BENCH_BASELINE_RING=M` gives the baseline's VIPs rings of M slots
//! instead of 65537 (with `--baseline HEAD`: what the ring's size costs).
//!
//! `LB_BENCH_SAMPLES=FILE` also writes every sample there (CSV: path,
//! side, round, run, ns per packet), for analysis beyond the tables.
//!
//! `LB_BENCH_BASELINE_TABLES=V4,V6` sizes the baseline's two connection
//! tables otherwise than this tree's (a baseline that keeps every flow in
//! one table, as versions before the per-family tables did, wants that one
//! at the size this tree's IPv4 table has).
//!
//! Run with `cargo xtask bench dataplane [--baseline REV] [--runs N]` (root).
#[path = "dataplane/jit_lines.rs"]
mod jit_lines;
#[path = "dataplane/profile.rs"]
mod profile;
#[path = "dataplane/runner.rs"]
mod runner;
#[path = "dataplane/side.rs"]
mod side;
#[path = "dataplane/table.rs"]
mod table;

use std::{net::IpAddr, sync::Arc};

use aya::programs::{Xdp, XdpMode};
use lb_common::{
    PROTO_TCP, PROTO_UDP,
    bench::{VARY_FLOWS, VARY_PER_CPU},
    config::MAC_MODE_FIB,
    maps::{Conn, FlowKey, VIP_F_QUIC},
    stats::Counter,
};
use lb_tests::{
    balancer::{TestReal, ifindex, ip, test_config},
    netns::{self, Netns},
    packet::{Packet, TCP_ACK, bench_frame},
};
use runner::{PACKETS, Runner, load_sides, rounds};
use side::How;
use table::{print_rounds, print_rows, print_xlated};

/// Connection table sizes (lb-ctl's defaults).
const CONN_TABLE: u32 = 1 << 20;
const CONN_TABLE_V6: u32 = 1 << 18;

/// How many distinct flows fill a table of `size` entries first: an
/// eighth more than it holds, so that it is full and evicting.
fn prefill(size: u32) -> u32 {
    size + size / 8
}

const VIP4: &str = "203.0.113.10";
/// An IPv4 VIP whose reals take GUE.
const VIP4_GUE: &str = "203.0.113.11";
/// A QUIC VIP (UDP 443) and the real id its connection ids name.
const VIP4_QUIC: &str = "203.0.113.12";
const QUIC_REAL: u32 = 302;
const VIP6: &str = "2001:db8:100::10";

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
    let baseline = std::env::var_os("LB_BENCH_BASELINE").map(|path| {
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading the baseline object {}: {e}", path.display()));
        let rev = std::env::var("LB_BENCH_BASELINE_REV")
            .unwrap_or_else(|_| path.to_string_lossy().into_owned());
        (Arc::<[u8]>::from(bytes), rev)
    });
    let runs = lb_tests::bench_runs(if baseline.is_some() { 10 } else { 5 });
    let ns = Netns::new("bench");
    let tag = netns::unique_tag();
    let (tx_if, peer_if) = (format!("bt{tag}"), format!("bp{tag}"));
    // A queue per CPU on both ends: what a CPU transmits goes to the
    // peer's queue of that CPU (veth picks it by CPU), so that runs on
    // several CPUs at once do not share one queue's lock.
    let queues = aya::util::online_cpus()
        .expect("online CPUs")
        .len()
        .to_string();
    let q = ["numtxqueues", &queues, "numrxqueues", &queues];
    let mut add = vec!["link", "add", &tx_if, "netns", ns.name()];
    add.extend(q);
    add.extend(["type", "veth", "peer", "name", &peer_if, "netns", ns.name()]);
    add.extend(q);
    netns::ip(&add);
    ns.ip(&["link", "set", &tx_if, "up"]);
    ns.ip(&["link", "set", &peer_if, "up"]);
    // For the row with the next hop from the FIB: the IPv4 reals on the
    // veth's subnet, each with a permanent neighbour entry, and forwarding
    // on (bpf_fib_lookup refuses otherwise).
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", &tx_if]);
    for real in reals(false) {
        ns.ip(&[
            "neigh",
            "add",
            &real.addr.to_string(),
            "lladdr",
            "02:00:00:00:be:01",
            "dev",
            &tx_if,
            "nud",
            "permanent",
        ]);
    }
    ns.run(|| std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", "1"))
        .expect("forwarding on in the bench namespace");

    let rounds = rounds(baseline.is_some(), runs);
    let per_round = runs.div_ceil(rounds);
    let (labels, rows, xlated) = ns.run(|| {
        pin_to_last_cpu();
        let ifindex = if std::env::var_os("LB_BENCH_LO").is_some() {
            1
        } else {
            ifindex(&tx_if)
        };
        let tables = [CONN_TABLE, CONN_TABLE_V6];
        let mut rows = Vec::new();
        let mut last = None;
        for round in 0..rounds {
            // The last round's sides go first (the peer's drop program
            // among their programs, and their memory).
            drop(last.take());
            if rounds > 1 {
                println!("round {} of {rounds}: loading the sides afresh", round + 1);
            }
            let mut r = Runner {
                sides: load_sides(&baseline, tables, ifindex, round % 2 == 1),
                runs: per_round,
                rows,
                next_row: 0,
            };
            paths(&mut r, &peer_if);
            rows = std::mem::take(&mut r.rows);
            last = Some(r.sides);
        }
        let mut sides = last.expect("at least one round");
        profile::write_jit_lines(&mut sides[0]);
        let labels: Vec<String> = sides.iter().map(|s| s.label.clone()).collect();
        let xlated: Vec<_> = sides.iter_mut().map(|s| s.xlated()).collect();
        (labels, rows, xlated)
    });
    print_rows(&labels, &rows, per_round * rounds, PACKETS);
    print_rounds(&rows, per_round);
    if let Some(path) = std::env::var_os("LB_BENCH_SAMPLES") {
        table::write_samples(std::path::Path::new(&path), &labels, &rows, per_round)
            .unwrap_or_else(|e| panic!("writing the samples to {}: {e}", path.display()));
    }
    print_xlated(&labels, &xlated);
    drop(ns);
}

/// Every path, in an order where each one's set-up follows from the last.
fn paths(r: &mut Runner, peer_if: &str) {
    r.each(|s| {
        let ring = s.ring;
        s.lb.add_vip(VIP4, 80, PROTO_TCP, &reals(false), ring);
        s.lb.add_vip(VIP6, 80, PROTO_TCP, &reals(true), ring);
        // The same reals' addresses in slots of their own, marked GUE.
        let gue: Vec<TestReal> = reals(false)
            .into_iter()
            .map(|r| TestReal {
                id: r.id + 200,
                ..r
            })
            .collect();
        s.lb.add_vip(VIP4_GUE, 80, PROTO_TCP, &gue, ring);
        for r in &gue {
            s.lb.set_gue(r.id);
        }
        let quic: Vec<TestReal> = reals(false)
            .into_iter()
            .map(|r| TestReal {
                id: r.id + 300,
                ..r
            })
            .collect();
        s.lb.add_vip_with_flags(VIP4_QUIC, 443, PROTO_UDP, &quic, ring, VIP_F_QUIC);
    });
    // The peer drops what the measured end transmits (and gives veth
    // XDP_TX a receiver): the first side's program serves both.
    let drop: &mut Xdp = r.sides[0].xdp("lb_bench_drop");
    drop.load().expect("load lb_bench_drop");
    drop.attach(peer_if, XdpMode::Driver)
        .expect("attach drop to the veth peer");

    let client4 = ip("198.51.100.7");
    let client6 = ip("2001:db8:c::7");
    let est4 = bench_frame(&Packet::tcp(client4, 40_000, ip(VIP4), 80, TCP_ACK));
    let est6 = bench_frame(&Packet::tcp(client6, 40_000, ip(VIP6), 80, TCP_ACK));
    let nonvip = bench_frame(&Packet::tcp(
        client4,
        40_000,
        ip("203.0.113.99"),
        80,
        TCP_ACK,
    ));
    let tx_and = [Counter::ConnMiss, Counter::XdpTx];
    let hit = [Counter::ConnHit, Counter::XdpTx];

    // Floors through the same wrapper.
    r.each(|s| {
        s.set_frame(est4, 0);
        s.set_target("lb_bench_tx");
    });
    let floor = r.measure("floor: restore wrapper + XDP_TX", How::Live(&[]), None);
    r.each(|s| s.set_target("lb_bench_encap_floor"));
    r.measure(
        "floor: restore wrapper + adjust_head(-20) + XDP_TX",
        How::Live(&[]),
        None,
    );

    // Fill the connection table with distinct flows, as on a busy host.
    r.each(|s| {
        s.set_target("lb_balance");
        s.set_frame(est4, VARY_FLOWS);
        let prefill = prefill(s.tables[0]);
        s.live_run(prefill);
        let filled = s.stats().conn_miss;
        assert!(
            filled >= u64::from(prefill),
            "{}: prefill inserted {filled} flows",
            s.label
        );
    });
    r.measure(
        "new IPv4 flow every packet (miss + ring + insert, table full)",
        How::Live(&tx_and),
        Some(floor),
    );
    all_cpus_paths(r, floor, &tx_and);
    // A QUIC VIP's new flows whose connection id names a real: the id
    // read instead of the ring, then remembered.
    let mut quic = bench_frame(&Packet::udp(client4, 40_000, ip(VIP4_QUIC), 443));
    let id = (QUIC_REAL as u16).to_be_bytes();
    quic[42..46].copy_from_slice(&[0x40, 0x01, id[0], id[1]]);
    r.each(|s| s.set_frame(quic, VARY_FLOWS));
    r.measure(
        "new QUIC flow every packet, routed by connection id (miss + id + insert, table full)",
        How::Live(&[Counter::ConnMiss, Counter::QuicRouted, Counter::XdpTx]),
        Some(floor),
    );
    // The same VIP's long headers: no id to read, the ring (the baseline
    // of the row above).
    quic[42] = 0xc0;
    r.each(|s| s.set_frame(quic, VARY_FLOWS));
    r.measure(
        "new QUIC flow every packet, long header: the ring (miss + ring + insert, table full)",
        How::Live(&[Counter::ConnMiss, Counter::QuicFallback, Counter::XdpTx]),
        Some(floor),
    );
    // A flood of new flows past max_conn_rate: sent, not remembered. From
    // other clients: a `vary` frame's sequence has 24 bits (the port and
    // the last address byte, to stay inside the documentation range), and
    // a flood that remembers nothing would, once it wrapped, meet the flows
    // the row above left in the table.
    let mut flood = test_config();
    flood.max_conn_rate = 1;
    let flood4 = bench_frame(&Packet::tcp(
        ip("203.0.113.7"),
        40_000,
        ip(VIP4),
        80,
        TCP_ACK,
    ));
    let mut limited = Vec::new();
    r.each(|s| {
        s.lb.dp.set_config(&flood).unwrap();
        s.set_frame(flood4, VARY_FLOWS);
        limited.push(s.stats().get(Counter::ConnRateLimited));
    });
    let flood_row = r.measure(
        "new IPv4 flow every packet past max_conn_rate (miss + ring, not remembered)",
        How::Flood(&tx_and),
        Some(floor),
    );
    // One flow per second per CPU may still be remembered.
    let expected = if r.rows[flood_row].samples[0].is_empty() {
        0 // not measured (--profile of another row)
    } else {
        r.runs as u64 * u64::from(PACKETS)
    };
    for (s, before) in r.sides.iter().zip(limited) {
        let limited = s.stats().get(Counter::ConnRateLimited) - before;
        assert!(
            limited + 1000 >= expected,
            "{}: only {limited} packets took the rate-limited path",
            s.label
        );
    }
    r.each(|s| {
        s.lb.dp.set_config(&test_config()).unwrap();
        s.set_frame(est4, 0);
        s.live_run(1);
    });
    r.measure(
        "established IPv4 TCP flow (connection-table hit, table full)",
        How::Live(&hit),
        Some(floor),
    );
    // The same with the next hop from the kernel's FIB (`next_hop =
    // "fib"`): a route lookup per packet; the real is on the veth's
    // subnet, so it leaves by XDP_TX.
    let mut fib = test_config();
    fib.mac_mode = MAC_MODE_FIB;
    r.each(|s| {
        s.lb.dp.set_config(&fib).unwrap();
        s.live_run(1);
    });
    r.measure(
        "established IPv4 TCP flow, next hop from the FIB (bpf_fib_lookup)",
        How::Live(&hit),
        Some(floor),
    );
    r.each(|s| s.lb.dp.set_config(&test_config()).unwrap());
    // The same, to a GUE real: 8 more bytes of UDP header to write.
    let est4_gue = bench_frame(&Packet::tcp(client4, 40_000, ip(VIP4_GUE), 80, TCP_ACK));
    r.each(|s| {
        s.set_frame(est4_gue, 0);
        s.live_run(1);
    });
    r.measure(
        "established IPv4 TCP flow to a GUE real (hit, GUE over IPv4)",
        How::Live(&hit),
        Some(floor),
    );
    r.each(|s| {
        s.set_frame(est4, 0);
        s.live_run(1);
    });
    capture_paths(r, floor, &hit);
    // Fill the IPv6 table too (from user space: the wrapper varies IPv4
    // frames only), with flows of other clients to the same VIP.
    r.each(|s| {
        for n in 0..prefill(s.tables[1]) {
            let client = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, (n >> 16) as u16, 1);
            let flow = FlowKey::new(client.into(), n as u16, ip(VIP6), 80, PROTO_TCP);
            let conn = Conn {
                real_id: 101,
                ..Conn::default()
            };
            s.lb.dp.remember(&flow, conn).expect("fill the IPv6 table");
        }
        s.lb.dp.set_config(&test_config()).unwrap();
        s.set_frame(est6, 0);
        s.live_run(1);
    });
    r.measure(
        "established IPv6 TCP flow (connection-table hit, table full)",
        How::Live(&hit),
        Some(floor),
    );
    // New IPv6 flows into the full IPv6 table: the wrapper writes its
    // sequence at the IPv4 port and address offsets, which in an IPv6
    // frame lie inside the source address (bytes 12-13 and 7), so every
    // packet comes from another client. Their base differs from every
    // remembered client (the established one, the prefill) outside those
    // bytes, so that no value of the sequence meets one of them.
    let new6 = bench_frame(&Packet::tcp(
        ip("2001:db8:e::7"),
        40_000,
        ip(VIP6),
        80,
        TCP_ACK,
    ));
    r.each(|s| s.set_frame(new6, VARY_FLOWS));
    r.measure(
        "new IPv6 flow every packet (miss + ring + insert, table full)",
        How::Live(&tx_and),
        Some(floor),
    );
    let pass = r.measure(
        "plain repeat: lb_pass (floor of the pass path)",
        How::Plain {
            program: "lb_pass",
            data: &nonvip,
            counters: &[],
        },
        None,
    );
    r.measure(
        "plain repeat: non-VIP IPv4 packet, passed",
        How::Plain {
            program: "lb_balance",
            data: &nonvip,
            counters: &[Counter::PassNotVip, Counter::XdpPass],
        },
        Some(pass),
    );
}

/// New flows inserted on every CPU at once, after every CPU has filled
/// its share of the table: what the table's locks and shared memory cost
/// when CPUs insert together (compare the one-CPU row above). Left out,
/// with the reason, on a machine of one CPU or against a baseline whose
/// wrapper has no per-CPU flows.
fn all_cpus_paths(r: &mut Runner, floor: usize, tx_and: &[Counter]) {
    let cpus = r.sides[0].cpus.len();
    if cpus < 2 {
        println!("rows on every CPU at once left out: one CPU online");
        return;
    }
    if let Some(s) = r
        .sides
        .iter_mut()
        .find_map(|s| (!s.has_per_cpu_flows()).then_some(s))
    {
        println!(
            "rows on every CPU at once left out: {}'s wrapper has no per-CPU flows (VARY_PER_CPU)",
            s.label
        );
        return;
    }
    // From clients of their own: the rows before left flows of
    // 198.51.100.0/24 in the table, the flood after sends from
    // 203.0.113.0/24, and a per-CPU sequence meets the shared one's flows.
    let frame = bench_frame(&Packet::tcp(ip("192.0.2.7"), 40_000, ip(VIP4), 80, TCP_ACK));
    r.each(|s| {
        s.set_frame(frame, VARY_FLOWS | VARY_PER_CPU);
        let before = s.stats().conn_miss;
        let prefill = prefill(s.tables[0]);
        s.live_run_all_cpus(prefill);
        let filled = s.stats().conn_miss - before;
        assert!(
            filled >= u64::from(prefill) * cpus as u64,
            "{}: prefill on {cpus} CPUs inserted {filled} flows",
            s.label
        );
    });
    r.measure(
        &format!("new IPv4 flow every packet, {cpus} CPUs at once (mean per CPU, table full)"),
        How::AllCpus(tx_and),
        Some(floor),
    );
}

/// Capture (`lb-ctl capture`): off in the rows before; on, for traffic its
/// filter leaves out, and sampled with a reader's buffers open (the buffers
/// fill and later records are counted lost, as when a reader falls behind:
/// the cost of a record written is included).
fn capture_paths(r: &mut Runner, floor: usize, hit: &[Counter]) {
    let mut capture = test_config();
    capture.capture_sample = 1;
    capture.capture_vip = 2; // VIP id 1 (IPv6) + 1: not this flow's
    capture.capture_snaplen = 256;
    r.each(|s| s.lb.dp.set_config(&capture).unwrap());
    r.measure(
        "established IPv4, capture on, filtered out (another VIP)",
        How::Live(hit),
        Some(floor),
    );
    r.each(|s| {
        let events =
            s.lb.dp
                .ebpf_mut()
                .take_map("LB_CAPTURE")
                .expect("LB_CAPTURE");
        let mut events = aya::maps::PerfEventArray::try_from(events).unwrap();
        let buffers: Vec<_> = aya::util::online_cpus()
            .unwrap()
            .into_iter()
            .map(|cpu| events.open(cpu, Some(64)).unwrap())
            .collect();
        s.hold((events, buffers));
    });
    for (sample, name) in [
        (
            1000,
            "established IPv4, capture on, 1 in 1000 packets, 256 bytes",
        ),
        (1, "established IPv4, capture on, every packet, 256 bytes"),
    ] {
        capture.capture_vip = 0;
        capture.capture_sample = sample;
        r.each(|s| s.lb.dp.set_config(&capture).unwrap());
        r.measure(name, How::Live(hit), Some(floor));
    }
}

/// Runs this thread on the last online CPU only: BPF_PROG_TEST_RUN runs on
/// the caller's CPU, and both sides must be measured on the same one.
fn pin_to_last_cpu() {
    let cpu = *aya::util::online_cpus()
        .expect("online CPUs")
        .last()
        .expect("a CPU");
    lb_tests::pin_to_cpu(cpu);
    println!("running on CPU {cpu}");
}
