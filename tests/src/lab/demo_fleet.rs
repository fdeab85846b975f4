//! `cargo xtask demo fleet`: the lab in fleet mode. Three etcd members
//! hold the desired state; both LB hosts follow it; two `lb-ctl checker`
//! replicas elect one that checks the backends for both hosts. One command
//! adds a VIP for the fleet; the active checker is killed and the other
//! takes over; etcd is stopped; requests through the VIP never stop being
//! answered.
use std::{
    net::IpAddr,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::{
    HTTP_PORT, Lab, LabBins, LabOptions, ROUTER, VIP4, lb::FLEET_STALE_AFTER,
    router::kernel_nexthops, traffic::Traffic,
};

/// The VIP the demo adds with one command, and its reals (a1, a2).
const NEW_VIP: &str = "203.0.113.40:80/tcp";
const NEW_REALS: [&str; 2] = ["192.0.2.18", "192.0.2.22"];

/// Polls `done` every 20 ms for up to `limit`; how long it took.
fn wait(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Ok(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what}: not within {limit:?}")
}

/// `lb-ctl ARGS` on site `site`'s LB host (its namespace and socket), as
/// an operator logged in there would type it; its output.
fn lb_ctl_on(lab: &Lab, site: char, args: &[&str]) -> anyhow::Result<String> {
    let lb = &lab.lbs[&site];
    let out = Command::new(&lab.bins().lb_ctl)
        .args(["--netns", &lb.ns, "--socket"])
        .arg(&lb.socket)
        .args(args)
        .env_remove("LB_FLEET_ENDPOINTS")
        .output()?;
    if !out.status.success() {
        bail!(
            "lb-ctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn health_source(lab: &Lab, site: char) -> String {
    lab.lbs[&site]
        .health_source()
        .unwrap_or_else(|e| format!("? ({e:#})"))
}

fn reals_down(lab: &Lab, site: char) -> usize {
    lab.lbs[&site].reals_down().unwrap_or(0)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}

pub fn demo_fleet(prefix: &str, bins: LabBins, keep: bool) -> anyhow::Result<()> {
    println!(
        "==> fleet lab: 3 etcd members in the router's namespace (198.51.100.100-102); LB hosts lba and lbb have no VIPs in their files, only a [fleet] section"
    );
    let mut opts = LabOptions::new(prefix, bins);
    opts.keep = keep;
    opts.bgp = true;
    opts.fleet = 3;
    let started = Instant::now();
    let lab = Lab::up(opts)?;
    println!(
        "    up in {:.1} s; both hosts listed the store and applied its 4 VIPs:",
        started.elapsed().as_secs_f64()
    );
    println!("{}", indent(&lab.fleet_cli(&[&"status".to_owned()])?));

    println!(
        "\n==> two health checkers (lb-ctl checker, lease 5 s) elect one; it probes every real once for both hosts"
    );
    let t0 = Instant::now();
    let mut checkers = vec![("chk-1", lab.start_checker("chk-1", "5s")?)];
    std::thread::sleep(Duration::from_millis(300));
    checkers.push(("chk-2", lab.start_checker("chk-2", "5s")?));
    wait(Duration::from_secs(20), "both hosts on chk-1", || {
        ['A', 'B']
            .iter()
            .all(|&s| health_source(&lab, s) == "fleet (checker chk-1)")
    })?;
    println!(
        "    {:.1} s after chk-1 started, both hosts take its verdicts and their own probers stand still:",
        t0.elapsed().as_secs_f64()
    );
    for site in ['A', 'B'] {
        println!("    site {site}: health from {}", health_source(&lab, site));
    }

    let traffic = Traffic::start(&lab);
    println!(
        "\n==> requests from client c1 to {VIP4}:{HTTP_PORT} run from here to the end (two loops, bounded to 2 minutes)"
    );

    println!(
        "\n==> one command on site A adds a VIP for the whole fleet (it goes to the store, not to one host)"
    );
    let t0 = Instant::now();
    for args in [
        vec!["vip", "add", NEW_VIP, "--health", "tcp"],
        vec!["real", "add", "--vip", NEW_VIP, NEW_REALS[0]],
        vec!["real", "add", "--vip", NEW_VIP, NEW_REALS[1]],
    ] {
        println!("    $ lb-ctl {}", args.join(" "));
        println!("{}", indent(lb_ctl_on(&lab, 'A', &args)?.trim()));
    }
    // Held, and both reals judged up by the checker (a new real starts
    // unknown until its first probe).
    let ready = |site: char| {
        lb_ctl_on(&lab, site, &["real", "list", "--vip", NEW_VIP]).is_ok_and(|out| {
            NEW_REALS.iter().all(|r| {
                out.lines()
                    .any(|l| l.contains(r) && l.split_whitespace().any(|w| w == "up"))
            })
        })
    };
    wait(
        Duration::from_secs(10),
        "both hosts hold the new VIP",
        || ready('A') && ready('B'),
    )?;
    println!(
        "    both hosts hold it, both reals up by chk-1's first probe, {:.0} ms after the first command; a flow goes to the same real on both (same Maglev ring):",
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let (addr, port) = NEW_VIP
        .trim_end_matches("/tcp")
        .rsplit_once(':')
        .context("VIP")?;
    for site in ['A', 'B'] {
        let pins = lab.lbs[&site].pin_dir.display().to_string();
        let out = lb_ctl_on(
            &lab,
            site,
            &[
                "explain",
                "tcp",
                "198.51.100.7:40000",
                &format!("{addr}:{port}"),
                "--pin-dir",
                &pins,
            ],
        )?;
        let decision = out
            .lines()
            .filter(|l| l.starts_with("ring ") || l.starts_with("real "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join("; ");
        println!("    site {site}: explain tcp 198.51.100.7:40000 {addr}:{port}: {decision}");
    }

    println!(
        "\n==> the active checker chk-1 is killed (SIGKILL): its lease expires, chk-2 is elected"
    );
    let v4: IpAddr = VIP4.parse()?;
    let r = lab.ns(ROUTER);
    let routes_before = kernel_nexthops(&r, v4);
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(checkers[0].1, libc::SIGKILL) };
    let killed = Instant::now();
    let mut most_down = 0;
    wait(Duration::from_secs(15), "chk-2 leads", || {
        most_down = most_down.max(reals_down(&lab, 'A') + reals_down(&lab, 'B'));
        ['A', 'B']
            .iter()
            .all(|&s| health_source(&lab, s) == "fleet (checker chk-2)")
    })?;
    println!(
        "    both hosts take chk-2's verdicts {:.1} s after the kill (lease 5 s); reals that went down meanwhile: {most_down}; the router's routes to {VIP4}: {} before, {} now",
        killed.elapsed().as_secs_f64(),
        routes_before.len(),
        kernel_nexthops(&r, v4).len()
    );

    println!(
        "\n==> all three etcd members are stopped (SIGKILL): the hosts keep their state, routes and forwarding; after stale_after ({FLEET_STALE_AFTER}) they check their reals themselves"
    );
    for i in 0..lab.etcd.len() {
        lab.signal_etcd(i, libc::SIGKILL);
    }
    let took = wait(Duration::from_secs(15), "both hosts check locally", || {
        ['A', 'B']
            .iter()
            .all(|&s| health_source(&lab, s).starts_with("local"))
    })?;
    println!("    {:.1} s after the store went away:", took.as_secs_f64());
    for site in ['A', 'B'] {
        println!(
            "    site {site}: health from {}; {} VIPs still held",
            health_source(&lab, site),
            lab.lbs[&site].status()?.vips
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let (answered, failed) = traffic.stop();
    println!(
        "    the router's routes to {VIP4}: {}; requests through it since the checkers were up: {answered} answered, {} failed",
        kernel_nexthops(&r, v4).len(),
        failed.len()
    );
    for f in failed.iter().take(3) {
        println!("    failed: {f}");
    }

    if keep {
        println!(
            "\n==> the lab stays up (--keep; etcd is stopped): `cargo xtask lab status`, `cargo xtask lab down`"
        );
    } else {
        println!("\n==> lab down");
    }
    Ok(())
}
