//! Raw configuration -> [`Settings`]: defaults filled in, every value
//! checked; the first mistake is returned with the span it was found at.
use std::{collections::BTreeSet, net::IpAddr, ops::Range, path::PathBuf, time::Duration};

use lb_common::{MAX_REALS, MAX_VIPS};
use toml::Spanned;

use super::{
    Check, CheckKind, DEFAULT_CHECK_FALL, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_RISE,
    DEFAULT_CHECK_TIMEOUT, DEFAULT_HTTP_PATH, DEFAULT_HTTP_STATUS, DEFAULT_MIN_HEALTHY,
    DEFAULT_MTU, DEFAULT_PIN_DIR, DEFAULT_SOCKET, DEFAULT_STATE_FILE, DEFAULT_UDP_PAYLOAD,
    DaemonSettings, DataplaneSettings, MAX_CHECK_INTERVAL, MAX_CONN_TABLE_SIZE, MIN_CHECK_INTERVAL,
    MIN_CONN_TABLE_SIZE, NextHop, RealConfig, Settings, VipConfig,
    raw::{RawBgp, RawConfig, RawDataplane, RawHealth, RawVip},
};
use crate::{
    bgp::{self, BgpSettings, Community, NeighborSettings, Prefix},
    iface::parse_mac,
    maglev::{self, RingSize},
    programs::AttachMode,
    reconcile::Proto,
};

/// A mistake and where.
pub type Fail = (Range<usize>, String);

fn fail<T>(span: Range<usize>, msg: impl Into<String>) -> Result<T, Fail> {
    Err((span, msg.into()))
}

fn spanned_u16(v: &Spanned<u32>, what: &str) -> Result<u16, Fail> {
    u16::try_from(*v.get_ref())
        .or_else(|_| fail(v.span(), format!("{what} {} is above 65535", v.get_ref())))
}

/// Parses `500ms`, `1s`, `2m` (integer and unit).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

fn duration(v: &Option<Spanned<String>>, default: Duration, what: &str) -> Result<Duration, Fail> {
    let Some(v) = v else { return Ok(default) };
    parse_duration(v.get_ref()).map_or_else(
        || {
            fail(
                v.span(),
                format!(
                    "{what} `{}` is not a duration like 500ms, 2s or 1m",
                    v.get_ref()
                ),
            )
        },
        Ok,
    )
}

/// `source_v4_prefix` / `source_v6_prefix`: a prefix of the family, long
/// enough that the per-flow part fits the data plane's 16 (IPv4) or 32
/// (IPv6) bits.
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

fn address(v: &Spanned<String>, what: &str) -> Result<IpAddr, Fail> {
    v.get_ref().parse().or_else(|_| {
        fail(
            v.span(),
            format!("{what} `{}` is not an IP address", v.get_ref()),
        )
    })
}

