//! One probe of one real: TCP connect, HTTP GET with an expected status,
//! a UDP datagram that must get a reply, or an external command; each
//! bounded by the check's timeout.
use std::{net::IpAddr, net::SocketAddr, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    process::Command,
    time::timeout,
};

use crate::config::{Check, CheckKind};

/// Probes `addr` (port `port`) once; `Err` says why it failed.
pub async fn probe(check: &Check, addr: IpAddr, port: u16) -> Result<(), String> {
    let target = SocketAddr::new(addr, port);
    let limit = check.timeout;
    let attempt = async {
        match &check.kind {
            CheckKind::None => Ok(()),
            CheckKind::Tcp => TcpStream::connect(target)
                .await
                .map(drop)
                .map_err(|e| format!("connect {target}: {e}")),
            CheckKind::Http {
                path,
                expect_status,
            } => http(target, path, *expect_status).await,
            CheckKind::Udp { payload } => udp(target, payload.as_bytes()).await,
            CheckKind::Exec { command } => exec(command, addr, port, limit).await,
        }
    };
    match timeout(limit, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}

async fn http(target: SocketAddr, path: &str, expect: u16) -> Result<(), String> {
    let mut s = TcpStream::connect(target)
        .await
        .map_err(|e| format!("connect {target}: {e}"))?;
    let host = match target {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lb-ctl-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    // The status line is all we need: read until its end.
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or_default();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: `{line}`"))?;
    if status == expect {
        Ok(())
    } else {
        Err(format!("status {status}, expected {expect}"))
    }
}

async fn udp(target: SocketAddr, payload: &[u8]) -> Result<(), String> {
    let any: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("any");
    let s = UdpSocket::bind(any)
        .await
        .map_err(|e| format!("bind: {e}"))?;
    s.connect(target)
        .await
        .map_err(|e| format!("connect {target}: {e}"))?;
    s.send(payload).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    s.recv(&mut buf)
        .await
        .map(drop)
        .map_err(|e| format!("no reply from {target}: {e}"))
}

async fn exec(command: &str, addr: IpAddr, port: u16, limit: Duration) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("LB_REAL", addr.to_string())
        .env("LB_PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("run `{command}`: {e}"))?;
    match timeout(limit, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(format!("`{command}` exited with {status}")),
        Ok(Err(e)) => Err(format!("wait for `{command}`: {e}")),
        Err(_) => Err(format!("`{command}` ran longer than {limit:?}")),
    }
}
