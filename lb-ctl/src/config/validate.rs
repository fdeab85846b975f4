//! Raw configuration -> [`Settings`]: defaults filled in, every value
//! checked; the first mistake is returned with the span it was found at.
use std::{net::IpAddr, ops::Range, path::PathBuf, time::Duration};

use toml::Spanned;

use super::{
    Check, CheckKind, DEFAULT_CHECK_FALL, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_RISE,
    DEFAULT_CHECK_TIMEOUT, DEFAULT_HTTP_PATH, DEFAULT_HTTP_STATUS, DEFAULT_MIN_HEALTHY,
    DEFAULT_MTU, DEFAULT_PIN_DIR, DEFAULT_SOCKET, DEFAULT_STATE_FILE, DEFAULT_UDP_PAYLOAD,
    DaemonSettings, DataplaneSettings, MAX_CONN_TABLE_SIZE, MIN_CONN_TABLE_SIZE, NextHop,
    RealConfig, Settings, VipConfig,
    raw::{RawBgp, RawConfig, RawDataplane, RawHealth, RawVip},
    rules::{self, Field, Where},
};
use crate::{
    bgp::{self, BgpSettings, Community, NeighborSettings, Prefix},
    iface::parse_mac,
    maglev,
    programs::AttachMode,
    vocab::Proto,
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
    // An empty path is no place: the daemon would bind, pin or write
    // where nobody looks (a reload would switch the attachment to it).
    for (path, what) in [
        (&d.pin_dir, "pin_dir"),
        (&d.socket, "socket"),
        (&d.state_file, "state_file"),
    ] {
        if let Some(p) = path
            && p.get_ref().as_os_str().is_empty()
        {
            return fail(p.span(), format!("{what} is empty"));
        }
    }
    let daemon = DaemonSettings {
        interface: d.interface.into_inner(),
        mode,
        pin_dir: d
            .pin_dir
            .map_or_else(|| PathBuf::from(DEFAULT_PIN_DIR), Spanned::into_inner),
        socket: d
            .socket
            .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), Spanned::into_inner),
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
            .map_or_else(|| PathBuf::from(DEFAULT_STATE_FILE), Spanned::into_inner),
    };
    let dataplane = dataplane(raw.dataplane.map(Spanned::into_inner).unwrap_or_default())?;
    let bgp = match raw.bgp {
        None => None,
        Some(b) => Some(bgp_settings(b.into_inner(), &dataplane)?),
    };
    let mut vips = Vec::with_capacity(raw.vips.len());
    let mut spans = Vec::with_capacity(raw.vips.len());
    for v in &raw.vips {
        let (vip, at) = vip(v)?;
        vips.push(vip);
        spans.push(at);
    }
    rules::check_vip_set(&vips, &dataplane, bgp.as_ref()).map_err(|e| {
        let span = spans
            .get(e.at.vip)
            .map_or(0..0, |s: &VipSpans| s.get(&e.at));
        (span, e.message)
    })?;
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

/// Where each part of a VIP was written, to place a broken rule.
struct VipSpans {
    table: Range<usize>,
    address: Range<usize>,
    ring_size: Option<Range<usize>>,
    min_healthy: Option<Range<usize>>,
    health: Option<CheckSpans>,
    reals: Vec<RealSpans>,
}

struct RealSpans {
    table: Range<usize>,
    address: Range<usize>,
    weight: Option<Range<usize>>,
    health: Option<CheckSpans>,
}

struct CheckSpans {
    table: Range<usize>,
    port: Option<Range<usize>>,
    path: Option<Range<usize>>,
    status: Option<Range<usize>>,
    command: Option<Range<usize>>,
    interval: Option<Range<usize>>,
    timeout: Option<Range<usize>>,
    rise: Option<Range<usize>>,
    fall: Option<Range<usize>>,
}

impl CheckSpans {
    fn of(h: &Spanned<RawHealth>) -> Self {
        let r = h.get_ref();
        CheckSpans {
            table: h.span(),
            port: r.port.as_ref().map(Spanned::span),
            path: r.path.as_ref().map(Spanned::span),
            status: r.expect_status.as_ref().map(Spanned::span),
            command: r.command.as_ref().map(Spanned::span),
            interval: r.interval.as_ref().map(Spanned::span),
            timeout: r.timeout.as_ref().map(Spanned::span),
            rise: r.rise.as_ref().map(Spanned::span),
            fall: r.fall.as_ref().map(Spanned::span),
        }
    }

    fn get(&self, field: Field) -> Range<usize> {
        let f = match field {
            Field::HealthPort => &self.port,
            Field::HealthPath => &self.path,
            Field::HealthStatus => &self.status,
            Field::HealthCommand => &self.command,
            Field::HealthInterval => &self.interval,
            Field::HealthTimeout => &self.timeout,
            Field::HealthRise => &self.rise,
            Field::HealthFall => &self.fall,
            _ => &None,
        };
        f.clone().unwrap_or_else(|| self.table.clone())
    }
}

fn is_health(field: Field) -> bool {
    matches!(
        field,
        Field::Health
            | Field::HealthPort
            | Field::HealthPath
            | Field::HealthStatus
            | Field::HealthCommand
            | Field::HealthInterval
            | Field::HealthTimeout
            | Field::HealthRise
            | Field::HealthFall
    )
}

