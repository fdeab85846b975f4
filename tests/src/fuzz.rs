//! The data-plane fuzzer: seeded packets (well-formed traffic, then every
//! kind of damage: truncations, lying length fields, options, fragments,
//! IPv6 extension chains, VLAN and QinQ tags, bit flips, random bytes), an
//! oracle written from docs/DATAPLANE.md that says what the balancer must
//! do with each, and a checker of what the real program did
//! (BPF_PROG_TEST_RUN through [`TestBalancer`]).
//!
//! The oracle is independent of the program: it reads the bytes as the
//! document describes, and only shares lb-common's flow hash and lb-ctl's
//! Maglev builder (which choose the real; the kernel tests check those
//! against golden values elsewhere).
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use lb_common::{
    FAMILY_V6,
    hash::{flow_hash, outer_hash},
    maps::{FlowKey, REAL_STATE_UP, Real},
};

use crate::{
    balancer::{
        LB_SRC_V4, LB_SRC_V6, ROUTER_MAC, Rng, TEST_MTU, TestBalancer, TestReal, XDP_ABORTED,
        XDP_DROP, XDP_PASS, XDP_TX, ip,
    },
    packet::{LB_MAC, Packet, TCP_ACK, TCP_SYN, checksum},
};

/// The longest ICMP message the balancer answers an echo request for
/// (lb-ebpf's `ECHO_MAX_LEN`).
const ECHO_MAX_LEN: usize = 2048;

/// A VIP of the fuzz world and its ring.
struct FuzzVip {
    addr: IpAddr,
    port: u16,
    proto: u8,
    /// Real ids by ring slot.
    ring: Vec<u32>,
}

/// The balancer the fuzzer runs against, and what it was given.
pub struct World {
    pub lb: TestBalancer,
    vips: Vec<FuzzVip>,
    reals: BTreeMap<u32, IpAddr>,
    /// The reals of VIP 0, which [`World::add_real`] changes mid-run.
    vip0_reals: Vec<TestReal>,
    /// The connections the balancer must remember: flow -> real.
    conns: BTreeMap<[u8; 40], IpAddr>,
}

const RING: u32 = 251;

