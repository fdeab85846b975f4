//! Packet capture of the balancer's decisions (`lb-ctl capture`): while
//! `Config::capture_sample` is not 0, packets that pass the configured
//! filters (verdict, VIP, real) are sampled, one in `capture_sample`, and
//! sent to `LB_CAPTURE` with their annotation, followed by the frame's
//! first bytes as it leaves the program. Off, it costs the read of one
//! config field per packet.
use aya_ebpf::{
    helpers::generated::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    programs::XdpContext,
};
use lb_common::capture::{CaptureMeta, MAX_SNAPLEN};

use crate::{
    maps::{LB_CAPTURE, LB_CONFIG},
    stats::Verdict,
};

/// Captures the packet if capture is on and it passes the filters.
#[inline(always)]
pub fn maybe(ctx: &XdpContext, v: &Verdict) {
    let Some(cfg) = LB_CONFIG.get(0) else {
        return;
    };
    let sample = cfg.capture_sample;
    if sample == 0 {
        return;
    }
    if cfg.capture_verdicts != 0 && (v.action >= 32 || (cfg.capture_verdicts >> v.action) & 1 == 0)
    {
        return;
    }
    if cfg.capture_vip != 0 && cfg.capture_vip != v.vip {
        return;
    }
    if cfg.capture_real != 0 && cfg.capture_real != v.real {
        return;
    }
    // SAFETY: helpers without memory arguments.
    if sample > 1 && unsafe { bpf_get_prandom_u32() } % sample != 0 {
        return;
    }
    let len = (ctx.data_end() - ctx.data()) as u32;
    let snap = if cfg.capture_snaplen < MAX_SNAPLEN {
        cfg.capture_snaplen
    } else {
        MAX_SNAPLEN
    };
    let caplen = if len < snap { len } else { snap };
    let meta = CaptureMeta {
        // SAFETY: as above.
        time_ns: unsafe { bpf_ktime_get_ns() },
        action: v.action,
        reason: match v.reason {
            Some(c) => c as u32 + 1,
            None => v.noted,
        },
        vip: v.vip,
        real: v.real,
        len,
        caplen,
    };
    // The frame's first `caplen` bytes follow the record (the helper's
    // context-length flag, BPF_F_CTXLEN_MASK).
    LB_CAPTURE.output(ctx, &meta, caplen);
}
