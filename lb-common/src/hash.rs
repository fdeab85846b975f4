//! The flow hash: which ring slot a flow lands on. Defined once, compiled
//! into the XDP program and into lb-ctl, so user space predicts the real the
//! kernel picks for any 5-tuple. Changing it moves flows between hosts of
//! different versions: golden values pin it (`lb-common/tests/golden/`).
use crate::maps::FlowKey;

/// The hash's seed (fixed: every LB host must agree).
pub const FLOW_HASH_SEED: u64 = 0x6c62_666c_6f77_6831; // "lbflowh1"

const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(K).rotate_left(29)
}

/// The address's two 8-byte halves, read little-endian, as words: in BPF,
/// indexing its bytes would make LLVM split the whole address into 16
/// single bytes, copied and spilled one by one wherever it goes.
#[inline(always)]
fn le64s(b: &[u8; 16]) -> [u64; 2] {
    // SAFETY: 16 bytes of plain integers either way.
    let w = unsafe { core::mem::transmute::<[u8; 16], [u64; 2]>(*b) };
    [u64::from_le(w[0]), u64::from_le(w[1])]
}

/// The address's four 4-byte words, read little-endian (see [`le64s`]).
#[inline(always)]
fn le32s(b: &[u8; 16]) -> [u32; 4] {
    // SAFETY: 16 bytes of plain integers either way.
    let w = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*b) };
    [
        u32::from_le(w[0]),
        u32::from_le(w[1]),
        u32::from_le(w[2]),
        u32::from_le(w[3]),
    ]
}

/// Hashes a flow (both addresses, both ports, protocol). The ring slot is
/// `flow_hash(key) % ring_size`.
#[inline(always)]
pub fn flow_hash(key: &FlowKey) -> u32 {
    let mut h = FLOW_HASH_SEED;
    let (src, dst) = (le64s(&key.src), le64s(&key.dst));
    h = mix(h, src[0]);
    h = mix(h, src[1]);
    h = mix(h, dst[0]);
    h = mix(h, dst[1]);
    h = mix(
        h,
        (u64::from(key.sport) << 32) | (u64::from(key.dport) << 16) | u64::from(key.proto),
    );
    // murmur3's 64-bit finaliser.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h as u32
}

/// The hash of a flow for its outer header only: the IPv6 flow label and
/// the host bits of a per-flow outer source (`config::flow_source`). It
/// must be the same for every packet of a flow and spread flows, but picks
/// no real, so it is cheaper than [`flow_hash`]: computed on every packet,
/// also on a connection-table hit, where the ring's hash is not needed.
/// Not pinned by the golden tests: hosts of a fleet may differ here, since
/// no real is chosen by it.
#[inline(always)]
pub fn outer_hash(key: &FlowKey) -> u32 {
    let (s, d) = (le32s(&key.src), le32s(&key.dst));
    let src = s[0] ^ s[1].rotate_left(8) ^ s[2].rotate_left(16) ^ s[3].rotate_left(24);
    let dst = d[0] ^ d[1].rotate_left(8) ^ d[2].rotate_left(16) ^ d[3].rotate_left(24);
    let ports = (u32::from(key.sport) << 16) | u32::from(key.dport);
    // The high half of a product by an odd constant: every input bit moves
    // the bits a label or a source keeps (the low ones of the result).
    let h =
        ((u64::from(src) << 32) | u64::from(ports ^ dst ^ u32::from(key.proto))).wrapping_mul(K);
    (h >> 32) as u32 ^ (h as u32).rotate_left(16)
}

/// Slots of the VIP address filter (`LB_VIP_FILTER`).
pub const VIP_FILTER_SLOTS: u32 = 1 << 16;

/// The filter slot of a destination address (16 bytes, network order): a
/// packet whose slot counts no VIP address is not for a VIP, which costs one
/// array read instead of hash-map lookups.
#[inline(always)]
pub fn vip_filter_slot(addr: &[u8; 16]) -> u32 {
    let w = le32s(addr);
    let folded = w[0] ^ w[1].rotate_left(8) ^ w[2].rotate_left(16) ^ w[3].rotate_left(24);
    folded.wrapping_mul(0x9e37_79b1) >> 16
}
