//! `lb-ctl daemon` in the lab: health checks take a failed backend out of
//! its rings in time and bring it back; the CLI drives the daemon (every
//! command, `--json` decoded); drain keeps established flows; a daemon
//! killed with SIGKILL and restarted loses no request.
use std::{
    collections::BTreeSet,
    net::IpAddr,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use lb_ctl::{
    api::pb,
    vocab::{Proto, VipId},
};
use lb_tests::{
    lab::{
        HTTP_PORT, Lab, LabOptions, VIP4,
        client::{HttpConn, http_get},
        test_bins,
    },
    netns::unique_tag,
    require_root, time_until,
};
use serde_json::Value;

fn vip4() -> VipId {
    VipId {
        addr: VIP4.parse().unwrap(),
        port: HTTP_PORT,
        proto: Proto::Tcp,
    }
}

/// A lab whose VIP route points at site A only.
fn lab(tag: &str) -> Lab {
    let lab = Lab::up(LabOptions::new(
        &format!("lbt{tag}{}", unique_tag()),
        test_bins(),
    ))
    .expect("lab up");
    lab.route_vips(&['A']).unwrap();
    lab
}

/// The metrics endpoint's answer (status line, headers, body), read from
/// inside namespace `ns`.
fn metrics_of(ns: &str) -> String {
    lb_tests::netns::run_in(ns, || {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect("127.0.0.1:9180").expect("metrics endpoint");
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        body
    })
}

#[test]
fn health_checks_move_a_failed_backend_out_and_back_in_time() {
    if !require_root("health_checks_move_a_failed_backend_out_and_back_in_time") {
        return;
    }
    let lab = lab("h");
    let vip = vip4();
    let a = lab.lbs.get(&'A').unwrap();
    let (a1, a2) = (
        a.real_id(&vip, "a1").unwrap(),
        a.real_id(&vip, "a2").unwrap(),
    );
    let before = a.ring_now(&vip).unwrap();
    assert!(before.contains(&a1) && before.contains(&a2));

    // Kept connections to a2, made before a1 fails.
    let ns = lab.ns("c1");
    let vip_addr: IpAddr = VIP4.parse().unwrap();
    let mut on_a2 = Vec::new();
    while on_a2.len() < 5 {
        let mut c = HttpConn::open(&ns, vip_addr, HTTP_PORT).unwrap();
        if c.get().unwrap() == "a2" {
            on_a2.push(c);
        }
    }

    // The default check: every 250 ms, down after 2 failures, up after 2
    // successes. Bound: interval * fall + one interval.
    let interval = lb_ctl::config::DEFAULT_CHECK_INTERVAL;
    let bound = interval * lb_ctl::config::DEFAULT_CHECK_FALL + interval;
    lab.stop_server("a1").unwrap();
    let a = lab.lbs.get(&'A').unwrap();
    let gone = time_until(Duration::from_secs(5), || {
        !a.ring_now(&vip).unwrap().contains(&a1)
    })
    .expect("a1 left the ring");
    eprintln!("a1 left the ring {gone:?} after its server stopped");
    assert!(gone <= bound, "a1 left after {gone:?}, bound {bound:?}");
    let after = a.ring_now(&vip).unwrap();
    for (slot, (&b, &n)) in before.iter().zip(&after).enumerate() {
        if b == a2 {
            assert_eq!(n, a2, "slot {slot} of a2 unchanged");
        }
    }
    for c in &mut on_a2 {
        assert_eq!(c.get().unwrap(), "a2", "a2's established flows untouched");
    }

    lab.start_server("a1").unwrap();
    let a = lab.lbs.get(&'A').unwrap();
    let back = time_until(Duration::from_secs(5), || {
        a.ring_now(&vip).unwrap() == before
    })
    .expect("a1 came back");
    eprintln!("a1 was back in the ring {back:?} after its server started");
    assert!(
        back <= bound,
        "a1 came back after {back:?}, bound {bound:?}"
    );
    for c in &mut on_a2 {
        assert_eq!(c.get().unwrap(), "a2");
    }
}

/// Runs `lb-ctl --socket S args`; returns (exit success, stdout, stderr).
fn lb_ctl(socket: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(&test_bins().lb_ctl)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run lb-ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `lb-ctl ARGS` (with `--json`), decoded into its typed reply: a field
/// the type lacks, a missing one or a wrong type fails the test, so the
/// printed format is the API's reply type.
fn decoded<T: serde::de::DeserializeOwned>(socket: &Path, args: &[&str]) -> T {
    let (ok, out, err) = lb_ctl(socket, args);
    assert!(ok, "lb-ctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!(
            "lb-ctl {args:?} printed no {} ({e}): {out}",
            std::any::type_name::<T>()
        )
    })
}

