//! One VIP's Maglev ring in the kernel: an mmap-able BPF array of real ids
//! that user space writes directly (no syscall per slot), referenced from
//! `LB_RINGS` by VIP id.
//!
//! The kernel stores array values 8-byte aligned, so in the mapping slot i
//! is the u64 at byte 8 * i; the program reads its low 32 bits (a u32 real
//! id, little-endian). Each slot is written with one atomic store.
use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use aya::maps::{MapData, MapError};
use lb_common::RING_MAP_FLAGS;

/// Bytes between slots in the mapping (the kernel's array element size:
/// the 4-byte value rounded up to 8).
const SLOT_STRIDE: usize = 8;

/// `BPF_MAP_TYPE_ARRAY` from the kernel's uapi.
const BPF_MAP_TYPE_ARRAY: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("failed to create a ring map of {size} slots")]
    Create {
        size: u32,
        #[source]
        source: MapError,
    },
    #[error("failed to map the ring map of {size} slots into memory")]
    Mmap {
        size: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("ring map has {actual} slots, expected {expected}")]
    Size { expected: u32, actual: u32 },
}

/// A ring map and its shared mapping.
#[derive(Debug)]
pub struct Ring {
    map: MapData,
    slots: NonNull<AtomicU64>,
    size: u32,
    mapped_len: usize,
}

// SAFETY: the mapping is shared memory of atomics; the map fd is owned.
unsafe impl Send for Ring {}
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates an empty ring (every slot 0: no real) of `size` slots.
    pub fn create(size: u32) -> Result<Self, RingError> {
        let obj = aya_obj::Map::new_from_params(BPF_MAP_TYPE_ARRAY, 4, 4, size, RING_MAP_FLAGS);
        let map = MapData::create(obj, "lb_ring", None)
            .map_err(|source| RingError::Create { size, source })?;
        Self::from_map(map, size)
    }

    /// Wraps an existing ring map (e.g. found through `LB_RINGS` after a
    /// restart) of `size` slots.
    pub fn from_map(map: MapData, size: u32) -> Result<Self, RingError> {
        let actual = map.info().map(|i| i.max_entries()).unwrap_or(size);
        if actual != size {
            return Err(RingError::Size {
                expected: size,
                actual,
            });
        }
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mapped_len = (size as usize * SLOT_STRIDE).div_ceil(page) * page;
        // SAFETY: mapping a BPF_F_MMAPABLE array's fd shared, read-write,
        // at offset 0 over its (page-rounded) value area.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(RingError::Mmap {
                size,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Ring {
            map,
            slots: NonNull::new(ptr.cast()).expect("mmap returned a non-null address"),
            size,
            mapped_len,
        })
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    pub fn map(&self) -> &MapData {
        &self.map
    }

    fn slots(&self) -> &[AtomicU64] {
        // SAFETY: the mapping holds `size` u32 slots for as long as self.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr(), self.size as usize) }
    }

    /// Writes `slot`; the data plane sees it at once.
    pub fn set(&self, slot: u32, real_id: u32) {
        self.slots()[slot as usize].store(u64::from(real_id), Ordering::Relaxed);
    }

    /// Reads every slot.
    pub fn read(&self) -> Vec<u32> {
        self.slots()
            .iter()
            .map(|s| s.load(Ordering::Relaxed) as u32)
            .collect()
    }

    /// Writes every slot whose value differs from `wanted`; returns how many
    /// were written.
    pub fn write_all(&self, wanted: &[u32]) -> usize {
        assert_eq!(wanted.len(), self.size as usize, "ring size mismatch");
        let mut written = 0;
        for (slot, &w) in self.slots().iter().zip(wanted) {
            let w = u64::from(w);
            if slot.load(Ordering::Relaxed) != w {
                slot.store(w, Ordering::Relaxed);
                written += 1;
            }
        }
        written
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what from_map mapped.
        unsafe { libc::munmap(self.slots.as_ptr().cast(), self.mapped_len) };
    }
}
