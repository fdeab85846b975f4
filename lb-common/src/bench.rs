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
    /// Non-zero ([`VARY_FLOWS`], with [`VARY_FIX_IPV4_CHECKSUM`] or not):
    /// make every packet another flow (the frame must be untagged IPv4
    /// TCP/UDP, no options) by writing a sequence number into it: the low
    /// 16 bits as the source port, the next 8 as the last byte of the
    /// source address.
    pub vary: u32,
    /// Non-zero: the sequence is masked with it (`flows - 1` for a power
    /// of two: that many flows, met again and again); 0: 24 bits.
    pub vary_mask: u32,
}

/// [`BenchFrame::vary`]: vary the flow.
pub const VARY_FLOWS: u32 = 1;
/// [`BenchFrame::vary`]: count the sequence per CPU (not shared), and put
/// the CPU's number (modulo 4) in its top 2 of 24 bits: runs on up to 4
/// CPUs at once then send disjoint flows, each CPU 2^22 of them in turn,
/// without a shared counter's cache line moving between CPUs. The mask, if
/// any, applies to the CPU's own 22 bits.
pub const VARY_PER_CPU: u32 = 4;
/// The CPU's own bits of a [`VARY_PER_CPU`] sequence.
pub const VARY_PER_CPU_SEQ_BITS: u32 = 22;

/// [`BenchFrame::vary`]: also recompute the IPv4 header checksum (for
/// frames that reach a kernel stack; the TCP/UDP checksum is not updated,
/// so a UDP frame should carry 0, "no checksum").
pub const VARY_FIX_IPV4_CHECKSUM: u32 = 2;

impl Default for BenchFrame {
    fn default() -> Self {
        BenchFrame {
            words: [0; BENCH_FRAME_LEN / 8],
            vary: 0,
            vary_mask: 0,
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

    /// The template for `bytes` made another flow every packet as `vary`
    /// says ([`VARY_FLOWS`], [`VARY_FIX_IPV4_CHECKSUM`]), over `flows`
    /// flows (a power of two; 0: the whole 24-bit sequence).
    pub fn varying(bytes: &[u8; BENCH_FRAME_LEN], vary: u32, flows: u32) -> Self {
        BenchFrame {
            vary,
            vary_mask: flows.saturating_sub(1),
            ..Self::from_bytes(bytes)
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

/// What `lb_bench_sink` counts, the backends' end of `cargo xtask bench
/// lab`: every UDP packet to [`SinkMatch::port`] that reached a backend,
/// whether the balancer sent it IPv4-in-IPv4 (lb) or rewrote it (DNAT).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkCounts {
    /// IPv4-in-IPv4 whose inner packet is UDP to the VIP and port: dropped.
    pub tunnelled: u64,
    /// Plain UDP to the port (any address: DNAT rewrote it, the floor
    /// forwarder left it): dropped.
    pub plain: u64,
    /// Anything else (ARP, TCP, other ports): passed to the stack.
    pub passed: u64,
}

/// What `lb_bench_sink` matches (`LB_BENCH_SINK_MATCH[0]`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkMatch {
    /// The VIP, network order (the inner destination of tunnelled packets).
    pub vip: [u8; 4],
    /// The UDP destination port, network order.
    pub port: u16,
    pub _pad: u16,
}

/// Where `lb_bench_fwd`, the floor forwarder of `cargo xtask bench lab`,
/// sends a packet (`LB_BENCH_HOPS[source port & 1]`): a backend's link
/// and the Ethernet addresses toward it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BenchHop {
    /// The forwarder's link to the backend (0: not set, the packet is
    /// aborted).
    pub ifindex: u32,
    /// The backend's MAC.
    pub dst_mac: [u8; 6],
    /// The forwarder's MAC on that link.
    pub src_mac: [u8; 6],
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], a u32 and bytes, no implicit padding.
unsafe impl aya::Pod for BenchHop {}

const _: () = assert!(core::mem::size_of::<BenchHop>() == 16);

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], u64s only.
unsafe impl aya::Pod for SinkCounts {}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], bytes and u16s, no implicit padding.
unsafe impl aya::Pod for SinkMatch {}
