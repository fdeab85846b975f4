//! End to end against what users run instead (root): lb, nftables DNAT
//! and HAProxy forwarding to the same backends, in network namespaces on
//! veth, one core forwarding (CPU 1), the other generating (CPU 0).
//!
//! - UDP packets per second forwarded to the backends, counted there by an
//!   XDP sink (`lb_bench_sink`), from small packets (128-byte frames) sent
//!   as fast as the generator's core can (`lab/generator.rs`: live XDP
//!   frames, and why not trafgen): 1,024 established flows, and a new flow
//!   every packet. lb against nftables DNAT (this kernel has no IPVS), and
//!   both against the floor of the topology: `lb_bench_fwd`, an XDP
//!   program that only rewrites the MACs and redirects (the rate no XDP
//!   forwarder exceeds here, and the forwarding-core time each spends above
//!   it).
//! - HTTP requests per second (wrk, 32 connections) to nginx on the same
//!   backends: kept-alive connections, and a connection per request. lb
//!   (its decapsulator on the backends, replies returned directly) against
//!   HAProxy in TCP mode and nftables DNAT (replies back through them).
//!
//! Each row runs every forwarder in turn, `LB_BENCH_RUNS` rounds (default
//! 3), each run in a fresh network; it prints medians, the range, and the
//! ratios of paired runs (same round). Besides the rate, the forwarding
//! core's busy share and its time per packet or request (`/proc/stat`):
//! when the generator, not the forwarder, is the limit, the time per packet
//! is the comparison that holds. The last round of each is profiled with
//! `perf record -g -e cpu-clock -C 1` (the files stay in
//! /tmp/lb-bench-lab for `perf report`; the top symbols are printed).
//!
//! Run with `cargo xtask bench lab`.
use std::path::PathBuf;

#[path = "lab/forwarders.rs"]
mod forwarders;
#[path = "lab/generator.rs"]
mod generator;
#[path = "lab/load.rs"]
mod load;
#[path = "lab/net.rs"]
mod net;

use forwarders::{Backends, Forwarder, Setup};
use load::{Flows, TcpSample, UdpSample};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn range(v: &[f64], fmt: impl Fn(f64) -> String) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{}-{}", fmt(lo), fmt(hi))
}

/// One measurement of a row.
enum Sample {
    Udp(UdpSample),
    Tcp(TcpSample),
}

impl Sample {
    /// The rate: packets or requests per second.
    fn rate(&self) -> f64 {
        match self {
            Sample::Udp(s) => s.pps,
            Sample::Tcp(s) => s.rps,
        }
    }

    /// Forwarding-core time per packet (ns) or request (µs).
    fn cost(&self) -> f64 {
        match self {
            Sample::Udp(s) => s.ns_per_packet,
            Sample::Tcp(s) => s.us_per_request,
        }
    }

