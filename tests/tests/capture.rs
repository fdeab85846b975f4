//! `lb-ctl capture` against the kernel: while it runs, packets sent through
//! the balancer (BPF_PROG_TEST_RUN) land in its pcapng file with the right
//! annotation (verdict, reason, VIP, real) and the frame as it left (an
//! encapsulated frame goes to the real the annotation names); `tcpdump -r`
//! reads the file; a verdict filter keeps only what it names; and capture
//! is off again in the pinned config when it ends.
use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lb_common::PROTO_TCP;
use lb_ctl::{capture::pcapng, dataplane::LoadOptions};
use lb_tests::{
    balancer::{Rng, TestBalancer, TestReal, ip, outer_dst},
    lab::test_bins,
    netns::unique_tag,
    packet::Packet,
    require_root,
};

/// The pin directory and the capture files, removed on drop; a capture
/// still running is killed first.
struct Made {
    pins: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Made {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.pins);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `lb-ctl capture ARGS -w FILE` and waits until capture is on.
fn start_capture(lb: &TestBalancer, made: &mut Made, file: &Path, args: &[&str]) {
    let child = Command::new(test_bins().lb_ctl)
        .arg("capture")
        .arg("--pin-dir")
        .arg(&made.pins)
        .args(args)
        .arg("-w")
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start lb-ctl capture");
    made.child = Some(child);
    let start = Instant::now();
    while lb.dp.config().unwrap().capture_sample == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "capture never turned on"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the capture to end by itself (its count reached).
fn wait_capture(made: &mut Made) -> String {
    let mut child = made.child.take().unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(status.success(), "lb-ctl capture: {status}: {err}");
            return err;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "capture did not stop at its count"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn captured_packets_carry_their_decision_and_tcpdump_reads_them() {
    if !require_root("captured_packets_carry_their_decision_and_tcpdump_reads_them") {
        return;
    }
    let tag = unique_tag();
    let mut made = Made {
        pins: PathBuf::from(format!("/sys/fs/bpf/lbt-capture-{tag}")),
        dir: std::env::temp_dir().join(format!("lbt-capture-{tag}")),
        child: None,
    };
    std::fs::create_dir_all(&made.dir).unwrap();
    let mut lb = TestBalancer::with_options(&LoadOptions {
        conn_table_size: 4096,
        conn_table_size_v6: 4096,
        pin_dir: Some(made.pins.clone()),
        ..LoadOptions::default()
    });
    let reals: Vec<TestReal> = ["192.0.2.11", "192.0.2.12", "192.0.2.13"]
        .iter()
        .enumerate()
        .map(|(i, a)| TestReal {
            id: i as u32 + 1,
            addr: ip(a),
            weight: 1,
        })
        .collect();
    lb.add_vip("203.0.113.10", 80, PROTO_TCP, &reals, 251);
    let vip: IpAddr = ip("203.0.113.10");
    let mut rng = Rng::new(11);
    let mut client = || {
        let (a, p) = rng.client(false);
        SocketAddr::new(a, p)
    };

    // Everything: 10 forwarded, 5 passed (not a VIP), 5 dropped (fragments).
    let all = made.dir.join("all.pcapng");
    start_capture(
        &lb,
        &mut made,
        &all,
        &["--count", "20", "--duration", "30s"],
    );
    for _ in 0..10 {
        let c = client();
        lb.run(&Packet::tcp(c.ip(), c.port(), vip, 80, 0x02).bytes());
    }
    for _ in 0..5 {
        let c = client();
        lb.run(&Packet::tcp(c.ip(), c.port(), ip("203.0.113.99"), 80, 0x02).bytes());
    }
    for _ in 0..5 {
        let c = client();
        lb.run(
            &Packet::tcp(c.ip(), c.port(), vip, 80, 0x02)
                .with_frag(0x2000)
                .bytes(),
        );
    }
    let said = wait_capture(&mut made);
    assert!(said.contains("20 packets written"), "{said}");
    assert_eq!(
        lb.dp.config().unwrap().capture_sample,
        0,
        "capture is off again"
    );

    let packets = pcapng::read(&std::fs::read(&all).unwrap()).unwrap();
    assert_eq!(packets.len(), 20);
    let (mut tx, mut pass, mut drop) = (0, 0, 0);
    for (time, len, data, comment) in &packets {
        assert!(*time > 1_600_000_000_000_000_000, "wall-clock time: {time}");
        assert_eq!(*len as usize, data.len(), "small frames are whole");
        if comment.starts_with("lb: verdict=tx reason=conn_miss vip=203.0.113.10:80/tcp real=") {
            let real = comment.rsplit('=').next().unwrap();
            assert_eq!(
                outer_dst(data).map(|a| a.to_string()).as_deref(),
                Some(real),
                "the frame as it left: encapsulated toward {real}"
            );
            tx += 1;
        } else if comment == "lb: verdict=pass reason=pass_not_vip vip=- real=-" {
            pass += 1;
        } else if comment == "lb: verdict=drop reason=drop_fragment vip=- real=-" {
            drop += 1;
        } else {
            panic!("unexpected annotation: {comment}");
        }
    }
    assert_eq!((tx, pass, drop), (10, 5, 5));

    let out = Command::new("tcpdump")
        .args(["-nn", "-r"])
        .arg(&all)
        .output()
        .expect("run tcpdump (Debian package tcpdump)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), 20, "{text}");
    eprintln!("tcpdump -nn -r all.pcapng:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("IP 192.0.2.254 > 192.0.2.1")),
        "tcpdump shows the outer header of the encapsulated frames:\n{text}"
    );

    // Only drops: the rest is not captured.
    let drops = made.dir.join("drops.pcapng");
    start_capture(
        &lb,
        &mut made,
        &drops,
        &["--verdict", "drop", "--count", "3"],
    );
    for i in 0..12 {
        let c = client();
        let p = Packet::tcp(c.ip(), c.port(), vip, 80, 0x02);
        let p = if i % 4 == 0 { p.with_frag(0x2000) } else { p };
        lb.run(&p.bytes());
    }
    wait_capture(&mut made);
    let packets = pcapng::read(&std::fs::read(&drops).unwrap()).unwrap();
    assert_eq!(packets.len(), 3);
    assert!(
        packets
            .iter()
            .all(|(_, _, _, c)| c.starts_with("lb: verdict=drop "))
    );
    assert_eq!(lb.dp.config().unwrap().capture_sample, 0);

    // Turned off from outside (as a daemon reload does): the capture ends
    // at once and says so, with what it had.
    let cut = made.dir.join("cut.pcapng");
    start_capture(
        &lb,
        &mut made,
        &cut,
        &["--count", "1000", "--duration", "60s"],
    );
    let c = client();
    lb.run(&Packet::tcp(c.ip(), c.port(), vip, 80, 0x02).bytes());
    let stopped = Command::new(test_bins().lb_ctl)
        .args(["capture", "--stop", "--pin-dir"])
        .arg(&made.pins)
        .output()
        .unwrap();
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let said = wait_capture(&mut made);
    assert!(said.contains("turned off from outside"), "{said}");
    assert!(said.contains("1 packets written"), "{said}");
}
