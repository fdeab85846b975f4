//! Fleet mode against a real etcd (Debian `etcd-server`, started by the
//! lab in its router's namespace): a VIP applied with `lb-ctl fleet apply`
//! reaches both LB hosts' maps within a second; a revision a host cannot
//! read is refused whole (NACK in its status) while the old state keeps
//! forwarding; a host frozen across a compaction converges; a host cut off
//! from the store keeps forwarding and catches up when healed; a daemon
//! restarted while etcd is down boots from its last known good state
//! without losing a request.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use lb_ctl::{api::pb, fleet::status::FleetStatus};
use lb_tests::{
    lab::{Lab, LabOptions, fleet::ETCD_ADDRS, lb::vips_text, test_bins, traffic::Traffic},
    netns::unique_tag,
    require_root, time_until,
};

const NEW_VIP: &str = "203.0.113.20:80/tcp";

/// A lab in fleet mode: both LB hosts follow one etcd, every VIP has a1
/// and a2; the VIP route points at site A.
fn fleet_lab(tag: &str) -> Lab {
    let mut opts = LabOptions::new(&format!("lbt{tag}{}", unique_tag()), test_bins());
    opts.fleet = 1;
    opts.backends = BTreeMap::from([('A', vec!["a1", "a2"]), ('B', vec!["a1", "a2"])]);
    let lab = Lab::up(opts).expect("lab up");
    lab.route_vips(&['A']).unwrap();
    lab
}

/// The lab's VIPs plus [`NEW_VIP`] (real a1).
fn with_new_vip() -> String {
    format!(
        "{}\n[[vip]]\naddress = \"203.0.113.20\"\nport = 80\nprotocol = \"tcp\"\n  [[vip.real]]\n  address = \"192.0.2.18\"\n",
        vips_text(&["a1", "a2"])
    )
}

/// The VIPs site `site`'s daemon holds.
fn vips_of(lab: &Lab, site: char) -> Vec<String> {
    let list = lab.lbs[&site]
        .api(|mut c| async move { Ok(c.list_vips(pb::ListVipsRequest {}).await?.into_inner()) })
        .expect("list VIPs");
    list.vips
        .iter()
        .filter_map(|v| v.vip.as_ref())
        .map(|v| lb_ctl::vocab::VipId::try_from(v).unwrap().to_string())
        .collect()
}

fn fleet_status(lab: &Lab) -> FleetStatus {
    lab.fleet_status().expect("fleet status")
}

