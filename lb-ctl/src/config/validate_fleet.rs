//! The `[fleet]` section (raw -> [`FleetSettings`]) and the fleet file
//! that `lb-ctl fleet apply` writes to the store (raw -> [`FleetFile`]),
//! each with the span of the first mistake.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::PathBuf,
    time::Duration,
};

use toml::Spanned;

use super::{
    DataplaneSettings, FleetFile, FleetSettings, NextHop, VipConfig,
    raw::{RawFleet, RawFleetFile},
    validate::{Fail, duration, fail, vip_set},
};
use crate::vocab::VipId;

/// The store's key prefix unless configured otherwise.
pub const DEFAULT_FLEET_PREFIX: &str = "/lb/v1/";
/// Where a fleet host keeps its last known good state.
pub const DEFAULT_FLEET_LKG: &str = "/var/lib/lb/fleet-lkg.json";
/// How long connecting to the store may take before a retry.
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Fleet health older than this is stale unless configured otherwise.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(10);
/// A checker finding more than half of all reals down is not believed.
pub const DEFAULT_MAX_DOWN_PERMILLE: u32 = 500;

/// Whether `id` can name a host in the store's keys.
pub fn valid_host_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("host id `{id}` must be 1 to 64 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "host id `{id}` may hold only letters, digits, `.`, `_` and `-` (it is part of the store's keys)"
        ));
    }
    Ok(())
}

/// An endpoint as written (`HOST:PORT` or `http://HOST:PORT`) as etcd's
/// client takes it: `http://HOST:PORT`.
pub fn endpoint_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.starts_with("https://") {
        return Err(format!(
            "endpoint `{text}`: TLS is not built into lb-ctl; use http:// on a trusted network (or a local TLS proxy)"
        ));
    }
    let host_port = text.strip_prefix("http://").unwrap_or(text);
    let port_ok = host_port
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || host_port.contains('/') || host_port.contains(char::is_whitespace) {
        return Err(format!(
            "endpoint `{text}` is not HOST:PORT (e.g. 192.0.2.50:2379 or http://[2001:db8::50]:2379)"
        ));
    }
    Ok(format!("http://{host_port}"))
}

/// Whether `prefix` can start every key of a fleet.
pub fn valid_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/')
        || !prefix.ends_with('/')
        || prefix.len() > 128
        || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "prefix `{prefix}` must start and end with `/` (e.g. /lb/v1/), without spaces, at most 128 bytes"
        ));
    }
    Ok(())
}

/// This machine's host name (the default host id).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn fleet_settings(raw: &Spanned<RawFleet>) -> Result<FleetSettings, Fail> {
    let f = raw.get_ref();
    if f.endpoints.get_ref().is_empty() {
        return fail(
            f.endpoints.span(),
            "endpoints is empty: name the etcd members",
        );
    }
    let endpoints = f
        .endpoints
        .get_ref()
        .iter()
        .map(|e| endpoint_url(e.get_ref()).or_else(|why| fail(e.span(), why)))
        .collect::<Result<Vec<_>, _>>()?;
    let prefix = match &f.prefix {
        None => DEFAULT_FLEET_PREFIX.to_owned(),
        Some(p) => {
            valid_prefix(p.get_ref()).or_else(|why| fail(p.span(), why))?;
            p.get_ref().clone()
        }
    };
    let host = match &f.host {
        Some(h) => {
            valid_host_id(h.get_ref()).or_else(|why| fail(h.span(), why))?;
            h.get_ref().clone()
        }
        None => {
            let h = hostname();
            valid_host_id(&h).or_else(|why| {
                fail(
                    raw.span(),
                    format!("no `host` given and this machine's name does not serve: {why}"),
                )
            })?;
            h
        }
    };
    let lkg = match &f.lkg {
        None => PathBuf::from(DEFAULT_FLEET_LKG),
        Some(p) if p.get_ref().as_os_str().is_empty() => return fail(p.span(), "lkg is empty"),
        Some(p) => p.get_ref().clone(),
    };
    let dial_timeout = duration(&f.dial_timeout, DEFAULT_DIAL_TIMEOUT, "dial_timeout")?;
    if dial_timeout.is_zero() {
        let span = f.dial_timeout.as_ref().map_or(raw.span(), Spanned::span);
        return fail(span, "dial_timeout must be above 0");
    }
    let stale_after = duration(&f.stale_after, DEFAULT_STALE_AFTER, "stale_after")?;
    if let Some(v) = &f.stale_after
        && stale_after < Duration::from_secs(1)
    {
        return fail(
            v.span(),
            "stale_after must be 1s or more (the checker writes a heartbeat every second)",
        );
    }
    let max_down_permille = match &f.max_down_share {
        None => DEFAULT_MAX_DOWN_PERMILLE,
        Some(v) => {
            let share = *v.get_ref();
            if !(share > 0.0 && share <= 1.0) {
                return fail(
                    v.span(),
                    format!(
                        "max_down_share {share} must be above 0 and at most 1 (0.5 = half of all reals)"
                    ),
                );
            }
            (share * 1000.0).round() as u32
        }
    };
    Ok(FleetSettings {
        endpoints,
        prefix,
        host,
        lkg,
        dial_timeout,
        stale_after,
        max_down_permille,
    })
}