pub fn settings(raw: RawConfig) -> Result<Settings, Fail> {
    let daemon_span = raw.daemon.span();
    let d = raw.daemon.into_inner();
    if d.interface.get_ref().trim().is_empty() {
        return fail(d.interface.span(), "interface is empty");
    }
    let mode = match d
        .xdp_mode
        .as_ref()
        .map(|m| (m.get_ref().as_str(), m.span()))
    {
        None | Some(("native", _)) => AttachMode::Native,
        Some(("generic", _)) => AttachMode::Generic,
        Some(("auto", _)) => AttachMode::Auto,
        Some((other, span)) => {
            return fail(
                span,
                format!("xdp_mode `{other}`: use native, generic or auto"),
            );
        }
    };
    let _ = daemon_span;
    let daemon = DaemonSettings {
        interface: d.interface.into_inner(),
        mode,
        pin_dir: d.pin_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_PIN_DIR)),
        socket: d.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        metrics: match &d.metrics {
            None => None,
            Some(m) => Some(m.get_ref().parse().or_else(|_| {
                fail(
                    m.span(),
                    format!(
                        "metrics `{}` is not an address:port like 127.0.0.1:9180",
                        m.get_ref()
                    ),
                )
            })?),
        },
        state_file: d
            .state_file
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE)),
    };
    let dataplane = dataplane(raw.dataplane.map(Spanned::into_inner).unwrap_or_default())?;
    let bgp = match raw.bgp {
        None => None,
        Some(b) => Some(bgp_settings(b.into_inner(), &dataplane)?),
    };
    let mut vips = Vec::with_capacity(raw.vips.len());
    let mut seen = BTreeSet::new();
    let mut reals_total = 0usize;
    for v in raw.vips {
        let span = v.span();
        let address_span = v.get_ref().address.span();
        let vip = vip(v.into_inner(), &dataplane)?;
        if let Some(b) = &bgp
            && !b.may_announce(vip.address)
        {
            return fail(
                address_span,
                format!(
                    "VIP {} is outside [bgp] anycast_prefixes: it would never be announced (the hijack guard refuses it)",
                    vip.address
                ),
            );
        }
        if !seen.insert(vip.id()) {
            return fail(span, format!("VIP {} is configured twice", vip.id()));
        }
        reals_total += vip.reals.len();
        if vips.len() == MAX_VIPS as usize {
            return fail(span, format!("more than {MAX_VIPS} VIPs"));
        }
        if reals_total >= MAX_REALS as usize {
            return fail(span, format!("more than {} reals in all", MAX_REALS - 1));
        }
        vips.push(vip);
    }
    Ok(Settings {
        daemon,
        dataplane,
        bgp,
        vips,
    })
}

