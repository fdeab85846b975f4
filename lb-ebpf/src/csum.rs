//! Internet checksums: the outer IPv4 header, and incremental updates
//! (RFC 1624) for headers the programs change in place.

/// Folds a 32-bit one's complement sum to 16 bits and complements it.
#[inline(always)]
pub fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

/// The checksum of a 20-byte IPv4 header (its checksum field must be zero).
/// Words are summed as stored, so the result is in the same (network) byte
/// order as the header.
#[inline(always)]
pub fn ipv4_header(words: &[u16; 10]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < 10 {
        sum += u32::from(words[i]);
        i += 1;
    }
    fold(sum)
}

/// Updates checksum `check` (as stored) for a 16-bit field (as stored) going
/// from `old` to `new` (RFC 1624, eqn. 3).
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check) + u32::from(!old) + u32::from(new);
    fold(sum)
}
