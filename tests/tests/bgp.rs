//! Anycast with real BGP: each LB host's lb-ctl drives a real gobgpd, the
//! lab router runs FRR, and the router's kernel routing table is checked.
//! The failover scenarios are timed from the event to the kernel table's
//! change (docs/FAILOVER.md has the figures).
use std::{
    collections::BTreeMap,
    net::IpAddr,
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use lb_ctl::api::pb;
use lb_tests::{
    lab::{
        HTTP_PORT, Lab, LabOptions, UDP_PORT, VIP4, VIP6,
        client::{http_get, udp_echo},
        router::{RouteMonitor, kernel_nexthops, no_route_drops, wait_nexthops},
        test_bins,
        topology::{backend_by_name, leaf},
    },
    netns::unique_tag,
    require_root,
};

fn vip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bgp_lab(tag: &str) -> Lab {
    let mut opts = LabOptions::new(&format!("lbt{tag}{}", unique_tag()), test_bins());
    opts.bgp = true;
    Lab::up(opts).expect("lab up with BGP")
}

/// A BGP lab whose site A uses a gobgpd the lab runs as an operator would
/// (`manage = false`).
fn operator_lab(tag: &str) -> Lab {
    let mut opts = LabOptions::new(&format!("lbt{tag}{}", unique_tag()), test_bins());
    opts.bgp = true;
    opts.operator_gobgpd = vec!['A'];
    Lab::up(opts).expect("lab up with an operator's gobgpd on site A")
}

/// The LB hosts' next-hop addresses for `vip` at `sites`.
fn hops(sites: &[char], vip: IpAddr) -> Vec<IpAddr> {
    sites
        .iter()
        .map(|s| leaf(if *s == 'A' { "lba" } else { "lbb" }).addr_for(vip))
        .collect()
}

/// Sends `n` new HTTP requests from c1 and returns the sites that answered.
fn sites_answering(lab: &Lab, vip: IpAddr, n: usize) -> BTreeMap<char, usize> {
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let r = http_get(&lab.ns("c1"), vip, HTTP_PORT).expect("request answered");
        let site = backend_by_name(&r.backend)
            .and_then(|b| b.site)
            .expect("a backend");
        *out.entry(site).or_insert(0) += 1;
    }
    out
}

/// `lb-ctl bgp status --json` of the daemon at `socket`, decoded into
/// its typed reply (a field the type lacks fails the test).
fn bgp_status(socket: &std::path::Path) -> pb::BgpStatusReply {
    let out = Command::new(test_bins().lb_ctl)
        .arg("--socket")
        .arg(socket)
        .args(["bgp", "status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a BgpStatusReply ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn a_site_whose_backends_all_fail_is_withdrawn_and_comes_back() {
    if !require_root("a_site_whose_backends_all_fail_is_withdrawn_and_comes_back") {
        return;
    }
    let lab = bgp_lab("f");
    let r = lab.ns("r");
    for v in [VIP4, VIP6] {
        assert_eq!(
            kernel_nexthops(&r, vip(v)),
            hops(&['A', 'B'], vip(v)),
            "both sites announced {v}"
        );
    }
    let status = bgp_status(&lab.lbs[&'A'].socket);
    assert_eq!(status.peers[0].state, "established");
    assert_eq!(status.announced.len(), 2);

    // 1. Every backend of site A fails.
    let t0 = Instant::now();
    lab.stop_server("a1").unwrap();
    lab.stop_server("a2").unwrap();
    let took = wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['B'], vip(VIP4)),
        Duration::from_secs(5),
    )
    .expect("site A withdrawn");
    wait_nexthops(
        &r,
        vip(VIP6),
        &hops(&['B'], vip(VIP6)),
        Duration::from_secs(5),
    )
    .expect("site A withdrawn (v6)");
    eprintln!(
        "all backends of site A failed: the router dropped site A after {took:?} ({:?} for v6)",
        t0.elapsed()
    );
    assert!(
        took <= Duration::from_secs(1),
        "withdrawal took {took:?}; target 1 s"
    );
    let answered = sites_answering(&lab, vip(VIP4), 30);
    assert_eq!(
        answered.keys().copied().collect::<Vec<_>>(),
        vec!['B'],
        "all new requests served by site B: {answered:?}"
    );
    let status = bgp_status(&lab.lbs[&'A'].socket);
    assert_eq!(status.announced.len(), 0);
    assert!(
        status.withheld[0].reason.contains("0 of 2 reals healthy"),
        "{status:?}"
    );

    // 4. Site A's backends come back: announced again (after the
    // hold-down), and it takes its share again.
    let t0 = Instant::now();
    lab.start_server("a1").unwrap();
    lab.start_server("a2").unwrap();
    let took = wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['A', 'B'], vip(VIP4)),
        Duration::from_secs(10),
    )
    .expect("site A back");
    eprintln!(
        "site A's backends came back: announced again after {took:?} (rise + 2 s hold-down + BGP)"
    );
    assert!(t0.elapsed() >= Duration::from_secs(2), "the hold-down held");
    let answered = sites_answering(&lab, vip(VIP4), 60);
    assert!(
        answered.get(&'A').copied().unwrap_or(0) > 0,
        "site A takes its share again: {answered:?}"
    );
}

