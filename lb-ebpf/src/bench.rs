//! Benchmark-only programs, never attached by lb-ctl: the frame-restoring
//! wrapper for BPF_PROG_TEST_RUN live frames, and the floors measured in
//! the same run (`XDP_TX` alone; `adjust_head` + `XDP_TX`), a dropping
//! program for the veth peer that receives what is transmitted, and, for
//! `cargo xtask bench lab`, the counting sink on the backends and the
//! floor forwarder (`lb_bench_fwd`).
use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, PerCpuArray, ProgramArray},
    helpers::generated::{bpf_get_smp_processor_id, bpf_redirect, bpf_xdp_adjust_head},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use lb_common::bench::{
    BENCH_FRAME_LEN, BenchFrame, BenchHop, SinkCounts, SinkMatch, VARY_ADDR_BYTE_OFFSET,
    VARY_FIX_IPV4_CHECKSUM, VARY_PER_CPU, VARY_PER_CPU_SEQ_BITS, VARY_PORT_OFFSET,
};

use lb_ebpf::headers::{
    ETH_LEN, ETH_P_IP, EthHdr, IPPROTO_IPIP, IPPROTO_UDP, IPV4_LEN, Ipv4Hdr, Ports, ptr_at,
};

/// The frame template.
#[btf_map]
static LB_BENCH_FRAME: Array<BenchFrame, 1> = Array::new();

/// The sequence number of `vary` frames: shared by all CPUs (not per CPU),
/// so that runs on different CPUs never repeat a flow. Only one benchmark
/// runs at a time, so plain increments suffice.
#[btf_map]
static LB_BENCH_SEQ: Array<u32, 1> = Array::new();

/// The sequence of [`VARY_PER_CPU`] frames: each CPU its own.
#[btf_map]
static LB_BENCH_SEQ_CPU: PerCpuArray<u32, 1> = PerCpuArray::new();

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
    let per_cpu = frame.vary & VARY_PER_CPU != 0;
    let seq = if per_cpu {
        LB_BENCH_SEQ_CPU.get_ptr_mut(0)
    } else {
        LB_BENCH_SEQ.get_ptr_mut(0)
    };
    if frame.vary != 0
        && let Some(seq) = seq
    {
        // SAFETY: the map's single slot (this CPU's, for VARY_PER_CPU);
        // see LB_BENCH_SEQ.
        let mut n = unsafe {
            *seq = (*seq).wrapping_add(1);
            *seq
        };
        if frame.vary_mask != 0 {
            n &= frame.vary_mask;
        }
        if per_cpu {
            // SAFETY: a helper with no arguments.
            let cpu = unsafe { bpf_get_smp_processor_id() };
            n = (n & ((1 << VARY_PER_CPU_SEQ_BITS) - 1)) | ((cpu & 3) << VARY_PER_CPU_SEQ_BITS);
        }
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
        if frame.vary & VARY_FIX_IPV4_CHECKSUM != 0 {
            fix_ipv4_checksum(&ctx);
        }
    }
    // SAFETY: index 0 holds an XDP program (or nothing: then we fall through).
    unsafe { LB_BENCH_JUMP.tail_call(&ctx, 0) };
    xdp_action::XDP_ABORTED
}