/// The host-independent view a fleet file is checked with: both address
/// families have a source (each host checks its own sources when it
/// applies a revision) and there is no BGP section.
fn any_host() -> DataplaneSettings {
    DataplaneSettings {
        source_v4: Some(Ipv4Addr::UNSPECIFIED),
        source_v6: Some(std::net::Ipv6Addr::UNSPECIFIED),
        source_v4_prefix: None,
        source_v6_prefix: None,
        next_hop: NextHop::Reflect,
        conn_table_size: super::MIN_CONN_TABLE_SIZE,
        conn_table_size_v6: super::MIN_CONN_TABLE_SIZE,
        // Each host checks its own table's size when it applies a revision.
        max_reals: super::MAX_MAX_REALS,
        max_conn_rate: 0,
        mtu: super::DEFAULT_MTU,
        gue_port: lb_common::config::DEFAULT_GUE_PORT,
        // Each host checks its own id length against its real table.
        quic_cid_len: 20,
        quic_id_offset: 0,
        quic_id_len: 4,
        icmp_echo: false,
        icmp_too_big: false,
    }
}

/// The rules a fleet's VIP set must keep whatever host serves it (the
/// rules of a fleet file's `[[vip]]` tables), for edits made to the store.
pub fn validate_fleet_vips(vips: &[VipConfig]) -> Result<(), String> {
    super::rules::check_vip_set(vips, &any_host(), None).map_err(|e| e.message)
}

pub(super) fn fleet_file(raw: RawFleetFile) -> Result<FleetFile, Fail> {
    let vips = vip_set(&raw.vips, &any_host(), None)?;
    let known: BTreeSet<VipId> = vips.iter().map(|v| v.id()).collect();
    let mut hosts = BTreeMap::new();
    for h in &raw.hosts {
        let id = h.get_ref().id.get_ref();
        valid_host_id(id).or_else(|why| fail(h.get_ref().id.span(), why))?;
        let mut served = BTreeSet::new();
        for v in h.get_ref().vips.get_ref() {
            let vip: VipId = v
                .get_ref()
                .parse()
                .or_else(|e: crate::vocab::VipIdError| fail(v.span(), e.0))?;
            if !known.contains(&vip) {
                return fail(
                    v.span(),
                    format!("host {id}: VIP {vip} is not in this file"),
                );
            }
            if !served.insert(vip) {
                return fail(v.span(), format!("host {id}: VIP {vip} is listed twice"));
            }
        }
        if hosts.insert(id.clone(), served).is_some() {
            return fail(h.get_ref().id.span(), format!("host {id} is listed twice"));
        }
    }
    Ok(FleetFile { vips, hosts })
}
