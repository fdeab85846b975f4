//! Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted.
//!
//! A table of M slots (M prime) maps a flow hash to a real. Every LB host
//! must build exactly the same table from the same set of reals, whatever
//! order they were configured in: routers move flows between LB hosts (ECMP
//! rehash, a host going away) and the flow must land on the same real. So:
//!
//! - a real's permutation (offset, skip) comes from its identity (its
//!   address bytes), never from its index or position;
//! - reals are ordered by identity before the table is filled, so ties in the
//!   fill are broken the same way everywhere;
//! - the hash is ours (FNV-1a + a 64-bit finaliser, fixed seeds), pinned by
//!   the golden tables in `lb-ctl/tests/data/maglev/`.
//!
//! Weights: in round r (r = 1, 2, ...) a real of weight w claims its next
//! free preferred slot while it holds fewer than r * w / max_weight slots, so
//! shares follow weights; weight 0 claims nothing (drained).
use std::fmt;

/// The default table size: prime, and large enough that 1,000 equal reals
/// get shares within 1% of each other.
pub const DEFAULT_RING_SIZE: u32 = 65_537;
/// The largest table size accepted (16 Mi slots, 64 MiB of map per VIP).
pub const MAX_RING_SIZE: u32 = 1 << 24;
/// The smallest table size accepted.
pub const MIN_RING_SIZE: u32 = 7;
/// The largest weight accepted.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Seeds of the two identity hashes (offset and skip). Changing either
/// changes every table: the golden test catches it.
const OFFSET_SEED: u64 = 0x6c62_2d6d_6167_6c76; // "lb-maglv"
const SKIP_SEED: u64 = 0x6c62_2d73_6b69_7073; // "lb-skips"

/// A slot that no real holds (no real has a non-zero weight).
pub const EMPTY: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaglevError {
    #[error(
        "ring size {size} is not prime (Maglev needs a prime table size, e.g. 65537 or 655373)"
    )]
    NotPrime { size: u32 },
    #[error("ring size {size} is outside {MIN_RING_SIZE}..={MAX_RING_SIZE}")]
    SizeOutOfRange { size: u32 },
    #[error("weight {weight} of real #{index} is above the maximum {MAX_WEIGHT}")]
    WeightTooLarge { index: usize, weight: u32 },
    #[error("reals #{first} and #{second} have the same identity")]
    DuplicateReal { first: usize, second: usize },
    #[error("{count} reals do not fit in a ring of {size} slots")]
    TooManyReals { count: usize, size: u32 },
}

/// A validated Maglev table size (a prime in the accepted range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RingSize(u32);

impl RingSize {
    pub fn new(size: u32) -> Result<Self, MaglevError> {
        if !(MIN_RING_SIZE..=MAX_RING_SIZE).contains(&size) {
            return Err(MaglevError::SizeOutOfRange { size });
        }
        if !is_prime(size) {
            return Err(MaglevError::NotPrime { size });
        }
        Ok(RingSize(size))
    }

    pub const fn get(self) -> u32 {
        self.0
    }
}

impl Default for RingSize {
    fn default() -> Self {
        RingSize(DEFAULT_RING_SIZE)
    }
}

impl fmt::Display for RingSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// The identity bytes of a real at `addr`: what its permutation is derived
/// from (4 bytes for IPv4, 16 for IPv6).
pub fn identity(addr: &std::net::IpAddr) -> Vec<u8> {
    match addr {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// A digest of a table that depends only on which identity owns each slot
/// (not on member positions): equal digests mean equal tables.
pub fn digest(table: &Table, members: &[Member<'_>]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    for &s in table.slots() {
        if s == EMPTY {
            eat(0xff);
        } else {
            let id = members[s as usize].identity;
            eat(id.len() as u8);
            id.iter().copied().for_each(&mut eat);
        }
    }
    h
}

/// One real as the builder sees it: an identity (for lb, the address bytes)
/// and a weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    pub identity: &'a [u8],
    pub weight: u32,
}

/// A filled table: `slots[i]` is the position, in the caller's member list,
/// of the real that owns slot i, or [`EMPTY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    slots: Vec<u32>,
}

/// A slot whose owner differs between two tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotChange {
    pub slot: u32,
    pub old: u32,
    pub new: u32,
}

impl Table {
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    pub fn size(&self) -> u32 {
        self.slots.len() as u32
    }

    /// How many slots each member owns, by position.
    pub fn shares(&self, members: usize) -> Vec<u32> {
        let mut counts = vec![0u32; members];
        for &s in &self.slots {
            if s != EMPTY {
                counts[s as usize] += 1;
            }
        }
        counts
    }

    /// Maps each slot's member position through `ids` (e.g. to the data
    /// plane's real ids); [`EMPTY`] maps to `none`.
    pub fn map_ids(&self, ids: &[u32], none: u32) -> Vec<u32> {
        self.slots
            .iter()
            .map(|&s| if s == EMPTY { none } else { ids[s as usize] })
            .collect()
    }
}

/// The slots at which two equally sized slot vectors differ: what a map
/// writer must rewrite to go from `old` to `new`.
pub fn diff(old: &[u32], new: &[u32]) -> Vec<SlotChange> {
    assert_eq!(old.len(), new.len(), "diff of tables of different sizes");
    old.iter()
        .zip(new)
        .enumerate()
        .filter(|(_, (o, n))| o != n)
        .map(|(i, (&old, &new))| SlotChange {
            slot: i as u32,
            old,
            new,
        })
        .collect()
}