#[test]
fn a_dead_lb_host_is_dropped_within_the_hold_time() {
    if !require_root("a_dead_lb_host_is_dropped_within_the_hold_time") {
        return;
    }
    let mut lab = bgp_lab("k");
    let r = lab.ns("r");
    let t0 = Instant::now();
    lab.kill_lb_host('A').unwrap();
    let took = wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['B'], vip(VIP4)),
        Duration::from_secs(6),
    )
    .expect("site A dropped");
    eprintln!(
        "site A's LB host died hard: the router dropped it after {took:?} ({:?} since the kill)",
        t0.elapsed()
    );
    assert!(
        took <= Duration::from_millis(3500),
        "hold time 3 s + propagation; took {took:?}"
    );
    let answered = sites_answering(&lab, vip(VIP4), 20);
    assert_eq!(answered.keys().copied().collect::<Vec<_>>(), vec!['B']);
}

#[test]
fn a_hung_lb_host_is_dropped_after_the_hold_time() {
    if !require_root("a_hung_lb_host_is_dropped_after_the_hold_time") {
        return;
    }
    let lab = bgp_lab("h");
    let r = lab.ns("r");
    lab.freeze_lb_host('A').unwrap();
    let took = wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['B'], vip(VIP4)),
        Duration::from_secs(8),
    )
    .expect("site A dropped");
    eprintln!("site A's LB host hung (no keepalives): the router dropped it after {took:?}");
    assert!(
        took <= Duration::from_millis(3500),
        "hold time 3 s + propagation; took {took:?}"
    );
    assert!(
        took >= Duration::from_secs(2),
        "it was the hold timer: {took:?}"
    );
    let answered = sites_answering(&lab, vip(VIP4), 20);
    assert_eq!(answered.keys().copied().collect::<Vec<_>>(), vec!['B']);
}

