//! Golden values: the flow hash, the VIP filter slot and the per-flow outer
//! source, as literals. Every LB host of a fleet must compute the same
//! values (ECMP moves a flow between hosts; each must pick the same real),
//! and lb-ctl's predictions must match the kernel's; so a change to any of
//! these functions is a fleet-splitting change, and must fail here first.
//! How the values were made: `tests/golden/README.md`.
use core::net::IpAddr;

use lb_common::{
    config::flow_source,
    hash::{flow_hash, vip_filter_slot},
    maps::FlowKey,
};

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

fn flow(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> FlowKey {
    FlowKey::new(ip(src), sport, ip(dst), dport, proto)
}

fn addr16(s: &str) -> [u8; 16] {
    match ip(s) {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

#[test]
fn the_flow_hash_is_pinned() {
    for (src, sport, dst, dport, proto, want) in GOLDEN_FLOWS {
        let got = flow_hash(&flow(src, sport, dst, dport, proto));
        assert_eq!(
            got, want,
            "flow_hash({src}:{sport} -> {dst}:{dport}/{proto}) = {got:#010x}, golden {want:#010x}: \
             a changed flow hash sends flows to other reals on hosts of other versions"
        );
    }
}

#[test]
fn the_vip_filter_slot_is_pinned() {
    for (addr, want) in GOLDEN_SLOTS {
        let got = vip_filter_slot(&addr16(addr));
        assert_eq!(got, want, "vip_filter_slot({addr}) = {got}, golden {want}");
    }
}

#[test]
fn the_per_flow_outer_source_is_pinned() {
    let v4 = [192, 0, 2, 0];
    let v6 = addr16("2001:db8:5b::");
    for (bits, hash, want4, want6) in GOLDEN_SOURCES {
        let got4 = IpAddr::from(flow_source(v4, bits, hash));
        let got6 = IpAddr::from(flow_source(v6, bits, hash));
        assert_eq!(got4, ip(want4), "v4 source, {bits} bits of {hash:#x}");
        assert_eq!(got6, ip(want6), "v6 source, {bits} bits of {hash:#x}");
    }
}

include!("golden/values.rs");
