//! ICMP echo requests to a VIP, answered by the balancer itself (ping works
//! against an anycast address): well-formed, from a source a reply may go
//! to, with a correct checksum; anything else is refused with a reason.
use aya_ebpf::programs::XdpContext;
use lb_common::{ENCAP_TTL, FAMILY_V4, stats::Counter};

use lb_ebpf::{csum, headers::*, l2::L2};

use crate::icmp::{ICMP_HDR_LEN, sum_words};

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// What became of an ICMP packet to a VIP offered as an echo request.
pub enum Echo {
    /// Turned into the echo reply, in place.
    Answered,
    /// An echo request that must not be answered: dropped for this reason.
    Refused(Counter),
    /// Not an echo request, or not one to answer here (left to the too-big path).
    Other,
}

/// The longest ICMP message (header and data) an echo reply is made for:
/// its checksum is verified word by word, in a bounded loop.
pub const ECHO_MAX_LEN: usize = 2048;

/// Answers an echo request to a VIP, in place. `ip_len` is the request's
/// IP length, already checked against its header and the frame. A request
/// whose checksum is wrong, or that comes from an address no reply may go
/// to (multicast, broadcast, unspecified, loopback: answering would
/// amplify), is refused.
#[inline(always)]
pub fn echo_reply(ctx: &XdpContext, l2: L2, family: u8, ip_len: u16) -> Echo {
    if family == FAMILY_V4 {
        echo_reply_v4(ctx, l2, usize::from(ip_len))
    } else {
        echo_reply_v6(ctx, l2, usize::from(ip_len))
    }
}

/// The one's complement sum of `len` bytes at `off` (as stored: the result
/// is in network order like the words), or None if they are not all in the
/// frame or `len` exceeds [`ECHO_MAX_LEN`].
#[inline(always)]
fn sum_bytes(ctx: &XdpContext, off: usize, len: usize) -> Option<u32> {
    if len > ECHO_MAX_LEN {
        return None;
    }
    let mut sum = 0u32;
    let mut i = 0usize;
    while i < ECHO_MAX_LEN / 2 {
        if 2 * i + 2 > len {
            if 2 * i + 1 == len {
                // An odd last byte, padded with a zero.
                let b = ptr_at::<u8>(ctx, off + 2 * i)?;
                // SAFETY: checked by ptr_at.
                sum += u32::from(u16::from_ne_bytes([unsafe { *b }, 0]));
            }
            break;
        }
        let w = ptr_at::<u16>(ctx, off + 2 * i)?;
        // SAFETY: checked by ptr_at.
        sum += u32::from(unsafe { *w });
        i += 1;
    }
    Some(sum)
}

#[inline(always)]
fn v4_source_answerable(src: [u8; 4]) -> bool {
    // 0/8 unspecified, 127/8 loopback, 224/4 multicast, 240/4 reserved and
    // the limited broadcast.
    src[0] != 0 && src[0] != 127 && src[0] < 224
}

#[inline(always)]
fn v6_source_answerable(src: &[u8; 16]) -> bool {
    let mut head = 0u8;
    let mut i = 0;
    while i < 15 {
        head |= src[i];
        i += 1;
    }
    // ff00::/8 multicast; :: unspecified and ::1 loopback.
    src[0] != 0xff && !(head == 0 && src[15] <= 1)
}

#[inline(always)]
fn swap_macs(ctx: &XdpContext) -> Option<()> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: checked by ptr_at.
    unsafe {
        let e = &mut *eth;
        core::mem::swap(&mut e.dst, &mut e.src);
    }
    Some(())
}

#[inline(never)]
fn echo_reply_v4(ctx: &XdpContext, l2: L2, ip_len: usize) -> Echo {
    let (Some(ip), Some(icmp)) = (
        ptr_at::<Ipv4Hdr>(ctx, l2.l3_off),
        ptr_at::<IcmpHdr>(ctx, l2.l3_off + IPV4_LEN),
    ) else {
        return Echo::Other;
    };
    // SAFETY: both checked by ptr_at; the parser guaranteed a 20-byte
    // header and an IP length inside the frame.
    unsafe {
        if ip_len < IPV4_LEN + ICMP_HDR_LEN
            || (*icmp).kind != ICMP_ECHO_REQUEST
            || (*icmp).code != 0
        {
            return Echo::Other;
        }
        if !v4_source_answerable((*ip).src) {
            return Echo::Refused(Counter::DropEchoSource);
        }
        match sum_bytes(ctx, l2.l3_off + IPV4_LEN, ip_len - IPV4_LEN) {
            Some(sum) if csum::fold(sum) == 0 => {}
            Some(_) => return Echo::Refused(Counter::DropEchoChecksum),
            None => return Echo::Other,
        }
        let old = u16::from_ne_bytes([ICMP_ECHO_REQUEST, 0]);
        let new = u16::from_ne_bytes([ICMP_ECHO_REPLY, 0]);
        (*icmp).kind = ICMP_ECHO_REPLY;
        (*icmp).check = csum::replace16((*icmp).check, old, new);
        let mut hdr = *ip;
        core::mem::swap(&mut hdr.src, &mut hdr.dst);
        hdr.ttl = ENCAP_TTL;
        hdr.check = 0;
        let words: [u16; 10] = core::mem::transmute(hdr);
        hdr.check = csum::ipv4_header(&words);
        *ip = hdr;
    }
    match swap_macs(ctx) {
        Some(()) => Echo::Answered,
        None => Echo::Other,
    }
}

#[inline(never)]
fn echo_reply_v6(ctx: &XdpContext, l2: L2, ip_len: usize) -> Echo {
    let (Some(ip), Some(icmp), Some(addrs)) = (
        ptr_at::<Ipv6Hdr>(ctx, l2.l3_off),
        ptr_at::<IcmpHdr>(ctx, l2.l3_off + IPV6_LEN),
        ptr_at::<[u16; 16]>(ctx, l2.l3_off + 8),
    ) else {
        return Echo::Other;
    };
    // SAFETY: all checked by ptr_at; the IP length is inside the frame.
    unsafe {
        if ip_len < IPV6_LEN + ICMP_HDR_LEN
            || (*icmp).kind != ICMPV6_ECHO_REQUEST
            || (*icmp).code != 0
        {
            return Echo::Other;
        }
        if !v6_source_answerable(&(*ip).src) {
            return Echo::Refused(Counter::DropEchoSource);
        }
        let len = ip_len - IPV6_LEN;
        // The pseudo-header: both addresses, the length, next header 58.
        let pseudo = sum_words(addrs)
            + u32::from((len as u16).to_be())
            + u32::from(u16::from(IPPROTO_ICMPV6).to_be());
        match sum_bytes(ctx, l2.l3_off + IPV6_LEN, len) {
            Some(sum) if csum::fold(sum + pseudo) == 0 => {}
            Some(_) => return Echo::Refused(Counter::DropEchoChecksum),
            None => return Echo::Other,
        }
        // Swapping the addresses leaves the pseudo-header sum unchanged.
        let old = u16::from_ne_bytes([ICMPV6_ECHO_REQUEST, 0]);
        let new = u16::from_ne_bytes([ICMPV6_ECHO_REPLY, 0]);
        (*icmp).kind = ICMPV6_ECHO_REPLY;
        (*icmp).check = csum::replace16((*icmp).check, old, new);
        let h = &mut *ip;
        core::mem::swap(&mut h.src, &mut h.dst);
        h.hop_limit = ENCAP_TTL;
    }
    match swap_macs(ctx) {
        Some(()) => Echo::Answered,
        None => Echo::Other,
    }
}
