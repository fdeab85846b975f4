//! The control API (`proto/lb.proto`): generated types, conversions between
//! them and the daemon's own types, the server side ([`server`]) and the
//! client the CLI uses ([`client`]).
pub mod client;
pub mod server;

use std::{net::IpAddr, str::FromStr, time::Duration};

use crate::{
    config::{
        Check, CheckKind, DEFAULT_CHECK_FALL, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_RISE,
        DEFAULT_CHECK_TIMEOUT,
    },
    reconcile::{Proto, VipId},
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

/// Parses the CLI's VIP notation: `203.0.113.10:80/tcp`,
/// `[2001:db8::10]:443/tcp`, or without a port (`203.0.113.20/tcp`) for
/// every port.
impl FromStr for VipId {
    type Err = WireError;
    fn from_str(s: &str) -> Result<Self, WireError> {
        let bad = || {
            WireError(format!(
                "`{s}`: write a VIP as ADDRESS:PORT/PROTOCOL, e.g. 203.0.113.10:80/tcp or [2001:db8::10]:443/udp (no port: every port)"
            ))
        };
        let (host_port, proto) = s.rsplit_once('/').ok_or_else(bad)?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return Err(bad()),
        };
        let (addr, port) = if let Some(rest) = host_port.strip_prefix('[') {
            let (a, p) = rest.split_once(']').ok_or_else(bad)?;
            let port = match p.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if p.is_empty() => 0,
                None => return Err(bad()),
            };
            (a.parse().map_err(|_| bad())?, port)
        } else if let Ok(a) = host_port.parse::<IpAddr>() {
            (a, 0)
        } else {
            let (a, p) = host_port.rsplit_once(':').ok_or_else(bad)?;
            (a.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?)
        };
        Ok(VipId { addr, port, proto })
    }
}

impl From<&Check> for pb::HealthCheck {
    fn from(c: &Check) -> Self {
        let mut h = pb::HealthCheck {
            port: c.port.map_or(0, u32::from),
            interval_ms: c.interval.as_millis() as u64,
            timeout_ms: c.timeout.as_millis() as u64,
            rise: c.rise,
            fall: c.fall,
            ..Default::default()
        };
        h.kind = match &c.kind {
            CheckKind::None => "none".into(),
            CheckKind::Tcp => "tcp".into(),
            CheckKind::Http {
                path,
                expect_status,
            } => {
                h.path.clone_from(path);
                h.expect_status = u32::from(*expect_status);
                "http".into()
            }
            CheckKind::Udp { payload } => {
                h.payload.clone_from(payload);
                "udp".into()
            }
            CheckKind::Exec { command } => {
                h.command.clone_from(command);
                "exec".into()
            }
        };
        h
    }
}

impl TryFrom<&pb::HealthCheck> for Check {
    type Error = WireError;
    /// Zero fields take the configuration file's defaults.
    fn try_from(h: &pb::HealthCheck) -> Result<Self, WireError> {
        let kind = match h.kind.as_str() {
            "" | "none" => CheckKind::None,
            "tcp" => CheckKind::Tcp,
            "http" => CheckKind::Http {
                path: if h.path.is_empty() {
                    crate::config::DEFAULT_HTTP_PATH.into()
                } else {
                    h.path.clone()
                },
                expect_status: if h.expect_status == 0 {
                    crate::config::DEFAULT_HTTP_STATUS
                } else {
                    u16::try_from(h.expect_status)
                        .map_err(|_| WireError(format!("status {}", h.expect_status)))?
                },
            },
            "udp" => CheckKind::Udp {
                payload: if h.payload.is_empty() {
                    crate::config::DEFAULT_UDP_PAYLOAD.into()
                } else {
                    h.payload.clone()
                },
            },
            "exec" if !h.command.trim().is_empty() => CheckKind::Exec {
                command: h.command.clone(),
            },
            "exec" => return Err(WireError("an exec check needs a command".into())),
            k => {
                return Err(WireError(format!(
                    "health kind `{k}`: use none, tcp, http, udp or exec"
                )));
            }
        };
        let ms = |v: u64, d: Duration| if v == 0 { d } else { Duration::from_millis(v) };
        let interval = ms(h.interval_ms, DEFAULT_CHECK_INTERVAL);
        Ok(Check {
            kind,
            port: match h.port {
                0 => None,
                p => Some(
                    u16::try_from(p).map_err(|_| WireError(format!("port {p} is above 65535")))?,
                ),
            },
            interval,
            timeout: ms(h.timeout_ms, DEFAULT_CHECK_TIMEOUT.min(interval)),
            rise: if h.rise == 0 {
                DEFAULT_CHECK_RISE
            } else {
                h.rise
            },
            fall: if h.fall == 0 {
                DEFAULT_CHECK_FALL
            } else {
                h.fall
            },
        })
    }
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
}
