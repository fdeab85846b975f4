//! The `[dataplane]` section: raw -> [`DataplaneSettings`], with the span
//! of the first mistake (sources and their per-flow prefixes, next hop,
//! MTU, connection table, rates).
use std::net::IpAddr;

use toml::Spanned;

use super::{
    DEFAULT_MTU, DataplaneSettings, MAX_CONN_TABLE_SIZE, MAX_MAX_REALS, MIN_CONN_TABLE_SIZE,
    MIN_MAX_REALS, NextHop,
    raw::RawDataplane,
    validate::{Fail, address, fail},
};
use crate::{bgp::Prefix, iface::parse_mac};

fn source_prefix(
    v: &Option<Spanned<String>>,
    what: &str,
    v6: bool,
) -> Result<Option<Prefix>, Fail> {
    let Some(v) = v else {
        return Ok(None);
    };
    let p: Prefix = v
        .get_ref()
        .parse()
        .or_else(|e| fail(v.span(), format!("{what}_prefix: {e}")))?;
    let (family, min) = if v6 { ("IPv6", 96) } else { ("IPv4", 16) };
    if p.addr.is_ipv6() != v6 {
        return fail(
            v.span(),
            format!("{what}_prefix must be an {family} prefix"),
        );
    }
    if p.len < min {
        return fail(
            v.span(),
            format!(
                "{what}_prefix /{} is too short: at most {} per-flow bits (/{min} or longer)",
                p.len,
                if v6 { 32 } else { 16 }
            ),
        );
    }
    Ok(Some(p))
}

pub(super) fn dataplane(d: RawDataplane) -> Result<DataplaneSettings, Fail> {
    let source_v4 = match &d.source_v4 {
        None => None,
        Some(s) => match address(s, "source_v4")? {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => return fail(s.span(), "source_v4 must be an IPv4 address"),
        },
    };
    let source_v6 = match &d.source_v6 {
        None => None,
        Some(s) => match address(s, "source_v6")? {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => return fail(s.span(), "source_v6 must be an IPv6 address"),
        },
    };
    let source_v4_prefix = source_prefix(&d.source_v4_prefix, "source_v4", false)?;
    if let (Some(_), None) = (&source_v4_prefix, source_v4) {
        let at = d.source_v4_prefix.as_ref().expect("set").span();
        return fail(
            at,
            "source_v4_prefix needs source_v4 too (the LB's own address)",
        );
    }
    let source_v6_prefix = source_prefix(&d.source_v6_prefix, "source_v6", true)?;
    if let (Some(_), None) = (&source_v6_prefix, source_v6) {
        let at = d.source_v6_prefix.as_ref().expect("set").span();
        return fail(
            at,
            "source_v6_prefix needs source_v6 too (the LB's own address)",
        );
    }
    let next_hop = match &d.next_hop {
        None => NextHop::Reflect,
        Some(s) => match s.get_ref().as_str() {
            "reflect" => NextHop::Reflect,
            "fib" => NextHop::Fib,
            mac => NextHop::Gateway(parse_mac(mac).map_or_else(
                || fail(s.span(), format!("next_hop `{mac}`: use reflect, fib, or a gateway MAC like 02:00:00:00:00:01")),
                Ok,
            )?),
        },
    };
    let table_size = |key: &str, n: &Option<Spanned<u32>>, default: u32| match n {
        None => Ok(default),
        Some(n) if (MIN_CONN_TABLE_SIZE..=MAX_CONN_TABLE_SIZE).contains(n.get_ref()) => {
            Ok(*n.get_ref())
        }
        Some(n) => fail(
            n.span(),
            format!(
                "{key} {} is outside {MIN_CONN_TABLE_SIZE}..={MAX_CONN_TABLE_SIZE}",
                n.get_ref()
            ),
        ),
    };
    let conn_table_size = table_size(
        "conn_table_size",
        &d.conn_table_size,
        lb_common::DEFAULT_CONN_TABLE_SIZE,
    )?;
    let conn_table_size_v6 = table_size(
        "conn_table_size_v6",
        &d.conn_table_size_v6,
        (conn_table_size / 4).max(MIN_CONN_TABLE_SIZE),
    )?;
    let max_reals = match &d.max_reals {
        None => lb_common::MAX_REALS,
        Some(n) if (MIN_MAX_REALS..=MAX_MAX_REALS).contains(n.get_ref()) => *n.get_ref(),
        Some(n) => {
            return fail(
                n.span(),
                format!(
                    "max_reals {} is outside {MIN_MAX_REALS}..={MAX_MAX_REALS}",
                    n.get_ref()
                ),
            );
        }
    };
    let mtu = match &d.mtu {
        None => DEFAULT_MTU,
        Some(m) if *m.get_ref() == 0 || (576..=9216).contains(m.get_ref()) => *m.get_ref() as u16,
        Some(m) => {
            return fail(
                m.span(),
                format!("mtu {} is outside 576..=9216 (0 = no limit)", m.get_ref()),
            );
        }
    };
    let gue_port = match &d.gue_port {
        None => lb_common::config::DEFAULT_GUE_PORT,
        Some(p) if (1..=65535).contains(p.get_ref()) => *p.get_ref() as u16,
        Some(p) => {
            return fail(
                p.span(),
                format!("gue_port {} is outside 1..=65535", p.get_ref()),
            );
        }
    };
    let in_range = |v: &Option<Spanned<u32>>, name: &str, default: u8, lo: u32, hi: u32| match v {
        None => Ok(default),
        Some(n) if (lo..=hi).contains(n.get_ref()) => Ok(*n.get_ref() as u8),
        Some(n) => fail(
            n.span(),
            format!("{name} {} is outside {lo}..={hi}", n.get_ref()),
        ),
    };
    use lb_common::config::{DEFAULT_QUIC_CID_LEN, DEFAULT_QUIC_ID_LEN, DEFAULT_QUIC_ID_OFFSET};
    let quic_cid_len = in_range(&d.quic_cid_len, "quic_cid_len", DEFAULT_QUIC_CID_LEN, 1, 20)?;
    let quic_id_offset = in_range(
        &d.quic_server_id_offset,
        "quic_server_id_offset",
        DEFAULT_QUIC_ID_OFFSET,
        0,
        19,
    )?;
    let quic_id_len = in_range(
        &d.quic_server_id_len,
        "quic_server_id_len",
        DEFAULT_QUIC_ID_LEN,
        1,
        4,
    )?;
    if quic_id_offset + quic_id_len > quic_cid_len {
        let span = [
            &d.quic_server_id_len,
            &d.quic_server_id_offset,
            &d.quic_cid_len,
        ]
        .into_iter()
        .flatten()
        .map(Spanned::span)
        .max_by_key(|s| s.start)
        .expect("a default layout fits, so one of them was set");
        return fail(
            span,
            format!(
                "the QUIC server id (offset {quic_id_offset}, {quic_id_len} bytes) does not fit a connection id of {quic_cid_len} bytes"
            ),
        );
    }
    Ok(DataplaneSettings {
        source_v4,
        source_v6,
        source_v4_prefix,
        source_v6_prefix,
        next_hop,
        conn_table_size,
        conn_table_size_v6,
        max_reals,
        max_conn_rate: d
            .max_conn_rate
            .unwrap_or(lb_common::config::DEFAULT_MAX_CONN_RATE),
        mtu,
        gue_port,
        quic_cid_len,
        quic_id_offset,
        quic_id_len,
        icmp_echo: d.icmp_echo.unwrap_or(true),
        icmp_too_big: d.icmp_too_big.unwrap_or(true),
    })
}
