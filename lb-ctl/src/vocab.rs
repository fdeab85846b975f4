//! The words every part of lb-ctl uses for what it balances: a VIP's
//! protocol ([`Proto`]) and its identity ([`VipId`], written
//! `ADDRESS:PORT/PROTOCOL`), a real's state ([`RealState`]) and an address
//! prefix ([`Prefix`]); each textual form is parsed once, here. Config,
//! API, reconciler, daemon and BGP all take them from here.
use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use lb_common::{
    PROTO_TCP, PROTO_UDP,
    maps::{REAL_STATE_DOWN, REAL_STATE_DRAINING, REAL_STATE_UP, VipKey},
};

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

/// How packets reach a real: IP-in-IP (the default) or GUE, a UDP header
/// between the outer IP header and the client's packet.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Encapsulation {
    #[default]
    Ipip,
    Gue,
}

impl Encapsulation {
    pub fn is_ipip(&self) -> bool {
        *self == Encapsulation::Ipip
    }

    /// `ipip` or `gue`; the empty string (an API request that names none)
    /// is the default.
    pub fn parse(s: &str) -> Option<Encapsulation> {
        match s {
            "" | "ipip" => Some(Encapsulation::Ipip),
            "gue" => Some(Encapsulation::Gue),
            _ => None,
        }
    }
}

impl fmt::Display for Encapsulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encapsulation::Ipip => "ipip",
            Encapsulation::Gue => "gue",
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

/// What the data plane does with a real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RealState {
    /// In the ring: gets new flows and keeps its established ones.
    Up,
    /// Weight 0: out of the ring, keeps its established flows.
    Draining,
    /// Not healthy: out of the ring, its established flows move.
    Down,
}

impl RealState {
    /// Every state, in the order above.
    pub const ALL: [RealState; 3] = [RealState::Up, RealState::Draining, RealState::Down];

    /// The state of a real with `weight` that health checks find `healthy`.
    pub fn of(weight: u32, healthy: bool) -> Self {
        if !healthy {
            Self::Down
        } else if weight == 0 {
            Self::Draining
        } else {
            Self::Up
        }
    }

    /// Its value in `LB_REALS` (`Real::state`).
    pub const fn to_map(self) -> u8 {
        match self {
            Self::Up => REAL_STATE_UP,
            Self::Draining => REAL_STATE_DRAINING,
            Self::Down => REAL_STATE_DOWN,
        }
    }

    /// The state of an `LB_REALS` value, if it is one.
    pub fn from_map(state: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.to_map() == state)
    }

    fn word(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Draining => "draining",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for RealState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl FromStr for RealState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.word() == s)
            .ok_or_else(|| format!("`{s}` is not a real's state (up, draining, down)"))
    }
}

/// An IP prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The host route of `addr`: /32 or /128.
    pub fn host(addr: IpAddr) -> Self {
        Prefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    /// Whether `other` lies inside this prefix.
    pub fn contains(&self, other: &Prefix) -> bool {
        if other.len < self.len {
            return false;
        }
        match (self.addr, other.addr) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a prefix like 203.0.113.0/24 or 2001:db8::/48");
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(bad());
        }
        let p = Prefix { addr, len };
        // Host bits must be zero: 203.0.113.1/24 is a typo for something.
        if p.network() != addr {
            return Err(format!(
                "`{s}` has host bits set (the network is {}/{len})",
                p.network()
            ));
        }
        Ok(p)
    }
}

impl Prefix {
    /// The prefix's network address (host bits cleared).
    pub fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }
}

#[cfg(test)]
mod real_state_tests {
    use super::*;

    #[test]
    fn states_map_and_print_both_ways() {
        for state in RealState::ALL {
            assert_eq!(RealState::from_map(state.to_map()), Some(state));
            assert_eq!(state.to_string().parse::<RealState>(), Ok(state));
        }
        assert_eq!(RealState::from_map(200), None);
        assert!("UP".parse::<RealState>().is_err());
        assert_eq!(RealState::of(3, true), RealState::Up);
        assert_eq!(RealState::of(0, true), RealState::Draining);
        assert_eq!(RealState::of(0, false), RealState::Down);
        assert_eq!(RealState::of(5, false), RealState::Down);
    }
}
