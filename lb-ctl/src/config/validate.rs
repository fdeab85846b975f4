//! Raw configuration -> [`Settings`]: defaults filled in, every value
//! checked; the first mistake is returned with the span it was found at.
use std::{net::IpAddr, ops::Range, path::PathBuf, time::Duration};

use toml::Spanned;

use super::{
    Check, CheckKind, DEFAULT_CHECK_FALL, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_RISE,
    DEFAULT_CHECK_TIMEOUT, DEFAULT_HTTP_PATH, DEFAULT_HTTP_STATUS, DEFAULT_MIN_HEALTHY,
    DEFAULT_PIN_DIR, DEFAULT_SOCKET, DEFAULT_STATE_FILE, DEFAULT_UDP_PAYLOAD, DaemonSettings,
    DataplaneSettings, RealConfig, Settings, VipConfig,
    raw::{RawConfig, RawHealth, RawVip},
    rules,
    spans::{CheckSpans, RealSpans, VipSpans},
    validate_bgp::{bgp_settings, communities},
    validate_dataplane::dataplane,
    validate_fleet::fleet_settings,
};
use crate::{
    bgp::BgpSettings,
    maglev,
    programs::AttachMode,
    vocab::{Encapsulation, Proto},
};

/// A mistake and where.
pub type Fail = (Range<usize>, String);

/// `encap = "ipip" | "gue"`, of a VIP or a real.
fn encapsulation(s: &Spanned<String>) -> Result<Encapsulation, Fail> {
    match Encapsulation::parse(s.get_ref()) {
        Some(e) if !s.get_ref().is_empty() => Ok(e),
        _ => fail(
            s.span(),
            format!("encap `{}`: use ipip or gue", s.get_ref()),
        ),
    }
}

pub(super) fn fail<T>(span: Range<usize>, msg: impl Into<String>) -> Result<T, Fail> {
    Err((span, msg.into()))
}

pub(super) fn spanned_u16(v: &Spanned<u32>, what: &str) -> Result<u16, Fail> {
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

pub(super) fn duration(
    v: &Option<Spanned<String>>,
    default: Duration,
    what: &str,
) -> Result<Duration, Fail> {
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
pub(super) fn address(v: &Spanned<String>, what: &str) -> Result<IpAddr, Fail> {
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
    let fleet = raw.fleet.as_ref().map(fleet_settings).transpose()?;
    if fleet.is_some()
        && let Some(v) = raw.vips.first()
    {
        return fail(
            v.span(),
            "with a [fleet] section the VIPs come from the fleet's store: put [[vip]] tables in the fleet file (lb-ctl fleet apply FILE)",
        );
    }
    let vips = vip_set(&raw.vips, &dataplane, bgp.as_ref())?;
    Ok(Settings {
        daemon,
        dataplane,
        bgp,
        fleet,
        vips,
    })
}

/// `[[vip]]` tables: each parsed, then the whole set checked against the
/// rules for a host with `dataplane` and `bgp`.
pub(super) fn vip_set(
    raw: &[Spanned<RawVip>],
    dataplane: &DataplaneSettings,
    bgp: Option<&BgpSettings>,
) -> Result<Vec<VipConfig>, Fail> {
    let mut vips = Vec::with_capacity(raw.len());
    let mut spans = Vec::with_capacity(raw.len());
    for v in raw {
        let (vip, at) = vip(v)?;
        vips.push(vip);
        spans.push(at);
    }
    rules::check_vip_set(&vips, dataplane, bgp).map_err(|e| {
        let span = spans
            .get(e.at.vip)
            .map_or(0..0, |s: &VipSpans| s.get(&e.at));
        (span, e.message)
    })?;
    Ok(vips)
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
            encap: real.encap.as_ref().map(encapsulation).transpose()?,
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
        quic: v.quic.unwrap_or(false),
        encap: v
            .encap
            .as_ref()
            .map(encapsulation)
            .transpose()?
            .unwrap_or_default(),
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
