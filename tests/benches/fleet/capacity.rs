//! One checker's capacity: how many reals it probes per second on one
//! core. Targets are (address, port) pairs served by listeners in the
//! lab router's namespace (64 addresses of 198.51.100.128/26 on its
//! loopback, one listener per port, answering HTTP); the store gets VIPs
//! whose reals are those pairs, each with a check every second, and no
//! LB host serves them (their `[[host]]` lists name the lab's VIPs only).
//! The checker runs in client c2's namespace pinned to CPU 0 (`taskset`).
//! For each size: the probes the listeners accepted per second over 10 s,
//! and the checker's CPU time over the same 10 s (from /proc), so probes
//! per second per core = probes/s / CPU share.
use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use lb_ctl::{
    config::{Check, CheckKind, RealConfig, VipConfig},
    fleet::schema::Desired,
    vocab::Proto,
};
use lb_tests::{lab::Lab, netns::run_in};

/// Addresses of the targets: 198.51.100.128 + 0..64.
const ADDRESSES: u8 = 64;
const FIRST_PORT: u16 = 20_000;
/// Ports per size: 64 addresses x ports = targets.
const SIZES: [u16; 3] = [16, 64, 250];

/// Listeners on `ports` ports in `ns`, answering every connection with an
/// HTTP 200 (a TCP check just connects); the count of connections.
fn serve(ns: &str, ports: u16) -> Arc<AtomicU64> {
    let listeners: Vec<std::net::TcpListener> = run_in(ns, || {
        (0..ports)
            .map(|i| {
                let l = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, FIRST_PORT + i))
                    .expect("bind a target port in the router's namespace");
                l.set_nonblocking(true).unwrap();
                l
            })
            .collect()
    });
    let accepted = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            for l in listeners {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    while let Ok((mut s, _)) = l.accept().await {
                        count.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let mut buf = [0u8; 512];
                            if let Ok(Ok(n)) =
                                tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await
                                && n > 0
                            {
                                let _ = s
                                    .write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n")
                                    .await;
                            }
                        });
                    }
                });
            }
            std::future::pending::<()>().await;
        });
    });
    accepted
}

/// User + system CPU time of process `pid` so far.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the
    // 12th and stime the 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64(f.iter().sum::<u64>() as f64 / hz)
}

/// The lab's VIPs for its two hosts, plus `ports` VIPs whose reals are
/// the targets (checked with `kind` every second), served by no host.
fn desired(lab_vips: &Desired, ports: u16, kind: CheckKind) -> Desired {
    let mut d = lab_vips.clone();
    let served: BTreeSet<_> = d.vips.keys().copied().collect();
    d.hosts = ["lba", "lbb"]
        .into_iter()
        .map(|h| (h.to_owned(), served.clone()))
        .collect();
    let mut check = Check::none();
    check.kind = kind;
    check.interval = Duration::from_secs(1);
    check.timeout = Duration::from_millis(500);
    for i in 0..ports {
        let vip = VipConfig {
            address: "203.0.113.60".parse().unwrap(),
            port: FIRST_PORT + i,
            protocol: Proto::Tcp,
            ring_size: 1021,
            no_conn_table: false,
            quic: false,
            encap: Default::default(),
            health: check.clone(),
            min_healthy: 1,
            communities: None,
            med: None,
            reals: (0..ADDRESSES)
                .map(|a| RealConfig {
                    address: IpAddr::from([198, 51, 100, 128 + a]),
                    weight: 1,
                    health: None,
                    encap: None,
                })
                .collect(),
        };
        d.vips.insert(vip.id(), vip);
    }
    d
}

pub fn checker_capacity(lab: &Lab, lab_vips: &Desired) {
    let router = lab.ns("r");
    for a in 0..ADDRESSES {
        let addr = format!("198.51.100.{}/32", 128 + u16::from(a));
        let out = std::process::Command::new("ip")
            .args(["-n", &router, "addr", "add", &addr, "dev", "lo"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let accepted = serve(&router, *SIZES.iter().max().unwrap());
    let pid = lab
        .start_checker_on("cap", "5s", Some(0))
        .expect("start the checker");
    println!(
        "| checker: targets (1 s interval) | check | probes/s answered | checker CPU (share of one core) | probes/s per core |"
    );
    println!("|---|---|---|---|---|");
    let http = CheckKind::Http {
        path: "/".into(),
        expect_status: 200,
    };
    for (name, kind) in [("tcp", CheckKind::Tcp), ("http", http)] {
        for ports in SIZES {
            let d = desired(lab_vips, ports, kind.clone());
            let targets = u64::from(ports) * u64::from(ADDRESSES);
            let pairs = d.vips.values().map(|v| v.reals.len()).sum::<usize>();
            lab.with_store(move |mut st| async move { Ok(st.apply(&d, None).await?) })
                .expect("apply the checker's targets");
            // Every pair judged up (a new target's first probe decides).
            let start = Instant::now();
            loop {
                let r = lab.fleet_status().ok().and_then(|s| s.round);
                if r.as_ref().is_some_and(|r| r.up == pairs) {
                    break;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(120),
                    "the checker did not judge {pairs} pairs: {r:?}"
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            std::thread::sleep(Duration::from_secs(2));
            let (c0, t0, w0) = (
                accepted.load(Ordering::Relaxed),
                cpu_time(pid),
                Instant::now(),
            );
            std::thread::sleep(Duration::from_secs(10));
            let (c1, t1, w1) = (
                accepted.load(Ordering::Relaxed),
                cpu_time(pid),
                Instant::now(),
            );
            let wall = (w1 - w0).as_secs_f64();
            let rate = (c1 - c0) as f64 / wall;
            let cpu = (t1 - t0).as_secs_f64() / wall;
            println!(
                "| {targets} | {name} | {rate:.0} ({:.0}% of the {targets} due) | {:.0}% | {:.0} |",
                100.0 * rate / targets as f64,
                100.0 * cpu,
                rate / cpu.max(1e-3)
            );
        }
    }
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    std::thread::sleep(Duration::from_secs(1));
}
