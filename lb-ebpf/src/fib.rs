//! Next hop from the kernel's FIB (`bpf_fib_lookup`): the MACs toward a
//! real and the interface to leave by, so the LB host needs no static
//! gateway MAC. Used when `mac_mode` is `MAC_MODE_FIB`. A found next hop
//! is kept per CPU and real slot for [`NEXT_HOP_TTL_NS`] (a lookup costs
//! about as much as the rest of a connection-table hit).
use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams},
    helpers::generated::{bpf_fib_lookup, bpf_ktime_get_coarse_ns},
    programs::XdpContext,
};
use lb_common::{FAMILY_V4, config::Config, maps::Real};

use crate::maps::LB_NEXT_HOPS;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What the FIB says of the way to a real.
pub struct NextHop {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ifindex: u32,
    /// The largest packet (IP length) the way takes: the egress MTU the
    /// lookup gave back (at least the length it was asked about).
    pub max_len: u16,
}

/// How long a next hop from the FIB is used before it is asked again: a
/// route or neighbour change reaches the balancer within this (plus a
/// tick of the coarse clock).
pub const NEXT_HOP_TTL_NS: u64 = 100_000_000;

/// A next hop remembered for a real slot, on one CPU (`LB_NEXT_HOPS`).
/// All-zero (as the map starts) is expired.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CachedHop {
    /// Coarse monotonic ns after which the FIB is asked again.
    pub expires_ns: u64,
    /// The slot's generation it was looked up for: a slot reused for
    /// another real is looked up again at once.
    pub real_generation: u32,
    pub ifindex: u32,
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// Packets longer than this (IP length) ask the FIB, which checks the
    /// egress MTU.
    pub max_len: u16,
    pub _pad: u16,
}

/// A question to [`next_hop_cached`] and its answer: the real's slot, the
/// outer packet's IP length, and the next hop when found.
pub struct HopQuery {
    pub real_id: u32,
    pub tot_len: u16,
    pub hop: core::mem::MaybeUninit<NextHop>,
}

/// [`next_hop`] through this CPU's cache for slot `q.real_id`: a found
/// next hop is kept for [`NEXT_HOP_TTL_NS`]; a missing neighbour or route
/// is never kept, so it is asked again on the next packet. Not inlined,
/// so that its code stays off the paths that never use it (its arguments
/// in a struct: a call takes at most five).
#[inline(never)]
pub fn next_hop_cached(ctx: &XdpContext, real: &Real, cfg: &Config, q: &mut HopQuery) -> Fib {
    let (real_id, tot_len, out) = (q.real_id, q.tot_len, &mut q.hop);
    // SAFETY: a helper with no arguments (the tick's time, no clock read).
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let slot = LB_NEXT_HOPS.get_ptr_mut(real_id);
    if let Some(c) = slot {
        // SAFETY: this CPU's slot; XDP programs do not preempt each other
        // on one CPU.
        let c = unsafe { &*c };
        if now < c.expires_ns && c.real_generation == real.generation && tot_len <= c.max_len {
            out.write(NextHop {
                dst_mac: c.dst_mac,
                src_mac: c.src_mac,
                ifindex: c.ifindex,
                max_len: c.max_len,
            });
            return Fib::Found;
        }
    }
    let found = next_hop(ctx, real, cfg, tot_len, out);
    if let (Fib::Found, Some(c)) = (&found, slot) {
        // SAFETY: written by next_hop when Found.
        let hop = unsafe { out.assume_init_ref() };
        // SAFETY: as above.
        unsafe {
            *c = CachedHop {
                expires_ns: now + NEXT_HOP_TTL_NS,
                real_generation: real.generation,
                ifindex: hop.ifindex,
                dst_mac: hop.dst_mac,
                src_mac: hop.src_mac,
                max_len: hop.max_len,
                _pad: 0,
            }
        };
    }
    found
}

/// The FIB's answer.
pub enum Fib {
    /// The next hop was written.
    Found,
    /// A route, but the neighbour's MAC is not known yet: the packet should
    /// go through the stack, which resolves it.
    NoNeighbour,
    /// No route or another failure.
    Failed,
}

/// Zeroes the parameter block at `p` a word at a time, in place:
/// `core::mem::zeroed()` (or a zeroed value moved into place) became a
/// call to a byte-wise `memset` subprogram per packet (2.5% of the
/// forwarding core in `cargo xtask bench lab`).
#[inline(always)]
fn zero_params(p: *mut FibParams) {
    const WORDS: usize = core::mem::size_of::<FibParams>() / 4;
    const _: () = assert!(core::mem::size_of::<FibParams>().is_multiple_of(4));
    const _: () = assert!(core::mem::align_of::<FibParams>() >= 4);
    let words = p.cast::<u32>();
    let mut i = 0;
    while i < WORDS {
        // SAFETY: inside `*p`, 4-aligned (asserted above). Volatile, so
        // that the stores are not merged into a memset call.
        unsafe { words.add(i).write_volatile(0) };
        i += 1;
    }
}

/// Looks up the route from our outer source to `real` for a packet of
/// `tot_len` bytes arriving on the program's interface; writes `out` when
/// [`Fib::Found`] (only then: it starts uninitialised, since zeroing it
/// was another `memset` call per packet). Not inlined: its 64-byte parameter block gets its own frame.
#[inline(never)]
pub fn next_hop(
    ctx: &XdpContext,
    real: &Real,
    cfg: &Config,
    tot_len: u16,
    out: &mut core::mem::MaybeUninit<NextHop>,
) -> Fib {
    let mut params = core::mem::MaybeUninit::<FibParams>::uninit();
    zero_params(params.as_mut_ptr());
    // SAFETY: every byte was written; all-zero is a valid bpf_fib_lookup.
    // Used in place: a move would be a copy.
    let p = unsafe { &mut *params.as_mut_ptr() };
    // SAFETY: reading the context's ingress ifindex.
    p.ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    p.__bindgen_anon_1.tot_len = tot_len;
    if real.family == FAMILY_V4 {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(cfg.src_v4);
        p.__bindgen_anon_4.ipv4_dst =
            u32::from_ne_bytes([real.addr[0], real.addr[1], real.addr[2], real.addr[3]]);
    } else {
        p.family = AF_INET6;
        // SAFETY: [u8; 16] and [u32; 4] have the same size.
        unsafe {
            p.__bindgen_anon_3.ipv6_src = core::mem::transmute::<[u8; 16], [u32; 4]>(cfg.src_v6);
            p.__bindgen_anon_4.ipv6_dst = core::mem::transmute::<[u8; 16], [u32; 4]>(real.addr);
        }
    }
    // SAFETY: the helper reads and writes `p`, whose size is given.
    let rc = unsafe {
        bpf_fib_lookup(
            ctx.ctx.cast(),
            p,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {
            // SAFETY: a u16 either way; the kernel writes the egress MTU
            // there on success (older kernels leave tot_len).
            let mtu = unsafe { p.__bindgen_anon_1.mtu_result };
            out.write(NextHop {
                dst_mac: p.dmac,
                src_mac: p.smac,
                ifindex: p.ifindex,
                max_len: mtu.max(tot_len),
            });
            Fib::Found
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => Fib::NoNeighbour,
        _ => Fib::Failed,
    }
}
