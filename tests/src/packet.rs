//! A packet builder for fixtures: Ethernet (with or without one 802.1Q tag),
//! IPv4 (with options and fragment fields when asked) or IPv6, TCP, UDP or
//! ICMP, with correct lengths and checksums; and the IP-in-IP encapsulation
//! the balancer is expected to produce, built independently of it.
use lb_common::bench::BENCH_FRAME_LEN;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_ARP: u16 = 0x0806;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// The transport part of a packet.
#[derive(Clone, Debug)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP (IPv4) or ICMPv6 (IPv6) with a type and code, and 4 bytes of
    /// rest-of-header.
    Icmp {
        kind: u8,
        code: u8,
    },
    /// Any other protocol number, with no header of its own.
    Raw {
        proto: u8,
    },
}

/// A packet to build. Start from [`Packet::tcp`], [`Packet::udp`],
/// [`Packet::icmp`] or [`Packet::raw`]; adjust fields; call [`Packet::bytes`].
#[derive(Clone, Debug)]
pub struct Packet {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub l4: L4,
    pub payload: Vec<u8>,
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 options (a multiple of 4 bytes); ignored for IPv6.
    pub ipv4_options: Vec<u8>,
    /// IPv4 flags and fragment offset, host order (e.g. 0x2000 = more
    /// fragments); for IPv6 a non-zero value adds a fragment header with
    /// this offset/flags field.
    pub frag: u16,
    pub ipv4_id: u16,
}

/// Source MAC of fixture packets (a locally administered address).
pub const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of fixture packets: the LB host's interface.
pub const LB_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

impl Packet {
    fn new(src: IpAddr, dst: IpAddr, l4: L4) -> Self {
        assert_eq!(src.is_ipv4(), dst.is_ipv4(), "mixed address families");
        Packet {
            eth_dst: LB_MAC,
            eth_src: CLIENT_MAC,
            vlan: None,
            src,
            dst,
            l4,
            payload: b"lb-test-payload".to_vec(),
            ttl: 64,
            tos: 0,
            ipv4_options: Vec::new(),
            frag: 0,
            ipv4_id: 0x1234,
        }
    }

    pub fn tcp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, flags: u8) -> Self {
        Self::new(
            src,
            dst,
            L4::Tcp {
                sport,
                dport,
                flags,
            },
        )
    }

    pub fn udp(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> Self {
        Self::new(src, dst, L4::Udp { sport, dport })
    }

    pub fn icmp(src: IpAddr, dst: IpAddr, kind: u8, code: u8) -> Self {
        Self::new(src, dst, L4::Icmp { kind, code })
    }

    pub fn raw(src: IpAddr, dst: IpAddr, proto: u8) -> Self {
        Self::new(src, dst, L4::Raw { proto })
    }

    pub fn with_vlan(mut self, id: u16) -> Self {
        self.vlan = Some(id);
        self
    }

    pub fn with_payload(mut self, payload: &[u8]) -> Self {
        self.payload = payload.to_vec();
        self
    }

    pub fn with_ipv4_options(mut self, options: &[u8]) -> Self {
        assert_eq!(options.len() % 4, 0, "IPv4 options come in 4-byte words");
        self.ipv4_options = options.to_vec();
        self
    }

    pub fn with_frag(mut self, frag: u16) -> Self {
        self.frag = frag;
        self
    }

    pub fn with_tos(mut self, tos: u8) -> Self {
        self.tos = tos;
        self
    }

    fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => IPPROTO_TCP,
            L4::Udp { .. } => IPPROTO_UDP,
            L4::Icmp { .. } if self.src.is_ipv4() => IPPROTO_ICMP,
            L4::Icmp { .. } => IPPROTO_ICMPV6,
            L4::Raw { proto } => proto,
        }
    }

    /// The transport header and payload, checksummed.
    fn l4_bytes(&self) -> Vec<u8> {
        let mut seg = match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&1000u32.to_be_bytes()); // seq
                h[8..12].copy_from_slice(
                    &(if flags & TCP_ACK != 0 { 2000u32 } else { 0 }).to_be_bytes(),
                );
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&65535u16.to_be_bytes());
                h
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                let len = (8 + self.payload.len()) as u16;
                h[4..6].copy_from_slice(&len.to_be_bytes());
                h
            }
            L4::Icmp { kind, code } => vec![kind, code, 0, 0, 0, 1, 0, 1],
            L4::Raw { .. } => Vec::new(),
        };
        seg.extend_from_slice(&self.payload);
        let csum_at = match self.l4 {
            L4::Tcp { .. } => Some(16),
            L4::Udp { .. } => Some(6),
            L4::Icmp { .. } => Some(2),
            L4::Raw { .. } => None,
        };
        if let Some(at) = csum_at {
            let pseudo = match (&self.l4, self.src, self.dst) {
                (L4::Icmp { .. }, IpAddr::V4(_), _) => Vec::new(),
                _ => pseudo_header(self.src, self.dst, self.proto(), seg.len()),
            };
            let mut c = checksum(&[&pseudo, &seg]);
            if c == 0 && matches!(self.l4, L4::Udp { .. }) {
                c = 0xffff;
            }
            seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
        seg
    }

    /// The IP packet (header and everything after it), without Ethernet.
    pub fn ip_bytes(&self) -> Vec<u8> {
        let seg = self.l4_bytes();
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut h = ipv4_header(
                    src,
                    dst,
                    self.proto(),
                    seg.len(),
                    self.ttl,
                    self.tos,
                    &self.ipv4_options,
                );
                h[4..6].copy_from_slice(&self.ipv4_id.to_be_bytes());
                h[6..8].copy_from_slice(&self.frag.to_be_bytes());
                let ihl = h.len();
                h[10..12].copy_from_slice(&[0, 0]);
                let c = checksum(&[&h[..ihl]]);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                h.extend_from_slice(&seg);
                h
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let (next, ext) = if self.frag != 0 {
                    // Fragment header: next, reserved, offset/flags, id.
                    let mut f = vec![self.proto(), 0];
                    f.extend_from_slice(&self.frag.to_be_bytes());
                    f.extend_from_slice(&0xabcd_u32.to_be_bytes());
                    (44u8, f)
                } else {
                    (self.proto(), Vec::new())
                };
                let mut h =
                    ipv6_header(src, dst, next, ext.len() + seg.len(), self.ttl, self.tos, 0);
                h.extend_from_slice(&ext);
                h.extend_from_slice(&seg);
                h
            }
            _ => unreachable!("families checked in new()"),
        }
    }

    /// The whole frame.
    pub fn bytes(&self) -> Vec<u8> {
        let ethertype = if self.src.is_ipv4() {
            ETH_P_IP
        } else {
            ETH_P_IPV6
        };
        let mut out = eth_header(self.eth_dst, self.eth_src, self.vlan, ethertype);
        out.extend_from_slice(&self.ip_bytes());
        out
    }
}