#[test]
fn a_graceful_stop_withdraws_before_exiting_and_loses_no_request() {
    if !require_root("a_graceful_stop_withdraws_before_exiting_and_loses_no_request") {
        return;
    }
    let mut lab = bgp_lab("g");
    let r = lab.ns("r");
    let stop = Arc::new(AtomicBool::new(false));
    // Every request: protocol, start, end, error.
    type Log = Vec<(&'static str, Instant, Instant, Option<String>)>;
    let log = Arc::new(Mutex::new(Log::new()));
    let mut workers = Vec::new();
    for (client, proto) in [("c1", "udp"), ("c2", "udp"), ("c1", "tcp"), ("c2", "tcp")] {
        let (ns, stop, log) = (lab.ns(client), stop.clone(), log.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for v in [VIP4, VIP6] {
                    let start = Instant::now();
                    let res = if proto == "udp" {
                        udp_echo(&ns, vip(v), UDP_PORT).map(drop)
                    } else {
                        http_get(&ns, vip(v), HTTP_PORT).map(drop)
                    };
                    log.lock().unwrap().push((
                        proto,
                        start,
                        Instant::now(),
                        res.err().map(|e| format!("{v}: {e:#}")),
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    // Record every change of the router's table, and count what it drops
    // for want of a route: while site B announces the VIPs, the routes
    // must change in place, never be deleted and added again (FRR's zebra
    // does that to IPv6 routes unless started with --v6-rr-semantics, and
    // the packet that arrives in between is lost).
    let monitor = RouteMonitor::start(&r, &lab.run_dir().join("graceful-stop-routes.log"))
        .expect("ip monitor route");
    let no_route_before = no_route_drops(&r).expect("router counters");
    // Watch the router's table while site A's lb-ctl stops.
    let watcher = {
        let r = r.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if kernel_nexthops(&r, vip(VIP4)) == hops(&['B'], vip(VIP4)) {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        })
    };
    let t0 = Instant::now();
    let exited = lab.stop_daemon('A').expect("graceful stop");
    let withdrawn = watcher.join().unwrap().expect("the route was withdrawn");
    eprintln!(
        "graceful stop: route withdrawn after {:?}, lb-ctl exited after {:?}",
        withdrawn - t0,
        exited - t0
    );
    // lb-ctl's part: it exits only after every withdrawal has left gobgpd
    // for every neighbor (adj-rib-out empty), plus a margin for the router.
    // When the router's kernel then changes the route is the router's
    // business: under CPU starvation FRR can take longer than the margin,
    // and this watcher (an `ip` process every millisecond) sees it late too;
    // nothing is lost meanwhile, since the balancer stays attached and keeps
    // forwarding to site A's reals (the zero-loss check below).
    let daemon_log = std::fs::read_to_string(&lab.lbs[&'A'].log).unwrap_or_default();
    assert!(
        daemon_log.contains("every route withdrawn from every neighbor"),
        "lb-ctl exited before its withdrawals had left gobgpd:\n{daemon_log}"
    );
    assert!(
        withdrawn - t0 <= Duration::from_secs(1),
        "the router dropped site A {:?} after the stop; target 1 s",
        withdrawn - t0
    );
    if withdrawn > exited {
        eprintln!(
            "note: the router's table changed {:?} after lb-ctl exited",
            withdrawn - exited
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let no_route = no_route_drops(&r).expect("router counters") - no_route_before;
    let deletions: Vec<String> = [VIP4, VIP6]
        .into_iter()
        .flat_map(|v| monitor.deletions_of(vip(v)))
        .collect();
    assert!(
        deletions.is_empty(),
        "the router deleted a VIP route that site B still announced: {deletions:?}"
    );
    assert_eq!(
        no_route, 0,
        "the router dropped {no_route} packets for want of a route during the switch"
    );
    let log = log.lock().unwrap();
    let count = |p: &str| log.iter().filter(|(q, ..)| *q == p).count();
    // A TCP connection whose flow the router moved to site B mid-request
    // (in flight at the switch, within the time the router took to apply
    // the withdrawal) can break: its real is at site A. That is anycast's
    // limit, not lb's; every other request must succeed.
    let switch = (t0, withdrawn + Duration::from_millis(5));
    let in_flight = |s: Instant, e: Instant| s <= switch.1 && e >= switch.0;
    let failed: Vec<_> = log.iter().filter(|(.., err)| err.is_some()).collect();
    let unexplained: Vec<_> = failed
        .iter()
        .filter(|(p, s, e, _)| *p == "udp" || !in_flight(*s, *e))
        .map(|(p, s, e, err)| {
            format!(
                "{p} {} (sent {:?} after the stop began, ended {:?} after)",
                err.as_deref().unwrap_or(""),
                s.saturating_duration_since(t0),
                e.saturating_duration_since(t0)
            )
        })
        .collect();
    eprintln!(
        "{} UDP and {} TCP requests; failed: {} ({} TCP in flight at the switch)",
        count("udp"),
        count("tcp"),
        failed.len(),
        failed.len() - unexplained.len()
    );
    assert!(
        count("udp") > 100 && count("tcp") > 50,
        "traffic flowed throughout"
    );
    assert!(unexplained.is_empty(), "failed requests: {unexplained:?}");
    assert!(
        failed.len() <= 2,
        "at most one in-flight TCP request per TCP client: {failed:?}"
    );
    let answered = sites_answering(&lab, vip(VIP4), 20);
    assert_eq!(answered.keys().copied().collect::<Vec<_>>(), vec!['B']);
}

#[test]
fn gobgpd_crash_is_recovered_and_routes_come_back() {
    if !require_root("gobgpd_crash_is_recovered_and_routes_come_back") {
        return;
    }
    let lab = bgp_lab("c");
    let r = lab.ns("r");
    let ns = lab.lbs[&'A'].ns.clone();
    let gobgpd = gobgpd_pids(&ns);
    assert_eq!(gobgpd.len(), 1, "one gobgpd in site A");
    let t0 = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(gobgpd[0], libc::SIGKILL) };
    // Its session drops: the router loses site A, then lb-ctl starts
    // gobgpd again, re-announces, and site A is back.
    wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['B'], vip(VIP4)),
        Duration::from_secs(5),
    )
    .expect("session dropped");
    let back = wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['A', 'B'], vip(VIP4)),
        Duration::from_secs(15),
    )
    .expect("site A re-announced");
    eprintln!(
        "gobgpd killed: site A back in the router's table {:?} after the kill",
        t0.elapsed()
    );
    let _ = back;
    let status = bgp_status(&lab.lbs[&'A'].socket);
    assert_eq!(status.gobgpd_restarts, 1, "{status:?}");
    assert_eq!(status.announced.len(), 2);
}

#[test]
fn the_hijack_guard_refuses_addresses_outside_the_anycast_prefixes() {
    if !require_root("the_hijack_guard_refuses_addresses_outside_the_anycast_prefixes") {
        return;
    }
    let lab = bgp_lab("j");
    let a = &lab.lbs[&'A'];
    // Through the API: refused, with the reason.
    let out = Command::new(test_bins().lb_ctl)
        .arg("--socket")
        .arg(&a.socket)
        .args(["vip", "add", "198.51.100.99:80/tcp"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hijack guard"));
    // In a configuration file: refused with its line.
    let text = std::fs::read_to_string(&a.config).unwrap().replacen(
        "address = \"203.0.113.10\"",
        "address = \"198.51.100.99\"",
        1,
    );
    let line = text
        .lines()
        .position(|l| l.contains("198.51.100.99"))
        .unwrap()
        + 1;
    let bad = a.config.with_extension("bad.toml");
    std::fs::write(&bad, &text).unwrap();
    let err = lb_ctl::config::load(&bad).unwrap_err().to_string();
    assert!(
        err.contains(&format!(":{line}:")) && err.contains("hijack guard"),
        "{err}"
    );
    // And a reload of it changes nothing.
    std::fs::copy(&bad, &a.config).unwrap();
    let out = Command::new(test_bins().lb_ctl)
        .arg("--socket")
        .arg(&a.socket)
        .arg("reload")
        .output()
        .unwrap();
    assert!(!out.status.success());
    // The router never learned it.
    assert!(kernel_nexthops(&lab.ns("r"), vip("198.51.100.99")).is_empty());
    let status = bgp_status(&a.socket);
    let announced: Vec<&str> = status.announced.iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(announced, vec!["203.0.113.10/32", "2001:db8:f::10/128"]);
}

#[test]
fn a_killed_lb_ctl_keeps_its_routes_and_its_successor_adopts_gobgpd() {
    if !require_root("a_killed_lb_ctl_keeps_its_routes_and_its_successor_adopts_gobgpd") {
        return;
    }
    let mut lab = bgp_lab("a");
    let r = lab.ns("r");
    // Record every change of the router's table from now on.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (r, stop) = (r.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let now = kernel_nexthops(&r, vip(VIP4));
                if seen.last() != Some(&now) {
                    seen.push(now);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen
        })
    };
    lab.kill_daemon('A').unwrap();
    std::thread::sleep(Duration::from_secs(1));
    lab.start_daemon('A').unwrap();
    // Long enough for the successor's checks to confirm the reals (rise 2
    // x 250 ms) and for a hold-down (2 s) to pass: the inherited
    // announcement is kept throughout.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    assert_eq!(
        seen,
        vec![hops(&['A', 'B'], vip(VIP4))],
        "the route never left the router"
    );
    let status = bgp_status(&lab.lbs[&'A'].socket);
    assert!(status.gobgpd.starts_with("adopted"), "{status:?}");
    assert_eq!(status.peers[0].state, "established");
    assert_eq!(status.announced.len(), 2);
    assert_eq!(status.gobgpd_restarts, 0);

    // The successor stops gracefully: it withdraws, then stops the gobgpd
    // it adopted exactly as one it started itself (its pid was recorded).
    let ns = lab.lbs[&'A'].ns.clone();
    assert_eq!(gobgpd_pids(&ns).len(), 1, "one gobgpd in site A");
    lab.stop_daemon('A').unwrap();
    wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['B'], vip(VIP4)),
        Duration::from_secs(5),
    )
    .expect("withdrawn on the stop");
    assert_eq!(
        gobgpd_pids(&ns),
        Vec::<i32>::new(),
        "the adopted gobgpd was stopped with lb-ctl"
    );
}

