//! One probe of one real: TCP connect, HTTP GET with an expected status,
//! a UDP datagram that must get a reply, or an external command; each
//! bounded by the check's timeout.
use std::{
    io,
    net::{IpAddr, SocketAddr},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    process::Command,
    time::timeout,
};

use crate::config::{Check, CheckKind};

/// Why a probe failed: its message for `lb-ctl health`, its
/// [`reason`](ProbeError::reason) for the metrics.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connect {target}: {source}")]
    Connect {
        target: SocketAddr,
        source: io::Error,
    },
    #[error("bind: {0}")]
    Bind(io::Error),
    #[error("send: {0}")]
    Send(io::Error),
    #[error("read: {0}")]
    Read(io::Error),
    #[error("not an HTTP answer: `{0}`")]
    NotHttp(String),
    #[error("status {got}, expected {expected}")]
    Status { got: u16, expected: u16 },
    #[error("no reply from {target}: {source}")]
    NoReply {
        target: SocketAddr,
        source: io::Error,
    },
    #[error("run `{command}`: {source}")]
    Exec { command: String, source: io::Error },
    #[error("`{command}` exited with {status}")]
    Exit { command: String, status: ExitStatus },
}

impl ProbeError {
    /// Every reason label, for the documentation and its test.
    pub const REASONS: &[&str] = &[
        "timeout",
        "refused",
        "unreachable",
        "connect",
        "local",
        "send",
        "read",
        "not_http",
        "status",
        "no_reply",
        "exec",
        "exit",
    ];

    /// The failure's class: a metric label, one of [`Self::REASONS`].
    pub fn reason(&self) -> &'static str {
        let of_io = |e: &io::Error, other: &'static str| match e.kind() {
            io::ErrorKind::ConnectionRefused => "refused",
            io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => "unreachable",
            _ => other,
        };
        match self {
            Self::Timeout(_) => "timeout",
            Self::Connect { source, .. } => of_io(source, "connect"),
            Self::Bind(_) => "local",
            Self::Send(e) => of_io(e, "send"),
            Self::Read(e) => of_io(e, "read"),
            Self::NotHttp(_) => "not_http",
            Self::Status { .. } => "status",
            // A UDP port nobody listens on answers "port unreachable",
            // which the socket reports as refused.
            Self::NoReply { source, .. } => of_io(source, "no_reply"),
            Self::Exec { .. } => "exec",
            Self::Exit { .. } => "exit",
        }
    }
}

/// Probes `addr` (port `port`) once; `Err` says why it failed.
pub async fn probe(check: &Check, addr: IpAddr, port: u16) -> Result<(), ProbeError> {
    let target = SocketAddr::new(addr, port);
    let limit = check.timeout;
    let attempt = async {
        match &check.kind {
            CheckKind::None => Ok(()),
            CheckKind::Tcp => TcpStream::connect(target)
                .await
                .map(drop)
                .map_err(|source| ProbeError::Connect { target, source }),
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
        Err(_) => Err(ProbeError::Timeout(limit)),
    }
}

async fn http(target: SocketAddr, path: &str, expect: u16) -> Result<(), ProbeError> {
    let mut s = TcpStream::connect(target)
        .await
        .map_err(|source| ProbeError::Connect { target, source })?;
    let host = match target {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lb-ctl-health\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(ProbeError::Send)?;
    // The status line is all we need: read until its end.
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 128];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        let n = s.read(&mut chunk).await.map_err(ProbeError::Read)?;
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
        .ok_or_else(|| ProbeError::NotHttp(line.to_owned()))?;
    if status == expect {
        Ok(())
    } else {
        Err(ProbeError::Status {
            got: status,
            expected: expect,
        })
    }
}

async fn udp(target: SocketAddr, payload: &[u8]) -> Result<(), ProbeError> {
    let any: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("any");
    let s = UdpSocket::bind(any).await.map_err(ProbeError::Bind)?;
    s.connect(target)
        .await
        .map_err(|source| ProbeError::Connect { target, source })?;
    s.send(payload).await.map_err(ProbeError::Send)?;
    let mut buf = [0u8; 512];
    s.recv(&mut buf)
        .await
        .map(drop)
        .map_err(|source| ProbeError::NoReply { target, source })
}

async fn exec(command: &str, addr: IpAddr, port: u16, limit: Duration) -> Result<(), ProbeError> {
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
        .map_err(|source| ProbeError::Exec {
            command: command.to_owned(),
            source,
        })?;
    match timeout(limit, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(ProbeError::Exit {
            command: command.to_owned(),
            status,
        }),
        Ok(Err(source)) => Err(ProbeError::Exec {
            command: command.to_owned(),
            source,
        }),
        Err(_) => Err(ProbeError::Timeout(limit)),
    }
}