/// `p` as a benchmark frame: its payload grown (bytes 0x5a) to make the
/// frame exactly [`BENCH_FRAME_LEN`] bytes.
pub fn bench_frame(p: &Packet) -> [u8; BENCH_FRAME_LEN] {
    let mut p = p.clone();
    let header = p.bytes().len() - p.payload.len();
    p.payload = vec![0x5a; BENCH_FRAME_LEN - header];
    p.bytes()
        .try_into()
        .expect("frame of BENCH_FRAME_LEN bytes")
}

/// An Ethernet header, with one 802.1Q tag if `vlan` is set.
pub fn eth_header(dst: [u8; 6], src: [u8; 6], vlan: Option<u16>, ethertype: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(18);
    h.extend_from_slice(&dst);
    h.extend_from_slice(&src);
    if let Some(id) = vlan {
        h.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        h.extend_from_slice(&(id & 0x0fff).to_be_bytes());
    }
    h.extend_from_slice(&ethertype.to_be_bytes());
    h
}

/// An IPv4 header with a correct checksum (id 0, no flags unless changed).
pub fn ipv4_header(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    payload_len: usize,
    ttl: u8,
    tos: u8,
    options: &[u8],
) -> Vec<u8> {
    let ihl = 20 + options.len();
    let mut h = vec![0u8; 20];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[1] = tos;
    h[2..4].copy_from_slice(&((ihl + payload_len) as u16).to_be_bytes());
    h[8] = ttl;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// An IPv6 header.
pub fn ipv6_header(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next: u8,
    payload_len: usize,
    hop_limit: u8,
    tclass: u8,
    flow_label: u32,
) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    let first = (6u32 << 28) | (u32::from(tclass) << 20) | (flow_label & 0x000f_ffff);
    h[0..4].copy_from_slice(&first.to_be_bytes());
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = hop_limit;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h
}

fn pseudo_header(src: IpAddr, dst: IpAddr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, proto]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, proto]);
        }
        _ => unreachable!(),
    }
    p
}

/// The Internet checksum over the concatenation of `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(hi) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frame the balancer should send for `inner` toward a GUE real: as
/// [`encapsulated`], with a UDP header (`sport` -> `dport`, checksum 0)
/// between the outer header and `inner`'s IP packet.
pub fn gue_encapsulated(
    inner: &Packet,
    real: IpAddr,
    outer_src: IpAddr,
    macs: ([u8; 6], [u8; 6]),
    flow_label: u32,
    ports: (u16, u16),
) -> Vec<u8> {
    tunnel_frame(inner, real, outer_src, macs, flow_label, Some(ports))
}