/// The gobgpd processes running in namespace `ns`.
fn gobgpd_pids(ns: &str) -> Vec<i32> {
    let pids = String::from_utf8(
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    pids.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p: &i32| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "gobgpd")
        })
        .collect()
}

/// Every distinct set of next hops the router's kernel table had for `vips`
/// during `how_long`, sampled every 5 ms, while `during` runs.
fn router_history(
    r: &str,
    vips: &[IpAddr],
    how_long: Duration,
    during: impl FnOnce(),
) -> Vec<(IpAddr, Vec<IpAddr>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (r, stop, vips) = (r.to_owned(), stop.clone(), vips.to_vec());
        std::thread::spawn(move || {
            let mut seen: Vec<(IpAddr, Vec<IpAddr>)> = Vec::new();
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) || start.elapsed() < how_long {
                for &v in &vips {
                    let now = (v, kernel_nexthops(&r, v));
                    if !seen.contains(&now) {
                        seen.push(now);
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            seen
        })
    };
    during();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap()
}

#[test]
fn a_restarted_lb_ctl_announces_only_once_its_own_checks_confirm_the_reals() {
    if !require_root("a_restarted_lb_ctl_announces_only_once_its_own_checks_confirm_the_reals") {
        return;
    }
    // Site A's gobgpd is the operator's (`manage = false`): it outlives
    // lb-ctl with its session to the router up, so whatever a restarted
    // lb-ctl announces reaches the router at once (a managed gobgpd would
    // be restarted, and its new session would hide an early announcement
    // behind a few seconds of BGP set-up).
    let mut lab = operator_lab("s");
    let r = lab.ns("r");
    let vips = [vip(VIP4), vip(VIP6)];
    // 1. Stopped gracefully, site A is withdrawn; its backends die while
    // its lb-ctl is away. The restarted lb-ctl adopts pinned maps that
    // still say the reals are up: the router must never send clients to
    // site A.
    lab.stop_daemon('A').unwrap();
    for v in vips {
        wait_nexthops(&r, v, &hops(&['B'], v), Duration::from_secs(5)).expect("withdrawn");
    }
    lab.stop_server("a1").unwrap();
    lab.stop_server("a2").unwrap();
    let seen = router_history(&r, &vips, Duration::from_secs(4), || {
        lab.start_daemon('A').unwrap();
    });
    for (v, hops_seen) in &seen {
        assert_eq!(
            hops_seen,
            &hops(&['B'], *v),
            "a restarted lb-ctl with dead backends announced {v}: {seen:?}"
        );
    }
    let status = bgp_status(&lab.lbs[&'A'].socket);
    assert_eq!(status.announced.len(), 0, "{status:?}");
    assert!(
        status.withheld[0].reason.contains("0 of 2 reals healthy"),
        "{status:?}"
    );

    // 2. The backends come back: announced once the checks confirm them
    // and the hold-down (2 s) has passed.
    let t0 = Instant::now();
    lab.start_server("a1").unwrap();
    lab.start_server("a2").unwrap();
    wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['A', 'B'], vip(VIP4)),
        Duration::from_secs(10),
    )
    .expect("site A back");
    let back = t0.elapsed();
    eprintln!("backends back after a restart: site A announced after {back:?}");
    assert!(
        back >= Duration::from_secs(2),
        "the hold-down held: {back:?}"
    );

    // 3. A graceful restart with healthy backends: withdrawn on the stop,
    // announced again only after the new lb-ctl's own checks and the
    // hold-down, not at once from the adopted maps.
    lab.stop_daemon('A').unwrap();
    wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['B'], vip(VIP4)),
        Duration::from_secs(5),
    )
    .expect("withdrawn");
    let t0 = Instant::now();
    lab.start_daemon('A').unwrap();
    wait_nexthops(
        &r,
        vip(VIP4),
        &hops(&['A', 'B'], vip(VIP4)),
        Duration::from_secs(10),
    )
    .expect("site A back after the restart");
    let back = t0.elapsed();
    eprintln!("graceful restart: site A announced again after {back:?}");
    assert!(
        back >= Duration::from_secs(2),
        "announced {back:?} after the restart, before checks and hold-down"
    );
}

