//! The daemon under systemd's eyes: `lb-ctl daemon` started as `lb.service`
//! starts it (the unit's capability bounding set, nothing more; the
//! `NOTIFY_SOCKET` and `WATCHDOG_USEC` systemd would give), with a socket of
//! the test's own in place of systemd's. It must say `READY=1` only once
//! the balancer is attached (its link is pinned), beat `WATCHDOG=1` at half
//! the watchdog's period, say `RELOADING=1` then `READY=1` around a
//! SIGHUP, and `STOPPING=1` on SIGTERM, then exit cleanly.
use std::{
    os::unix::net::UnixDatagram,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lb_tests::{
    lab::test_bins,
    netns::{Netns, unique_tag},
    require_root,
};

/// The capabilities `packaging/systemd/lb.service` bounds the daemon to.
fn unit_capabilities() -> Vec<String> {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/systemd/lb.service"
    ))
    .unwrap();
    unit.lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds the capabilities")
        .split_whitespace()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect()
}

/// What the test made outside the namespace: the run directory and the
/// pin directory; removed on drop. The daemon is killed first.
struct Made {
    run_dir: PathBuf,
    pin_dir: PathBuf,
    daemon: Option<Child>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

/// Receives notifications until `want` matches one (returned), or panics
/// after `limit` with everything received.
fn wait_for(socket: &UnixDatagram, limit: Duration, want: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while start.elapsed() < limit {
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if want(&msg) {
                return msg;
            }
            seen.push(msg);
        }
    }
    panic!("no wanted notification within {limit:?}; got {seen:?}");
}

#[test]
fn the_daemon_tells_systemd_it_is_ready_alive_reloading_and_stopping() {
    if !require_root("the_daemon_tells_systemd_it_is_ready_alive_reloading_and_stopping") {
        return;
    }
    let tag = unique_tag();
    let ns = Netns::new("ntf");
    let peer = Netns::new("ntp");
    lb_tests::netns::veth(&ns, "eth0", &peer, "eth0");
    ns.ip(&["addr", "add", "192.0.2.2/30", "dev", "eth0"]);
    let mut made = Made {
        run_dir: std::env::temp_dir().join(format!("lbt-notify-{tag}")),
        pin_dir: PathBuf::from(format!("/sys/fs/bpf/lbt-notify-{tag}")),
        daemon: None,
    };
    std::fs::create_dir_all(&made.run_dir).unwrap();
    let config = made.run_dir.join("lb.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ninterface = \"eth0\"\nxdp_mode = \"generic\"\npin_dir = \"{pins}\"\nsocket = \"{run}/lb.sock\"\nstate_file = \"{run}/state.json\"\n\n\
             [dataplane]\nsource_v4 = \"192.0.2.2\"\n\n\
             [[vip]]\naddress = \"203.0.113.10\"\nport = 80\nprotocol = \"tcp\"\nhealth = {{ kind = \"none\" }}\n  [[vip.real]]\n  address = \"198.51.100.18\"\n",
            pins = made.pin_dir.display(),
            run = made.run_dir.display(),
        ),
    )
    .unwrap();
    let notify_path = made.run_dir.join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();

    // As systemd would start it: the unit's bounding set, no ambient
    // capabilities, the notification variables.
    let caps: Vec<String> = unit_capabilities();
    assert!(caps.contains(&"bpf".to_owned()), "{caps:?}");
    let bounding = format!(
        "-all,{}",
        caps.iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let log = std::fs::File::create(made.run_dir.join("daemon.log")).unwrap();
    let daemon = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.name()))
        .args(["setpriv", "--inh-caps", "-all", "--bounding-set", &bounding])
        .arg(test_bins().lb_ctl)
        .arg("daemon")
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start lb-ctl daemon under nsenter and setpriv");
    let pid = daemon.id();
    made.daemon = Some(daemon);
    let log_text = || std::fs::read_to_string(made.run_dir.join("daemon.log")).unwrap_or_default();

    // READY=1, and by then the balancer is attached: its link is pinned.
    let link = made.pin_dir.join("link_lb_balance_eth0");
    let ready = std::panic::catch_unwind(|| {
        wait_for(&notify, Duration::from_secs(15), |m| {
            m.starts_with("READY=1")
        })
    })
    .unwrap_or_else(|_| panic!("no READY=1; daemon log:\n{}", log_text()));
    assert!(link.exists(), "READY=1 before the link was pinned");
    assert!(
        ready.contains("STATUS=1 VIPs, 1 reals, 1 healthy on eth0"),
        "{ready}"
    );

    // WATCHDOG=1 every ~200 ms (half of 400 ms).
    let start = Instant::now();
    for _ in 0..5 {
        wait_for(&notify, Duration::from_secs(2), |m| m == "WATCHDOG=1");
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_millis(1800),
        "5 beats took {took:?} (period 200 ms)"
    );

    // SIGHUP: RELOADING=1, then READY=1 again.
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGHUP) }, 0);
    wait_for(&notify, Duration::from_secs(5), |m| m == "RELOADING=1");
    wait_for(&notify, Duration::from_secs(5), |m| {
        m.starts_with("READY=1")
    });

    // SIGTERM: STOPPING=1 and a clean exit; the balancer stays attached.
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    wait_for(&notify, Duration::from_secs(5), |m| {
        m.starts_with("STOPPING=1")
    });
    let mut daemon = made.daemon.take().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}; log:\n{}", log_text());
    assert!(link.exists(), "the balancer stays attached after a stop");
    drop(peer);
}
