//! Probes against servers on loopback, and the rise/fall state machine.
use std::time::Duration;

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, UdpSocket},
};

use std::collections::BTreeMap;

use super::*;
use crate::config::{Check, CheckKind};

fn check(kind: CheckKind) -> Check {
    Check {
        kind,
        port: None,
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
        rise: 2,
        fall: 3,
    }
}

const LOOPBACK: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// An HTTP server on loopback that answers every request with `status`.
async fn http_server(status: u16) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .await;
        }
    });
    port
}

/// A port on loopback where nothing listens (bound, then closed).
async fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn tcp_and_http_probes() {
    let up = http_server(200).await;
    let sick = http_server(503).await;
    let closed = closed_port().await;
    assert!(probe(&check(CheckKind::Tcp), LOOPBACK, up).await.is_ok());
    let err = probe(&check(CheckKind::Tcp), LOOPBACK, closed)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "refused", "{err}");
    let http = check(CheckKind::Http {
        path: "/health".into(),
        expect_status: 200,
    });
    assert!(probe(&http, LOOPBACK, up).await.is_ok());
    let err = probe(&http, LOOPBACK, sick).await.unwrap_err();
    assert_eq!(err.to_string(), "status 503, expected 200");
    assert_eq!(err.reason(), "status");
    let err = probe(&http, LOOPBACK, closed).await.unwrap_err();
    assert_eq!(err.reason(), "refused", "{err}");
}

#[tokio::test]
async fn udp_probe_needs_a_reply() {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut buf = [0u8; 64];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let _ = s.send_to(&buf[..n], from).await;
        }
    });
    let udp = check(CheckKind::Udp {
        payload: "hi".into(),
    });
    assert!(probe(&udp, LOOPBACK, port).await.is_ok());
    // A silent UDP socket: the probe times out.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let err = probe(&udp, LOOPBACK, silent.local_addr().unwrap().port())
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "timeout", "{err}");
    assert_eq!(err.to_string(), "no answer within 300ms");
    // Nobody on the port: the ICMP port unreachable reads as refused.
    let nobody = {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.local_addr().unwrap().port()
    };
    let err = probe(&udp, LOOPBACK, nobody).await.unwrap_err();
    assert_eq!(err.reason(), "refused", "{err}");
}

#[tokio::test]
async fn exec_probe_follows_the_exit_status() {
    let ok = check(CheckKind::Exec {
        command: "test \"$LB_REAL\" = 127.0.0.1 && test \"$LB_PORT\" = 8080".into(),
    });
    assert!(probe(&ok, LOOPBACK, 8080).await.is_ok());
    let fails = check(CheckKind::Exec {
        command: "exit 3".into(),
    });
    let err = probe(&fails, LOOPBACK, 8080).await.unwrap_err();
    assert_eq!(err.reason(), "exit");
    assert_eq!(err.to_string(), "`exit 3` exited with exit status: 3");
    let slow = check(CheckKind::Exec {
        command: "sleep 5".into(),
    });
    let err = probe(&slow, LOOPBACK, 8080).await.unwrap_err();
    assert_eq!(err.reason(), "timeout", "killed at the timeout: {err}");
}

/// A probe result for `key`: a success, or an HTTP status failure.
fn result(key: &ProbeKey, ok: bool) -> ProbeResult {
    ProbeResult {
        key: key.clone(),
        outcome: if ok {
            Ok(())
        } else {
            Err(ProbeError::Status {
                got: 503,
                expected: 200,
            })
        },
    }
}