/// The BGP sessions of the gobgpd answering at lb-ctl's default API address
/// in namespace `ns`, as its own CLI prints them.
fn gobgp_neighbors(ns: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "gobgp",
            "-u",
            "127.0.0.1",
            "-p",
            "50051",
        ])
        .arg("neighbor")
        .output()
        .expect("run gobgp");
    assert!(
        out.status.success(),
        "gobgp neighbor: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_operators_gobgpd_is_used_and_left_running_with_its_sessions() {
    if !require_root("an_operators_gobgpd_is_used_and_left_running_with_its_sessions") {
        return;
    }
    // Up only once the router's table has both sites: site A announced
    // through the operator's gobgpd.
    let mut lab = operator_lab("o");
    let r = lab.ns("r");
    let a = lab.lbs[&'A'].ns.clone();
    let status = bgp_status(&lab.lbs[&'A'].socket);
    assert!(status.gobgpd.starts_with("the operator's"), "{status:?}");
    assert_eq!(status.gobgpd_restarts, 0);

    // A graceful stop withdraws lb's routes but leaves the operator's
    // gobgpd running, its session to the router up.
    lab.stop_daemon('A').expect("graceful stop");
    for v in [VIP4, VIP6] {
        wait_nexthops(&r, vip(v), &hops(&['B'], vip(v)), Duration::from_secs(5))
            .expect("site A withdrawn");
    }
    let neighbors = gobgp_neighbors(&a);
    assert!(
        neighbors.contains("Establ"),
        "session still up: {neighbors}"
    );

    // lb-ctl started again announces through it again.
    lab.start_daemon('A').unwrap();
    for v in [VIP4, VIP6] {
        wait_nexthops(
            &r,
            vip(v),
            &hops(&['A', 'B'], vip(v)),
            Duration::from_secs(10),
        )
        .expect("site A announced again");
    }
}
