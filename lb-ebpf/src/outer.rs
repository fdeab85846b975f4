//! The outer IP header of an encapsulated packet, written where the
//! packet's room was made (`l3_off`, after the Ethernet header). One writer
//! per outer family; what the header carries comes from the [`Encap`].
use aya_ebpf::programs::XdpContext;
use lb_common::{ENCAP_TTL, encap::Encap};
use lb_ebpf::{csum, headers::*};

// The encapsulation's protocol numbers are the wire's.
const _: () = assert!(Encap::Ip4in4.inner_proto() == IPPROTO_IPIP);
const _: () = assert!(Encap::Ip4in6.inner_proto() == IPPROTO_IPIP);
const _: () = assert!(Encap::Ip6in6.inner_proto() == IPPROTO_IPV6);
const _: () = assert!(Encap::Ip6in4.inner_proto() == IPPROTO_IPV6);
const _: () = assert!(Encap::Ip6in4.overhead() as usize == IPV4_LEN);
const _: () = assert!(Encap::Ip4in4.overhead() as usize == IPV4_LEN);
const _: () = assert!(Encap::Ip6in6.overhead() as usize == IPV6_LEN);

/// Writes an outer IPv4 header for a client packet of `ip_len` bytes,
/// with the client's `tos` and its checksum. `None` if the packet has no
/// room there (the caller made it: only a verifier's bound).
#[inline(always)]
pub fn write_v4(
    ctx: &XdpContext,
    l3_off: usize,
    encap: Encap,
    src: [u8; 4],
    dst: [u8; 4],
    tos: u8,
    ip_len: u16,
) -> Option<()> {
    let mut hdr = Ipv4Hdr {
        version_ihl: 0x45,
        tos,
        tot_len: (ip_len + encap.overhead()).to_be(),
        id: 0,
        frag_off: 0,
        ttl: ENCAP_TTL,
        proto: encap.inner_proto(),
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
    Some(())
}

/// Writes an outer IPv6 header for a client packet of `ip_len` bytes,
/// with the client's `tos` as traffic class and the low 20 bits of
/// `flow_label` as flow label (so that routers spread flows).
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
) -> Option<()> {
    let hdr = Ipv6Hdr {
        vtc_flow: ((6u32 << 28) | (u32::from(tos) << 20) | (flow_label & 0x000f_ffff)).to_be(),
        payload_len: ip_len.to_be(),
        next_hdr: encap.inner_proto(),
        hop_limit: ENCAP_TTL,
        src,
        dst,
    };
    let out = ptr_at::<Ipv6Hdr>(ctx, l3_off)?;
    // SAFETY: checked by ptr_at.
    unsafe { *out = hdr };
    Some(())
}