/// 64-bit FNV-1a of `bytes` from `seed`, then the murmur3 finaliser (FNV
/// alone mixes its last bytes poorly).
fn identity_hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Builds the table for `members` (any order; identities must be distinct).
pub fn build(size: RingSize, members: &[Member<'_>]) -> Result<Table, MaglevError> {
    let m = size.get();
    if members.len() > m as usize {
        return Err(MaglevError::TooManyReals {
            count: members.len(),
            size: m,
        });
    }
    if let Some((index, member)) = members
        .iter()
        .enumerate()
        .find(|(_, mem)| mem.weight > MAX_WEIGHT)
    {
        return Err(MaglevError::WeightTooLarge {
            index,
            weight: member.weight,
        });
    }
    // Fill order: by identity, so that input order cannot matter.
    let mut order: Vec<usize> = (0..members.len()).collect();
    order.sort_by(|&a, &b| members[a].identity.cmp(members[b].identity));
    for pair in order.windows(2) {
        if members[pair[0]].identity == members[pair[1]].identity {
            return Err(MaglevError::DuplicateReal {
                first: pair[0].min(pair[1]),
                second: pair[0].max(pair[1]),
            });
        }
    }

    struct Walker {
        member: u32,
        weight: u64,
        next: u32,
        skip: u32,
        owned: u64,
    }
    let mut walkers: Vec<Walker> = order
        .iter()
        .filter(|&&i| members[i].weight > 0)
        .map(|&i| {
            let id = members[i].identity;
            Walker {
                member: i as u32,
                weight: u64::from(members[i].weight),
                next: (identity_hash(id, OFFSET_SEED) % u64::from(m)) as u32,
                skip: (identity_hash(id, SKIP_SEED) % u64::from(m - 1)) as u32 + 1,
                owned: 0,
            }
        })
        .collect();
    let mut slots = vec![EMPTY; m as usize];
    let Some(max_weight) = walkers.iter().map(|w| w.weight).max() else {
        return Ok(Table { slots });
    };

    let mut filled = 0u32;
    let mut round = 0u64;
    while filled < m {
        round += 1;
        for w in &mut walkers {
            // Claim while owning fewer than round * weight / max_weight.
            if w.owned * max_weight >= round * w.weight {
                continue;
            }
            // The permutation is a full cycle (skip < m, m prime), so a free
            // slot is always found while filled < m.
            while slots[w.next as usize] != EMPTY {
                w.next = advance(w.next, w.skip, m);
            }
            slots[w.next as usize] = w.member;
            w.next = advance(w.next, w.skip, m);
            w.owned += 1;
            filled += 1;
            if filled == m {
                break;
            }
        }
    }
    Ok(Table { slots })
}

#[inline]
fn advance(pos: u32, skip: u32, m: u32) -> u32 {
    let next = pos + skip; // < 2 * 2^24, no overflow
    if next >= m { next - m } else { next }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_validation() {
        assert_eq!(RingSize::default().get(), DEFAULT_RING_SIZE);
        assert!(RingSize::new(65_537).is_ok());
        assert!(RingSize::new(655_373).is_ok());
        assert_eq!(
            RingSize::new(65_536),
            Err(MaglevError::NotPrime { size: 65_536 })
        );
        assert_eq!(
            RingSize::new(3),
            Err(MaglevError::SizeOutOfRange { size: 3 })
        );
        assert!(RingSize::new(MAX_RING_SIZE + 1).is_err());
        let msg = RingSize::new(1000).unwrap_err().to_string();
        assert!(msg.contains("not prime"), "{msg}");
    }

    #[test]
    fn no_weight_means_empty_table() {
        let t = build(
            RingSize::new(13).unwrap(),
            &[Member {
                identity: b"a",
                weight: 0,
            }],
        )
        .unwrap();
        assert!(t.slots().iter().all(|&s| s == EMPTY));
        let t = build(RingSize::new(13).unwrap(), &[]).unwrap();
        assert!(t.slots().iter().all(|&s| s == EMPTY));
    }

    #[test]
    fn duplicates_and_oversized_inputs_are_rejected() {
        let m = |id: &'static [u8]| Member {
            identity: id,
            weight: 1,
        };
        assert_eq!(
            build(RingSize::new(13).unwrap(), &[m(b"a"), m(b"b"), m(b"a")]),
            Err(MaglevError::DuplicateReal {
                first: 0,
                second: 2
            })
        );
        let heavy = Member {
            identity: b"x",
            weight: MAX_WEIGHT + 1,
        };
        assert!(matches!(
            build(RingSize::new(13).unwrap(), &[heavy]),
            Err(MaglevError::WeightTooLarge { index: 0, .. })
        ));
    }

    #[test]
    fn diff_lists_changed_slots() {
        let changes = diff(&[1, 2, 3, 4], &[1, 5, 3, 6]);
        assert_eq!(
            changes,
            vec![
                SlotChange {
                    slot: 1,
                    old: 2,
                    new: 5
                },
                SlotChange {
                    slot: 3,
                    old: 4,
                    new: 6
                }
            ]
        );
    }
}
