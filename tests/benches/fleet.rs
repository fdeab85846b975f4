//! Fleet figures on the lab (root): a real etcd in the router's namespace,
//! both LB hosts following it.
//!
//! - Propagation: 100 changes, each written with `Store::apply` (what
//!   `lb-ctl fleet apply` calls, without the process start), timed from the
//!   call until both hosts' daemons hold it (their API lists the new weight:
//!   the controller answers only once its maps are written). Median, p99
//!   and max.
//! - Scale: 1,000 VIPs x 100 reals (one pool of 100 addresses, ring
//!   10007, no health check; 100,000 (VIP, real) pairs: the LB hosts run
//!   with `max_reals = 131072`) applied in one transaction: time until site A's
//!   daemon holds them all; then site A's daemon restarted without its LKG
//!   file: time until it has listed, checked and applied them (it adopts
//!   the pinned maps), and its peak memory (VmHWM).
//!
//! - One checker's capacity (`fleet/capacity.rs`): reals probed per
//!   second on one core, with TCP and HTTP checks every second.
//!
//! Run with `cargo xtask bench fleet`.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use lb_ctl::{
    api::pb,
    config::{Check, RealConfig, VipConfig},
    fleet::schema::Desired,
    vocab::{Proto, VipId},
};
use lb_tests::lab::{Lab, LabOptions, lb::vips_text, test_bins};

#[path = "fleet/capacity.rs"]
mod capacity;

const CHANGES: usize = 100;
const SCALE_VIPS: u16 = 1000;
/// Reals per VIP (100,000 pairs in all: the hosts' real tables have
/// [`MAX_REALS`] slots).
const SCALE_REALS: u8 = 100;
const MAX_REALS: u32 = 131_072;

fn weight_of(lab: &Lab, site: char, vip: &str, real: &str) -> Option<u32> {
    let list = lab.lbs[&site]
        .api(|mut c| async move { Ok(c.list_vips(pb::ListVipsRequest {}).await?.into_inner()) })
        .ok()?;
    let v = list.vips.iter().find(|v| {
        v.vip
            .as_ref()
            .and_then(|v| VipId::try_from(v).ok())
            .is_some_and(|id| id.to_string() == vip)
    })?;
    v.reals.iter().find(|r| r.address == real).map(|r| r.weight)
}