#[test]
fn an_applied_vip_reaches_every_host_and_a_bad_revision_is_refused_whole() {
    if !require_root("an_applied_vip_reaches_every_host_and_a_bad_revision_is_refused_whole") {
        return;
    }
    let lab = fleet_lab("fa");
    for site in ['A', 'B'] {
        assert_eq!(
            vips_of(&lab, site).len(),
            4,
            "site {site} booted from the store"
        );
    }
    let s = fleet_status(&lab);
    assert_eq!(s.hosts.len(), 2, "{s:?}");
    assert!(
        s.hosts
            .iter()
            .all(|h| h.connected && h.current && h.status.refused.is_none()),
        "{s:?}"
    );

    // Apply a new VIP: both hosts hold it within a second.
    let start = Instant::now();
    let out = lab.fleet_apply(&with_new_vip()).unwrap();
    assert!(out.contains("1 keys written"), "{out}");
    let on_both = time_until(Duration::from_secs(5), || {
        ['A', 'B']
            .iter()
            .all(|&s| vips_of(&lab, s).iter().any(|v| v == NEW_VIP))
    })
    .expect("the new VIP reached both hosts");
    eprintln!(
        "apply -> both hosts: {on_both:?} after the apply returned, {:?} from its start",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(1) + on_both,
        "bounded by the CLI's own time"
    );
    assert!(on_both < Duration::from_secs(1), "took {on_both:?}");
    let s = fleet_status(&lab);
    assert!(
        s.hosts.iter().all(|h| h.current && h.status.vips == 5),
        "{s:?}"
    );

    // A value no host can read (a broken tool wrote it): refused whole,
    // the NACK names the key, the old state stays and forwards.
    let bad_key = "/lb/v1/config/vips/203.0.113.30:80/tcp";
    let bad_rev = lab
        .with_store(|mut st| async move {
            Ok(st
                .client
                .put(bad_key, "{ not json", None)
                .await?
                .header()
                .unwrap()
                .revision())
        })
        .unwrap();
    let refused = time_until(Duration::from_secs(5), || {
        fleet_status(&lab).hosts.iter().all(|h| {
            h.status
                .refused
                .as_ref()
                .is_some_and(|r| r.revision == bad_rev)
        })
    });
    let s = fleet_status(&lab);
    assert!(
        refused.is_some(),
        "both hosts NACK revision {bad_rev}: {s:?}"
    );
    for h in &s.hosts {
        let r = h.status.refused.as_ref().unwrap();
        assert!(
            r.error.contains(bad_key) && r.error.contains("not a VIP"),
            "{r:?}"
        );
        assert!(!h.current, "a host that refused is not current: {h:?}");
        assert!(h.status.applied_revision.unwrap() < bad_rev);
    }
    for site in ['A', 'B'] {
        assert_eq!(vips_of(&lab, site).len(), 5, "site {site} kept its state");
    }
    let traffic = Traffic::start(&lab);
    std::thread::sleep(Duration::from_millis(300));
    let (answered, failed) = traffic.stop();
    assert!(
        failed.is_empty() && answered > 5,
        "{answered} answered, failed: {failed:?}"
    );

    // Fixed: the hosts apply the next revision and clear the NACK.
    lab.with_store(|mut st| async move {
        st.client.delete(bad_key, None).await?;
        Ok(())
    })
    .unwrap();
    let healed = time_until(Duration::from_secs(5), || {
        fleet_status(&lab)
            .hosts
            .iter()
            .all(|h| h.current && h.status.refused.is_none())
    });
    assert!(healed.is_some(), "{:?}", fleet_status(&lab));

    // A listing whose page would pass gRPC's 4 MiB message limit (VIPs
    // with many reals) is read in smaller pages, whole.
    let listed = lab
        .with_store(|mut st| async move {
            let big = "x".repeat(1 << 20);
            for i in 0..6 {
                st.client
                    .put(format!("/lbt-pages/{i}"), big.as_str(), None)
                    .await?;
            }
            let listing = st.list("/lbt-pages/").await?;
            st.client
                .delete(
                    "/lbt-pages/",
                    Some(etcd_client::DeleteOptions::new().with_prefix()),
                )
                .await?;
            Ok(listing.kvs.len())
        })
        .unwrap();
    assert_eq!(listed, 6);
}

