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
    Found,
    /// A route, but the neighbour's MAC is not known yet: the packet should
    /// go through the stack, which resolves it.
    NoNeighbour,
    /// No route or another failure.
    Failed,
}

/// Looks up the route from our outer source to `real` for a packet of
/// `tot_len` bytes arriving on the program's interface; fills `out` when
/// found. Not inlined: its 64-byte parameter block gets its own frame.
#[inline(never)]
pub fn next_hop(
    ctx: &XdpContext,
    real: &Real,
    cfg: &Config,
    tot_len: u16,
    out: &mut NextHop,
) -> Fib {
    // SAFETY: all-zero is a valid bpf_fib_lookup.
    let mut p: FibParams = unsafe { core::mem::zeroed() };
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
            &mut p,
            core::mem::size_of::<FibParams>() as i32,
            0,
        )
    };
    match rc as u32 {
        BPF_FIB_LKUP_RET_SUCCESS => {
            out.dst_mac = p.dmac;
            out.src_mac = p.smac;
            out.ifindex = p.ifindex;
            Fib::Found
        }
        BPF_FIB_LKUP_RET_NO_NEIGH => Fib::NoNeighbour,
        _ => Fib::Failed,
    }
}
