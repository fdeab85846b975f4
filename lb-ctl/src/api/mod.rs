//! The control API (`proto/lb.proto`): generated types, conversions between
//! them and the daemon's own types, the server side ([`server`]) and the
//! client the CLI uses ([`client`]).
pub mod client;
pub mod commands;
pub mod edits;
pub mod server;

use std::{net::IpAddr, time::Duration};

use crate::{
    config::{
        Check, CheckKind, DEFAULT_CHECK_FALL, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_RISE,
        DEFAULT_CHECK_TIMEOUT, RealConfig, VipConfig,
    },
    vocab::{Encapsulation, Proto, VipId},
};

/// The generated messages and services.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("lb.v1");
}

impl From<&VipId> for pb::Vip {
    fn from(v: &VipId) -> Self {
        pb::Vip {
            address: v.addr.to_string(),
            port: u32::from(v.port),
            protocol: v.proto.to_string(),
        }
    }
}

/// Why a wire value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

impl From<crate::vocab::VipIdError> for WireError {
    fn from(e: crate::vocab::VipIdError) -> Self {
        WireError(e.0)
    }
}

impl TryFrom<&pb::Vip> for VipId {
    type Error = WireError;
    fn try_from(v: &pb::Vip) -> Result<Self, WireError> {
        let addr: IpAddr = v
            .address
            .parse()
            .map_err(|_| WireError(format!("`{}` is not an IP address", v.address)))?;
        let port = u16::try_from(v.port)
            .map_err(|_| WireError(format!("port {} is above 65535", v.port)))?;
        let proto = match v.protocol.as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            p => return Err(WireError(format!("protocol `{p}`: use tcp or udp"))),
        };
        Ok(VipId { addr, port, proto })
    }
}

impl From<&Check> for pb::HealthCheck {
    fn from(c: &Check) -> Self {
        let mut h = pb::HealthCheck {
            port: c.port.map(u32::from),
            interval_ms: Some(c.interval.as_millis() as u64),
            timeout_ms: Some(c.timeout.as_millis() as u64),
            rise: Some(c.rise),
            fall: Some(c.fall),
            ..Default::default()
        };
        h.kind = match &c.kind {
            CheckKind::None => "none".into(),
            CheckKind::Tcp => "tcp".into(),
            CheckKind::Http {
                path,
                expect_status,
            } => {
                h.path = Some(path.clone());
                h.expect_status = Some(u32::from(*expect_status));
                "http".into()
            }
            CheckKind::Udp { payload } => {
                h.payload = Some(payload.clone());
                "udp".into()
            }
            CheckKind::Exec { command } => {
                h.command = Some(command.clone());
                "exec".into()
            }
        };
        h
    }
}

impl TryFrom<&pb::HealthCheck> for Check {
    type Error = WireError;
    /// Parses and fills in defaults for unset fields; the rules
    /// (`config::rules`) are checked with the VIP set, as for the file.
    fn try_from(h: &pb::HealthCheck) -> Result<Self, WireError> {
        let only_for = |set: bool, field: &str, kind: &str| {
            if set && h.kind != kind {
                Err(WireError(format!("{field} is only for {kind} checks")))
            } else {
                Ok(())
            }
        };
        only_for(h.path.is_some(), "path", "http")?;
        only_for(h.expect_status.is_some(), "expect_status", "http")?;
        only_for(h.command.is_some(), "command", "exec")?;
        let kind = match h.kind.as_str() {
            "" | "none" => CheckKind::None,
            "tcp" => CheckKind::Tcp,
            "http" => CheckKind::Http {
                path: h
                    .path
                    .clone()
                    .unwrap_or_else(|| crate::config::DEFAULT_HTTP_PATH.into()),
                expect_status: match h.expect_status {
                    None => crate::config::DEFAULT_HTTP_STATUS,
                    Some(s) => u16::try_from(s).map_err(|_| {
                        WireError(format!("expect_status {s} is not an HTTP status"))
                    })?,
                },
            },
            "udp" => CheckKind::Udp {
                payload: h
                    .payload
                    .clone()
                    .unwrap_or_else(|| crate::config::DEFAULT_UDP_PAYLOAD.into()),
            },
            "exec" => match &h.command {
                Some(c) => CheckKind::Exec { command: c.clone() },
                None => return Err(WireError("an exec check needs a command".into())),
            },
            k => {
                return Err(WireError(format!(
                    "health kind `{k}`: use none, tcp, http, udp or exec"
                )));
            }
        };
        let interval = h
            .interval_ms
            .map_or(DEFAULT_CHECK_INTERVAL, Duration::from_millis);
        Ok(Check {
            kind,
            port: h
                .port
                .map(|p| {
                    u16::try_from(p).map_err(|_| WireError(format!("port {p} is above 65535")))
                })
                .transpose()?,
            interval,
            timeout: h
                .timeout_ms
                .map_or(DEFAULT_CHECK_TIMEOUT.min(interval), Duration::from_millis),
            rise: h.rise.unwrap_or(DEFAULT_CHECK_RISE),
            fall: h.fall.unwrap_or(DEFAULT_CHECK_FALL),
        })
    }
}

