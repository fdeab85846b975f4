//! The one set of rules a VIP set must follow, wherever it comes from: the
//! configuration file, the control API (and so the CLI), the state file.
//! Every entry point only parses its input and fills in defaults, then
//! calls [`check_vip_set`]; so they all accept exactly the same VIP sets.
//!
//! A [`RuleError`] says which VIP, real and field it is about ([`Where`]):
//! the file maps that to `file:line:column`, the API and the state file
//! print the message, which names the VIP and the real.
use std::{collections::BTreeSet, fmt, net::IpAddr};

use lb_common::MAX_VIPS;

use super::{
    Check, CheckKind, DataplaneSettings, MAX_CHECK_INTERVAL, MIN_CHECK_INTERVAL, VipConfig,
};
use crate::{bgp::BgpSettings, maglev};

/// Which part of a VIP (or of one of its reals) a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The VIP (or real) as a whole.
    Whole,
    Address,
    RingSize,
    MinHealthy,
    Weight,
    /// The health check as a whole, and its fields.
    Health,
    HealthPort,
    HealthPath,
    HealthStatus,
    HealthCommand,
    HealthInterval,
    HealthTimeout,
    HealthRise,
    HealthFall,
}

/// Where in a VIP set: the VIP's index, the real's index (none: the VIP
/// itself, or its check), and the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Where {
    pub vip: usize,
    pub real: Option<usize>,
    pub field: Field,
}

/// A broken rule: where, and what is wrong (with the VIP and real named).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub at: Where,
    pub message: String,
}

/// Why an address can be neither a VIP nor a real, if it cannot.
pub fn unusable_address(a: IpAddr) -> Option<&'static str> {
    match a {
        IpAddr::V4(v) if v.is_unspecified() => Some("unspecified"),
        IpAddr::V4(v) if v.is_loopback() => Some("a loopback address"),
        IpAddr::V4(v) if v.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v) if v.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v) if v.octets()[0] == 0 => Some("in 0.0.0.0/8 (this network)"),
        IpAddr::V4(v) if v.octets()[0] >= 240 => Some("reserved (240.0.0.0/4)"),
        IpAddr::V4(v) if v.is_link_local() => Some("link-local"),
        IpAddr::V6(v) if v.is_unspecified() => Some("unspecified"),
        IpAddr::V6(v) if v.is_loopback() => Some("a loopback address"),
        IpAddr::V6(v) if v.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v) if v.segments()[0] & 0xffc0 == 0xfe80 => Some("link-local"),
        IpAddr::V6(v) if v.to_ipv4_mapped().is_some() => {
            Some("IPv4-mapped (write the IPv4 address)")
        }
        _ => None,
    }
}

struct Checker<'a> {
    vip: usize,
    real: Option<usize>,
    about: &'a str,
}

impl Checker<'_> {
    fn fail(&self, field: Field, what: impl fmt::Display) -> RuleError {
        RuleError {
            at: Where {
                vip: self.vip,
                real: self.real,
                field,
            },
            message: format!("{}{what}", self.about),
        }
    }

    /// The rules of one health check; `vip_port` 0 = a port-less VIP.
    fn check(&self, c: &Check, vip_port: u16) -> Result<(), RuleError> {
        if c.port == Some(0) {
            return Err(self.fail(Field::HealthPort, "health port 0 is not a port"));
        }
        match &c.kind {
            CheckKind::Http {
                path,
                expect_status,
            } => {
                if !path.starts_with('/') {
                    return Err(self.fail(
                        Field::HealthPath,
                        format!("path `{path}` must start with /"),
                    ));
                }
                if path.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                    return Err(self.fail(
                        Field::HealthPath,
                        format!(
                            "path `{}` has spaces or control characters",
                            path.escape_debug()
                        ),
                    ));
                }
                if !(100..=599).contains(expect_status) {
                    return Err(self.fail(
                        Field::HealthStatus,
                        format!("expect_status {expect_status} is not an HTTP status"),
                    ));
                }
            }
            CheckKind::Exec { command } if command.trim().is_empty() => {
                return Err(self.fail(Field::HealthCommand, "an exec check needs a command"));
            }
            _ => {}
        }
        let needs_port = matches!(
            c.kind,
            CheckKind::Tcp | CheckKind::Http { .. } | CheckKind::Udp { .. }
        );
        if needs_port && c.port.is_none() && vip_port == 0 {
            return Err(self.fail(
                Field::Health,
                "the VIP has no port (every port): give the check a port",
            ));
        }
        if c.kind == CheckKind::None {
            return Ok(());
        }
        if !(MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&c.interval) {
            return Err(self.fail(
                Field::HealthInterval,
                format!(
                    "interval {:?} is outside {MIN_CHECK_INTERVAL:?}..={MAX_CHECK_INTERVAL:?}",
                    c.interval
                ),
            ));
        }
        if c.timeout.is_zero() || c.timeout > c.interval {
            return Err(self.fail(
                Field::HealthTimeout,
                format!(
                    "timeout {:?} must be above zero and at most the interval {:?}",
                    c.timeout, c.interval
                ),
            ));
        }
        for (n, what, field) in [
            (c.rise, "rise", Field::HealthRise),
            (c.fall, "fall", Field::HealthFall),
        ] {
            if !(1..=100).contains(&n) {
                return Err(self.fail(field, format!("{what} {n} is outside 1..=100")));
            }
        }
        Ok(())
    }
}