/// Recomputes the checksum of the IPv4 header (20 bytes) after the
/// Ethernet header.
fn fix_ipv4_checksum(ctx: &XdpContext) {
    let Some(words) = ptr_at::<[u16; IPV4_LEN / 2]>(ctx, ETH_LEN) else {
        return;
    };
    // SAFETY: checked by ptr_at.
    let words = unsafe { &mut *words };
    words[5] = 0;
    let mut sum = 0u32;
    let mut i = 0;
    while i < IPV4_LEN / 2 {
        sum += u32::from(words[i]);
        i += 1;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    words[5] = !(sum as u16);
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

/// Where `lb_bench_fwd` sends, by the source port's low bit.
#[btf_map]
static LB_BENCH_HOPS: Array<BenchHop, 2> = Array::new();

/// The floor of `cargo xtask bench lab`: the least any XDP forwarder does
/// on that topology. An IPv4 UDP packet gets the Ethernet addresses toward
/// one of two backends (the source port's low bit) and is redirected to
/// that backend's link, unchanged otherwise: no table, no hash, no
/// encapsulation. Everything else goes to the stack (ARP).
#[xdp]
pub fn lb_bench_fwd(ctx: XdpContext) -> u32 {
    // One bound for the three headers (Ethernet, IPv4 without options,
    // the ports).
    let Some(head) = ptr_at::<[u8; ETH_LEN + IPV4_LEN + 4]>(&ctx, 0) else {
        return xdp_action::XDP_PASS;
    };
    let eth = head as *mut EthHdr;
    // SAFETY (the casts): inside the checked bytes, at their offsets.
    let ip = unsafe { head.byte_add(ETH_LEN) } as *const Ipv4Hdr;
    let ports = unsafe { head.byte_add(ETH_LEN + IPV4_LEN) } as *const Ports;
    // SAFETY: all three checked by ptr_at; nothing else holds the frame.
    unsafe {
        if (*eth).proto != ETH_P_IP.to_be()
            || (*ip).version_ihl != 0x45
            || (*ip).proto != IPPROTO_UDP
        {
            return xdp_action::XDP_PASS;
        }
        let Some(hop) = LB_BENCH_HOPS.get(u32::from(u16::from_be((*ports).src) & 1)) else {
            return xdp_action::XDP_ABORTED;
        };
        if hop.ifindex == 0 {
            return xdp_action::XDP_ABORTED;
        }
        (*eth).dst = hop.dst_mac;
        (*eth).src = hop.src_mac;
        bpf_redirect(hop.ifindex, 0) as u32
    }
}

/// What `lb_bench_sink` counts.
#[btf_map]
static LB_BENCH_SINK: PerCpuArray<SinkCounts, 1> = PerCpuArray::new();

/// What `lb_bench_sink` matches.
#[btf_map]
static LB_BENCH_SINK_MATCH: Array<SinkMatch, 1> = Array::new();

/// The backends' end of the lab benchmark: counts and drops the UDP test
/// packets that arrive, tunnelled (lb) or rewritten (DNAT); passes the rest
/// (ARP, TCP, other ports) to the stack. Untagged IPv4 with a 20-byte
/// header (what the benchmark sends).
#[xdp]
pub fn lb_bench_sink(ctx: XdpContext) -> u32 {
    let (Some(want), Some(counts)) = (LB_BENCH_SINK_MATCH.get(0), LB_BENCH_SINK.get_ptr_mut(0))
    else {
        return xdp_action::XDP_ABORTED;
    };
    let kind = sink_kind(&ctx, want);
    // SAFETY: this CPU's slot of a per-CPU map.
    unsafe {
        match kind {
            Sink::Tunnelled => (*counts).tunnelled += 1,
            Sink::Plain => (*counts).plain += 1,
            Sink::Passed => {
                (*counts).passed += 1;
                return xdp_action::XDP_PASS;
            }
        }
    }
    xdp_action::XDP_DROP
}

enum Sink {
    Tunnelled,
    Plain,
    Passed,
}

fn sink_kind(ctx: &XdpContext, want: &SinkMatch) -> Sink {
    let ipv4_udp_to = |at: usize, vip: Option<[u8; 4]>| -> bool {
        let (Some(ip), Some(ports)) = (
            ptr_at::<Ipv4Hdr>(ctx, at),
            ptr_at::<Ports>(ctx, at + IPV4_LEN),
        ) else {
            return false;
        };
        // SAFETY: both checked by ptr_at.
        let (ip, ports) = unsafe { (*ip, *ports) };
        ip.version_ihl == 0x45
            && ip.proto == IPPROTO_UDP
            && ports.dst == want.port
            && vip.is_none_or(|v| ip.dst == v)
    };
    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return Sink::Passed;
    };
    // SAFETY: checked by ptr_at.
    if unsafe { (*eth).proto } != ETH_P_IP.to_be() {
        return Sink::Passed;
    }
    let Some(outer) = ptr_at::<Ipv4Hdr>(ctx, ETH_LEN) else {
        return Sink::Passed;
    };
    // SAFETY: checked by ptr_at.
    let outer = unsafe { *outer };
    if outer.version_ihl == 0x45
        && outer.proto == IPPROTO_IPIP
        && ipv4_udp_to(ETH_LEN + IPV4_LEN, Some(want.vip))
    {
        Sink::Tunnelled
    } else if ipv4_udp_to(ETH_LEN, None) {
        Sink::Plain
    } else {
        Sink::Passed
    }
}
