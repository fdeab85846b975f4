//! Fleet health checking against a real etcd: `lb-ctl checker` replicas
//! (in client c2's namespace) elect one active checker, which probes the
//! lab's backends once for both LB hosts. The hosts take its verdicts and
//! stop their own probes; a standby takes over from a killed leader within
//! TTL + 1 s without a real flipping down or the router losing the VIP's
//! route; a frozen ex-leader is fenced out; a host cut off from etcd
//! checks locally after `stale_after` and takes a dead backend out itself;
//! a checker cut off from the backends is not believed.
use std::{
    collections::BTreeMap,
    net::IpAddr,
    time::{Duration, Instant},
};

use lb_ctl::{
    api::pb,
    fleet::{checker::fenced, status::FleetStatus},
};
use lb_tests::{
    lab::{
        Lab, LabOptions, VIP4,
        fleet::{CHECKER_NS, ETCD_ADDRS},
        router::kernel_nexthops,
        test_bins,
        topology::{Role, leaves},
        traffic::Traffic,
    },
    netns::unique_tag,
    require_root, time_until,
};

/// Reals in the lab's fleet: 4 VIPs x (a1, a2).
const REALS: u32 = 8;

fn fleet_lab(tag: &str, bgp: bool) -> Lab {
    let mut opts = LabOptions::new(&format!("lbt{tag}{}", unique_tag()), test_bins());
    opts.fleet = 1;
    opts.bgp = bgp;
    opts.backends = BTreeMap::from([('A', vec!["a1", "a2"]), ('B', vec!["a1", "a2"])]);
    let lab = Lab::up(opts).expect("lab up");
    if !bgp {
        lab.route_vips(&['A']).unwrap();
    }
    lab
}

fn status(lab: &Lab, site: char) -> pb::StatusReply {
    lab.lbs[&site].status().expect("status")
}

/// Probes site `site`'s own probers have made so far.
fn local_checks(lab: &Lab, site: char) -> u64 {
    let h = lab.lbs[&site].health().expect("health");
    h.reals.iter().map(|r| r.checks).sum()
}

/// Whether backend `name` is up (`up`) or down for every check on `site`.
fn backend_is(lab: &Lab, site: char, name: &str, up: bool) -> bool {
    let checks = lab.lbs[&site].backend_health(name).expect("health");
    checks.iter().all(|h| *h == up)
}

fn real_up(lab: &Lab, site: char, name: &str) -> bool {
    backend_is(lab, site, name, true)
}

fn real_down(lab: &Lab, site: char, name: &str) -> bool {
    backend_is(lab, site, name, false)
}

fn fleet_status(lab: &Lab) -> FleetStatus {
    lab.fleet_status().expect("fleet status")
}

fn leader(lab: &Lab) -> Option<String> {
    fleet_status(lab).round.map(|r| r.checker)
}

fn source(lab: &Lab, site: char) -> String {
    status(lab, site).health_source
}

/// Waits until both hosts take their verdicts from checker `id`.
fn wait_fleet_source(lab: &Lab, id: &str) {
    let want = format!("fleet (checker {id})");
    let ok = time_until(Duration::from_secs(20), || {
        ['A', 'B'].iter().all(|&s| source(lab, s) == want)
    });
    assert!(
        ok.is_some(),
        "both hosts on {want}: A {}, B {}",
        source(lab, 'A'),
        source(lab, 'B')
    );
}

