//! Fleet health checking against a real etcd: `lb-ctl checker` replicas
//! (in client c2's namespace) elect one active checker, which probes the
//! lab's backends once for both LB hosts. The hosts take its verdicts and
//! stop their own probes; a standby takes over from a killed leader within
//! TTL + 1 s without a real flipping down or the router losing the VIP's
//! route; a frozen ex-leader is fenced out; a host cut off from etcd
//! checks locally after `stale_after` and takes a dead backend out itself;
//! a checker cut off from the backends is not believed; with three etcd
//! members, losing the Raft leader changes nothing and losing the quorum
//! stops nothing that forwards.
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
    fleet_lab_of(tag, bgp, 1)
}

/// A fleet lab whose etcd has `members` members.
fn fleet_lab_of(tag: &str, bgp: bool, members: usize) -> Lab {
    let mut opts = LabOptions::new(&format!("lbt{tag}{}", unique_tag()), test_bins());
    opts.fleet = members;
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

fn real_down(lab: &Lab, site: char, name: &str) -> bool {
    backend_is(lab, site, name, false)
}

/// Waits up to 5 s until backend `name` is up (`up`) or down on both
/// hosts.
fn on_both_within_5s(lab: &Lab, name: &str, up: bool) -> bool {
    time_until(Duration::from_secs(5), || {
        backend_is(lab, 'A', name, up) && backend_is(lab, 'B', name, up)
    })
    .is_some()
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
    assert!(
        on_both_within_5s(&lab, "a2", false),
        "a2 down on both hosts by the checker's verdict"
    );
    lab.start_server("a2").unwrap();
    assert!(on_both_within_5s(&lab, "a2", true));

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
    assert!(
        on_both_within_5s(&lab, "a1", false),
        "a1 down on both hosts by the checker's verdicts"
    );
    lab.start_server("a1").unwrap();
    assert!(on_both_within_5s(&lab, "a1", true));

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

/// The logs of checkers chk-1 and chk-2, for a failure message.
fn checker_logs(lab: &Lab) -> String {
    format!(
        "--- chk-1 ---\n{}\n--- chk-2 ---\n{}",
        std::fs::read_to_string(lab.checker_log("chk-1")).unwrap_or_default(),
        std::fs::read_to_string(lab.checker_log("chk-2")).unwrap_or_default()
    )
}

/// Fails the test if a host holds a real down or the router lost the
/// VIP's route (the checks made while the store is in trouble).
fn assert_nothing_went_down(lab: &Lab, when: &str) {
    for site in ['A', 'B'] {
        let down = lab.lbs[&site].reals_down().unwrap();
        assert_eq!(down, 0, "site {site} {when}: {}", source(lab, site));
    }
    let vip: IpAddr = VIP4.parse().unwrap();
    assert_eq!(
        kernel_nexthops(&lab.ns("r"), vip).len(),
        2,
        "the router's routes to the VIP {when}"
    );
}

/// Samples [`assert_nothing_went_down`] every 50 ms until `done` holds;
/// how long it took (`limit` at most).
fn watch_until(
    lab: &Lab,
    when: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        assert_nothing_went_down(lab, when);
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn vip_held(lab: &Lab, site: char, vip: &str) -> bool {
    let list = lab.lbs[&site]
        .api(|mut c| async move { Ok(c.list_vips(pb::ListVipsRequest {}).await?.into_inner()) })
        .unwrap();
    list.vips
        .iter()
        .filter_map(|v| v.vip.as_ref())
        .any(|v| lb_ctl::vocab::VipId::try_from(v).unwrap().to_string() == vip)
}

/// The lab's VIPs plus `extra` (one VIP, real a1), as a fleet file.
fn fleet_file_with(extra: &str) -> String {
    format!(
        "{}\n[[vip]]\naddress = \"{extra}\"\nport = 80\nprotocol = \"tcp\"\n  [[vip.real]]\n  address = \"192.0.2.18\"\n",
        lb_tests::lab::lb::vips_text(&["a1", "a2"])
    )
}

#[test]
fn losing_an_etcd_member_changes_nothing_and_losing_the_quorum_stops_nothing_that_forwards() {
    if !require_root(
        "losing_an_etcd_member_changes_nothing_and_losing_the_quorum_stops_nothing_that_forwards",
    ) {
        return;
    }
    let mut lab = fleet_lab_of("hq", true, 3);
    lab.start_checker("chk-1", "5s").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    lab.start_checker("chk-2", "5s").unwrap();
    wait_fleet_source(&lab, "chk-1");
    assert!(
        time_until(Duration::from_secs(5), || fleet_status(&lab)
            .round
            .is_some_and(|r| r.up == REALS as usize))
        .is_some()
    );
    let traffic = Traffic::start(&lab);
    // With every member up, no host lost its connection (etcd closes
    // connections pinged too often: that broke them every 2 s).
    for site in ['A', 'B'] {
        let log = std::fs::read_to_string(&lab.lbs[&site].log).unwrap();
        assert!(!log.contains("out of reach"), "site {site}:\n{log}");
    }

    // The Raft leader is killed: the two others elect one; a change still
    // reaches both hosts; no real goes down, the routes stay, and the
    // fleet's checker keeps deciding.
    let first = lab.etcd_leader().unwrap();
    lab.signal_etcd(first, libc::SIGKILL);
    let killed = Instant::now();
    let vip_a = "203.0.113.41:80/tcp";
    let applied = (0..50).find_map(|_| {
        let r = lab.fleet_apply(&fleet_file_with("203.0.113.41"));
        if r.is_err() {
            std::thread::sleep(Duration::from_millis(100));
        }
        r.ok()
    });
    assert!(
        applied.is_some(),
        "the store took no change with 2 of 3 members"
    );
    let mut oldest_round = 0;
    let mut reached = None;
    let settled = watch_until(&lab, "with a member lost", Duration::from_secs(10), || {
        let s = fleet_status(&lab);
        oldest_round = oldest_round.max(s.round_age_ms.unwrap_or(0));
        if reached.is_none() && vip_held(&lab, 'A', vip_a) && vip_held(&lab, 'B', vip_a) {
            reached = Some(killed.elapsed());
        }
        reached.is_some() && killed.elapsed() > Duration::from_secs(4)
    });
    eprintln!(
        "member e{first} (the Raft leader) killed: a change reached both hosts {reached:?} after the kill; the checker's rounds were at most {oldest_round} ms old"
    );
    assert!(settled.is_some(), "{:?}", fleet_status(&lab));
    // The checker kept its lease and its leadership through the election:
    // a failed keep-alive or write is tried again, not a step-down.
    assert_eq!(leader(&lab).as_deref(), Some("chk-1"));
    assert!(oldest_round < 5_000, "rounds {oldest_round} ms old");
    let fleet_again = time_until(Duration::from_secs(5), || {
        ['A', 'B']
            .iter()
            .all(|&s| source(&lab, s) == "fleet (checker chk-1)")
    });
    assert!(
        fleet_again.is_some(),
        "A {}, B {}\n{}",
        source(&lab, 'A'),
        source(&lab, 'B'),
        checker_logs(&lab)
    );

    // A second member is killed: no quorum. Changes are refused, the
    // checker's heartbeat stops, and after stale_after the hosts check
    // locally; they keep their VIPs, routes and forwarding throughout.
    let second = (0..3).find(|&i| i != first).unwrap();
    lab.signal_etcd(second, libc::SIGKILL);
    let lost = Instant::now();
    let refused = lab.fleet_apply(&fleet_file_with("203.0.113.42"));
    assert!(refused.is_err(), "a change without a quorum: {refused:?}");
    let local = watch_until(&lab, "without a quorum", Duration::from_secs(15), || {
        ['A', 'B']
            .iter()
            .all(|&s| source(&lab, s).starts_with("local"))
    });
    eprintln!(
        "quorum lost: both hosts check locally {:?} after the second kill (stale_after 2 s)",
        local.map(|_| lost.elapsed())
    );
    assert!(
        local.is_some(),
        "A {}, B {}",
        source(&lab, 'A'),
        source(&lab, 'B')
    );
    watch_until(&lab, "without a quorum", Duration::from_secs(2), || false);
    for site in ['A', 'B'] {
        assert_eq!(status(&lab, site).vips, 5, "site {site} kept its VIPs");
    }
    eprintln!("without a quorum for {:?}", lost.elapsed());

    // The quorum is back: a checker decides again and the fleet follows
    // changes again.
    lab.restart_etcd(first).unwrap();
    lab.restart_etcd(second).unwrap();
    let back = watch_until(
        &lab,
        "after the quorum came back",
        Duration::from_secs(20),
        || {
            ['A', 'B']
                .iter()
                .all(|&s| source(&lab, s).starts_with("fleet (checker"))
        },
    );
    eprintln!("quorum back: both hosts on fleet verdicts again {back:?} after the restart");
    assert!(
        back.is_some(),
        "A {}, B {}\n{}",
        source(&lab, 'A'),
        source(&lab, 'B'),
        checker_logs(&lab)
    );
    lab.fleet_apply(&fleet_file_with("203.0.113.42")).unwrap();
    assert!(
        time_until(Duration::from_secs(5), || vip_held(
            &lab,
            'A',
            "203.0.113.42:80/tcp"
        ) && vip_held(
            &lab,
            'B',
            "203.0.113.42:80/tcp"
        ))
        .is_some()
    );
    let (answered, failed) = traffic.stop();
    eprintln!(
        "requests through the VIP meanwhile: {answered} answered, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}