fn vip_count(lab: &Lab, site: char) -> u32 {
    lab.lbs[&site].status().map_or(0, |s| s.vips)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// The lab's VIPs (site A's backends), as the store holds them.
fn lab_desired() -> Desired {
    lb_ctl::config::parse_fleet_file(std::path::Path::new("lab"), &vips_text(&["a1", "a2"]))
        .expect("the lab's fleet file")
        .into()
}

fn propagation(lab: &Lab) {
    let vip = "203.0.113.10:80/tcp";
    let real = "192.0.2.22"; // a2
    let mut took = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let weight = 2 + i as u32;
        let mut d = lab_desired();
        let id: VipId = vip.parse().unwrap();
        for r in &mut d.vips.get_mut(&id).unwrap().reals {
            if r.address.to_string() == real {
                r.weight = weight;
            }
        }
        let start = Instant::now();
        lab.with_store(move |mut st| async move { Ok(st.apply(&d, None).await?) })
            .expect("apply");
        loop {
            if ['A', 'B']
                .iter()
                .all(|&s| weight_of(lab, s, vip, real) == Some(weight))
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "change {i} did not arrive"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "| propagation, {CHANGES} changes, 2 hosts | median {} | p99 {} | max {} |",
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
        ms(took[took.len() - 1])
    );
}

fn scale(lab: &mut Lab) {
    let mut d = lab_desired();
    let lab_vips = d.vips.len() as u32;
    for port in 0..SCALE_VIPS {
        let vip = VipConfig {
            address: "203.0.113.50".parse().unwrap(),
            port: 10_000 + port,
            protocol: Proto::Tcp,
            ring_size: 10_007,
            no_conn_table: false,
            quic: false,
            encap: Default::default(),
            health: Check::none(),
            min_healthy: 1,
            communities: None,
            med: None,
            reals: (0..SCALE_REALS)
                .map(|i| RealConfig {
                    address: std::net::IpAddr::from([192, 0, 2, 100 + i]),
                    weight: 1,
                    health: None,
                    encap: None,
                })
                .collect(),
        };
        d.vips.insert(vip.id(), vip);
    }
    let want = lab_vips + u32::from(SCALE_VIPS);
    let start = Instant::now();
    lab.with_store(move |mut st| async move { Ok(st.apply(&d, None).await?) })
        .expect("apply the large state (etcd started with room for it)");
    let written = start.elapsed();
    while vip_count(lab, 'A') != want {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "site A did not take the large state"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let applied = start.elapsed();
    println!(
        "| {SCALE_VIPS} VIPs x {SCALE_REALS} reals applied | written in {} | site A holds them {} after the call |",
        ms(written),
        ms(applied)
    );
    // A start without the LKG file: list, check, apply.
    lab.kill_daemon('A').unwrap();
    let host = lab.lbs.get(&'A').unwrap();
    std::fs::remove_file(host.lkg()).unwrap();
    let start = Instant::now();
    lab.start_daemon('A').unwrap();
    let pid = lab.daemon_pid('A').unwrap();
    while vip_count(lab, 'A') != want {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "site A did not start with the large state"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = start.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (hwm, file) = (kib("VmHWM:"), kib("RssFile:"));
    println!(
        "| restart without LKG: list + check + apply {SCALE_VIPS} VIPs x {SCALE_REALS} reals | {} (process start included) | peak memory of lb-ctl (VmHWM) {} MiB |",
        ms(started),
        hwm / 1024
    );
    // The rings are mmapped arrays: their pages (the kernel's map memory)
    // count in lb-ctl's RSS as file pages once it maps them (at load), and
    // stay mapped; what is left of the peak is lb-ctl's own memory.
    println!(
        "| of which mapped files (the rings' maps, the binary) | {} MiB | lb-ctl's own memory at its peak (VmHWM - RssFile) {} MiB |",
        file / 1024,
        hwm.saturating_sub(file) / 1024
    );
    // The wall time above includes the harness's own view of the maps
    // (it loads and adopts them too, about 1 s): the daemon's own start,
    // from its log, is from its first line to "ready" (the VIPs applied).
    let log = std::fs::read_to_string(&lab.lbs[&'A'].log).unwrap_or_default();
    let restart: Vec<&str> = log
        .lines()
        .rev()
        .take_while(|l| !l.contains("waiting for the store"))
        .collect();
    let first = log
        .lines()
        .rev()
        .find(|l| l.contains("waiting for the store"));
    let ready = restart.iter().find(|l| l.contains(" ready "));
    if let (Some(a), Some(b)) = (
        first.and_then(seconds_of_day),
        ready.and_then(|l| seconds_of_day(l)),
    ) {
        println!(
            "| the daemon's own start, from its first log line to ready (listed, checked, maps loaded and adopted, applied) | {:.0} ms | |",
            (b - a) * 1e3
        );
    }
    for line in restart
        .iter()
        .rev()
        .filter(|l| l.contains("first state from the store") || l.contains("balancer attached"))
    {
        println!("    {}", line.chars().take(110).collect::<String>());
    }
}

/// Seconds since midnight of a log line's `...THH:MM:SS.ffffffZ` stamp.
fn seconds_of_day(line: &str) -> Option<f64> {
    let t = line
        .split_whitespace()
        .next()?
        .split_once('T')?
        .1
        .trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("the fleet bench needs root (namespaces, XDP)");
        std::process::exit(1);
    }
    let mut opts = LabOptions::new("lbfleetbench", test_bins());
    opts.fleet = 1;
    opts.max_reals = MAX_REALS;
    opts.backends = BTreeMap::from([('A', vec!["a1", "a2"]), ('B', vec!["a1", "a2"])]);
    let mut lab = Lab::up(opts).expect("lab up");
    println!("| figure | | | |\n|---|---|---|---|");
    // LB_BENCH_FLEET=scale runs the scale figures only.
    if std::env::var("LB_BENCH_FLEET").as_deref() != Ok("scale") {
        propagation(&lab);
        println!();
        capacity::checker_capacity(&lab, &lab_desired());
    }
    println!("\n| figure | | | |\n|---|---|---|---|");
    scale(&mut lab);
}
