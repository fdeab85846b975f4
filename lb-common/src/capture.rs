//! Packet capture of the balancer's decisions: what the program sends to
//! `LB_CAPTURE` (a perf event array) for each captured packet. A record is
//! a [`CaptureMeta`] followed by `caplen` bytes of the frame as it leaves
//! the program (encapsulated if sent to a real, as received if passed or
//! dropped). `lb-ctl capture` turns records into pcapng with annotations.

/// The most bytes of a frame a record carries.
pub const MAX_SNAPLEN: u32 = 2048;

/// A captured packet's annotation.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureMeta {
    /// `bpf_ktime_get_ns()` when it was captured (monotonic clock).
    pub time_ns: u64,
    /// The XDP action returned (XDP_PASS = 2, XDP_TX = 3, ...).
    pub action: u32,
    /// The reason: a [`crate::stats::Counter`] number + 1; 0 = none.
    pub reason: u32,
    /// The VIP's id + 1; 0 = no VIP.
    pub vip: u32,
    /// The real's id; 0 = none.
    pub real: u32,
    /// The frame's length as it left the program.
    pub len: u32,
    /// Bytes of it that follow this header.
    pub caplen: u32,
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], integer fields, no padding.
unsafe impl aya::Pod for CaptureMeta {}

const _: () = assert!(core::mem::size_of::<CaptureMeta>() == 32);
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(CaptureMeta, time_ns) == 0);
    assert!(offset_of!(CaptureMeta, action) == 8);
    assert!(offset_of!(CaptureMeta, reason) == 12);
    assert!(offset_of!(CaptureMeta, vip) == 16);
    assert!(offset_of!(CaptureMeta, real) == 20);
    assert!(offset_of!(CaptureMeta, len) == 24);
    assert!(offset_of!(CaptureMeta, caplen) == 28);
};
