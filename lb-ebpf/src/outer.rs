//! The outer headers of an encapsulated packet, written where the
//! packet's room was made (`l3_off`, after the Ethernet header): one IP
//! header writer per outer family, and for GUE the UDP header after it.
//! What they carry comes from the [`Encap`].
use aya_ebpf::programs::XdpContext;
use lb_common::{
    ENCAP_TTL,
    encap::{Encap, GUE_UDP_LEN},
};
use lb_ebpf::{csum, headers::*};

// The encapsulation's protocol numbers and sizes are the wire's.
const _: () = assert!(Encap::Ip4in4.next_proto() == IPPROTO_IPIP);
const _: () = assert!(Encap::Ip4in6.next_proto() == IPPROTO_IPIP);
const _: () = assert!(Encap::Ip6in6.next_proto() == IPPROTO_IPV6);
const _: () = assert!(Encap::Ip6in4.next_proto() == IPPROTO_IPV6);
const _: () = assert!(Encap::Gue6in4.next_proto() == IPPROTO_UDP);
const _: () = assert!(Encap::Ip4in4.overhead() as usize == IPV4_LEN);
const _: () = assert!(Encap::Ip6in6.overhead() as usize == IPV6_LEN);
const _: () = assert!(Encap::Gue4in4.overhead() as usize == IPV4_LEN + UDP_LEN);
const _: () = assert!(Encap::Gue4in6.overhead() as usize == IPV6_LEN + UDP_LEN);

/// The UDP ports of a GUE tunnel (network order when written).
#[derive(Clone, Copy)]
pub struct GuePorts {
    pub src: u16,
    pub dst: u16,
}

/// Writes an outer IPv4 header for a client packet of `ip_len` bytes,
/// with the client's `tos` and its checksum, and for GUE the UDP header
/// after it. `None` if the packet has no room there (the caller made it:
/// only a verifier's bound).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn write_v4(
    ctx: &XdpContext,
    l3_off: usize,
    encap: Encap,
    src: [u8; 4],
    dst: [u8; 4],
    tos: u8,
    ip_len: u16,
    gue: GuePorts,
) -> Option<()> {
    let mut hdr = Ipv4Hdr {
        version_ihl: 0x45,
        tos,
        tot_len: (ip_len + encap.overhead()).to_be(),
        id: 0,
        frag_off: 0,
        ttl: ENCAP_TTL,
        proto: encap.next_proto(),
        check: 0,
        src,
        dst,
    };
    // SAFETY: Ipv4Hdr is 20 bytes of plain data, no padding.
    let words: [u16; 10] = unsafe { core::mem::transmute(hdr) };
    hdr.check = csum::ipv4_header(&words);
    let out = ptr_at::<Ipv4Hdr>(ctx, l3_off)?;
    // SAFETY: checked by ptr_at.
    unsafe { *out = hdr };
    if encap.gue() {
        write_udp(ctx, l3_off + IPV4_LEN, ip_len, gue)?;
    }
    Some(())
}

/// Writes an outer IPv6 header for a client packet of `ip_len` bytes,
/// with the client's `tos` as traffic class and the low 20 bits of
/// `flow_label` as flow label (so that routers spread flows), and for GUE
/// the UDP header after it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn write_v6(
    ctx: &XdpContext,
    l3_off: usize,
    encap: Encap,
    src: [u8; 16],
    dst: [u8; 16],
    tos: u8,
    ip_len: u16,
    flow_label: u32,
    gue: GuePorts,
) -> Option<()> {
    let udp = if encap.gue() { GUE_UDP_LEN } else { 0 };
    let hdr = Ipv6Hdr {
        vtc_flow: ((6u32 << 28) | (u32::from(tos) << 20) | (flow_label & 0x000f_ffff)).to_be(),
        payload_len: (ip_len + udp).to_be(),
        next_hdr: encap.next_proto(),
        hop_limit: ENCAP_TTL,
        src,
        dst,
    };
    let out = ptr_at::<Ipv6Hdr>(ctx, l3_off)?;
    // SAFETY: checked by ptr_at.
    unsafe { *out = hdr };
    if encap.gue() {
        write_udp(ctx, l3_off + IPV6_LEN, ip_len, gue)?;
    }
    Some(())
}

/// The UDP header of a GUE tunnel carrying `ip_len` bytes. Its checksum
/// is 0, "none": allowed over IPv4, and over IPv6 for tunnels (RFC 6935,
/// RFC 6936); the inner packet keeps its own checksums end to end.
#[inline(always)]
fn write_udp(ctx: &XdpContext, off: usize, ip_len: u16, gue: GuePorts) -> Option<()> {
    let out = ptr_at::<UdpHdr>(ctx, off)?;
    // SAFETY: checked by ptr_at.
    unsafe {
        *out = UdpHdr {
            src: gue.src.to_be(),
            dst: gue.dst.to_be(),
            len: (ip_len + GUE_UDP_LEN).to_be(),
            check: 0,
        }
    };
    Some(())
}