    fn busy(&self) -> f64 {
        match self {
            Sample::Udp(s) => s.busy,
            Sample::Tcp(s) => s.busy,
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    Udp(Flows),
    Tcp { close: bool },
}

struct Row {
    title: &'static str,
    load: Load,
    forwarders: &'static [Forwarder],
}

const ROWS: [Row; 4] = [
    Row {
        title: "UDP, 1,024 flows (established)",
        load: Load::Udp(Flows::Established),
        forwarders: &[Forwarder::Lb, Forwarder::Nft, Forwarder::XdpFloor],
    },
    Row {
        title: "UDP, a new flow every packet",
        load: Load::Udp(Flows::New),
        forwarders: &[Forwarder::Lb, Forwarder::Nft, Forwarder::XdpFloor],
    },
    Row {
        title: "HTTP, kept-alive connections",
        load: Load::Tcp { close: false },
        forwarders: &[Forwarder::Lb, Forwarder::Haproxy, Forwarder::Nft],
    },
    Row {
        title: "HTTP, a connection per request",
        load: Load::Tcp { close: true },
        forwarders: &[Forwarder::Lb, Forwarder::Haproxy, Forwarder::Nft],
    },
];

/// Runs `forwarder` once on `load`; profiles it into `profile` if given.
fn run_once(
    forwarder: Forwarder,
    load: Load,
    lb_ctl: &std::path::Path,
    profile: Option<&PathBuf>,
) -> (Sample, Option<serde_json::Value>) {
    let backends = match load {
        Load::Udp(_) => Backends::Sink,
        Load::Tcp { .. } => Backends::Http,
    };
    let mut setup = Setup::up(forwarder, backends, lb_ctl);
    let sample = match load {
        Load::Udp(flows) => {
            let s = load::udp_window(&mut setup, flows, profile.map(PathBuf::as_path));
            assert!(
                s.pps > 0.0,
                "{}: nothing reached the backends",
                forwarder.label()
            );
            assert_eq!(
                s.wrong_form,
                0,
                "{}: packets in the wrong form",
                forwarder.label()
            );
            Sample::Udp(s)
        }
        Load::Tcp { close } => {
            let s = load::tcp_window(&mut setup, close, profile.map(PathBuf::as_path));
            assert!(
                s.errors.is_empty(),
                "{}: wrk reported errors: {:?}",
                forwarder.label(),
                s.errors
            );
            Sample::Tcp(s)
        }
    };
    (sample, setup.lb_stats())
}

/// lb's counters as shares of its packets (those at 1% or more).
fn lb_counter_shares(stats: &serde_json::Value) -> String {
    let counters = stats["counters"].as_array().cloned().unwrap_or_default();
    let value = |name: &str| {
        counters
            .iter()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_u64())
            .unwrap_or(0)
    };
    let verdicts = [
        "xdp_pass",
        "xdp_tx",
        "xdp_drop",
        "xdp_redirect",
        "xdp_aborted",
    ];
    let total: u64 = verdicts.iter().map(|v| value(v)).sum();
    let mut shares: Vec<String> = counters
        .iter()
        .filter_map(|c| {
            let v = c["value"].as_u64()?;
            let share = v as f64 / total.max(1) as f64;
            let name = c["name"].as_str()?;
            (share >= 0.01).then(|| format!("{name} {:.1}%", share * 100.0))
        })
        .collect();
    shares.truncate(8);
    format!("{total} packets: {}", shares.join(", "))
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench lab: needs root (network namespaces, XDP); skipped");
        return;
    }
    let runs = lb_tests::bench_runs(3);
    // LB_BENCH_LAB_ONLY: only the rows whose title contains it.
    let only = std::env::var("LB_BENCH_LAB_ONLY").unwrap_or_default();
    let rows: Vec<(usize, &Row)> = ROWS
        .iter()
        .enumerate()
        .filter(|(_, r)| r.title.contains(&only))
        .collect();
    assert!(
        !rows.is_empty(),
        "LB_BENCH_LAB_ONLY={only:?} matches no row; the rows: {:?}",
        ROWS.iter().map(|r| r.title).collect::<Vec<_>>()
    );
    let bins = lb_tests::lab::test_bins();
    let profiles = std::env::temp_dir().join("lb-bench-lab");
    std::fs::create_dir_all(&profiles).expect("profile dir");
    println!(
        "# cargo xtask bench lab: {runs} rounds per row, each run a fresh network; \
         {} s measured per run after {} s of warm-up\n",
        load::WINDOW.as_secs(),
        load::WARM_UP.as_secs()
    );
    let mut where_time_goes = Vec::new();
    for (row_no, row) in rows {
        let mut samples: Vec<Vec<Sample>> = row.forwarders.iter().map(|_| Vec::new()).collect();
        let mut lb_seen = None;
        for round in 0..runs {
            // Rotate who goes first, so that no forwarder always follows
            // the same one.
            for k in 0..row.forwarders.len() {
                let i = (k + round) % row.forwarders.len();
                let f = row.forwarders[i];
                let profile = (round + 1 == runs)
                    .then(|| profiles.join(format!("row{}-{f:?}.perf.data", row_no + 1)));
                let (s, lb) = run_once(f, row.load, &bins.lb_ctl, profile.as_ref());
                if let Some(lb) = lb {
                    lb_seen = Some(lb);
                }
                if let Some(p) = profile {
                    where_time_goes.push((row.title, f, load::profile_top(&p, 6), p));
                }
                samples[i].push(s);
            }
        }
        print_row(row, &samples);
        if let Some(lb) = lb_seen {
            println!("lb's counters, last run: {}\n", lb_counter_shares(&lb));
        }
    }
    println!(
        "## Where the forwarding core's time goes (perf record -g -e cpu-clock -C 1, last round; self time)\n"
    );
    for (title, f, top, path) in where_time_goes {
        println!("{title}, {} ({}):", f.label(), path.display());
        for line in top {
            println!("    {line}");
        }
    }
}

