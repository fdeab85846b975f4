//! The backends' XDP object (`lb-decap`), built for `bpfel-unknown-none` and
//! embedded in `lb-ctl`.
//!
//! - `lb_decap`: tunnel packets (IP-in-IP from the balancer) addressed to a
//!   local address lose their outer header and go to the stack, to the VIP
//!   on `lo`; everything else passes untouched. Every packet is counted by
//!   verdict and reason.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]
#![cfg_attr(not(target_arch = "bpf"), allow(dead_code))]

// The shared library brings the panic handler.
use lb_ebpf as _;

mod decap;

use aya_ebpf::{macros::xdp, programs::XdpContext};

/// The decapsulator.
#[xdp]
pub fn lb_decap(ctx: XdpContext) -> u32 {
    decap::decap(&ctx)
}

/// The kernel requires a GPL-compatible licence for some helpers we call.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

/// Host builds (clippy, `cargo check --workspace`) need an entry point.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