/// Checks a whole VIP set against every rule; the first broken one is
/// returned.
pub fn check_vip_set(
    vips: &[VipConfig],
    dp: &DataplaneSettings,
    bgp: Option<&BgpSettings>,
) -> Result<(), RuleError> {
    let vip_addrs: BTreeSet<IpAddr> = vips.iter().map(|v| v.address).collect();
    let mut seen = BTreeSet::new();
    let mut reals_total = 0usize;
    for (i, v) in vips.iter().enumerate() {
        let id = v.id();
        let about = format!("VIP {id}: ");
        let c = Checker {
            vip: i,
            real: None,
            about: &about,
        };
        if !seen.insert(id) {
            return Err(c.fail(Field::Whole, "is configured twice"));
        }
        if i >= MAX_VIPS as usize {
            return Err(c.fail(Field::Whole, format!("more than {MAX_VIPS} VIPs")));
        }
        if let Some(why) = unusable_address(v.address) {
            return Err(c.fail(
                Field::Address,
                format!("{} is {why}: no client can be sent to it", v.address),
            ));
        }
        if let Some(b) = bgp
            && !b.may_announce(v.address)
        {
            return Err(c.fail(
                Field::Address,
                "is outside [bgp] anycast_prefixes: it would never be announced (the hijack guard refuses it)",
            ));
        }
        maglev::RingSize::new(v.ring_size).map_err(|e| c.fail(Field::RingSize, e))?;
        if v.min_healthy == 0 {
            return Err(c.fail(Field::MinHealthy, "min_healthy must be at least 1"));
        }
        if v.quic {
            if v.protocol != crate::vocab::Proto::Udp {
                return Err(c.fail(Field::Whole, "quic = true is for UDP VIPs"));
            }
            // Real ids go up to max_reals - 1; each must fit the id bytes.
            let fits = 1u64 << (8 * u32::from(dp.quic_id_len));
            if u64::from(dp.max_reals) > fits {
                return Err(c.fail(
                    Field::Whole,
                    format!(
                        "quic = true, but real ids go up to {} ([dataplane] max_reals) and quic_server_id_len = {} holds {}: raise it or lower max_reals",
                        dp.max_reals - 1,
                        dp.quic_id_len,
                        fits - 1
                    ),
                ));
            }
        }
        c.check(&v.health, v.port)?;
        let mut reals = BTreeSet::new();
        for (j, r) in v.reals.iter().enumerate() {
            let about = format!("VIP {id}: real {}: ", r.address);
            let c = Checker {
                vip: i,
                real: Some(j),
                about: &about,
            };
            if !reals.insert(r.address) {
                return Err(c.fail(Field::Address, "is listed twice in this VIP"));
            }
            if let Some(why) = unusable_address(r.address) {
                return Err(c.fail(Field::Address, format!("the address is {why}")));
            }
            if vip_addrs.contains(&r.address) {
                return Err(c.fail(
                    Field::Address,
                    "is a VIP address: packets would loop through the balancer",
                ));
            }
            if r.address.is_ipv4() && dp.source_v4.is_none() {
                return Err(c.fail(Field::Address, "is IPv4 but [dataplane] has no source_v4"));
            }
            if r.address.is_ipv6() && dp.source_v6.is_none() {
                return Err(c.fail(Field::Address, "is IPv6 but [dataplane] has no source_v6"));
            }
            if r.weight > maglev::MAX_WEIGHT {
                return Err(c.fail(
                    Field::Weight,
                    format!("weight {} is above {}", r.weight, maglev::MAX_WEIGHT),
                ));
            }
            if let Some(h) = &r.health {
                c.check(h, v.port)?;
            }
        }
        reals_total += v.reals.len();
        if reals_total >= dp.max_reals as usize {
            return Err(c.fail(
                Field::Whole,
                format!(
                    "more than {} reals in all (raise [dataplane] max_reals)",
                    dp.max_reals - 1
                ),
            ));
        }
    }
    Ok(())
}
