//! Next hop from the kernel's FIB (`bpf_fib_lookup`): the MACs toward a
//! real and the interface to leave by, so the LB host needs no static
//! gateway MAC. Used when `mac_mode` is `MAC_MODE_FIB`.
use aya_ebpf::{
    bindings::{BPF_FIB_LKUP_RET_NO_NEIGH, BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup as FibParams},
    helpers::generated::bpf_fib_lookup,
    programs::XdpContext,
};
use lb_common::{FAMILY_V4, config::Config, maps::Real};

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// What the FIB says of the way to a real.
pub struct NextHop {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub ifindex: u32,
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
            out.write(NextHop {
                dst_mac: p.dmac,
                src_mac: p.smac,
                ifindex: p.ifindex,
            });
            Fib::Found
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => Fib::NoNeighbour,
        _ => Fib::Failed,
    }
}
