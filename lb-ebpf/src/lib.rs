//! What lb's XDP objects share: wire headers and bounds-checked packet
//! access, checksums, and the link layer (Ethernet and 802.1Q). The
//! programs and their maps live in the binaries: `lb` (the balancer,
//! `src/main.rs`) and `lb-decap` (the backends' decapsulator,
//! `src/decap/main.rs`); `lb-ctl` embeds both objects.
#![no_std]

pub mod csum;
pub mod headers;
pub mod l2;

/// The objects' panic handler. No code path the verifier accepts can get
/// here: every packet access is bounds-checked and nothing indexes without
/// a check; a loop keeps the signature honest without a panic runtime.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
