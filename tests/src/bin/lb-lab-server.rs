//! The lab's backend servers: HTTP over TCP and a UDP echo, on IPv4 and
//! IPv6, each answer naming this backend, so clients can tell who served
//! them. Runs until killed.
//!
//! UDP is served on each address of `lo` (the VIPs) and `eth0` separately,
//! so that a reply leaves from the address the client sent to: with direct
//! server return the client only accepts answers from the VIP.
//!
//! Usage: `lb-lab-server NAME [HTTP_PORT] [UDP_PORT]` (defaults 80, 5300).
use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    thread,
};

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args
        .next()
        .expect("usage: lb-lab-server NAME [HTTP_PORT] [UDP_PORT]");
    let http: u16 = args.next().map_or(80, |p| p.parse().expect("HTTP port"));
    let udp: u16 = args.next().map_or(5300, |p| p.parse().expect("UDP port"));
    let mut threads = Vec::new();
    for any in [
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    ] {
        let listener = bind_tcp(SocketAddr::new(any.ip(), http));
        let n = name.clone();
        threads.push(thread::spawn(move || serve_tcp(&listener, &n)));
    }
    // The VIPs (on lo) for clients, the host's own address (on eth0) for
    // the LB hosts' health checks.
    let mut addrs = lb_ctl::iface::lookup("lo")
        .expect("addresses of lo")
        .addresses;
    addrs.extend(
        lb_ctl::iface::lookup("eth0")
            .map(|i| i.addresses)
            .unwrap_or_default(),
    );
    for addr in addrs
        .into_iter()
        .filter(|a| !matches!(a, std::net::IpAddr::V6(v) if v.segments()[0] == 0xfe80))
    {
        let socket = bind_udp(SocketAddr::new(addr, udp));
        let n = name.clone();
        threads.push(thread::spawn(move || serve_udp(&socket, &n)));
    }
    eprintln!("lb-lab-server {name}: HTTP on :{http}, UDP echo on :{udp}");
    for t in threads {
        let _ = t.join();
    }
}

fn v6only(fd: i32) {
    let one: libc::c_int = 1;
    // SAFETY: setting an int socket option on our own socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&raw const one).cast(),
            4,
        );
    }
}

fn bind_tcp(addr: SocketAddr) -> TcpListener {
    // std binds [::] dual-stack by default on Linux; make the IPv6 socket
    // IPv6-only so the IPv4 one can bind too. std has no pre-bind hook, so
    // create, set, bind by hand.
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) calls; the fd is handed to std at once.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            4,
        );
        if addr.is_ipv6() {
            v6only(fd);
        }
        let listener = <TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let (sa, len) = sockaddr(addr);
        assert_eq!(
            libc::bind(fd, (&raw const sa).cast(), len),
            0,
            "bind {addr}: {}",
            std::io::Error::last_os_error()
        );
        assert_eq!(libc::listen(fd, 1024), 0, "listen {addr}");
        listener
    }
}

fn bind_udp(addr: SocketAddr) -> UdpSocket {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: as in bind_tcp.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket");
        if addr.is_ipv6() {
            v6only(fd);
        }
        let socket = <UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd);
        let (sa, len) = sockaddr(addr);
        assert_eq!(
            libc::bind(socket.as_raw_fd(), (&raw const sa).cast(), len),
            0,
            "bind {addr}"
        );
        socket
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage; we fill one variant.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough.
            let sin = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn serve_tcp(listener: &TcpListener, name: &str) {
    for stream in listener.incoming().flatten() {
        let name = name.to_owned();
        thread::spawn(move || http_connection(stream, &name));
    }
}

/// Bytes of the body of `GET /big` (several full-size segments).
const BIG: usize = 16_000;

/// Answers every request on the connection (keep-alive): `GET /big` with
/// [`BIG`] bytes, anything else with `NAME\n`.
fn http_connection(stream: TcpStream, name: &str) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut out = stream;
    let small = format!("{name}\n");
    let big = "x".repeat(BIG);
    loop {
        // Read the request head; a real client sends no body here.
        let mut line = String::new();
        let mut first = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" || line == "\n" => break,
                Ok(_) if first.is_empty() => first.clone_from(&line),
                Ok(_) => {}
            }
        }
        if first.is_empty() {
            continue;
        }
        let body = if first.starts_with("GET /big ") {
            &big
        } else {
            &small
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Backend: {name}\r\n\r\n{body}",
            body.len()
        );
        if out.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Echoes every datagram as `NAME PAYLOAD`.
fn serve_udp(socket: &UdpSocket, name: &str) {
    let mut buf = [0u8; 2048];
    while let Ok((n, from)) = socket.recv_from(&mut buf) {
        let mut reply = format!("{name} ").into_bytes();
        reply.extend_from_slice(&buf[..n]);
        let _ = socket.send_to(&reply, from);
    }
}