/// The VIP an add-VIP request asks for, parsed, defaults filled in (no
/// reals yet). The rules are checked with the whole VIP set, as for the
/// configuration file.
pub fn vip_config(r: &pb::AddVipRequest) -> Result<VipConfig, WireError> {
    let id = VipId::try_from(
        r.vip
            .as_ref()
            .ok_or_else(|| WireError("no VIP given".into()))?,
    )?;
    let communities = if r.communities.is_empty() {
        None
    } else {
        Some(
            r.communities
                .iter()
                .map(|c| {
                    c.parse::<crate::bgp::Community>()
                        .map_err(|e| WireError(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    Ok(VipConfig {
        address: id.addr,
        port: id.port,
        protocol: id.proto,
        ring_size: r.ring_size.unwrap_or(crate::maglev::DEFAULT_RING_SIZE),
        no_conn_table: r.no_conn_table,
        quic: r.quic,
        encap: encapsulation(&r.encap)?.unwrap_or_default(),
        health: r
            .health
            .as_ref()
            .map(Check::try_from)
            .transpose()?
            .unwrap_or_else(Check::none),
        min_healthy: r.min_healthy.unwrap_or(crate::config::DEFAULT_MIN_HEALTHY),
        communities,
        med: r.med,
        reals: Vec::new(),
    })
}

/// The real an add-real request asks for, and its VIP: parsed, defaults
/// filled in.
pub fn real_config(r: &pb::AddRealRequest) -> Result<(VipId, RealConfig), WireError> {
    let id = VipId::try_from(
        r.vip
            .as_ref()
            .ok_or_else(|| WireError("no VIP given".into()))?,
    )?;
    let address = r
        .address
        .parse()
        .map_err(|_| WireError(format!("`{}` is not an IP address", r.address)))?;
    Ok((
        id,
        RealConfig {
            address,
            weight: r.weight,
            health: r.health.as_ref().map(Check::try_from).transpose()?,
            encap: encapsulation(&r.encap)?,
        },
    ))
}

/// A request's `encap`: None when empty (the default, or the VIP's).
fn encapsulation(s: &str) -> Result<Option<Encapsulation>, WireError> {
    if s.is_empty() {
        return Ok(None);
    }
    Encapsulation::parse(s)
        .map(Some)
        .ok_or_else(|| WireError(format!("encap `{s}`: use ipip or gue")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vip_notation() {
        let v: VipId = "203.0.113.10:80/tcp".parse().unwrap();
        assert_eq!(
            (v.addr.to_string(), v.port, v.proto),
            ("203.0.113.10".into(), 80, Proto::Tcp)
        );
        let v: VipId = "[2001:db8::10]:443/udp".parse().unwrap();
        assert_eq!((v.port, v.proto), (443, Proto::Udp));
        let v: VipId = "203.0.113.20/tcp".parse().unwrap();
        assert_eq!(v.port, 0);
        let v: VipId = "2001:db8::20/tcp".parse().unwrap();
        assert_eq!(v.port, 0);
        for bad in [
            "203.0.113.10:80",
            "203.0.113.10:80/sctp",
            "host:80/tcp",
            "203.0.113.10:99999/tcp",
            "[2001:db8::1:80/tcp",
        ] {
            assert!(bad.parse::<VipId>().is_err(), "{bad}");
        }
        // Display and parse agree.
        for s in ["203.0.113.10:80/tcp", "[2001:db8::10]:443/udp"] {
            assert_eq!(s.parse::<VipId>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn checks_cross_the_wire_unchanged() {
        let c = Check {
            kind: CheckKind::Http {
                path: "/h".into(),
                expect_status: 204,
            },
            port: Some(8080),
            interval: Duration::from_millis(700),
            timeout: Duration::from_millis(300),
            rise: 3,
            fall: 4,
        };
        assert_eq!(Check::try_from(&pb::HealthCheck::from(&c)).unwrap(), c);
        let defaults = Check::try_from(&pb::HealthCheck {
            kind: "tcp".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(defaults.interval, DEFAULT_CHECK_INTERVAL);
        assert!(
            Check::try_from(&pb::HealthCheck {
                kind: "exec".into(),
                ..Default::default()
            })
            .is_err()
        );
    }

    #[test]
    fn json_replies_decode_into_their_types_and_nothing_else() {
        let status = pb::StatusReply {
            interface: "eth0".into(),
            vips: 4,
            ..Default::default()
        };
        let text = serde_json::to_string(&status).unwrap();
        assert_eq!(
            serde_json::from_str::<pb::StatusReply>(&text).unwrap(),
            status
        );
        let extra = text.replacen('{', "{\"surprise\":1,", 1);
        assert!(serde_json::from_str::<pb::StatusReply>(&extra).is_err());
        let missing = text.replacen("\"interface\":\"eth0\",", "", 1);
        assert_ne!(missing, text);
        assert!(serde_json::from_str::<pb::StatusReply>(&missing).is_err());
        // Another reply type does not pass for this one.
        let health = serde_json::to_string(&pb::HealthReply::default()).unwrap();
        assert!(serde_json::from_str::<pb::StatusReply>(&health).is_err());
    }
}
