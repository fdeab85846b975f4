//! The words every part of lb-ctl uses for what it balances: a VIP's
//! protocol ([`Proto`]) and its identity ([`VipId`], written
//! `ADDRESS:PORT/PROTOCOL`, parsed once here). Config, API, reconciler and
//! daemon all take them from here.
use std::{fmt, net::IpAddr, str::FromStr};

use lb_common::{PROTO_TCP, PROTO_UDP, maps::VipKey};

/// A VIP's transport protocol.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub const fn number(self) -> u8 {
        match self {
            Proto::Tcp => PROTO_TCP,
            Proto::Udp => PROTO_UDP,
        }
    }

    pub const fn from_number(n: u8) -> Option<Proto> {
        match n {
            PROTO_TCP => Some(Proto::Tcp),
            PROTO_UDP => Some(Proto::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// Identifies a VIP: address, port (0 = every port) and protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VipId {
    pub addr: IpAddr,
    pub port: u16,
    pub proto: Proto,
}

impl VipId {
    pub fn key(&self) -> VipKey {
        VipKey::new(self.addr, self.port, self.proto.number())
    }
}

impl fmt::Display for VipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}/{}", self.port, self.proto),
            IpAddr::V6(a) => write!(f, "[{a}]:{}/{}", self.port, self.proto),
        }
    }
}

/// A VIP written `ADDRESS:PORT/PROTOCOL` (`[IPv6]:PORT/PROTOCOL`), or
/// `ADDRESS/PROTOCOL` for every port, does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VipIdError(pub String);

/// Parses the CLI's VIP notation: `203.0.113.10:80/tcp`,
/// `[2001:db8::10]:443/tcp`, or without a port (`203.0.113.20/tcp`) for
/// every port.
impl FromStr for VipId {
    type Err = VipIdError;
    fn from_str(s: &str) -> Result<Self, VipIdError> {
        let bad = || {
            VipIdError(format!(
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
