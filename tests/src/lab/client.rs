//! Clients in the lab: HTTP requests (new or kept-alive connections) and
//! UDP echoes from a client namespace to a VIP, each telling which backend
//! answered and from which local address and port it was sent (what the
//! balancer hashed). Every call is bounded by a timeout.
use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    time::Duration,
};

use anyhow::{Context as _, bail};

use crate::netns::run_in;

/// How long a connect, a request or an echo may take.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// An answer and where the request came from.
#[derive(Debug, Clone)]
pub struct Reply {
    pub backend: String,
    pub local: SocketAddr,
}

/// A kept-alive HTTP connection from a client namespace to a VIP.
pub struct HttpConn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    pub local: SocketAddr,
}

impl HttpConn {
    /// Connects from namespace `ns` to `vip:port`.
    pub fn open(ns: &str, vip: IpAddr, port: u16) -> anyhow::Result<Self> {
        let stream = run_in(ns, || {
            TcpStream::connect_timeout(&SocketAddr::new(vip, port), TIMEOUT)
        })
        .with_context(|| format!("connect from {ns} to {vip}:{port}"))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let local = stream.local_addr()?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(HttpConn {
            stream,
            reader,
            local,
        })
    }

    /// Sends one request and returns the backend that answered.
    pub fn get(&mut self) -> anyhow::Result<String> {
        self.get_path("/")
    }

    /// Sends `GET path` and returns the body (for `/`: the backend's name).
    pub fn get_path(&mut self, path: &str) -> anyhow::Result<String> {
        self.stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: lab\r\nUser-Agent: lb-lab\r\n\r\n")
                    .as_bytes(),
            )
            .context("send request")?;
        let mut length = None;
        let mut line = String::new();
        let mut status = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).context("read response")? == 0 {
                bail!("connection closed");
            }
            if status.is_empty() {
                status = line.trim().to_owned();
                continue;
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse::<usize>().ok();
            }
        }
        if !status.contains(" 200 ") {
            bail!("status `{status}`");
        }
        let mut body = vec![0u8; length.context("no content-length")?];
        self.reader.read_exact(&mut body).context("read body")?;
        Ok(String::from_utf8_lossy(&body).trim().to_owned())
    }
}

/// One HTTP request on a new connection.
pub fn http_get(ns: &str, vip: IpAddr, port: u16) -> anyhow::Result<Reply> {
    let mut conn = HttpConn::open(ns, vip, port)?;
    let backend = conn.get()?;
    Ok(Reply {
        backend,
        local: conn.local,
    })
}

/// One UDP echo from a new socket.
pub fn udp_echo(ns: &str, vip: IpAddr, port: u16) -> anyhow::Result<Reply> {
    udp_exchange(ns, vip, port, 0, b"ping")
}

/// Sends `payload` (any bytes) from a new socket bound to `local_port` (0:
/// any) and checks that the echo carries it back; the answering backend.
pub fn udp_exchange(
    ns: &str,
    vip: IpAddr,
    port: u16,
    local_port: u16,
    payload: &[u8],
) -> anyhow::Result<Reply> {
    let any = SocketAddr::new(
        if vip.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u8; 16])
        },
        local_port,
    );
    let socket = run_in(ns, || UdpSocket::bind(any)).context("bind UDP")?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.connect(SocketAddr::new(vip, port))?;
    socket.send(payload).context("send")?;
    let mut buf = [0u8; 2048];
    let n = socket
        .recv(&mut buf)
        .with_context(|| format!("no echo from {vip}:{port}"))?;
    let space = buf[..n]
        .iter()
        .position(|&b| b == b' ')
        .context("malformed echo")?;
    if buf[space + 1..n] != *payload {
        bail!("the echo differs from what was sent");
    }
    Ok(Reply {
        backend: String::from_utf8_lossy(&buf[..space]).into_owned(),
        local: socket.local_addr()?,
    })
}