#[tokio::test]
async fn rise_and_fall_counts() {
    let (tx, _rx) = mpsc::channel(16);
    let key = ProbeKey {
        addr: LOOPBACK,
        port: 1,
        check: check(CheckKind::Tcp),
    };
    let mut table = HealthTable::default();
    table.sync(&BTreeSet::from([key.clone()]), |_| true, &tx);
    let res = |ok: bool| result(&key, ok);
    // fall = 3: two failures change nothing, the third turns it down.
    assert_eq!(table.record(&res(false)), None);
    assert_eq!(table.record(&res(false)), None);
    assert_eq!(table.record(&res(false)), Some(false));
    assert!(!table.healthy(&key));
    // rise = 2: one success is not enough; a failure resets the count.
    assert_eq!(table.record(&res(true)), None);
    assert_eq!(table.record(&res(false)), None);
    assert_eq!(table.record(&res(true)), None);
    assert_eq!(table.record(&res(true)), Some(true));
    let (_, state) = table.states().next().unwrap();
    assert_eq!(state.transitions, 2);
    assert_eq!(state.checks, 7);
    assert_eq!(state.last_error, "status 503, expected 200");
    assert_eq!(state.failures_by_reason, BTreeMap::from([("status", 4)]));
    // Dropping the key stops its prober.
    table.sync(&BTreeSet::new(), |_| true, &tx);
    assert_eq!(table.states().count(), 0);
}

#[tokio::test]
async fn an_adopted_state_is_healthy_but_unconfirmed_until_rise_successes() {
    let (tx, _rx) = mpsc::channel(16);
    let key = ProbeKey {
        addr: LOOPBACK,
        port: 1,
        check: check(CheckKind::Tcp),
    };
    let res = |ok: bool| result(&key, ok);
    // Adopted up: forwarding goes on, announcing waits for the checks.
    let mut table = HealthTable::default();
    table.sync(&BTreeSet::from([key.clone()]), |_| true, &tx);
    assert!(table.healthy(&key));
    assert!(!table.confirmed_healthy(&key));
    assert_eq!(table.record(&res(true)), None);
    assert!(
        !table.confirmed_healthy(&key),
        "rise = 2: one success is not enough"
    );
    assert_eq!(table.record(&res(true)), None, "no transition: it was up");
    assert!(table.confirmed_healthy(&key));
    // Adopted up but dead: fall failures take it down, confirmed.
    let mut table = HealthTable::default();
    table.sync(&BTreeSet::from([key.clone()]), |_| true, &tx);
    for _ in 0..2 {
        assert_eq!(table.record(&res(false)), None);
    }
    assert_eq!(table.record(&res(false)), Some(false));
    assert!(!table.healthy(&key) && !table.confirmed_healthy(&key));
    // A fresh start: down and unconfirmed, then up and confirmed together.
    let mut table = HealthTable::default();
    table.sync(&BTreeSet::from([key.clone()]), |_| false, &tx);
    assert!(!table.healthy(&key));
    table.record(&res(true));
    assert_eq!(table.record(&res(true)), Some(true));
    assert!(table.confirmed_healthy(&key));
    // `none` checks are confirmed from the start.
    let none = ProbeKey {
        check: check(CheckKind::None),
        ..key.clone()
    };
    let mut table = HealthTable::default();
    table.sync(&BTreeSet::from([none.clone()]), |_| false, &tx);
    assert!(table.confirmed_healthy(&none));
}

#[tokio::test]
async fn outside_verdicts_replace_the_probers_and_probing_resumes_from_them() {
    let (tx, _rx) = mpsc::channel(16);
    let key = ProbeKey {
        addr: LOOPBACK,
        port: 1,
        check: check(CheckKind::Tcp),
    };
    let none = ProbeKey {
        check: check(CheckKind::None),
        ..key.clone()
    };
    let mut table = HealthTable::default();
    table.sync(&BTreeSet::from([key.clone(), none.clone()]), |_| true, &tx);
    assert_eq!(table.running(), 1);
    // Paused: no prober runs, a late result of the stopped one is ignored,
    // keys added meanwhile get no prober either.
    assert!(table.set_probing(false, &tx));
    assert!(!table.set_probing(false, &tx), "already paused");
    assert_eq!(table.running(), 0);
    for _ in 0..5 {
        assert_eq!(table.record(&result(&key, false)), None);
    }
    assert!(table.healthy(&key));
    let other = ProbeKey {
        port: 2,
        ..key.clone()
    };
    table.sync(
        &BTreeSet::from([key.clone(), none.clone(), other.clone()]),
        |_| false,
        &tx,
    );
    assert_eq!(table.running(), 0);
    // Verdicts are taken as they are: one down is down, no rise or fall.
    assert_eq!(table.verdict(&key, false), Some(false));
    assert_eq!(table.verdict(&key, false), None);
    assert_eq!(table.verdict(&other, true), Some(true));
    assert!(table.confirmed_healthy(&other));
    assert_eq!(
        table.verdict(&none, false),
        None,
        "a `none` check is always up"
    );
    assert!(table.healthy(&none));
    // Probing again: from the states as they are (no flap), rise and fall
    // counted afresh.
    assert!(table.set_probing(true, &tx));
    assert_eq!(table.running(), 2);
    assert!(!table.healthy(&key) && table.healthy(&other));
    assert_eq!(table.record(&result(&other, false)), None);
    assert_eq!(table.record(&result(&other, false)), None);
    assert_eq!(
        table.record(&result(&other, false)),
        Some(false),
        "fall = 3"
    );
    let transitions = table.state(&key).unwrap().transitions;
    assert_eq!(transitions, 1);
}