fn vip_list(socket: &Path) -> pb::ListVipsReply {
    decoded(socket, &["vip", "list", "--json"])
}

fn ok(socket: &Path, args: &[&str]) -> String {
    let (ok, out, err) = lb_ctl(socket, args);
    assert!(ok, "lb-ctl {args:?} failed: {err}");
    out
}

fn refused(socket: &Path, args: &[&str], words: &str) {
    let (ok, _, err) = lb_ctl(socket, args);
    assert!(!ok, "lb-ctl {args:?} should fail");
    assert!(
        err.contains(words),
        "lb-ctl {args:?}: `{err}` should say `{words}`"
    );
}

/// The reals of `vip` in a VIP list: (address, weight, state).
fn reals_of(list: &pb::ListVipsReply, vip: &str) -> Vec<(String, u32, String)> {
    let v = list
        .vips
        .iter()
        .find(|v| {
            v.vip
                .as_ref()
                .and_then(|v| VipId::try_from(v).ok())
                .is_some_and(|id| id.to_string() == vip)
        })
        .unwrap_or_else(|| panic!("no VIP {vip} in {list:?}"));
    v.reals
        .iter()
        .map(|r| (r.address.clone(), r.weight, r.state.clone()))
        .collect()
}

#[test]
fn the_cli_drives_the_daemon() {
    if !require_root("the_cli_drives_the_daemon") {
        return;
    }
    let lab = lab("c");
    let a = lab.lbs.get(&'A').unwrap();
    let sock = a.socket.clone();

    let status: pb::StatusReply = decoded(&sock, &["status", "--json"]);
    assert_eq!(status.interface, "eth0");
    assert_eq!((status.vips, status.reals, status.reals_healthy), (4, 8, 8));
    assert!(!status.adopted);
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
    assert!(ok(&sock, &["status"]).contains("4 VIPs, 8 reals, 8 healthy"));

    let list = vip_list(&sock);
    assert_eq!(list.vips.len(), 4);
    let reals = reals_of(&list, "203.0.113.10:80/tcp");
    assert_eq!(reals.len(), 2);
    assert!(
        reals.iter().all(|(_, w, s)| *w == 1 && s == "up"),
        "{reals:?}"
    );

    // A new VIP with a TCP check, a real, a weight, a drain, a removal.
    let new = "203.0.113.50:8080/tcp";
    assert!(
        ok(
            &sock,
            &[
                "vip",
                "add",
                new,
                "--ring-size",
                "251",
                "--health",
                "tcp",
                "--health-port",
                "80"
            ]
        )
        .contains("added VIP")
    );
    let first = ok(
        &sock,
        &["real", "add", "--vip", new, "192.0.2.18", "--weight", "3"],
    );
    assert!(!first.contains("note:"), "251 slots for one real: {first}");
    // The ring of 251 slots gives the lighter real 62 (1 of 4 by weight):
    // the answer says so (advice, not a refusal).
    let second = ok(&sock, &["real", "add", "--vip", new, "192.0.2.22"]);
    assert!(
        second.contains(
            "note: VIP 203.0.113.50:8080/tcp: its ring of 251 slots gives its lightest real 62"
        ),
        "{second}"
    );
    let list: pb::ListVipsReply = decoded(&sock, &["real", "list", "--vip", new, "--json"]);
    assert_eq!(list.vips.len(), 1, "only the VIP asked for");
    let check = list.vips[0].health.as_ref().expect("its check");
    assert_eq!((check.kind.as_str(), check.port), ("tcp", Some(80)));
    assert_eq!(list.vips[0].ring_size, 251);
    let reals = reals_of(&list, new);
    assert_eq!(reals.len(), 2);
    assert_eq!(reals[0].1, 3);
    ok(&sock, &["real", "weight", "--vip", new, "192.0.2.22", "5"]);
    ok(&sock, &["real", "drain", "--vip", new, "192.0.2.18"]);
    let reals = reals_of(&vip_list(&sock), new);
    let by_addr: std::collections::BTreeMap<_, _> = reals
        .iter()
        .map(|(a, w, s)| (a.as_str(), (*w, s.as_str())))
        .collect();
    assert_eq!(by_addr["192.0.2.18"].0, 0);
    assert_eq!(by_addr["192.0.2.22"].0, 5);
    // The drained real is draining once healthy (it starts down until its
    // check passes `rise` times).
    let drained = time_until(Duration::from_secs(5), || {
        let r = reals_of(&vip_list(&sock), new);
        r.iter()
            .any(|(a, _, s)| a == "192.0.2.18" && s == "draining")
    });
    assert!(drained.is_some(), "drained real shows as draining");
    ok(&sock, &["real", "del", "--vip", new, "192.0.2.18"]);
    assert_eq!(reals_of(&vip_list(&sock), new).len(), 1);
    // An IPv6 VIP takes an IPv4 real (IPv6-in-IPv4).
    let vip6 = "[2001:db8:f::10]:80/tcp";
    let before = reals_of(&vip_list(&sock), vip6).len();
    ok(&sock, &["real", "add", "--vip", vip6, "192.0.2.18"]);
    assert!(
        reals_of(&vip_list(&sock), vip6)
            .iter()
            .any(|(a, _, _)| a == "192.0.2.18")
    );
    ok(&sock, &["real", "del", "--vip", vip6, "192.0.2.18"]);
    assert_eq!(reals_of(&vip_list(&sock), vip6).len(), before);

    // Mistakes: a clear message and a non-zero exit, nothing changed.
    refused(
        &sock,
        &["real", "add", "--vip", "203.0.113.51:80/tcp", "192.0.2.18"],
        "no VIP 203.0.113.51:80/tcp",
    );
    refused(
        &sock,
        &["real", "add", "--vip", new, "192.0.2.22"],
        "already",
    );
    refused(
        &sock,
        &["real", "del", "--vip", new, "192.0.2.99"],
        "has no real 192.0.2.99",
    );
    refused(&sock, &["vip", "add", new], "exists already");
    refused(
        &sock,
        &["vip", "add", "203.0.113.52:80/tcp", "--ring-size", "1000"],
        "not prime",
    );
    refused(
        &sock,
        &["vip", "add", "203.0.113.52:80/icmp"],
        "ADDRESS:PORT/PROTOCOL",
    );
    refused(
        &sock,
        &[
            "real",
            "add",
            "--vip",
            "[2001:db8:f::10]:80/tcp",
            "203.0.113.10",
        ],
        "is a VIP address",
    );
    refused(
        &sock,
        &["real", "weight", "--vip", new, "192.0.2.22", "2000000"],
        "above",
    );
    let (okay, _, err) = lb_ctl(Path::new("/run/no-such-lb.sock"), &["status"]);
    assert!(
        !okay && err.contains("cannot reach the lb-ctl daemon"),
        "{err}"
    );
    assert_eq!(vip_list(&sock).vips.len(), 5);

    // API changes survive in the state file.
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(a.socket.with_extension("state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["vips"].as_array().unwrap().len(), 5);

    ok(&sock, &["vip", "del", new]);
    refused(&sock, &["vip", "del", new], "no VIP");

    // Stats and health, decoded.
    http_get(&lab.ns("c1"), VIP4.parse().unwrap(), HTTP_PORT).unwrap();
    let stats: pb::StatsReply = decoded(&sock, &["stats", "--json"]);
    let counters: std::collections::BTreeMap<&str, u64> = stats
        .counters
        .iter()
        .map(|c| (c.name.as_str(), c.value))
        .collect();
    assert_eq!(
        counters.len(),
        lb_common::stats::Counter::COUNT,
        "every counter"
    );
    assert!(
        counters["xdp_tx"] > 0 && counters["conn_miss"] > 0,
        "{counters:?}"
    );
    let web = stats
        .vips
        .iter()
        .find(|v| {
            v.vip
                .as_ref()
                .is_some_and(|v| v.address == VIP4 && v.port == 80)
        })
        .unwrap();
    assert!(web.traffic.unwrap_or_default().packets > 0);
    assert_eq!(web.reals.len(), 2);
    let health: pb::HealthReply = decoded(&sock, &["health", "--json"]);
    let probes = &health.reals;
    // Two backends, each probed once for HTTP (shared by the v4 TCP VIP
    // only) and once for UDP; v6 VIPs probe the v6 addresses.
    let keys: BTreeSet<(String, String)> = probes
        .iter()
        .map(|p| (p.address.clone(), p.check.clone()))
        .collect();
    assert_eq!(keys.len(), probes.len(), "one prober per real and check");
    assert!(probes.iter().all(|p| p.healthy && !p.vips.is_empty()));
    assert!(!ok(&sock, &["stats"]).is_empty());
    assert!(ok(&sock, &["health"]).contains("192.0.2.18"));

    // explain, from the pinned maps, with the daemon's health view.
    let pins = a.pin_dir.display().to_string();
    let e: serde_json::Value = serde_json::from_str(&ok(
        &sock,
        &[
            "explain",
            "tcp",
            "198.51.100.2:40000",
            "203.0.113.10:80",
            "--pin-dir",
            &pins,
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(e["verdict"], "forward", "{e}");
    let real = e["real"]["address"].as_str().unwrap();
    assert!(real == "192.0.2.18" || real == "192.0.2.22", "{e}");
    assert_eq!(e["health"]["healthy"], true, "{e}");

    // Prometheus metrics, from inside the LB host's namespace.
    let metrics = metrics_of(&a.ns);
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("lb_up 1"));
    let tx: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("lb_xdp_verdicts_total{verdict=\"tx\"} "))
        .and_then(|v| v.parse().ok())
        .expect("xdp_tx sample");
    assert!(tx > 0, "forwarded packets counted");
    assert!(
        metrics.contains("lb_real_up{vip=\"203.0.113.10:80/tcp\",real=\"192.0.2.18\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("lb_health_healthy{real=\"192.0.2.18\""));
}

#[test]
fn reload_applies_a_good_file_and_refuses_a_bad_one() {
    if !require_root("reload_applies_a_good_file_and_refuses_a_bad_one") {
        return;
    }
    let lab = lab("r");
    let a = lab.lbs.get(&'A').unwrap();
    let sock = a.socket.clone();
    let good = std::fs::read_to_string(&a.config).unwrap();

    // A mistake: refused with its line; nothing changes.
    let bad = good.replacen("ring_size = 4093", "ring_size = 4096", 1);
    let bad_line = bad
        .lines()
        .position(|l| l.contains("ring_size = 4096"))
        .unwrap()
        + 1;
    std::fs::write(&a.config, &bad).unwrap();
    let (okay, _, err) = lb_ctl(&sock, &["reload"]);
    assert!(!okay, "bad file refused");
    assert!(
        err.contains(&format!(":{bad_line}:")) && err.contains("not prime"),
        "{err}"
    );
    assert_eq!(vip_list(&sock).vips[0].ring_size, 4093);

    // A good change: the reload applies it (a3 joins), as SIGHUP would.
    let more = good.replace(
        "  [[vip.real]]\n  address = \"192.0.2.22\"\n",
        "  [[vip.real]]\n  address = \"192.0.2.22\"\n  [[vip.real]]\n  address = \"192.0.2.26\"\n",
    );
    assert_ne!(more, good);
    std::fs::write(&a.config, &more).unwrap();
    let reply = ok(&sock, &["reload"]);
    assert!(reply.contains("reloaded"), "{reply}");
    assert!(!reply.contains("[bgp]"), "no [bgp] change: {reply}");
    let reals = reals_of(&vip_list(&sock), "203.0.113.10:80/tcp");
    assert_eq!(reals.len(), 3);

    // A [bgp] section added by a reload is not applied (BGP starts with
    // the daemon), and the reply says so rather than staying silent.
    let with_bgp = format!(
        "{more}\n[bgp]\nasn = 65001\nrouter_id = \"192.0.2.2\"\nanycast_prefixes = [\"203.0.113.0/24\", \"2001:db8:f::/48\"]\n\n  [[bgp.neighbor]]\n  address = \"192.0.2.1\"\n  asn = 65000\n"
    );
    std::fs::write(&a.config, &with_bgp).unwrap();
    let reply = ok(&sock, &["reload"]);
    assert!(
        reply.contains("a [bgp] section was added: NOT applied"),
        "{reply}"
    );
    let bgp: pb::BgpStatusReply = decoded(&sock, &["bgp", "status", "--json"]);
    assert!(!bgp.enabled && bgp.announced.is_empty(), "{bgp:?}");
}

#[test]
fn drain_keeps_established_flows_and_sends_no_new_ones() {
    if !require_root("drain_keeps_established_flows_and_sends_no_new_ones") {
        return;
    }
    let lab = lab("d");
    let sock = lab.lbs.get(&'A').unwrap().socket.clone();
    let ns = lab.ns("c1");
    let vip: IpAddr = VIP4.parse().unwrap();
    let mut on_a1 = Vec::new();
    while on_a1.len() < 5 {
        let mut c = HttpConn::open(&ns, vip, HTTP_PORT).unwrap();
        if c.get().unwrap() == "a1" {
            on_a1.push(c);
        }
    }
    ok(
        &sock,
        &[
            "real",
            "drain",
            "--vip",
            "203.0.113.10:80/tcp",
            "192.0.2.18",
        ],
    );
    for c in &mut on_a1 {
        assert_eq!(
            c.get().unwrap(),
            "a1",
            "established flow stays on the drained real"
        );
    }
    for _ in 0..40 {
        assert_ne!(
            http_get(&ns, vip, HTTP_PORT).unwrap().backend,
            "a1",
            "no new flow to the drained real"
        );
    }
}

#[test]
fn a_killed_daemon_restarts_without_losing_a_request() {
    if !require_root("a_killed_daemon_restarts_without_losing_a_request") {
        return;
    }
    let mut lab = lab("s");
    let ns = lab.ns("c1");
    let vip: IpAddr = VIP4.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    // Kept connections, each asking again and again.
    for _ in 0..4 {
        let (ns, stop, done, failed) = (ns.clone(), stop.clone(), done.clone(), failed.clone());
        workers.push(std::thread::spawn(move || {
            let mut c = HttpConn::open(&ns, vip, HTTP_PORT).expect("connect");
            let first = c.get().expect("first");
            while !stop.load(Ordering::Relaxed) {
                match c.get() {
                    Ok(b) if b == first => done.fetch_add(1, Ordering::Relaxed),
                    Ok(b) => {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("kept connection moved {first} -> {b}"));
                        0
                    }
                    Err(e) => {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("kept connection: {e:#}"));
                        return;
                    }
                };
                std::thread::sleep(Duration::from_millis(5));
            }
        }));
    }
    // New connections, one after another.
    for _ in 0..2 {
        let (ns, stop, done, failed) = (ns.clone(), stop.clone(), done.clone(), failed.clone());
        workers.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match http_get(&ns, vip, HTTP_PORT) {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failed
                            .lock()
                            .unwrap()
                            .push(format!("new connection: {e:#}"));
                        0
                    }
                };
            }
        }));
    }
    std::thread::sleep(Duration::from_millis(500));
    // A change made through the API before the crash must survive it.
    let sock = lab.lbs.get(&'A').unwrap().socket.clone();
    ok(
        &sock,
        &[
            "real",
            "weight",
            "--vip",
            "203.0.113.10:5300/udp",
            "192.0.2.22",
            "7",
        ],
    );
    let before = done.load(Ordering::Relaxed);
    lab.kill_daemon('A').unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let while_dead = done.load(Ordering::Relaxed) - before;
    lab.start_daemon('A').unwrap();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    eprintln!(
        "{} requests answered, {while_dead} of them while the daemon was dead",
        done.load(Ordering::Relaxed)
    );
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        while_dead > 10,
        "traffic went on while the daemon was dead: {while_dead}"
    );
    // The restarted daemon adopted the pinned state.
    let a = lab.lbs.get(&'A').unwrap();
    let status: pb::StatusReply = decoded(&a.socket, &["status", "--json"]);
    assert!(status.adopted);
    assert_eq!(status.reals_healthy, 8);
    let reals = reals_of(&vip_list(&a.socket), "203.0.113.10:5300/udp");
    assert!(
        reals
            .iter()
            .any(|(addr, w, _)| addr == "192.0.2.22" && *w == 7),
        "API change kept: {reals:?}"
    );
}

