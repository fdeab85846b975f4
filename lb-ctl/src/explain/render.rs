//! `lb-ctl explain`'s text: one fact per line, the decision first.
use std::fmt::Write as _;

use super::Explanation;

/// The explanation as an operator reads it.
pub fn text(e: &Explanation) -> String {
    let mut out = String::new();
    let o = &mut out;
    let _ = writeln!(o, "flow     {}", e.flow);
    let _ = writeln!(o, "verdict  {} ({}): {}", e.verdict, e.reason, e.why);
    match &e.vip {
        Some(v) => {
            let _ = writeln!(
                o,
                "vip      {} (id {}, ring {}{}{}{})",
                v.vip,
                v.vip_id,
                v.ring_size,
                if v.portless { ", every port" } else { "" },
                if v.no_conn_table {
                    ", no connection table"
                } else {
                    ""
                },
                if v.quic {
                    ", QUIC: a connection id naming a usable real of it goes there; shown: the rest"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(o, "vip      none");
        }
    }
    match &e.connection {
        Some(c) => {
            let _ = writeln!(
                o,
                "conn     real {} (generation {}), VIP {} (generation {}): {}",
                c.real_id,
                c.real_generation,
                c.vip_id,
                c.vip_generation,
                c.stale
                    .as_deref()
                    .map_or_else(|| "in use".to_owned(), |s| format!("stale, {s}"))
            );
        }
        None => {
            let _ = writeln!(o, "conn     none");
        }
    }
    let _ = writeln!(o, "hash     {:#010x}", e.flow_hash);
    if let Some(slot) = e.ring_slot {
        let _ = writeln!(
            o,
            "ring     slot {slot} -> real {}",
            e.ring_real
                .map_or_else(|| "none".to_owned(), |r| r.to_string())
        );
    }
    if let Some(r) = &e.real {
        let _ = writeln!(
            o,
            "real     {} (id {}, {}, generation {})",
            r.address, r.real_id, r.state, r.generation
        );
    }
    if let Some(x) = &e.encap {
        let ports = x
            .udp_ports
            .map_or_else(String::new, |(s, d)| format!(", UDP {s} -> {d}"));
        let _ = writeln!(
            o,
            "encap    {} {} -> {} (+{} bytes{ports})",
            x.kind, x.outer_src, x.outer_dst, x.overhead
        );
    }
    match (&e.health, &e.real) {
        (Some(h), _) => {
            let state = if h.healthy {
                "up".to_owned()
            } else if h.last_error.is_empty() {
                "down".to_owned()
            } else {
                format!("down: {}", h.last_error)
            };
            let _ = writeln!(o, "health   {state} ({})", h.check);
        }
        (None, Some(_)) => {
            let _ = writeln!(
                o,
                "health   unknown: no daemon answered (the state above is the maps')"
            );
        }
        (None, None) => {}
    }
    if let Some(s) = &e.size {
        let _ = writeln!(o, "size     {} bytes, MTU {}: {}", s.size, s.mtu, s.outcome);
    }
    out
}