#[tokio::test]
async fn probers_run_once_per_key_and_report() {
    let port = http_server(200).await;
    let (tx, mut rx) = mpsc::channel(16);
    let key = ProbeKey {
        addr: LOOPBACK,
        port,
        check: check(CheckKind::Tcp),
    };
    let mut table = HealthTable::default();
    // Asked twice (two VIPs): one prober.
    table.sync(&BTreeSet::from([key.clone(), key.clone()]), |_| false, &tx);
    assert_eq!(table.running(), 1);
    let mut turned = None;
    for _ in 0..10 {
        let r = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Some(h) = table.record(&r) {
            turned = Some(h);
            break;
        }
    }
    assert_eq!(turned, Some(true), "came up after `rise` successes");
}

#[test]
fn every_probe_failure_reason_is_listed_and_documented() {
    use std::io::{Error, ErrorKind};
    let target: std::net::SocketAddr = "192.0.2.18:80".parse().unwrap();
    let io = |kind| Error::new(kind, "x");
    let errors = [
        ProbeError::Timeout(Duration::from_secs(1)),
        ProbeError::Connect {
            target,
            source: io(ErrorKind::ConnectionRefused),
        },
        ProbeError::Connect {
            target,
            source: io(ErrorKind::HostUnreachable),
        },
        ProbeError::Connect {
            target,
            source: io(ErrorKind::PermissionDenied),
        },
        ProbeError::Bind(io(ErrorKind::AddrInUse)),
        ProbeError::Send(io(ErrorKind::BrokenPipe)),
        ProbeError::Read(io(ErrorKind::ConnectionReset)),
        ProbeError::NotHttp("SSH-2.0".into()),
        ProbeError::Status {
            got: 503,
            expected: 200,
        },
        ProbeError::NoReply {
            target,
            source: io(ErrorKind::TimedOut),
        },
        ProbeError::Exec {
            command: "x".into(),
            source: io(ErrorKind::NotFound),
        },
        ProbeError::Exit {
            command: "exit 3".into(),
            status: std::os::unix::process::ExitStatusExt::from_raw(3 << 8),
        },
    ];
    let mut seen: Vec<&str> = errors.iter().map(ProbeError::reason).collect();
    seen.sort_unstable();
    let mut listed = ProbeError::REASONS.to_vec();
    listed.sort_unstable();
    assert_eq!(seen, listed, "REASONS is the set reason() returns");

    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CLI.md")).unwrap();
    let row = doc
        .lines()
        .find(|l| l.starts_with("| `lb_health_probe_failures_total`"))
        .expect("docs/CLI.md lists lb_health_probe_failures_total");
    let documented: Vec<&str> = row
        .rsplit('|')
        .nth(1)
        .unwrap()
        .split(',')
        .map(|r| {
            r.trim()
                .trim_start_matches("failed probes by reason:")
                .trim()
                .trim_matches('`')
        })
        .collect();
    let mut documented = documented;
    documented.sort_unstable();
    assert_eq!(documented, listed, "docs/CLI.md names every reason");
}
