//! The benchmark harness's frame template (`LB_BENCH_FRAME[0]`).
//!
//! BPF_PROG_TEST_RUN with live frames recycles a frame's page without
//! restoring its bytes, so a program that rewrites headers would see its own
//! output from the second pass on. The `lb_bench_restore` program rewrites
//! the original frame from this template before tail-calling the program
//! being measured.

/// Where a `vary` frame's source port and last source address byte are
/// (untagged IPv4, no options).
pub const VARY_PORT_OFFSET: usize = 14 + 20;
/// See [`VARY_PORT_OFFSET`].
pub const VARY_ADDR_BYTE_OFFSET: usize = 14 + 15;

/// Bytes in every benchmark frame.
pub const BENCH_FRAME_LEN: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchFrame {
    /// The frame as it must look on entry, as native-endian 8-byte words
    /// (copied word by word).
    pub words: [u64; BENCH_FRAME_LEN / 8],
    /// Non-zero: make every packet a new flow (the frame must be untagged
    /// IPv4 TCP/UDP) by writing a sequence number into it: the low
    /// 16 bits as the source port, the next 8 as the last byte of the source
    /// address.
    pub vary: u32,
    pub _pad: u32,
}

impl Default for BenchFrame {
    fn default() -> Self {
        BenchFrame {
            words: [0; BENCH_FRAME_LEN / 8],
            vary: 0,
            _pad: 0,
        }
    }
}

impl BenchFrame {
    /// The template for `bytes`.
    pub fn from_bytes(bytes: &[u8; BENCH_FRAME_LEN]) -> Self {
        let mut words = [0u64; BENCH_FRAME_LEN / 8];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        BenchFrame {
            words,
            ..Default::default()
        }
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> [u8; BENCH_FRAME_LEN] {
        let mut out = [0u8; BENCH_FRAME_LEN];
        for (chunk, w) in out.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        out
    }
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], byte array and u32s, no implicit padding.
unsafe impl aya::Pod for BenchFrame {}

const _: () = assert!(core::mem::size_of::<BenchFrame>() == BENCH_FRAME_LEN + 8);