/// A VIP to load: address, port, protocol, reals (id, address).
type VipSpec = (&'static str, u16, u8, &'static [(u32, &'static str)]);

impl World {
    /// Loads the balancer with the fuzz VIPs: TCP and UDP on an IPv4
    /// address (UDP with IPv6 reals: IPv4-in-IPv6), a port-less TCP VIP,
    /// TCP and UDP on an IPv6 address (UDP with an IPv4 real:
    /// IPv6-in-IPv4).
    pub fn new() -> World {
        let mut lb = TestBalancer::new(1 << 20);
        let specs: [VipSpec; 5] = [
            (
                "203.0.113.10",
                80,
                6,
                &[(1, "192.0.2.10"), (2, "192.0.2.11"), (3, "192.0.2.12")],
            ),
            (
                "203.0.113.10",
                53,
                17,
                &[(4, "2001:db8:1::10"), (5, "2001:db8:1::11")],
            ),
            (
                "203.0.113.11",
                0,
                6,
                &[(6, "192.0.2.20"), (7, "192.0.2.21")],
            ),
            (
                "2001:db8:f::10",
                443,
                6,
                &[
                    (8, "2001:db8:2::1"),
                    (9, "2001:db8:2::2"),
                    (10, "2001:db8:2::3"),
                ],
            ),
            ("2001:db8:f::10", 443, 17, &[(11, "192.0.2.30")]),
        ];
        let mut vips = Vec::new();
        let mut reals = BTreeMap::new();
        let mut vip0_reals = Vec::new();
        for (addr, port, proto, rs) in specs {
            let test_reals: Vec<TestReal> = rs
                .iter()
                .map(|&(id, a)| TestReal {
                    id,
                    addr: ip(a),
                    weight: 1,
                })
                .collect();
            let vip_id = lb.add_vip(addr, port, proto, &test_reals, RING);
            let ring = lb.dp.ring(vip_id).expect("ring");
            for r in &test_reals {
                reals.insert(r.id, r.addr);
            }
            if vip_id == 0 {
                vip0_reals = test_reals.clone();
            }
            vips.push(FuzzVip {
                addr: ip(addr),
                port,
                proto,
                ring,
            });
        }
        World {
            lb,
            vips,
            reals,
            vip0_reals,
            conns: BTreeMap::new(),
        }
    }

    /// Adds a real to VIP 0 (203.0.113.10:80/tcp) and writes its new ring:
    /// new flows follow the new ring, remembered flows stay where they are.
    pub fn add_real(&mut self) {
        let r = TestReal {
            id: 12,
            addr: ip("192.0.2.13"),
            weight: 1,
        };
        self.lb
            .dp
            .set_real(r.id, &Real::new(r.addr, REAL_STATE_UP, 1))
            .expect("real");
        self.vip0_reals.push(r);
        self.reals.insert(r.id, r.addr);
        let reals = self.vip0_reals.clone();
        self.vips[0].ring = self.lb.set_ring(0, &reals, RING);
    }

    fn is_vip_addr(&self, a: IpAddr) -> bool {
        self.vips.iter().any(|v| v.addr == a)
    }

    /// The real a packet of this flow goes to, if a VIP serves it: the
    /// remembered one, else the ring's.
    fn real_for(&self, flow: &FlowKey, dst: IpAddr) -> Option<IpAddr> {
        let vip = self
            .vips
            .iter()
            .find(|v| v.addr == dst && v.port == flow.dport && v.proto == flow.proto)
            .or_else(|| {
                self.vips
                    .iter()
                    .find(|v| v.addr == dst && v.port == 0 && v.proto == flow.proto)
            })?;
        if let Some(&real) = self.conns.get(&flow_bytes(flow)) {
            return Some(real);
        }
        let id = vip.ring[(flow_hash(flow) % vip.ring.len() as u32) as usize];
        self.reals.get(&id).copied()
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// What the balancer must do with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// `XDP_PASS`, the frame untouched.
    Pass,
    /// `XDP_DROP`.
    Drop,
    /// `XDP_TX` of the frame inside an outer header toward `real`; the
    /// client packet is `ip_len` bytes at `l3`.
    Encap {
        real: IpAddr,
        l3: usize,
        ip_len: usize,
        flow: FlowKey,
    },
    /// `XDP_TX` of the echo reply, in place.
    EchoReply { l3: usize, v6: bool, ip_len: usize },
    /// `XDP_TX` of an ICMP too-big to the sender advertising `mtu`.
    TooBig { l3: usize, v6: bool, mtu: u32 },
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

fn addr4(b: &[u8], at: usize) -> IpAddr {
    IpAddr::from(<[u8; 4]>::try_from(&b[at..at + 4]).expect("4 bytes"))
}

fn addr6(b: &[u8], at: usize) -> IpAddr {
    IpAddr::from(<[u8; 16]>::try_from(&b[at..at + 16]).expect("16 bytes"))
}

fn key(src: IpAddr, sport: usize, dst: IpAddr, dport: usize, proto: u8) -> FlowKey {
    FlowKey::new(src, sport as u16, dst, dport as u16, proto)
}

/// The smallest TCP (20) or UDP (8) header.
fn l4_min(proto: u8) -> usize {
    if proto == 6 { 20 } else { 8 }
}

fn overhead(real: IpAddr) -> usize {
    if real.is_ipv4() { 20 } else { 40 }
}

/// One's complement sum of `b` as big-endian words, folded, not inverted.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    !checksum(parts)
}

fn source_answerable(src: IpAddr) -> bool {
    match src {
        IpAddr::V4(a) => {
            let o = a.octets();
            o[0] != 0 && o[0] != 127 && o[0] < 224
        }
        IpAddr::V6(a) => {
            let o = a.octets();
            o[0] != 0xff && !(o[..15].iter().all(|&b| b == 0) && o[15] <= 1)
        }
    }
}

/// The oracle: what docs/DATAPLANE.md says the balancer does with `frame`
/// (gateway MAC mode, MTU [`TEST_MTU`], echo and too-big answers on).
pub fn expect(world: &World, f: &[u8]) -> Expect {
    // Ethernet, one optional 802.1Q tag; cut inside them: pass.
    if f.len() < 14 {
        return Expect::Pass;
    }
    let (mut ethertype, mut l3) = (be16(f, 12), 14);
    if ethertype == 0x8100 {
        if f.len() < 18 {
            return Expect::Pass;
        }
        ethertype = be16(f, 16);
        l3 = 18;
    }
    let frame = f.len() - l3;
    let mtu = usize::from(TEST_MTU);
    // What happens to a packet the balancer will not forward: dropped if
    // it is for a VIP address, else passed.
    let refuse = |dst: IpAddr| {
        if world.is_vip_addr(dst) {
            Expect::Drop
        } else {
            Expect::Pass
        }
    };
    let encap_or_mtu = |flow: FlowKey, dst: IpAddr, ip_len: usize, v6: bool, df: bool| {
        let Some(real) = world.real_for(&flow, dst) else {
            return Expect::Pass;
        };
        if ip_len + overhead(real) > mtu {
            return if v6 {
                Expect::TooBig {
                    l3,
                    v6,
                    mtu: (mtu - overhead(real)).max(1280) as u32,
                }
            } else if df {
                Expect::TooBig {
                    l3,
                    v6,
                    mtu: (mtu - overhead(real)) as u32,
                }
            } else {
                Expect::Drop
            };
        }
        Expect::Encap {
            real,
            l3,
            ip_len,
            flow,
        }
    };
    // A too-big about a real's reply goes, whole, to the flow's real (no
    // too-big answer of its own when it does not fit).
    let forward_error = |flow: FlowKey, vip: IpAddr, ip_len: usize| match world.real_for(&flow, vip)
    {
        Some(real) if ip_len + overhead(real) <= mtu => Expect::Encap {
            real,
            l3,
            ip_len,
            flow,
        },
        _ => Expect::Drop,
    };
    match ethertype {
        0x0800 => {
            if frame < 20 || f[l3] >> 4 != 4 {
                return Expect::Pass;
            }
            let ihl = usize::from(f[l3] & 0x0f) * 4;
            let tot = be16(f, l3 + 2);
            let (src, dst) = (addr4(f, l3 + 12), addr4(f, l3 + 16));
            if ihl < 20 || tot < ihl || tot > frame || ihl != 20 {
                return refuse(dst);
            }
            let frag = be16(f, l3 + 6);
            if frag & 0x3fff != 0 {
                return refuse(dst);
            }
            let proto = f[l3 + 9];
            match proto {
                1 => {
                    if !world.is_vip_addr(dst) {
                        return Expect::Pass;
                    }
                    let icmp = l3 + 20;
                    if tot >= 28 && f[icmp] == 8 && f[icmp + 1] == 0 {
                        let len = tot - 20;
                        if !source_answerable(src) {
                            return Expect::Drop;
                        }
                        if len <= ECHO_MAX_LEN {
                            return if ones_sum(&[&f[icmp..icmp + len]]) == 0xffff {
                                Expect::EchoReply {
                                    l3,
                                    v6: false,
                                    ip_len: tot,
                                }
                            } else {
                                Expect::Drop
                            };
                        }
                    }
                    // Too-big about a real's reply: to the flow's real.
                    let q = icmp + 8;
                    if tot < 56 || f[icmp] != 3 || f[icmp + 1] != 4 || f[q] != 0x45 {
                        return Expect::Drop;
                    }
                    let (qsrc, qdst, qproto) = (addr4(f, q + 12), addr4(f, q + 16), f[q + 9]);
                    if qsrc != dst || (qproto != 6 && qproto != 17) {
                        return Expect::Drop;
                    }
                    let flow = key(qdst, be16(f, q + 22), qsrc, be16(f, q + 20), qproto);
                    forward_error(flow, qsrc, tot)
                }
                6 | 17 => {
                    if tot < 20 + l4_min(proto) {
                        return refuse(dst);
                    }
                    let flow = key(src, be16(f, l3 + 20), dst, be16(f, l3 + 22), proto);
                    encap_or_mtu(flow, dst, tot, false, frag & 0x4000 != 0)
                }
                _ => refuse(dst),
            }
        }
        0x86dd => {
            if frame < 40 || f[l3] >> 4 != 6 {
                return Expect::Pass;
            }
            let total = be16(f, l3 + 4) + 40;
            let (src, dst) = (addr6(f, l3 + 8), addr6(f, l3 + 24));
            if total > frame {
                return refuse(dst);
            }
            let next = f[l3 + 6];
            match next {
                58 => {
                    if !world.is_vip_addr(dst) {
                        return Expect::Pass;
                    }
                    let icmp = l3 + 40;
                    if total >= 48 && f[icmp] == 128 && f[icmp + 1] == 0 {
                        let len = total - 40;
                        if !source_answerable(src) {
                            return Expect::Drop;
                        }
                        if len <= ECHO_MAX_LEN {
                            let mut pseudo = Vec::with_capacity(40);
                            pseudo.extend_from_slice(&f[l3 + 8..l3 + 40]);
                            pseudo.extend_from_slice(&(len as u32).to_be_bytes());
                            pseudo.extend_from_slice(&[0, 0, 0, 58]);
                            return if ones_sum(&[&pseudo, &f[icmp..icmp + len]]) == 0xffff {
                                Expect::EchoReply {
                                    l3,
                                    v6: true,
                                    ip_len: total,
                                }
                            } else {
                                Expect::Drop
                            };
                        }
                    }
                    let q = icmp + 8;
                    if total < 96 || f[icmp] != 2 {
                        return Expect::Drop;
                    }
                    let (qsrc, qdst, qnext) = (addr6(f, q + 8), addr6(f, q + 24), f[q + 6]);
                    if qsrc != dst || (qnext != 6 && qnext != 17) {
                        return Expect::Drop;
                    }
                    let flow = key(qdst, be16(f, q + 42), qsrc, be16(f, q + 40), qnext);
                    forward_error(flow, qsrc, total)
                }
                6 | 17 => {
                    if total < 40 + l4_min(next) {
                        return refuse(dst);
                    }
                    let flow = key(src, be16(f, l3 + 40), dst, be16(f, l3 + 42), next);
                    encap_or_mtu(flow, dst, total, true, false)
                }
                _ => refuse(dst),
            }
        }
        _ => Expect::Pass,
    }
}

/// Checks the program's verdict and output against `want`; `Err` says what
/// differs.
pub fn check(input: &[u8], want: &Expect, verdict: u32, out: &[u8]) -> Result<(), String> {
    if verdict == XDP_ABORTED {
        return Err("XDP_ABORTED".into());
    }
    match want {
        Expect::Pass => {
            if verdict != XDP_PASS {
                return Err(format!("verdict {verdict}, want XDP_PASS"));
            }
            if out != input {
                return Err("a passed frame was changed".into());
            }
        }
        Expect::Drop => {
            if verdict != XDP_DROP {
                return Err(format!("verdict {verdict}, want XDP_DROP"));
            }
        }
        _ if verdict != XDP_TX => return Err(format!("verdict {verdict}, want XDP_TX")),
        Expect::Encap {
            real,
            l3,
            ip_len,
            flow,
        } => check_encap(input, out, *real, *l3, *ip_len, flow)?,
        Expect::EchoReply { l3, v6, ip_len } => check_echo(input, out, *l3, *v6, *ip_len)?,
        Expect::TooBig { l3, v6, mtu } => check_too_big(input, out, *l3, *v6, *mtu)?,
    }
    Ok(())
}

fn check_l2(
    input: &[u8],
    out: &[u8],
    l3: usize,
    dst: [u8; 6],
    src: [u8; 6],
    ethertype: u16,
) -> Result<(), String> {
    if out.len() < l3 {
        return Err("output shorter than its link-layer header".into());
    }
    if out[0..6] != dst || out[6..12] != src {
        return Err(format!("MACs {:02x?} -> {:02x?}", &out[6..12], &out[0..6]));
    }
    if l3 == 18 && out[12..16] != input[12..16] {
        return Err("the 802.1Q tag was not kept".into());
    }
    if be16(out, l3 - 2) != usize::from(ethertype) {
        return Err(format!("ethertype {:#06x}", be16(out, l3 - 2)));
    }
    Ok(())
}

fn check_encap(
    input: &[u8],
    out: &[u8],
    real: IpAddr,
    l3: usize,
    ip_len: usize,
    flow: &FlowKey,
) -> Result<(), String> {
    let outer = overhead(real);
    if out.len() != input.len() + outer {
        return Err(format!(
            "encapsulated frame of {} bytes, want {}",
            out.len(),
            input.len() + outer
        ));
    }
    let v6_inner = flow.family == FAMILY_V6;
    let tos = if v6_inner {
        ((u32::from(input[l3]) << 4 | u32::from(input[l3 + 1]) >> 4) & 0xff) as u8
    } else {
        input[l3 + 1]
    };
    let inner_proto = if v6_inner { 41 } else { 4 };
    let o = &out[l3..];
    if real.is_ipv4() {
        check_l2(input, out, l3, ROUTER_MAC, LB_MAC, 0x0800)?;
        let h = &o[..20];
        let ok = h[0] == 0x45
            && h[1] == tos
            && be16(h, 2) == ip_len + 20
            && be16(h, 4) == 0
            && be16(h, 6) == 0
            && h[8] == 64
            && h[9] == inner_proto
            && checksum(&[h]) == 0
            && addr4(h, 12) == ip(LB_SRC_V4)
            && addr4(h, 16) == real;
        if !ok {
            return Err(format!("outer IPv4 header {h:02x?} toward {real}"));
        }
    } else {
        check_l2(input, out, l3, ROUTER_MAC, LB_MAC, 0x86dd)?;
        let h = &o[..40];
        let first = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        let ok = first >> 28 == 6
            && (first >> 20) & 0xff == u32::from(tos)
            && first & 0xfffff == outer_hash(flow) & 0xfffff
            && be16(h, 4) == ip_len
            && h[6] == inner_proto
            && h[7] == 64
            && addr6(h, 8) == ip(LB_SRC_V6)
            && addr6(h, 24) == real;
        if !ok {
            return Err(format!("outer IPv6 header {h:02x?} toward {real}"));
        }
    }
    if o[outer..] != input[l3..] {
        return Err("the client's packet was not carried byte for byte".into());
    }
    Ok(())
}

fn swapped_macs(input: &[u8]) -> ([u8; 6], [u8; 6]) {
    let d: [u8; 6] = input[6..12].try_into().expect("6");
    let s: [u8; 6] = input[0..6].try_into().expect("6");
    (d, s)
}

fn check_echo(input: &[u8], out: &[u8], l3: usize, v6: bool, ip_len: usize) -> Result<(), String> {
    if out.len() != input.len() {
        return Err("an echo reply changes no length".into());
    }
    let (d, s) = swapped_macs(input);
    check_l2(input, out, l3, d, s, if v6 { 0x86dd } else { 0x0800 })?;
    let (i, o) = (&input[l3..], &out[l3..]);
    if v6 {
        let len = ip_len - 40;
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&o[8..40]);
        pseudo.extend_from_slice(&(len as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        let ok = o[8..24] == i[24..40]
            && o[24..40] == i[8..24]
            && o[7] == 64
            && o[40] == 129
            && o[41] == 0
            && checksum(&[&pseudo, &o[40..40 + len]]) == 0
            && o[44..] == i[44..];
        if !ok {
            return Err("bad ICMPv6 echo reply".into());
        }
    } else {
        let ok = o[12..16] == i[16..20]
            && o[16..20] == i[12..16]
            && o[8] == 64
            && checksum(&[&o[..20]]) == 0
            && o[20] == 0
            && o[21] == 0
            && checksum(&[&o[20..ip_len]]) == 0
            && o[24..] == i[24..];
        if !ok {
            return Err("bad ICMP echo reply".into());
        }
    }
    Ok(())
}

fn check_too_big(input: &[u8], out: &[u8], l3: usize, v6: bool, mtu: u32) -> Result<(), String> {
    let (d, s) = swapped_macs(input);
    check_l2(input, out, l3, d, s, if v6 { 0x86dd } else { 0x0800 })?;
    let (i, o) = (&input[l3..], &out[l3..]);
    if v6 {
        if o.len() != 40 + 8 + 48 {
            return Err(format!("ICMPv6 too-big of {} bytes", o.len()));
        }
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&o[8..40]);
        pseudo.extend_from_slice(&56u32.to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        let ok = o[8..24] == i[24..40]
            && o[24..40] == i[8..24]
            && o[6] == 58
            && be16(o, 4) == 56
            && o[40] == 2
            && u32::from_be_bytes([o[44], o[45], o[46], o[47]]) == mtu
            && checksum(&[&pseudo, &o[40..]]) == 0
            && o[48..] == i[..48];
        if !ok {
            return Err(format!(
                "bad ICMPv6 too-big (want MTU {mtu}): {:02x?}",
                &o[..48]
            ));
        }
    } else {
        if o.len() != 20 + 8 + 28 {
            return Err(format!("ICMP too-big of {} bytes", o.len()));
        }
        let ok = o[12..16] == i[16..20]
            && o[16..20] == i[12..16]
            && o[9] == 1
            && be16(o, 2) == 56
            && checksum(&[&o[..20]]) == 0
            && o[20] == 3
            && o[21] == 4
            && be16(o, 26) as u32 == mtu
            && checksum(&[&o[20..]]) == 0
            && o[28..] == i[..28];
        if !ok {
            return Err(format!(
                "bad ICMP too-big (want MTU {mtu}): {:02x?}",
                &o[..28]
            ));
        }
    }
    Ok(())
}

/// Makes packets: well-formed ones, then damaged copies.
pub struct Generator {
    rng: Rng,
    /// Recent clients, reused so that flows repeat (stickiness).
    clients: Vec<(IpAddr, u16)>,
}

const VIP_ADDRS4: [&str; 3] = ["203.0.113.10", "203.0.113.11", "203.0.113.99"];
const VIP_ADDRS6: [&str; 2] = ["2001:db8:f::10", "2001:db8:f::99"];

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: Rng::new(seed),
            clients: Vec::new(),
        }
    }

    /// A client address and port: a recent one a third of the time.
    fn client(&mut self, v6: bool) -> (IpAddr, u16) {
        if self.chance(33) {
            let same: Vec<_> = self
                .clients
                .iter()
                .filter(|(a, _)| a.is_ipv6() == v6)
                .copied()
                .collect();
            if !same.is_empty() {
                return same[self.below(same.len())];
            }
        }
        let c = self.rng.client(v6);
        if self.clients.len() < 256 {
            self.clients.push(c);
        } else {
            let i = self.below(256);
            self.clients[i] = c;
        }
        c
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn payload(&mut self) -> Vec<u8> {
        let len = match self.below(10) {
            0 => 0,
            1 => 1400 + self.below(200),
            2 => 1 + self.below(3),
            _ => self.below(200),
        };
        (0..len).map(|_| self.rng.next_u64() as u8).collect()
    }

    /// A well-formed packet: TCP, UDP, an echo request, a too-big about a
    /// reply, or another protocol; to a VIP address (a served port or
    /// not) or elsewhere; sometimes tagged.
    pub fn well_formed(&mut self) -> Vec<u8> {
        let v6 = self.chance(45);
        let (client, port) = self.client(v6);
        let dst = ip(if v6 {
            VIP_ADDRS6[usize::from(self.chance(10))]
        } else {
            VIP_ADDRS4[if self.chance(10) { 2 } else { self.below(2) }]
        });
        let dport = [80u16, 53, 443, 8080, 0][self.below(5)];
        let mut p = match self.below(12) {
            0..=4 => Packet::tcp(
                client,
                port,
                dst,
                dport,
                if self.chance(50) { TCP_SYN } else { TCP_ACK },
            ),
            5..=7 => Packet::udp(client, port, dst, dport),
            8 => Packet::icmp(client, dst, if v6 { 128 } else { 8 }, 0),
            9 | 10 => {
                // A router tells the VIP its reply was too big.
                let reply = if self.chance(50) {
                    Packet::tcp(dst, dport, client, port, TCP_ACK)
                } else {
                    Packet::udp(dst, dport, client, port)
                };
                let mut quote = reply.ip_bytes();
                quote.truncate(if v6 { 48 } else { 28 } + self.below(40));
                let router = ip(if v6 {
                    "2001:db8:99::1"
                } else {
                    "198.51.100.254"
                });
                let (kind, code) = if v6 { (2, 0) } else { (3, 4) };
                let p = Packet::icmp(router, dst, kind, code).with_payload(&quote);
                return self.tag(p.bytes());
            }
            _ => Packet::raw(client, dst, [47u8, 132, 0, 50][self.below(4)]),
        };
        p.payload = self.payload();
        p.tos = self.rng.next_u64() as u8 & 0xfc;
        if !v6 && self.chance(50) {
            p.frag = 0x4000; // DF
        }
        let bytes = p.bytes();
        self.tag(bytes)
    }

    /// Adds an 802.1Q tag (or two, or an 802.1ad one) to some frames.
    fn tag(&mut self, mut f: Vec<u8>) -> Vec<u8> {
        match self.below(20) {
            0 | 1 => {
                f.splice(12..12, [0x81, 0x00, 0x00, 0x2a]);
            }
            2 => {
                f.splice(12..12, [0x81, 0x00, 0x00, 0x2a, 0x81, 0x00, 0x00, 0x07]);
            }
            3 => {
                f.splice(12..12, [0x88, 0xa8, 0x00, 0x2a, 0x81, 0x00, 0x00, 0x07]);
            }
            _ => {}
        }
        f
    }

    /// Where the IP header of `f` starts, if it has an Ethernet header.
    fn l3(f: &[u8]) -> usize {
        if f.len() >= 14 && f[12..14] == [0x81, 0x00] {
            18
        } else {
            14
        }
    }

    /// One packet: well-formed (about a third), else damaged one way.
    pub fn packet(&mut self) -> Vec<u8> {
        let mut f = self.well_formed();
        let l3 = Self::l3(&f);
        match self.below(15) {
            0..=4 => {}
            5 => {
                // Cut anywhere, mostly inside the headers.
                let at = if self.chance(80) {
                    self.below((l3 + 64).min(f.len()) + 1)
                } else {
                    self.below(f.len() + 1)
                };
                // BPF_PROG_TEST_RUN takes no frame shorter than Ethernet's
                // header (nor does a NIC deliver one).
                f.truncate(at.max(14));
            }
            6 => {
                // The IP length: too long, too short, zero, wrapping.
                let v6 = f.len() > l3 + 1 && f[l3] >> 4 == 6;
                let at = l3 + if v6 { 4 } else { 2 };
                if f.len() >= at + 2 {
                    let cur = be16(&f, at);
                    let new = match self.below(6) {
                        0 => cur + 1 + self.below(64),
                        1 => cur.saturating_sub(1 + self.below(64)),
                        2 => 0,
                        3 => 0xffff - self.below(40),
                        4 => self.below(40),
                        _ => self.below(0x10000),
                    } as u16;
                    f[at..at + 2].copy_from_slice(&new.to_be_bytes());
                    self.fix_v4_checksum(&mut f, l3);
                }
            }
            7 => {
                // Ethernet padding after the IP packet (legal).
                let n = 1 + self.below(40);
                f.extend((0..n).map(|_| self.rng.next_u64() as u8));
            }
            8 => {
                // IPv4 header length: options, or below 20.
                if f.len() > l3 && f[l3] >> 4 == 4 {
                    f[l3] = 0x40 | self.below(16) as u8;
                    self.fix_v4_checksum(&mut f, l3);
                }
            }
            9 => {
                // Fragments.
                if f.len() > l3 + 8 && f[l3] >> 4 == 4 {
                    let v = [0x2000u16, 0x0001, 0x2010, 0x1fff][self.below(4)];
                    f[l3 + 6..l3 + 8].copy_from_slice(&v.to_be_bytes());
                    self.fix_v4_checksum(&mut f, l3);
                } else if f.len() >= l3 + 40 {
                    self.insert_v6_ext(&mut f, l3, true);
                }
            }
            10 => {
                if f.len() >= l3 + 40 && f[l3] >> 4 == 6 {
                    self.insert_v6_ext(&mut f, l3, false);
                }
            }
            11 | 12 => {
                for _ in 0..1 + self.below(8) {
                    if f.is_empty() {
                        break;
                    }
                    let i = self.below(f.len().min(l3 + 80));
                    f[i] ^= 1 << self.below(8);
                }
            }
            13 => {
                // Random bytes behind a plausible Ethernet header, often
                // with a plausible IP version.
                let v6 = be16(&f, l3 - 2) == 0x86dd;
                let n = self.below(120);
                f.truncate(l3);
                f.extend((0..n).map(|_| self.rng.next_u64() as u8));
                if self.chance(50) && f.len() > l3 {
                    f[l3] = if v6 { 0x60 | (f[l3] & 0x0f) } else { 0x45 };
                }
            }
            _ => {
                // Entirely random bytes.
                let n = 14 + self.below(200);
                f = (0..n).map(|_| self.rng.next_u64() as u8).collect();
            }
        }
        f
    }

    fn fix_v4_checksum(&mut self, f: &mut [u8], l3: usize) {
        // Most damaged headers still carry a valid checksum (the balancer
        // does not verify it; a router before it would have).
        if f.len() >= l3 + 20 && f[l3] >> 4 == 4 && self.chance(80) {
            f[l3 + 10] = 0;
            f[l3 + 11] = 0;
            let c = checksum(&[&f[l3..l3 + 20]]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
    }

    /// Puts a chain of IPv6 extension headers (hop-by-hop, routing,
    /// destination options; a fragment header if `fragment`) in front of
    /// the transport header, with a consistent payload length.
    fn insert_v6_ext(&mut self, f: &mut Vec<u8>, l3: usize, fragment: bool) {
        if f[l3] >> 4 != 6 {
            return;
        }
        let mut next = f[l3 + 6];
        let mut chain: Vec<u8> = Vec::new();
        let kinds: Vec<u8> = if fragment {
            vec![44]
        } else {
            (0..1 + self.below(3))
                .map(|_| [0u8, 43, 60][self.below(3)])
                .collect()
        };
        for &k in kinds.iter().rev() {
            let mut h = vec![next, 0, 0, 0, 0, 0, 0, 0];
            if k == 44 {
                h[3] = 1; // more fragments
            }
            h.extend_from_slice(&chain);
            chain = h;
            next = k;
        }
        f[l3 + 6] = next;
        let plen = be16(f, l3 + 4) + chain.len();
        f[l3 + 4..l3 + 6].copy_from_slice(&(plen as u16).to_be_bytes());
        f.splice(l3 + 40..l3 + 40, chain);
    }
}

/// What one fuzz run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub packets: u64,
    pub by_expectation: BTreeMap<&'static str, u64>,
    pub failures: Vec<String>,
    /// Flows that were forwarded (the only ones allowed in the connection
    /// table).
    pub forwarded_flows: BTreeSet<[u8; 40]>,
}

fn flow_bytes(k: &FlowKey) -> [u8; 40] {
    let mut b = [0u8; 40];
    b[..16].copy_from_slice(&k.src);
    b[16..32].copy_from_slice(&k.dst);
    b[32..34].copy_from_slice(&k.sport.to_be_bytes());
    b[34..36].copy_from_slice(&k.dport.to_be_bytes());
    b[36] = k.proto;
    b[37] = k.family;
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `packets` packets from `seed` through the balancer of `world`;
/// keeps the first `max_failures` failures.
pub fn run(world: &mut World, seed: u64, packets: u64, max_failures: usize) -> Report {
    let mut packets_gen = Generator::new(seed);
    let mut report = Report::default();
    for n in 0..packets {
        if n == packets / 2 {
            world.add_real();
        }
        let input = packets_gen.packet();
        let want = expect(world, &input);
        let kind = match &want {
            Expect::Pass => "pass",
            Expect::Drop => "drop",
            Expect::Encap { .. } => "encap",
            Expect::EchoReply { .. } => "echo reply",
            Expect::TooBig { .. } => "too-big answer",
        };
        *report.by_expectation.entry(kind).or_default() += 1;
        // A client packet that leaves makes a connection; a too-big
        // message forwarded to a real does not.
        if let Expect::Encap { flow, l3, real, .. } = &want {
            let l3 = *l3;
            let client_packet = (input[l3] >> 4 == 4 && input[l3 + 9] != 1)
                || (input[l3] >> 4 == 6 && input[l3 + 6] != 58);
            if client_packet {
                report.forwarded_flows.insert(flow_bytes(flow));
                world.conns.entry(flow_bytes(flow)).or_insert(*real);
            }
        }
        let out = world.lb.run(&input);
        if let Err(e) = check(&input, &want, out.verdict, &out.output) {
            if report.failures.len() < max_failures {
                report.failures.push(format!(
                    "packet {n} (seed {seed}): {e}\n  expected {want:?}\n  input  {}\n  output {}",
                    hex(&input),
                    hex(&out.output)
                ));
            } else if report.failures.len() == max_failures {
                report.failures.push("(more failures not shown)".into());
            }
        }
        report.packets += 1;
    }
    report
}