fn dataplane(d: RawDataplane) -> Result<DataplaneSettings, Fail> {
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
    let conn_table_size = match &d.conn_table_size {
        None => lb_common::DEFAULT_CONN_TABLE_SIZE,
        Some(n) if (MIN_CONN_TABLE_SIZE..=MAX_CONN_TABLE_SIZE).contains(n.get_ref()) => {
            *n.get_ref()
        }
        Some(n) => {
            return fail(
                n.span(),
                format!(
                    "conn_table_size {} is outside {MIN_CONN_TABLE_SIZE}..={MAX_CONN_TABLE_SIZE}",
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
    Ok(DataplaneSettings {
        source_v4,
        source_v6,
        source_v4_prefix,
        source_v6_prefix,
        next_hop,
        conn_table_size,
        max_conn_rate: d
            .max_conn_rate
            .unwrap_or(lb_common::config::DEFAULT_MAX_CONN_RATE),
        mtu,
        icmp_echo: d.icmp_echo.unwrap_or(true),
        icmp_too_big: d.icmp_too_big.unwrap_or(true),
    })
}

fn vip(v: RawVip, dp: &DataplaneSettings) -> Result<VipConfig, Fail> {
    let addr = address(&v.address, "VIP address")?;
    let port = match &v.port {
        None => 0,
        Some(p) => spanned_u16(p, "port")?,
    };
    let protocol = match v.protocol.get_ref().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => {
            return fail(
                v.protocol.span(),
                format!("protocol `{other}`: use tcp or udp"),
            );
        }
    };
    let ring_size = match &v.ring_size {
        None => maglev::DEFAULT_RING_SIZE,
        Some(r) => RingSize::new(*r.get_ref())
            .map_err(|e| (r.span(), e.to_string()))?
            .get(),
    };
    let health = match &v.health {
        None => Check::none(),
        Some(h) => check(h, port)?,
    };
    let min_healthy = match &v.min_healthy {
        None => DEFAULT_MIN_HEALTHY,
        Some(m) if *m.get_ref() >= 1 => *m.get_ref(),
        Some(m) => return fail(m.span(), "min_healthy must be at least 1"),
    };
    let communities = v.communities.as_deref().map(communities).transpose()?;
    let mut reals = Vec::with_capacity(v.reals.len());
    let mut seen = BTreeSet::new();
    for r in &v.reals {
        let real = r.get_ref();
        let address = self::address(&real.address, "real address")?;
        if !seen.insert(address) {
            return fail(
                real.address.span(),
                format!("real {address} is listed twice in this VIP"),
            );
        }
        if addr.is_ipv6() && address.is_ipv4() {
            return fail(
                real.address.span(),
                format!(
                    "real {address} is IPv4 but the VIP {addr} is IPv6 (IPv6-in-IPv4 is not supported)"
                ),
            );
        }
        if address.is_ipv4() && dp.source_v4.is_none() {
            return fail(
                real.address.span(),
                format!("real {address} is IPv4 but [dataplane] has no source_v4"),
            );
        }
        if address.is_ipv6() && dp.source_v6.is_none() {
            return fail(
                real.address.span(),
                format!("real {address} is IPv6 but [dataplane] has no source_v6"),
            );
        }
        let weight = match &real.weight {
            None => 1,
            Some(w) if *w.get_ref() <= maglev::MAX_WEIGHT => *w.get_ref(),
            Some(w) => {
                return fail(
                    w.span(),
                    format!("weight {} is above {}", w.get_ref(), maglev::MAX_WEIGHT),
                );
            }
        };
        let health = match &real.health {
            None => None,
            Some(h) => Some(check(h, port)?),
        };
        reals.push(RealConfig {
            address,
            weight,
            health,
        });
    }
    Ok(VipConfig {
        address: addr,
        port,
        protocol,
        ring_size,
        no_conn_table: v.no_conn_table.unwrap_or(false),
        health,
        min_healthy,
        communities,
        med: v.med,
        reals,
    })
}

fn communities(c: &[Spanned<String>]) -> Result<Vec<Community>, Fail> {
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

fn bgp_settings(b: RawBgp, dp: &DataplaneSettings) -> Result<BgpSettings, Fail> {
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

fn check(h: &Spanned<RawHealth>, vip_port: u16) -> Result<Check, Fail> {
    let span = h.span();
    let h = h.get_ref();
    let port = match &h.port {
        None => None,
        Some(p) => Some(spanned_u16(p, "health port")?),
    };
    let kind = match h.kind.get_ref().as_str() {
        "none" => CheckKind::None,
        "tcp" => CheckKind::Tcp,
        "http" => CheckKind::Http {
            path: h
                .path
                .as_ref()
                .map_or_else(|| DEFAULT_HTTP_PATH.to_owned(), |p| p.get_ref().clone()),
            expect_status: match &h.expect_status {
                None => DEFAULT_HTTP_STATUS,
                Some(s) if (100..=599).contains(s.get_ref()) => *s.get_ref() as u16,
                Some(s) => {
                    return fail(
                        s.span(),
                        format!("expect_status {} is not an HTTP status", s.get_ref()),
                    );
                }
            },
        },
        "udp" => CheckKind::Udp {
            payload: h
                .payload
                .clone()
                .unwrap_or_else(|| DEFAULT_UDP_PAYLOAD.to_owned()),
        },
        "exec" => match &h.command {
            Some(c) if !c.get_ref().trim().is_empty() => CheckKind::Exec {
                command: c.get_ref().clone(),
            },
            Some(c) => return fail(c.span(), "command is empty"),
            None => return fail(h.kind.span(), "an exec check needs a command"),
        },
        other => {
            return fail(
                h.kind.span(),
                format!("health kind `{other}`: use none, tcp, http, udp or exec"),
            );
        }
    };
    if let Some(p) = &h.path
        && !matches!(kind, CheckKind::Http { .. })
    {
        return fail(p.span(), "path is only for http checks");
    }
    if matches!(kind, CheckKind::Http { .. })
        && let Some(p) = &h.path
        && !p.get_ref().starts_with('/')
    {
        return fail(
            p.span(),
            format!("path `{}` must start with /", p.get_ref()),
        );
    }
    let needs_port = matches!(
        kind,
        CheckKind::Tcp | CheckKind::Http { .. } | CheckKind::Udp { .. }
    );
    if needs_port && port.is_none() && vip_port == 0 {
        return fail(
            span,
            "the VIP has no port (every port): give the check a port",
        );
    }
    let interval = duration(&h.interval, DEFAULT_CHECK_INTERVAL, "interval")?;
    if !(MIN_CHECK_INTERVAL..=MAX_CHECK_INTERVAL).contains(&interval) {
        let span = h.interval.as_ref().map_or(span.clone(), Spanned::span);
        return fail(
            span,
            format!(
                "interval {interval:?} is outside {MIN_CHECK_INTERVAL:?}..={MAX_CHECK_INTERVAL:?}"
            ),
        );
    }
    let timeout = duration(&h.timeout, DEFAULT_CHECK_TIMEOUT.min(interval), "timeout")?;
    if timeout.is_zero() || timeout > interval {
        let span = h.timeout.as_ref().map_or(span.clone(), Spanned::span);
        return fail(
            span,
            format!("timeout {timeout:?} must be above zero and at most the interval {interval:?}"),
        );
    }
    let count = |v: &Option<Spanned<u32>>, default: u32, what: &str| -> Result<u32, Fail> {
        match v {
            None => Ok(default),
            Some(n) if (1..=100).contains(n.get_ref()) => Ok(*n.get_ref()),
            Some(n) => fail(
                n.span(),
                format!("{what} {} is outside 1..=100", n.get_ref()),
            ),
        }
    };
    Ok(Check {
        kind,
        port,
        interval,
        timeout,
        rise: count(&h.rise, DEFAULT_CHECK_RISE, "rise")?,
        fall: count(&h.fall, DEFAULT_CHECK_FALL, "fall")?,
    })
}

/// Checks VIPs that did not come from a file (the control API, the state
/// file) against the same rules; the message names the VIP.
pub fn validate_vips(
    vips: &[VipConfig],
    dp: &DataplaneSettings,
    bgp: Option<&BgpSettings>,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let mut reals_total = 0;
    for v in vips {
        let id = v.id();
        if !seen.insert(id) {
            return Err(format!("VIP {id} is configured twice"));
        }
        if let Some(b) = bgp
            && !b.may_announce(v.address)
        {
            return Err(format!(
                "VIP {id} is outside [bgp] anycast_prefixes: it would never be announced (the hijack guard refuses it)"
            ));
        }
        if v.min_healthy == 0 {
            return Err(format!("VIP {id}: min_healthy must be at least 1"));
        }
        RingSize::new(v.ring_size).map_err(|e| format!("VIP {id}: {e}"))?;
        let mut reals = BTreeSet::new();
        for r in &v.reals {
            if !reals.insert(r.address) {
                return Err(format!("VIP {id}: real {} is listed twice", r.address));
            }
            if v.address.is_ipv6() && r.address.is_ipv4() {
                return Err(format!(
                    "VIP {id}: real {} is IPv4 but the VIP is IPv6",
                    r.address
                ));
            }
            if r.address.is_ipv4() && dp.source_v4.is_none() {
                return Err(format!(
                    "VIP {id}: real {} is IPv4 but the daemon has no source_v4",
                    r.address
                ));
            }
            if r.address.is_ipv6() && dp.source_v6.is_none() {
                return Err(format!(
                    "VIP {id}: real {} is IPv6 but the daemon has no source_v6",
                    r.address
                ));
            }
            if r.weight > maglev::MAX_WEIGHT {
                return Err(format!(
                    "VIP {id}: weight {} of {} is above {}",
                    r.weight,
                    r.address,
                    maglev::MAX_WEIGHT
                ));
            }
            for c in [Some(&v.health), r.health.as_ref()].into_iter().flatten() {
                let needs_port = matches!(
                    c.kind,
                    CheckKind::Tcp | CheckKind::Http { .. } | CheckKind::Udp { .. }
                );
                if needs_port && c.port.is_none() && v.port == 0 {
                    return Err(format!("VIP {id} has no port: its check needs one"));
                }
                if c.interval < MIN_CHECK_INTERVAL
                    || c.timeout.is_zero()
                    || c.timeout > c.interval
                    || c.rise == 0
                    || c.fall == 0
                {
                    return Err(format!("VIP {id}: check `{c}` is out of bounds"));
                }
            }
        }
        reals_total += v.reals.len();
    }
    if vips.len() > MAX_VIPS as usize {
        return Err(format!("more than {MAX_VIPS} VIPs"));
    }
    if reals_total >= MAX_REALS as usize {
        return Err(format!("more than {} reals in all", MAX_REALS - 1));
    }
    Ok(())
}
