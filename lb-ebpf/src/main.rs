//! The balancer's XDP object (`lb`), built for `bpfel-unknown-none` and
//! embedded in `lb-ctl`. The backends' decapsulator is a separate object
//! (`lb-decap`, `src/decap/main.rs`), so that a backend loads none of the
//! balancer's maps.
//!
//! - `lb_balance`: the balancer. TCP/UDP packets to a VIP are sent to a real
//!   (connection table, else the VIP's Maglev ring) inside an IP-in-IP
//!   header; everything else passes untouched or is dropped with a reason.
//!   Every packet is counted once by verdict and once by reason.
//! - `lb_icmp_too_big`: tail-called by the balancer for ICMP to a VIP that
//!   is not an echo request; passes "fragmentation needed" / "packet too
//!   big" about a real's reply to that real.
//! - `lb_pass`: passes every packet and counts it; used where a veth peer
//!   needs an XDP program for `XDP_TX` frames to be delivered, and as the
//!   smoke test of the build, the verifier and attachment.
//!
//! On the host the crate still compiles (so `cargo clippy --workspace`
//! lints it), with an empty `main`; the programs only run as BPF.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code))]

// The shared library brings the panic handler.
use lb_ebpf as _;

mod balance;
mod bench;
mod capture;
mod echo;
mod encap;
mod fib;
mod icmp;
mod maps;
mod outer;
mod parse;
mod quic;
mod stats;
mod too_big;

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::PerCpuArray,
    macros::{btf_map, xdp},
    programs::XdpContext,
};

/// Packets seen by `lb_pass`, per CPU, at index 0.
#[btf_map]
static PASS_PACKETS: PerCpuArray<u64, 1> = PerCpuArray::new();

/// The balancer.
#[xdp]
pub fn lb_balance(ctx: XdpContext) -> u32 {
    let verdict = balance::balance(&ctx);
    capture::maybe(&ctx, &verdict);
    stats::record(verdict)
}

/// ICMP too-big messages about a real's reply, to that real (tail-called
/// by `lb_balance`).
#[xdp]
pub fn lb_icmp_too_big(ctx: XdpContext) -> u32 {
    let verdict = too_big::forward(&ctx);
    capture::maybe(&ctx, &verdict);
    stats::record(verdict)
}

/// Passes every packet to the stack, untouched.
#[xdp]
pub fn lb_pass(_ctx: XdpContext) -> u32 {
    if let Some(count) = PASS_PACKETS.get_ptr_mut(0) {
        // SAFETY: a per-CPU slot is only written by the CPU running us.
        unsafe { *count += 1 };
    }
    xdp_action::XDP_PASS
}

/// The kernel requires a GPL-compatible licence for some helpers we call.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

/// Host builds (clippy, `cargo check --workspace`) need an entry point.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
