//! Benchmark-only programs, never attached by lb-ctl: the frame-restoring
//! wrapper for BPF_PROG_TEST_RUN live frames, and the floors measured in
//! the same run (`XDP_TX` alone; `adjust_head` + `XDP_TX`), and a dropping
//! program for the veth peer that receives what is transmitted.
use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, ProgramArray},
    helpers::generated::bpf_xdp_adjust_head,
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use lb_common::bench::{BENCH_FRAME_LEN, BenchFrame, VARY_ADDR_BYTE_OFFSET, VARY_PORT_OFFSET};

use lb_ebpf::headers::ptr_at;

/// The frame template.
#[btf_map]
static LB_BENCH_FRAME: Array<BenchFrame, 1> = Array::new();

/// The sequence number of `vary` frames: shared by all CPUs (not per CPU),
/// so that runs on different CPUs never repeat a flow. Only one benchmark
/// runs at a time, so plain increments suffice.
#[btf_map]
static LB_BENCH_SEQ: Array<u32, 1> = Array::new();

/// Index 0: the program being measured.
#[btf_map]
static LB_BENCH_JUMP: ProgramArray<1> = ProgramArray::new();

/// Restores the frame from the template, then tail-calls the program under
/// measurement.
#[xdp]
pub fn lb_bench_restore(ctx: XdpContext) -> u32 {
    let Some(frame) = LB_BENCH_FRAME.get(0) else {
        return xdp_action::XDP_ABORTED;
    };
    let Some(dst) = ptr_at::<[u64; BENCH_FRAME_LEN / 8]>(&ctx, 0) else {
        return xdp_action::XDP_ABORTED;
    };
    let mut i = 0;
    while i < BENCH_FRAME_LEN / 8 {
        // SAFETY: ptr_at checked BENCH_FRAME_LEN bytes of packet.
        unsafe { (*dst)[i] = frame.words[i] };
        i += 1;
    }
    if frame.vary != 0
        && let Some(seq) = LB_BENCH_SEQ.get_ptr_mut(0)
    {
        // SAFETY: the map's single slot; see LB_BENCH_SEQ.
        let n = unsafe {
            *seq = (*seq).wrapping_add(1);
            *seq
        };
        if let (Some(p), Some(b)) = (
            ptr_at::<[u8; 2]>(&ctx, VARY_PORT_OFFSET),
            ptr_at::<u8>(&ctx, VARY_ADDR_BYTE_OFFSET),
        ) {
            // SAFETY: both checked by ptr_at.
            unsafe {
                *p = (n as u16).to_be_bytes();
                *b = (n >> 16) as u8;
            }
        }
    }
    // SAFETY: index 0 holds an XDP program (or nothing: then we fall through).
    unsafe { LB_BENCH_JUMP.tail_call(&ctx, 0) };
    xdp_action::XDP_ABORTED
}

/// Floor: transmit as is.
#[xdp]
pub fn lb_bench_tx(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_TX
}

/// Floor: grow the head by an IPv4 header, then transmit.
#[xdp]
pub fn lb_bench_encap_floor(ctx: XdpContext) -> u32 {
    // SAFETY: the program's own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -20) } != 0 {
        return xdp_action::XDP_ABORTED;
    }
    xdp_action::XDP_TX
}

/// Drops everything: the veth peer that receives transmitted frames.
#[xdp]
pub fn lb_bench_drop(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_DROP
}