/// The frame the balancer should send for `inner` toward `real`: the same
/// VLAN tag, MACs `dst_mac`/`src_mac`, an outer header from `outer_src`
/// (TTL 64, ID 0, no flags; IPv6 flow label `flow_label`), then `inner`'s
/// IP packet byte for byte.
pub fn encapsulated(
    inner: &Packet,
    real: IpAddr,
    outer_src: IpAddr,
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    flow_label: u32,
) -> Vec<u8> {
    tunnel_frame(inner, real, outer_src, (dst_mac, src_mac), flow_label, None)
}

/// A tunnel frame: Ethernet (inner's tag), the outer IP header, a UDP
/// header if `udp_ports` (GUE, checksum 0), then `inner`'s IP packet.
fn tunnel_frame(
    inner: &Packet,
    real: IpAddr,
    outer_src: IpAddr,
    (dst_mac, src_mac): ([u8; 6], [u8; 6]),
    flow_label: u32,
    udp_ports: Option<(u16, u16)>,
) -> Vec<u8> {
    let inner_ip = inner.ip_bytes();
    let mut carried = Vec::with_capacity(8 + inner_ip.len());
    let proto = match udp_ports {
        Some((sport, dport)) => {
            carried.extend_from_slice(&sport.to_be_bytes());
            carried.extend_from_slice(&dport.to_be_bytes());
            carried.extend_from_slice(&((8 + inner_ip.len()) as u16).to_be_bytes());
            carried.extend_from_slice(&[0, 0]);
            IPPROTO_UDP
        }
        None if inner.src.is_ipv4() => IPPROTO_IPIP,
        None => IPPROTO_IPV6,
    };
    carried.extend_from_slice(&inner_ip);
    let (ethertype, outer) = match (outer_src, real) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (
            ETH_P_IP,
            ipv4_header(s, d, proto, carried.len(), 64, inner.tos, &[]),
        ),
        (IpAddr::V6(s), IpAddr::V6(d)) => (
            ETH_P_IPV6,
            ipv6_header(s, d, proto, carried.len(), 64, inner.tos, flow_label),
        ),
        _ => panic!("outer source and real differ in family"),
    };
    let mut out = eth_header(dst_mac, src_mac, inner.vlan, ethertype);
    out.extend_from_slice(&outer);
    out.extend_from_slice(&carried);
    out
}

/// The ICMP "fragmentation needed" (IPv4) or ICMPv6 "packet too big" the
/// balancer should answer `request` with, advertising `mtu`.
pub fn too_big_reply(request: &Packet, mtu: u32) -> Vec<u8> {
    let quoted = request.ip_bytes();
    let mut out = eth_header(
        request.eth_src,
        request.eth_dst,
        request.vlan,
        if request.src.is_ipv4() {
            ETH_P_IP
        } else {
            ETH_P_IPV6
        },
    );
    match (request.src, request.dst) {
        (IpAddr::V4(client), IpAddr::V4(vip)) => {
            let mut icmp = vec![3, 4, 0, 0, 0, 0];
            icmp.extend_from_slice(&(mtu as u16).to_be_bytes());
            icmp.extend_from_slice(&quoted[..28]);
            let c = checksum(&[&icmp]);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&ipv4_header(
                vip,
                client,
                IPPROTO_ICMP,
                icmp.len(),
                64,
                0,
                &[],
            ));
            out.extend_from_slice(&icmp);
        }
        (IpAddr::V6(client), IpAddr::V6(vip)) => {
            let mut icmp = vec![2, 0, 0, 0];
            icmp.extend_from_slice(&mtu.to_be_bytes());
            icmp.extend_from_slice(&quoted[..48]);
            let pseudo = pseudo_header(
                IpAddr::V6(vip),
                IpAddr::V6(client),
                IPPROTO_ICMPV6,
                icmp.len(),
            );
            let c = checksum(&[&pseudo, &icmp]);
            icmp[2..4].copy_from_slice(&c.to_be_bytes());
            out.extend_from_slice(&ipv6_header(
                vip,
                client,
                IPPROTO_ICMPV6,
                icmp.len(),
                64,
                0,
                0,
            ));
            out.extend_from_slice(&icmp);
        }
        _ => unreachable!(),
    }
    out
}

/// The echo reply the balancer should answer `request` (an echo request
/// to a VIP) with: addresses and MACs swapped, TTL 64, type 0 / 129.
pub fn echo_reply(request: &Packet) -> Vec<u8> {
    let mut reply = request.clone();
    std::mem::swap(&mut reply.src, &mut reply.dst);
    std::mem::swap(&mut reply.eth_src, &mut reply.eth_dst);
    reply.ttl = 64;
    reply.l4 = match request.l4 {
        L4::Icmp { code, .. } => L4::Icmp {
            kind: if request.src.is_ipv4() { 0 } else { 129 },
            code,
        },
        _ => panic!("not an echo request"),
    };
    reply.bytes()
}