#[test]
fn one_checker_decides_for_every_host_and_a_standby_takes_over_within_ttl() {
    if !require_root("one_checker_decides_for_every_host_and_a_standby_takes_over_within_ttl") {
        return;
    }
    let lab = fleet_lab("hc", true);
    let first = lab.start_checker("chk-1", "5s").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let second = lab.start_checker("chk-2", "5s").unwrap();
    wait_fleet_source(&lab, "chk-1");
    // The first round may come before the first probes (unknown).
    let judged = time_until(Duration::from_secs(5), || {
        fleet_status(&lab)
            .round
            .is_some_and(|r| r.up == REALS as usize)
    });
    let s = fleet_status(&lab);
    assert!(judged.is_some(), "every real up: {s:?}");
    assert_eq!(s.checkers, ["chk-1", "chk-2"], "leader first: {s:?}");
    let r = s.round.clone().unwrap();
    assert_eq!((r.up, r.down, r.unknown), (REALS as usize, 0, 0), "{r:?}");

    // The hosts' own probers are stopped: their counts stand still.
    let before = (local_checks(&lab, 'A'), local_checks(&lab, 'B'));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(before, (local_checks(&lab, 'A'), local_checks(&lab, 'B')));

    // A backend dies: the checker's verdict takes it out on both hosts.
    lab.stop_server("a2").unwrap();
    let out = time_until(Duration::from_secs(5), || {
        real_down(&lab, 'A', "a2") && real_down(&lab, 'B', "a2")
    });
    assert!(
        out.is_some(),
        "a2 down on both hosts by the checker's verdict"
    );
    lab.start_server("a2").unwrap();
    assert!(
        time_until(Duration::from_secs(5), || real_up(&lab, 'A', "a2")
            && real_up(&lab, 'B', "a2"))
        .is_some()
    );

    // The leader is killed: chk-2 leads within TTL + 1 s; no real flips
    // down on either host, the router keeps the VIP's route throughout.
    let router = lab.ns("r");
    let vip: IpAddr = VIP4.parse().unwrap();
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first, libc::SIGKILL) };
    let killed = Instant::now();
    let mut took_over = None;
    while killed.elapsed() < Duration::from_secs(15) {
        for site in ['A', 'B'] {
            let s = status(&lab, site);
            assert_eq!(
                s.reals_healthy, REALS,
                "site {site} during the takeover: {}",
                s.health_source
            );
        }
        assert!(
            !kernel_nexthops(&router, vip).is_empty(),
            "the router lost the VIP's route"
        );
        if took_over.is_none() && leader(&lab).as_deref() == Some("chk-2") {
            took_over = Some(killed.elapsed());
        }
        if took_over.is_some()
            && ['A', 'B']
                .iter()
                .all(|&s| source(&lab, s) == "fleet (checker chk-2)")
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took_over = took_over.expect("chk-2 took over");
    eprintln!("takeover: chk-2 leads {took_over:?} after chk-1 was killed (lease 5 s)");
    assert!(took_over <= Duration::from_secs(6), "took {took_over:?}");
    wait_fleet_source(&lab, "chk-2");

    // A clean stop resigns at once: a standby leads well within the TTL.
    lab.start_checker("chk-3", "5s").unwrap();
    assert!(
        time_until(Duration::from_secs(5), || fleet_status(&lab).checkers
            == ["chk-2", "chk-3"])
        .is_some()
    );
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(second, libc::SIGTERM) };
    let resigned = time_until(Duration::from_secs(5), || {
        leader(&lab).as_deref() == Some("chk-3")
    });
    eprintln!("clean stop: chk-3 leads {resigned:?} after chk-2 got SIGTERM");
    assert!(
        resigned.is_some_and(|t| t < Duration::from_secs(2)),
        "{resigned:?}"
    );
    let log = std::fs::read_to_string(lab.checker_log("chk-2")).unwrap();
    assert!(log.contains("checker: resigned"), "{log}");
}

#[test]
fn a_frozen_leader_is_fenced_out_and_results_never_mix() {
    if !require_root("a_frozen_leader_is_fenced_out_and_results_never_mix") {
        return;
    }
    let lab = fleet_lab("hf", false);
    let first = lab.start_checker("chk-1", "2s").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab.start_checker("chk-2", "2s").unwrap();
    wait_fleet_source(&lab, "chk-1");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(first, libc::SIGSTOP) };
    assert!(
        time_until(Duration::from_secs(10), || leader(&lab).as_deref()
            == Some("chk-2"))
        .is_some()
    );
    std::thread::sleep(Duration::from_secs(1));
    // SAFETY: as above.
    unsafe { libc::kill(first, libc::SIGCONT) };
    let log = lab.checker_log("chk-1");
    let stepped = time_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("stepped down")
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        stepped.is_some(),
        "chk-1 stepped down after SIGCONT:\n{text}"
    );
    let why = text
        .lines()
        .find(|l| l.contains("stepped down"))
        .unwrap_or_default();
    eprintln!("chk-1 after SIGCONT: {why}");
    std::thread::sleep(Duration::from_secs(2));
    let s = fleet_status(&lab);
    assert_eq!(
        s.round.as_ref().map(|r| r.checker.as_str()),
        Some("chk-2"),
        "{s:?}"
    );
    assert_eq!(
        s.checkers,
        ["chk-2", "chk-1"],
        "chk-1 campaigns again, behind: {s:?}"
    );

    // Replay every revision of health/ and checkers/round: at no revision
    // do results of two checkers stand side by side.
    // The fence itself: a leader key whose lease is gone writes nothing;
    // the key of a live campaign writes.
    let (stale, live) = lab
        .with_store(|mut st| async move {
            let c = &mut st.client;
            let election = "/lbt-fence/leader";
            let old = c.lease_grant(2, None).await?.id();
            let old_key = c
                .campaign(election, "old", old)
                .await?
                .take_leader()
                .unwrap();
            c.lease_revoke(old).await?;
            let put = |v: &str| vec![etcd_client::TxnOp::put("/lbt-fence/result", v, None)];
            let stale = fenced(c, &old_key, put("old")).await?;
            let new = c.lease_grant(2, None).await?.id();
            let new_key = c
                .campaign(election, "new", new)
                .await?
                .take_leader()
                .unwrap();
            let live = fenced(c, &new_key, put("new")).await?;
            let result = c.get("/lbt-fence/result", None).await?;
            c.lease_revoke(new).await?;
            c.delete(
                "/lbt-fence/",
                Some(etcd_client::DeleteOptions::new().with_prefix()),
            )
            .await?;
            Ok((stale, live && result.kvs()[0].value() == b"new"))
        })
        .unwrap();
    assert!(!stale, "a deposed leader's write is refused");
    assert!(live, "the leader's write goes through");

    let mixed = lab.health_writers_history().unwrap();
    let (mixed, seen) = mixed;
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        ["chk-1", "chk-2"],
        "the replay saw both checkers' results"
    );
    assert!(mixed.is_empty(), "results of two checkers mixed: {mixed:?}");
}

