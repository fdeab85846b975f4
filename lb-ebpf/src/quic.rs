//! QUIC connection-id routing for VIPs with `VIP_F_QUIC`: a short-header
//! packet's destination connection id (of the configured length), or a
//! QUIC v1 Handshake packet's (its length in the header), carries the id
//! of the real that issued it at a configured place; while that id
//! names a usable real of the same VIP, the packet goes there, whatever
//! its source address and port (connection migration, NAT rebinding).
//! Everything else falls back to the connection table and the ring.
use aya_ebpf::programs::XdpContext;
use lb_common::{
    config::Config,
    maps::{REAL_STATE_DRAINING, REAL_STATE_UP, Real, VipMeta},
};
use lb_ebpf::headers::ptr_at;

use crate::maps::LB_REALS;

/// What a QUIC VIP's packet's connection id says.
pub enum Cid {
    /// It names this usable real of the VIP.
    Routed(u32, &'static Real),
    /// No id to route by: an Initial or 0-RTT long header (the client
    /// chose that id), another QUIC version, a payload too short for the
    /// id, or a layout lb-ctl would not write.
    Fallback,
    /// An id that names no usable real of this VIP.
    Unknown,
}

/// Longest connection id QUIC v1 allows.
const MAX_CID_LEN: usize = 20;

/// QUIC version 1 (RFC 9000).
const QUIC_V1: u32 = 1;
/// A v1 long header's packet type bits for Handshake (`0b10 << 4`).
const V1_HANDSHAKE: u8 = 0x20;

/// A long header's destination connection id length, if it is a QUIC v1
/// Handshake packet whose id may be read (at most 20 bytes).
#[inline(always)]
fn long_header_cid_len(ctx: &XdpContext, payload_off: usize, first: u8) -> Option<usize> {
    if first & 0x30 != V1_HANDSHAKE {
        return None;
    }
    let version = ptr_at::<[u8; 4]>(ctx, payload_off + 1)?;
    // SAFETY: checked by ptr_at.
    if u32::from_be_bytes(unsafe { *version }) != QUIC_V1 {
        return None;
    }
    let len = ptr_at::<u8>(ctx, payload_off + 5)?;
    // SAFETY: checked by ptr_at.
    let len = usize::from(unsafe { *len });
    (len <= MAX_CID_LEN).then_some(len)
}

/// Reads the real's id from the UDP payload at `payload_off` (of
/// `payload_len` bytes, within the IP length) of a packet to the VIP
/// `meta`, as `cfg` lays it out.
#[inline(always)]
pub fn route(
    ctx: &XdpContext,
    payload_off: usize,
    payload_len: usize,
    meta: &VipMeta,
    cfg: &Config,
) -> Cid {
    let cid_len = usize::from(cfg.quic_cid_len);
    let id_off = usize::from(cfg.quic_id_offset);
    let id_len = usize::from(cfg.quic_id_len);
    if cid_len == 0
        || cid_len > MAX_CID_LEN
        || id_len == 0
        || id_len > 4
        || id_off + id_len > cid_len
    {
        return Cid::Fallback;
    }
    let Some(first) = ptr_at::<u8>(ctx, payload_off) else {
        return Cid::Fallback;
    };
    // SAFETY: checked by ptr_at.
    let first = unsafe { *first };
    // Where the destination connection id starts in the payload.
    let cid_start = if first & 0x80 == 0 {
        // Short header: the id right after the first byte, of the length
        // lb's reals issue.
        if payload_len < 1 + cid_len {
            return Cid::Fallback;
        }
        1
    } else {
        // Long header: version (4 bytes), the id's length, the id. Only a
        // QUIC v1 Handshake (type 2) carries an id the server chose;
        // Initial and 0-RTT carry the client's, other versions are not
        // known here.
        match long_header_cid_len(ctx, payload_off, first) {
            Some(len) if id_off + id_len <= len && payload_len >= 6 + len => 6,
            _ => return Cid::Fallback,
        }
    };
    // The id's bytes, big-endian, after the first byte and `id_off` bytes
    // of the connection id (bounded for the verifier: at most 19).
    let start = payload_off + cid_start + (id_off & 0x1f);
    let mut id = 0u32;
    let mut i = 0;
    while i < 4 {
        if i < id_len {
            let Some(b) = ptr_at::<u8>(ctx, start + i) else {
                return Cid::Fallback;
            };
            // SAFETY: checked by ptr_at.
            id = (id << 8) | u32::from(unsafe { *b });
        }
        i += 1;
    }
    let Some(real) = LB_REALS.get(id) else {
        return Cid::Unknown;
    };
    let usable = real.state == REAL_STATE_UP || real.state == REAL_STATE_DRAINING;
    if id == 0 || real.family == 0 || real.vip_id != meta.vip_id || !usable {
        return Cid::Unknown;
    }
    Cid::Routed(id, real)
}