fn print_row(row: &Row, samples: &[Vec<Sample>]) {
    let (unit, cost_unit, scale) = match row.load {
        Load::Udp(_) => ("Mpps at the backends", "ns/packet", 1e-6),
        Load::Tcp { .. } => ("requests/s", "µs/request", 1.0),
    };
    let fmt_rate = move |r: f64| {
        if scale < 1.0 {
            format!("{:.3}", r * scale)
        } else {
            format!("{r:.0}")
        }
    };
    println!("## {}\n", row.title);
    println!(
        "| forwarder | {unit} (median) | range | forwarding core busy | {cost_unit} on the forwarding core |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (f, s) in row.forwarders.iter().zip(samples) {
        let rates: Vec<f64> = s.iter().map(Sample::rate).collect();
        let busy = median(s.iter().map(Sample::busy).collect());
        let cost = median(s.iter().map(Sample::cost).collect());
        println!(
            "| {} | {} | {} | {:.0}% | {:.2} |",
            f.label(),
            fmt_rate(median(rates.clone())),
            range(&rates, fmt_rate),
            busy * 100.0,
            cost
        );
    }
    if let Load::Tcp { .. } = row.load {
        let p99: Vec<String> = row
            .forwarders
            .iter()
            .zip(samples)
            .map(|(f, s)| {
                let p: Vec<f64> = s
                    .iter()
                    .filter_map(|s| match s {
                        Sample::Tcp(t) => Some(t.p99_ms),
                        Sample::Udp(_) => None,
                    })
                    .collect();
                format!("{} {:.2} ms", f.label(), median(p))
            })
            .collect();
        println!(
            "\nwrk's 99th percentile latency (median of runs): {}",
            p99.join(", ")
        );
    }
    if let Load::Udp(_) = row.load {
        let offered: Vec<f64> = samples
            .iter()
            .flatten()
            .filter_map(|s| match s {
                Sample::Udp(u) => Some(u.offered_pps),
                Sample::Tcp(_) => None,
            })
            .collect();
        println!(
            "\noffered by the generator: {} Mpps (median over all runs)",
            fmt_rate(median(offered))
        );
    }
    // Ratios of lb to each other forwarder, paired by round.
    for (f, s) in row.forwarders.iter().zip(samples).skip(1) {
        if *f == Forwarder::XdpFloor {
            continue;
        }
        let rate: Vec<f64> = samples[0]
            .iter()
            .zip(s)
            .map(|(a, b)| a.rate() / b.rate())
            .collect();
        let cost: Vec<f64> = samples[0]
            .iter()
            .zip(s)
            .map(|(a, b)| b.cost() / a.cost())
            .collect();
        println!(
            "\nlb / {}: {:.2}x the rate (paired, range {}), {:.2}x less forwarding-core time per {} (range {})",
            f.label(),
            median(rate.clone()),
            range(&rate, |r| format!("{r:.2}")),
            median(cost.clone()),
            if scale < 1.0 { "packet" } else { "request" },
            range(&cost, |r| format!("{r:.2}")),
        );
    }
    print_against_floor(row, samples);
    println!();
}

/// Each forwarder against the floor of the same round: the share of the
/// floor's rate it reached, and its forwarding-core time per packet above
/// the floor's (what it spends on its own work); then nftables' time above
/// the floor over lb's.
fn print_against_floor(row: &Row, samples: &[Vec<Sample>]) {
    let at = |want: Forwarder| row.forwarders.iter().position(|f| *f == want);
    let Some(floor) = at(Forwarder::XdpFloor) else {
        return;
    };
    let above = |i: usize| -> Vec<f64> {
        samples[i]
            .iter()
            .zip(&samples[floor])
            .map(|(a, b)| a.cost() - b.cost())
            .collect()
    };
    println!();
    for (i, f) in row.forwarders.iter().enumerate() {
        if i == floor {
            continue;
        }
        let share: Vec<f64> = samples[i]
            .iter()
            .zip(&samples[floor])
            .map(|(a, b)| a.rate() / b.rate())
            .collect();
        let over = above(i);
        println!(
            "{} against the floor (paired): {:.2} of its rate (range {}), {:.0} ns per packet \
             above its forwarding-core time (range {})",
            f.label(),
            median(share.clone()),
            range(&share, |r| format!("{r:.2}")),
            median(over.clone()),
            range(&over, |r| format!("{r:.0}")),
        );
    }
    if let (Some(lb), Some(nft)) = (at(Forwarder::Lb), at(Forwarder::Nft)) {
        let ratios: Vec<f64> = above(nft)
            .iter()
            .zip(above(lb))
            .filter(|(_, l)| *l > 0.0)
            .map(|(n, l)| n / l)
            .collect();
        if ratios.is_empty() {
            println!("nftables / lb above the floor: lb was not above the floor in any round");
        } else {
            println!(
                "nftables / lb, forwarding-core time per packet above the floor: {:.2}x \
                 (paired, range {}, {} of {} rounds with lb above the floor)",
                median(ratios.clone()),
                range(&ratios, |r| format!("{r:.2}")),
                ratios.len(),
                samples[lb].len()
            );
        }
    }
}