#[test]
fn a_veth_peer_without_xdp_is_reported_in_stats_metrics_and_the_log() {
    if !require_root("a_veth_peer_without_xdp_is_reported_in_stats_metrics_and_the_log") {
        return;
    }
    let lab = lab("v");
    let host = lab.lbs.get(&'A').unwrap();
    let sock = host.socket.clone();
    let ns = lab.ns("c1");
    let vip: IpAddr = VIP4.parse().unwrap();
    // The lab's router end runs a pass program: XDP_TX works, no errors.
    let ping = |count: &str| {
        Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-c", count, "-i", "0.05", "-W", "1",
            ])
            .arg(vip.to_string())
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(ping("3"), "the balancer answers ping");
    let stats: pb::StatsReply = decoded(&sock, &["stats", "--json"]);
    let nic = stats.nic.expect("the NIC's view");
    assert_eq!(nic.driver, "veth");
    assert_eq!(nic.xdp_tx_errors, Some(0));
    // Without it, the balancer's answers are lost in the driver.
    lab.remove_router_xdp(host.leaf.name).unwrap();
    assert!(!ping("5"), "no answer: the veth driver drops XDP_TX frames");
    let stats: pb::StatsReply = decoded(&sock, &["stats", "--json"]);
    let errors = stats.nic.and_then(|n| n.xdp_tx_errors).unwrap_or_default();
    assert!(errors >= 5, "xdp_tx_errors {errors}");
    let text = ok(&sock, &["stats"]);
    assert!(text.contains(&format!("xdp_tx_errors {errors}")), "{text}");
    assert!(text.contains("WARNING"), "{text}");
    let metrics = metrics_of(&host.ns);
    assert!(
        metrics.contains(&format!(
            "lb_nic_xdp_tx_errors_total{{interface=\"eth0\",driver=\"veth\"}} {errors}"
        )),
        "{metrics}"
    );
    // The daemon watches the counter every second and warns.
    let warned = time_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&host.log)
            .is_ok_and(|l| l.contains("the driver dropped frames the balancer sent with XDP_TX"))
    });
    assert!(warned.is_some(), "a warning in the daemon's log");
    // And it said so at start: attached natively to a veth.
    let log = std::fs::read_to_string(&host.log).unwrap();
    assert!(log.contains("native XDP on a veth"), "{log}");
}