impl VipSpans {
    /// The span a broken rule points at: the field if it was written, else
    /// the table it belongs to.
    fn get(&self, at: &Where) -> Range<usize> {
        if let Some(j) = at.real {
            let Some(r) = self.reals.get(j) else {
                return self.table.clone();
            };
            return match at.field {
                Field::Address => r.address.clone(),
                Field::Weight => r.weight.clone().unwrap_or_else(|| r.table.clone()),
                f if is_health(f) => r
                    .health
                    .as_ref()
                    .map_or_else(|| r.table.clone(), |h| h.get(f)),
                _ => r.table.clone(),
            };
        }
        match at.field {
            Field::Address => self.address.clone(),
            Field::RingSize => self.ring_size.clone().unwrap_or_else(|| self.table.clone()),
            Field::MinHealthy => self
                .min_healthy
                .clone()
                .unwrap_or_else(|| self.table.clone()),
            f if is_health(f) => self
                .health
                .as_ref()
                .map_or_else(|| self.table.clone(), |h| h.get(f)),
            _ => self.table.clone(),
        }
    }
}

/// A `[[vip]]` table as written: parsed, defaults filled in; the rules
/// ([`rules::check_vip_set`]) are checked afterwards for the whole set.
fn vip(v: &Spanned<RawVip>) -> Result<(VipConfig, VipSpans), Fail> {
    let table = v.span();
    let v = v.get_ref();
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
    let health = match &v.health {
        None => Check::none(),
        Some(h) => check(h)?,
    };
    let communities = v.communities.as_deref().map(communities).transpose()?;
    let mut reals = Vec::with_capacity(v.reals.len());
    let mut real_spans = Vec::with_capacity(v.reals.len());
    for r in &v.reals {
        let real = r.get_ref();
        reals.push(RealConfig {
            address: self::address(&real.address, "real address")?,
            weight: real.weight.as_ref().map_or(1, |w| *w.get_ref()),
            health: real.health.as_ref().map(check).transpose()?,
        });
        real_spans.push(RealSpans {
            table: r.span(),
            address: real.address.span(),
            weight: real.weight.as_ref().map(Spanned::span),
            health: real.health.as_ref().map(CheckSpans::of),
        });
    }
    let spans = VipSpans {
        table,
        address: v.address.span(),
        ring_size: v.ring_size.as_ref().map(Spanned::span),
        min_healthy: v.min_healthy.as_ref().map(Spanned::span),
        health: v.health.as_ref().map(CheckSpans::of),
        reals: real_spans,
    };
    let vip = VipConfig {
        address: addr,
        port,
        protocol,
        ring_size: v
            .ring_size
            .as_ref()
            .map_or(maglev::DEFAULT_RING_SIZE, |r| *r.get_ref()),
        no_conn_table: v.no_conn_table.unwrap_or(false),
        health,
        min_healthy: v
            .min_healthy
            .as_ref()
            .map_or(DEFAULT_MIN_HEALTHY, |m| *m.get_ref()),
        communities,
        med: v.med,
        reals,
    };
    Ok((vip, spans))
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

/// A health check as written: parsed, defaults filled in (the rules are
/// checked with the VIP set).
fn check(h: &Spanned<RawHealth>) -> Result<Check, Fail> {
    let h = h.get_ref();
    let port = match &h.port {
        None => None,
        Some(p) => Some(spanned_u16(p, "health port")?),
    };
    let kind_word = h.kind.get_ref().as_str();
    let only_for = |present: Option<Range<usize>>, field: &str, kind: &str| -> Result<(), Fail> {
        match present {
            Some(span) if kind_word != kind => {
                fail(span, format!("{field} is only for {kind} checks"))
            }
            _ => Ok(()),
        }
    };
    only_for(h.path.as_ref().map(Spanned::span), "path", "http")?;
    only_for(
        h.expect_status.as_ref().map(Spanned::span),
        "expect_status",
        "http",
    )?;
    only_for(h.command.as_ref().map(Spanned::span), "command", "exec")?;
    let kind = match kind_word {
        "none" => CheckKind::None,
        "tcp" => CheckKind::Tcp,
        "http" => CheckKind::Http {
            path: h
                .path
                .as_ref()
                .map_or_else(|| DEFAULT_HTTP_PATH.to_owned(), |p| p.get_ref().clone()),
            expect_status: match &h.expect_status {
                None => DEFAULT_HTTP_STATUS,
                Some(s) => u16::try_from(*s.get_ref()).or_else(|_| {
                    fail(
                        s.span(),
                        format!("expect_status {} is not an HTTP status", s.get_ref()),
                    )
                })?,
            },
        },
        "udp" => CheckKind::Udp {
            payload: h
                .payload
                .clone()
                .unwrap_or_else(|| DEFAULT_UDP_PAYLOAD.to_owned()),
        },
        "exec" => match &h.command {
            Some(c) => CheckKind::Exec {
                command: c.get_ref().clone(),
            },
            None => return fail(h.kind.span(), "an exec check needs a command"),
        },
        other => {
            return fail(
                h.kind.span(),
                format!("health kind `{other}`: use none, tcp, http, udp or exec"),
            );
        }
    };
    let interval = duration(&h.interval, DEFAULT_CHECK_INTERVAL, "interval")?;
    let timeout = duration(&h.timeout, DEFAULT_CHECK_TIMEOUT.min(interval), "timeout")?;
    Ok(Check {
        kind,
        port,
        interval,
        timeout,
        rise: h.rise.as_ref().map_or(DEFAULT_CHECK_RISE, |n| *n.get_ref()),
        fall: h.fall.as_ref().map_or(DEFAULT_CHECK_FALL, |n| *n.get_ref()),
    })
}

/// Checks VIPs that did not come from a file (the control API, the state
/// file) against the rules; the message names the VIP and the real.
pub fn validate_vips(
    vips: &[VipConfig],
    dp: &DataplaneSettings,
    bgp: Option<&BgpSettings>,
) -> Result<(), String> {
    rules::check_vip_set(vips, dp, bgp).map_err(|e| e.message)
}