/// Runs `lb-ctl ARGS` on site `site`'s LB host (its namespace, which
/// reaches etcd through the router; its daemon's socket): exit status,
/// stdout and stderr.
fn lb_ctl_at(lab: &Lab, site: char, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(&test_bins().lb_ctl)
        .args(["--netns", &lab.lbs[&site].ns])
        .arg("--socket")
        .arg(&lab.lbs[&site].socket)
        .args(args)
        .env_remove("LB_FLEET_ENDPOINTS")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn vip_and_real_commands_on_a_fleet_host_change_the_store_for_every_host() {
    if !require_root("vip_and_real_commands_on_a_fleet_host_change_the_store_for_every_host") {
        return;
    }
    let lab = fleet_lab("fe");
    let vip = "203.0.113.40:80/tcp";
    let real_of = |site: char| -> Vec<(String, u32)> {
        let list = lab.lbs[&site]
            .api(|mut c| async move { Ok(c.list_vips(pb::ListVipsRequest {}).await?.into_inner()) })
            .unwrap();
        list.vips
            .iter()
            .filter(|v| {
                v.vip.as_ref().is_some_and(|id| {
                    lb_ctl::vocab::VipId::try_from(id).unwrap().to_string() == vip
                })
            })
            .flat_map(|v| v.reals.iter().map(|r| (r.address.clone(), r.weight)))
            .collect()
    };

    // Commands given to site A's daemon go to the store; both hosts follow.
    let (ok, out, err) = lb_ctl_at(&lab, 'A', &["vip", "add", vip]);
    assert!(ok, "{err}");
    assert!(out.contains("in the fleet's store at revision"), "{out}");
    let (ok, _, err) = lb_ctl_at(
        &lab,
        'A',
        &["real", "add", "--vip", vip, "192.0.2.18", "--weight", "2"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = lb_ctl_at(&lab, 'B', &["real", "add", "--vip", vip, "192.0.2.22"]);
    assert!(ok, "{err}");
    let want = vec![("192.0.2.18".to_owned(), 2), ("192.0.2.22".to_owned(), 1)];
    for site in ['A', 'B'] {
        let got = time_until(Duration::from_secs(5), || {
            let mut r = real_of(site);
            r.sort();
            r == want
        });
        assert!(got.is_some(), "site {site}: {:?}", real_of(site));
    }

    // Refused changes: a clear error, nothing written to the store.
    let before = lab
        .with_store(|mut st| async move { Ok(st.desired().await?.1.last_change()) })
        .unwrap();
    let refusals: [(&[&str], &str); 5] = [
        (&["vip", "add", vip], "already exists"),
        (&["vip", "del", "203.0.113.99:80/tcp"], "not found"),
        (
            &["real", "add", "--vip", vip, "192.0.2.18"],
            "already exists",
        ),
        (
            &["real", "weight", "--vip", vip, "192.0.2.99", "3"],
            "not found",
        ),
        (
            &["real", "add", "--vip", vip, "203.0.113.10"],
            "is a VIP address",
        ),
    ];
    for (args, says) in refusals {
        let (ok, _, err) = lb_ctl_at(&lab, 'A', args);
        assert!(
            !ok && err.contains(says),
            "{args:?}: `{err}` does not say `{says}`"
        );
    }
    let after = lab
        .with_store(|mut st| async move { Ok(st.desired().await?.1.last_change()) })
        .unwrap();
    assert_eq!(after, before, "a refused change wrote to the store");

    // Drain and remove through the store; the daemon's own API still
    // refuses changes (the VIPs are the store's), naming the way.
    let (ok, _, err) = lb_ctl_at(&lab, 'B', &["real", "drain", "--vip", vip, "192.0.2.18"]);
    assert!(ok, "{err}");
    assert!(
        time_until(Duration::from_secs(5), || real_of('A')
            .contains(&("192.0.2.18".to_owned(), 0)))
        .is_some()
    );
    let refused = lab.lbs[&'A'].api(|mut c| async move {
        let r = c
            .del_vip(pb::DelVipRequest {
                vip: Some((&vip.parse::<lb_ctl::vocab::VipId>().unwrap()).into()),
            })
            .await;
        Ok(r.map(|_| ()))
    });
    let status = refused
        .unwrap()
        .expect_err("the API refuses a fleet host's change");
    assert!(
        status.message().contains("follows the fleet's store"),
        "{status:?}"
    );
    let (ok, _, err) = lb_ctl_at(&lab, 'A', &["vip", "del", vip]);
    assert!(ok, "{err}");
    for site in ['A', 'B'] {
        assert!(
            time_until(Duration::from_secs(5), || !vips_of(&lab, site)
                .iter()
                .any(|v| v == vip))
            .is_some(),
            "site {site} still has {vip}"
        );
        assert_eq!(vips_of(&lab, site).len(), 4);
    }
}

#[test]
fn a_host_frozen_across_a_compaction_converges_and_a_cut_off_host_keeps_forwarding() {
    if !require_root(
        "a_host_frozen_across_a_compaction_converges_and_a_cut_off_host_keeps_forwarding",
    ) {
        return;
    }
    let mut lab = fleet_lab("fc");
    lab.fleet_apply(&with_new_vip()).unwrap();
    assert!(
        time_until(Duration::from_secs(5), || vips_of(&lab, 'B')
            .iter()
            .any(|v| v == NEW_VIP))
        .is_some()
    );

    // Site B's daemon frozen; the VIP removed, many revisions, compacted.
    let pid = lab.daemon_pid('B').unwrap() as i32;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    lab.fleet_apply(&vips_text(&["a1", "a2"])).unwrap();
    let rev = lab
        .with_store(|mut st| async move {
            // Megabytes of events under config/ (a key no host reads: a
            // NACK, then deleted), more than the frozen watcher's stream
            // holds, so that etcd cancels it at the compaction.
            let bulk = "x".repeat(1 << 20);
            for _ in 0..24 {
                st.client
                    .put("/lb/v1/config/zz-bulk", bulk.as_str(), None)
                    .await?;
            }
            let rev = st
                .client
                .delete("/lb/v1/config/zz-bulk", None)
                .await?
                .header()
                .unwrap()
                .revision();
            st.client
                .compact(
                    rev,
                    Some(etcd_client::CompactionOptions::new().with_physical()),
                )
                .await?;
            Ok(rev)
        })
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    let converged = time_until(Duration::from_secs(15), || {
        !vips_of(&lab, 'B').iter().any(|v| v == NEW_VIP)
    });
    let log = std::fs::read_to_string(&lab.lbs[&'B'].log).unwrap();
    let path = if log.contains("fell behind a compaction") {
        "its watch was cancelled by the compaction and it listed again"
    } else {
        "its watch had the events already (or it reconnected and listed)"
    };
    eprintln!("site B after the compaction at {rev}: converged {converged:?}; {path}");
    assert!(
        converged.is_some(),
        "no stale VIP left on site B; its log:\n{log}"
    );
    assert_eq!(vips_of(&lab, 'B').len(), 4);

    // Site A cut off from etcd (a blackhole route to every member).
    let a_ns = lab.lbs[&'A'].ns.clone();
    let route = |verb: &str| {
        for addr in ETCD_ADDRS {
            let _ = std::process::Command::new("ip")
                .args([
                    "-n",
                    &a_ns,
                    "route",
                    verb,
                    "blackhole",
                    &format!("{addr}/32"),
                ])
                .output();
        }
    };
    let traffic = Traffic::start(&lab);
    let a_log = || std::fs::read_to_string(&lab.lbs[&'A'].log).unwrap_or_default();
    let lost_before = a_log().matches("out of reach").count();
    route("add");
    // The blackhole drops what site A sends; a watch already open still
    // receives until site A notices: its next request (the session's
    // keep-alive, every 3 s, timed out after dial_timeout 1 s) or an
    // unanswered HTTP/2 ping (every 6 s).
    let noticed = time_until(Duration::from_secs(15), || {
        a_log().matches("out of reach").count() > lost_before
    });
    eprintln!("cut off: site A noticed after {noticed:?}");
    assert!(noticed.is_some(), "site A noticed the cut:\n{}", a_log());
    lab.fleet_apply(&with_new_vip()).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !vips_of(&lab, 'A').iter().any(|v| v == NEW_VIP),
        "cut off: no news"
    );
    assert_eq!(
        vips_of(&lab, 'A').len(),
        4,
        "cut off: the last known good state stays"
    );
    let while_cut = traffic.answered();
    route("del");
    let caught_up = time_until(Duration::from_secs(15), || {
        vips_of(&lab, 'A').iter().any(|v| v == NEW_VIP)
    });
    let (answered, failed) = traffic.stop();
    eprintln!("cut off: {while_cut} requests answered; healed: caught up after {caught_up:?}");
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(
        while_cut > 20,
        "traffic went on while cut off: {while_cut} of {answered}"
    );
    assert!(caught_up.is_some(), "site A caught up when healed");
    let _ = &mut lab;
}

#[test]
fn a_daemon_restarted_while_etcd_is_down_boots_from_its_last_known_good_state() {
    if !require_root("a_daemon_restarted_while_etcd_is_down_boots_from_its_last_known_good_state") {
        return;
    }
    let mut lab = fleet_lab("fl");
    lab.fleet_apply(&with_new_vip()).unwrap();
    assert!(time_until(Duration::from_secs(5), || vips_of(&lab, 'A').len() == 5).is_some());
    let traffic = Traffic::start(&lab);
    std::thread::sleep(Duration::from_millis(300));
    lab.signal_etcd(0, libc::SIGKILL);
    lab.kill_daemon('A').unwrap();
    std::thread::sleep(Duration::from_millis(300));
    lab.start_daemon('A').unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (answered, failed) = traffic.stop();
    eprintln!("{answered} requests answered across the restart without etcd");
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    let vips = vips_of(&lab, 'A');
    assert_eq!(vips.len(), 5, "booted from the LKG: {vips:?}");
    assert!(vips.iter().any(|v| v == NEW_VIP));
    let log = std::fs::read_to_string(&lab.lbs[&'A'].log).unwrap();
    assert!(
        log.contains("starting from the last known good state"),
        "{log}"
    );
}