#[test]
fn a_host_cut_off_checks_locally_and_a_checker_cut_off_is_not_believed() {
    if !require_root("a_host_cut_off_checks_locally_and_a_checker_cut_off_is_not_believed") {
        return;
    }
    let lab = fleet_lab("hp", false);
    lab.start_checker("chk-1", "5s").unwrap();
    wait_fleet_source(&lab, "chk-1");

    // Site A cut off from etcd: traffic goes on; after stale_after (2 s)
    // it checks locally.
    let a_ns = lab.lbs[&'A'].ns.clone();
    let blackhole = |ns: &str, verb: &str, prefixes: &[String]| {
        for p in prefixes {
            let _ = std::process::Command::new("ip")
                .args(["-n", ns, "route", verb, "blackhole", p])
                .output();
        }
    };
    let etcd: Vec<String> = ETCD_ADDRS.iter().map(|a| format!("{a}/32")).collect();
    let traffic = Traffic::start(&lab);
    blackhole(&a_ns, "add", &etcd);
    let cut = Instant::now();
    let local = time_until(Duration::from_secs(10), || {
        source(&lab, 'A').starts_with("local")
    });
    let (answered, failed) = traffic.stop();
    eprintln!(
        "cut off: local checks after {local:?} ({:?} since the cut)",
        cut.elapsed()
    );
    assert!(
        local.is_some(),
        "site A checks locally: {}",
        source(&lab, 'A')
    );
    assert!(
        failed.is_empty() && answered > 20,
        "{answered} answered, failed: {failed:?}"
    );
    assert_eq!(source(&lab, 'B'), "fleet (checker chk-1)");
    // A backend dies during the cut: site A's own check takes it out.
    lab.stop_server("a1").unwrap();
    assert!(time_until(Duration::from_secs(5), || real_down(&lab, 'A', "a1")).is_some());
    // Healed: site A believes the checker again, which has a1 down too.
    blackhole(&a_ns, "del", &etcd);
    assert!(
        time_until(Duration::from_secs(15), || source(&lab, 'A')
            == "fleet (checker chk-1)")
        .is_some()
    );
    let both_down = time_until(Duration::from_secs(5), || {
        real_down(&lab, 'A', "a1") && real_down(&lab, 'B', "a1")
    });
    assert!(
        both_down.is_some(),
        "a1 down on both hosts by the checker's verdicts"
    );
    lab.start_server("a1").unwrap();
    assert!(
        time_until(Duration::from_secs(5), || real_up(&lab, 'A', "a1")
            && real_up(&lab, 'B', "a1"))
        .is_some()
    );

    // The checker cut off from every backend finds them all down: not
    // believed; the hosts keep their reals up and check locally.
    let c2 = lab.ns(CHECKER_NS);
    let backends: Vec<String> = leaves(Role::Backend, None)
        .flat_map(|b| [format!("{}/32", b.addr4()), format!("{}/128", b.addr6())])
        .collect();
    blackhole(&c2, "add", &backends);
    let mut seen_down = false;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        for site in ['A', 'B'] {
            assert_eq!(
                status(&lab, site).reals_healthy,
                REALS,
                "site {site}: {}",
                source(&lab, site)
            );
        }
        seen_down |= fleet_status(&lab)
            .round
            .is_some_and(|r| r.down == REALS as usize);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen_down,
        "the checker found every real down: {:?}",
        fleet_status(&lab).round
    );
    for site in ['A', 'B'] {
        let s = source(&lab, site);
        assert!(s.contains("not believed"), "site {site}: {s}");
    }
    blackhole(&c2, "del", &backends);
    wait_fleet_source(&lab, "chk-1");
}
