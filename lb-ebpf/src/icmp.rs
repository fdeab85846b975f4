//! ICMP the balancer handles itself (echo requests: `echo.rs`):
//! "fragmentation needed" / "packet too big"
//! to a client whose packet would exceed the MTU once encapsulated; and the
//! same messages sent by routers about a real's reply, which are passed to
//! that real (its path MTU discovery would break otherwise: the reply left
//! from the VIP, so the error comes back to the LB hosts).
use aya_ebpf::{
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use lb_common::{ENCAP_TTL, FAMILY_V4, maps::FlowKey};

use lb_ebpf::{
    csum,
    headers::*,
    l2::{L2, save_l2, write_l2},
};

const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// IPv4 "don't fragment" flag in `frag_off` (host order).
const IP_DF: u16 = 0x4000;

/// Bytes of the client's packet quoted in a too-big message: its IP header
/// and the first 8 bytes after it (ports, enough to find the socket).
const QUOTE_V4: usize = IPV4_LEN + 8;
const QUOTE_V6: usize = IPV6_LEN + 8;
pub(crate) const ICMP_HDR_LEN: usize = 8;

/// Fills `flow` with the flow an ICMP "fragmentation needed" (IPv4) or
/// ICMPv6 "packet too big" to a VIP is about, and returns the message's IP
/// length and TOS (the length agrees with the frame). The quoted packet is a real's reply (VIP:port ->
/// client:port); turned around, it is the client's flow, whose real must
/// get the message. `None` for any other ICMP, or a quote that is cut, has
/// IPv4 options, is not TCP/UDP, or was not sent from the VIP it came back
/// to. `flow.family` is set on entry.
#[inline(always)]
pub fn too_big_flow(ctx: &XdpContext, l2: L2, flow: &mut FlowKey) -> Option<(u16, u8)> {
    let l3 = l2.l3_off;
    let v4 = flow.family == FAMILY_V4;
    let (outer_len, inner_len) = if v4 {
        (IPV4_LEN, IPV4_LEN)
    } else {
        (IPV6_LEN, IPV6_LEN)
    };
    let quote_off = l3 + outer_len + ICMP_HDR_LEN;
    // The quote's IP header and ports lie inside the message's own IP
    // length, and that length inside the frame: a quote cut by either is
    // not about any flow.
    let min_len = outer_len + ICMP_HDR_LEN + inner_len + 8;
    let frame = ctx.data_end() - ctx.data() - l3;
    let icmp = ptr_at::<IcmpHdr>(ctx, l3 + outer_len)?;
    // SAFETY: checked by ptr_at.
    let (kind, code) = unsafe { ((*icmp).kind, (*icmp).code) };
    let (ip_len, tos) = if v4 {
        if kind != ICMP_DEST_UNREACH || code != ICMP_FRAG_NEEDED {
            return None;
        }
        let outer = ptr_at::<Ipv4Hdr>(ctx, l3)?;
        let inner = ptr_at::<Ipv4Hdr>(ctx, quote_off)?;
        // SAFETY: both checked by ptr_at.
        let (outer, inner) = unsafe { (&*outer, &*inner) };
        if outer.version_ihl != 0x45 || inner.version_ihl != 0x45 || inner.src != outer.dst {
            return None;
        }
        let len = usize::from(u16::from_be(outer.tot_len));
        if len < min_len || len > frame {
            return None;
        }
        flow.proto = inner.proto;
        flow.src = v4_in_16(inner.dst);
        flow.dst = v4_in_16(inner.src);
        (len as u16, outer.tos)
    } else {
        if kind != ICMPV6_PACKET_TOO_BIG {
            return None;
        }
        let outer = ptr_at::<Ipv6Hdr>(ctx, l3)?;
        let inner = ptr_at::<Ipv6Hdr>(ctx, quote_off)?;
        // SAFETY: both checked by ptr_at.
        let (outer, inner) = unsafe { (&*outer, &*inner) };
        if outer.next_hdr != IPPROTO_ICMPV6 || inner.src != outer.dst {
            return None;
        }
        let len = usize::from(u16::from_be(outer.payload_len)) + IPV6_LEN;
        if len < min_len || len > frame {
            return None;
        }
        flow.proto = inner.next_hdr;
        flow.src = inner.dst;
        flow.dst = inner.src;
        (
            len as u16,
            ((u32::from_be(outer.vtc_flow) >> 20) & 0xff) as u8,
        )
    };
    if flow.proto != IPPROTO_TCP && flow.proto != IPPROTO_UDP {
        return None;
    }
    let ports = ptr_at::<Ports>(ctx, quote_off + inner_len)?;
    // SAFETY: checked by ptr_at.
    let ports = unsafe { *ports };
    // The reply went VIP:sport -> client:dport.
    flow.sport = u16::from_be(ports.dst);
    flow.dport = u16::from_be(ports.src);
    Some((ip_len, tos))
}

/// Replaces the packet with an ICMP "fragmentation needed" (IPv4, only when
/// the client set DF) or ICMPv6 "packet too big" telling the client
/// `inner_mtu`: the MTU left once the outer header of the flow's
/// encapsulation is added (`Encap::inner_mtu`). Returns false if no
/// message is due (the packet is then dropped).
#[inline(always)]
pub fn too_big(ctx: &XdpContext, l2: L2, family: u8, inner_mtu: u16) -> bool {
    if family == FAMILY_V4 {
        too_big_v4(ctx, l2, inner_mtu).is_some()
    } else {
        too_big_v6(ctx, l2, inner_mtu).is_some()
    }
}

/// The sum of the 16-bit words at `words` (inside the packet, checked).
#[inline(always)]
pub(crate) fn sum_words<const N: usize>(words: *const [u16; N]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < N {
        // SAFETY: the caller got `words` from ptr_at, so all N are inside.
        sum += u32::from(unsafe { (*words)[i] });
        i += 1;
    }
    sum
}

/// Cuts the packet to `l3_off + keep` bytes, then makes `room` bytes of room
/// in front of the IP header; the link-layer header is rewritten by the
/// caller.
#[inline(always)]
fn reshape(ctx: &XdpContext, l3_off: usize, keep: usize, room: usize) -> Option<()> {
    let len = ctx.data_end() - ctx.data();
    let want = l3_off + keep;
    if len < want {
        return None;
    }
    // SAFETY: the context is ours; pointers are re-derived by the caller.
    unsafe {
        if len > want && bpf_xdp_adjust_tail(ctx.ctx, -((len - want) as i32)) != 0 {
            return None;
        }
        if bpf_xdp_adjust_head(ctx.ctx, -(room as i32)) != 0 {
            return None;
        }
    }
    Some(())
}

#[inline(never)]
fn too_big_v4(ctx: &XdpContext, l2: L2, mtu: u16) -> Option<()> {
    let ip = ptr_at::<Ipv4Hdr>(ctx, l2.l3_off)?;
    // SAFETY: checked by ptr_at.
    if u16::from_be(unsafe { (*ip).frag_off }) & IP_DF == 0 {
        return None;
    }
    let saved = save_l2(ctx, l2)?;
    reshape(ctx, l2.l3_off, QUOTE_V4, IPV4_LEN + ICMP_HDR_LEN)?;
    write_l2(ctx, &saved, saved.src, saved.dst, ETH_P_IP)?;
    let icmp_off = l2.l3_off + IPV4_LEN;
    let out = ptr_at::<Ipv4Hdr>(ctx, l2.l3_off)?;
    let icmp = ptr_at::<[u16; 4]>(ctx, icmp_off)?;
    let quote = ptr_at::<[u16; QUOTE_V4 / 2]>(ctx, icmp_off + ICMP_HDR_LEN)?;
    let orig = ptr_at::<Ipv4Hdr>(ctx, icmp_off + ICMP_HDR_LEN)?;
    // SAFETY: all checked by ptr_at; `orig` is the quoted client header.
    unsafe {
        let kind = u16::from_ne_bytes([ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED]);
        let mtu = mtu.to_be();
        *icmp = [kind, 0, 0, mtu];
        (*icmp)[1] = csum::fold(u32::from(kind) + u32::from(mtu) + sum_words(quote));
        let o = &mut *out;
        o.version_ihl = 0x45;
        o.tos = 0;
        o.tot_len = ((IPV4_LEN + ICMP_HDR_LEN + QUOTE_V4) as u16).to_be();
        o.id = 0;
        o.frag_off = 0;
        o.ttl = ENCAP_TTL;
        o.proto = IPPROTO_ICMP;
        o.check = 0;
        o.src = (*orig).dst;
        o.dst = (*orig).src;
        o.check = csum::fold(sum_words(out.cast::<[u16; 10]>()));
    }
    Some(())
}

#[inline(never)]
fn too_big_v6(ctx: &XdpContext, l2: L2, mtu: u16) -> Option<()> {
    let saved = save_l2(ctx, l2)?;
    reshape(ctx, l2.l3_off, QUOTE_V6, IPV6_LEN + ICMP_HDR_LEN)?;
    write_l2(ctx, &saved, saved.src, saved.dst, ETH_P_IPV6)?;
    // IPv6 links carry at least 1280 bytes.
    let mtu = u32::from(mtu.max(1280));
    let icmp_off = l2.l3_off + IPV6_LEN;
    let quote_off = icmp_off + ICMP_HDR_LEN;
    let out = ptr_at::<Ipv6Hdr>(ctx, l2.l3_off)?;
    let icmp = ptr_at::<[u16; 4]>(ctx, icmp_off)?;
    let quote = ptr_at::<[u16; QUOTE_V6 / 2]>(ctx, quote_off)?;
    // The quoted header's two addresses: the pseudo-header's, swapped,
    // which does not change their sum.
    let addrs = ptr_at::<[u16; 16]>(ctx, quote_off + 8)?;
    let orig = ptr_at::<Ipv6Hdr>(ctx, quote_off)?;
    let payload_len = (ICMP_HDR_LEN + QUOTE_V6) as u16;
    // SAFETY: all checked by ptr_at; `orig` is the quoted client header.
    unsafe {
        let kind = u16::from_ne_bytes([ICMPV6_PACKET_TOO_BIG, 0]);
        let m = mtu.to_be_bytes();
        let (m_hi, m_lo) = (
            u16::from_ne_bytes([m[0], m[1]]),
            u16::from_ne_bytes([m[2], m[3]]),
        );
        *icmp = [kind, 0, m_hi, m_lo];
        let sum = sum_words(addrs)
            + u32::from(payload_len.to_be())
            + u32::from(u16::from(IPPROTO_ICMPV6).to_be())
            + u32::from(kind)
            + u32::from(m_hi)
            + u32::from(m_lo)
            + sum_words(quote);
        (*icmp)[1] = csum::fold(sum);
        let o = &mut *out;
        o.vtc_flow = (6u32 << 28).to_be();
        o.payload_len = payload_len.to_be();
        o.next_hdr = IPPROTO_ICMPV6;
        o.hop_limit = ENCAP_TTL;
        o.src = (*orig).dst;
        o.dst = (*orig).src;
    }
    Some(())
}
