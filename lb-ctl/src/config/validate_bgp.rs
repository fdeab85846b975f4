//! The `[bgp]` section: raw -> [`BgpSettings`], with the span of the first
//! mistake (the sessions, timers, communities and the hijack guard's
//! prefixes).
use std::net::IpAddr;

use toml::Spanned;

use super::{
    DataplaneSettings,
    raw::RawBgp,
    validate::{Fail, address, duration, fail},
};
use crate::bgp::{self, BgpSettings, Community, NeighborSettings, Prefix};

pub(super) fn communities(c: &[Spanned<String>]) -> Result<Vec<Community>, Fail> {
    c.iter()
        .map(|s| s.get_ref().parse().map_err(|e: String| (s.span(), e)))
        .collect()
}

fn asn(v: &Spanned<u64>) -> Result<u32, Fail> {
    match u32::try_from(*v.get_ref()) {
        Ok(a) if a != 0 => Ok(a),
        _ => fail(
            v.span(),
            format!("ASN {} is outside 1..=4294967295", v.get_ref()),
        ),
    }
}

pub(super) fn bgp_settings(b: RawBgp, dp: &DataplaneSettings) -> Result<BgpSettings, Fail> {
    let router_id = match address(&b.router_id, "router_id")? {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => return fail(b.router_id.span(), "router_id must be an IPv4 address"),
    };
    if b.anycast_prefixes.get_ref().is_empty() {
        return fail(
            b.anycast_prefixes.span(),
            "anycast_prefixes is empty: nothing could be announced",
        );
    }
    let anycast_prefixes = b
        .anycast_prefixes
        .get_ref()
        .iter()
        .map(|p| p.get_ref().parse::<Prefix>().map_err(|e| (p.span(), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let api = match &b.api {
        None => bgp::DEFAULT_GOBGP_API.parse().expect("default address"),
        Some(a) => a.get_ref().parse().or_else(|_| {
            fail(
                a.span(),
                format!("api `{}` is not an address:port", a.get_ref()),
            )
        })?,
    };
    let listen_port = match &b.listen_port {
        None => bgp::DEFAULT_LISTEN_PORT,
        Some(p) if (-1..=65535).contains(p.get_ref()) => *p.get_ref() as i32,
        Some(p) => {
            return fail(
                p.span(),
                format!(
                    "listen_port {} is outside -1..=65535 (-1: do not listen)",
                    p.get_ref()
                ),
            );
        }
    };
    let next_hop_v4 = match &b.next_hop_v4 {
        None => dp.source_v4,
        Some(s) => match address(s, "next_hop_v4")? {
            IpAddr::V4(a) => Some(a),
            IpAddr::V6(_) => return fail(s.span(), "next_hop_v4 must be an IPv4 address"),
        },
    };
    let next_hop_v6 = match &b.next_hop_v6 {
        None => dp.source_v6,
        Some(s) => match address(s, "next_hop_v6")? {
            IpAddr::V6(a) => Some(a),
            IpAddr::V4(_) => return fail(s.span(), "next_hop_v6 must be an IPv6 address"),
        },
    };
    let mut neighbors = Vec::with_capacity(b.neighbors.len());
    for n in &b.neighbors {
        let n = n.get_ref();
        let keepalive = duration(&n.keepalive, bgp::DEFAULT_KEEPALIVE, "keepalive")?;
        let hold = duration(&n.hold, bgp::DEFAULT_HOLD, "hold")?;
        let span = n.hold.as_ref().map_or(n.address.span(), Spanned::span);
        if hold.as_secs() < 3 || hold.subsec_nanos() != 0 || keepalive.subsec_nanos() != 0 {
            return fail(
                span,
                "hold must be whole seconds, at least 3 s (BGP's minimum); keepalive whole seconds",
            );
        }
        if keepalive.is_zero() || keepalive * 3 > hold {
            return fail(
                span,
                format!(
                    "keepalive {keepalive:?} must be above zero and at most a third of hold {hold:?}"
                ),
            );
        }
        neighbors.push(NeighborSettings {
            address: address(&n.address, "neighbor address")?,
            asn: asn(&n.asn)?,
            keepalive,
            hold,
        });
    }
    Ok(BgpSettings {
        asn: asn(&b.asn)?,
        router_id,
        anycast_prefixes,
        gobgpd: b.gobgpd.unwrap_or_else(|| bgp::DEFAULT_GOBGPD.into()),
        api,
        manage: b.manage.unwrap_or(true),
        listen_port,
        hold_down: duration(&b.hold_down, bgp::DEFAULT_HOLD_DOWN, "hold_down")?,
        next_hop_v4,
        next_hop_v6,
        communities: b
            .communities
            .as_deref()
            .map(communities)
            .transpose()?
            .unwrap_or_default(),
        med: b.med.unwrap_or(0),
        neighbors,
    })
}
