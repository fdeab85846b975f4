//! Counting: the global counters (one named field per reason and verdict),
//! and per-VIP and per-real traffic. All per CPU: no atomics on the hot path.
use aya_ebpf::bindings::xdp_action;
use lb_common::stats::Counter;

use crate::maps::{LB_REAL_STATS, LB_STATS, LB_VIP_STATS};

/// What to do with a packet, and the counter that says why.
#[derive(Clone, Copy)]
pub struct Verdict {
    pub action: u32,
    pub reason: Option<Counter>,
    /// For a capture's annotation only: the VIP's id + 1 (0: none), the
    /// real's id (0: none), and a reason already counted on the way
    /// (`Counter` + 1; 0: none).
    pub vip: u32,
    pub real: u32,
    pub noted: u32,
}

impl Verdict {
    #[inline(always)]
    pub const fn pass(reason: Counter) -> Self {
        Verdict {
            action: xdp_action::XDP_PASS,
            reason: Some(reason),
            vip: 0,
            real: 0,
            noted: 0,
        }
    }

    #[inline(always)]
    pub const fn drop(reason: Counter) -> Self {
        Verdict {
            action: xdp_action::XDP_DROP,
            reason: Some(reason),
            vip: 0,
            real: 0,
            noted: 0,
        }
    }

    #[inline(always)]
    pub const fn tx(reason: Counter) -> Self {
        Verdict {
            action: xdp_action::XDP_TX,
            reason: Some(reason),
            vip: 0,
            real: 0,
            noted: 0,
        }
    }

    /// Sent, with the reason already counted on the way.
    #[inline(always)]
    pub const fn tx_only() -> Self {
        Verdict {
            action: xdp_action::XDP_TX,
            reason: None,
            vip: 0,
            real: 0,
            noted: 0,
        }
    }

    /// The same verdict, annotated (for a capture) with the VIP and the
    /// real the packet was for and a reason counted on the way.
    #[inline(always)]
    pub const fn about(mut self, vip_id: u32, real_id: u32, noted: Counter) -> Self {
        self.vip = vip_id + 1;
        self.real = real_id;
        self.noted = noted as u32 + 1;
        self
    }

    /// Dropped, with the reason already counted on the way.
    #[inline(always)]
    pub const fn drop_only() -> Self {
        Verdict {
            action: xdp_action::XDP_DROP,
            reason: None,
            vip: 0,
            real: 0,
            noted: 0,
        }
    }
}

/// Adds one to `counter` on this CPU.
#[inline(always)]
pub fn count(counter: Counter) {
    // A volatile read, so that LLVM cannot drop the bound check (it knows
    // an enum's range; the verifier, given a number from the stack, does
    // not).
    let raw = counter as u32;
    // SAFETY: reading a local.
    let index = unsafe { core::ptr::read_volatile(&raw) } as usize;
    if index >= Counter::COUNT {
        return;
    }
    if let Some(stats) = LB_STATS.get_ptr_mut(0) {
        // SAFETY: `Stats` is COUNT u64 fields in counter order (asserted in
        // lb-common) and index < COUNT; the slot is this CPU's own.
        unsafe { *stats.cast::<u64>().add(index) += 1 };
    }
}

/// Counts the verdict and its reason, and returns the action.
#[inline(always)]
pub fn record(verdict: Verdict) -> u32 {
    if let Some(reason) = verdict.reason {
        count(reason);
    }
    count(match verdict.action {
        xdp_action::XDP_PASS => Counter::XdpPass,
        xdp_action::XDP_TX => Counter::XdpTx,
        xdp_action::XDP_DROP => Counter::XdpDrop,
        xdp_action::XDP_REDIRECT => Counter::XdpRedirect,
        _ => Counter::XdpAborted,
    });
    verdict.action
}

/// Adds a packet of `bytes` to the VIP's and the real's traffic.
#[inline(always)]
pub fn traffic(vip_id: u32, real_id: u32, bytes: u64) {
    if let Some(t) = LB_VIP_STATS.get_ptr_mut(vip_id) {
        // SAFETY: this CPU's own slot.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += bytes;
        }
    }
    if let Some(t) = LB_REAL_STATS.get_ptr_mut(real_id) {
        // SAFETY: this CPU's own slot.
        unsafe {
            (*t).packets += 1;
            (*t).bytes += bytes;
        }
    }
}
