//! Anycast: lb-ctl tells a GoBGP speaker to announce each VIP address (/32
//! or /128) while its VIPs have enough healthy reals, and to withdraw it
//! when they do not, so routers send clients to the next nearest site.
//!
//! - [`Community`], [`BgpSettings`]: the `[bgp]` configuration (its
//!   prefixes are the vocabulary's [`Prefix`]).
//! - [`gobgp`]: the GoBGP v3 gRPC client (generated at build time from the
//!   protos of the installed GoBGP).
//! - [`speaker`]: the task that runs or adopts `gobgpd`, supervises it,
//!   configures it and keeps its announced paths equal to the wanted ones.
pub mod gobgp;
mod running;
pub mod speaker;

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub use crate::vocab::Prefix;

/// Where Debian's gobgpd is.
pub const DEFAULT_GOBGPD: &str = "/usr/bin/gobgpd";
/// gobgpd's gRPC address (its network namespace's loopback).
pub const DEFAULT_GOBGP_API: &str = "127.0.0.1:50051";
/// BGP's port.
pub const DEFAULT_LISTEN_PORT: i32 = 179;
/// Timers for fast failover: a dead LB host is dropped after 3 s.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(1);
pub const DEFAULT_HOLD: Duration = Duration::from_secs(3);
/// A VIP that came back is announced once healthy this long (no flapping).
pub const DEFAULT_HOLD_DOWN: Duration = Duration::from_secs(2);

/// A BGP community, `ASN:VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl FromStr for Community {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a community like 65001:100");
        let (a, v) = s.split_once(':').ok_or_else(bad)?;
        let a: u16 = a.parse().map_err(|_| bad())?;
        let v: u16 = v.parse().map_err(|_| bad())?;
        Ok(Community((u32::from(a) << 16) | u32::from(v)))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

impl Serialize for Community {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Community {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A BGP neighbor (the site's router).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighborSettings {
    pub address: IpAddr,
    pub asn: u32,
    pub keepalive: Duration,
    pub hold: Duration,
}

/// The `[bgp]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSettings {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Only addresses inside these are ever announced (the hijack guard).
    pub anycast_prefixes: Vec<Prefix>,
    pub gobgpd: PathBuf,
    pub api: SocketAddr,
    /// Run and supervise gobgpd (else use the one at `api`).
    pub manage: bool,
    pub listen_port: i32,
    pub hold_down: Duration,
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    pub communities: Vec<Community>,
    pub med: u32,
    pub neighbors: Vec<NeighborSettings>,
}

impl BgpSettings {
    /// Whether the hijack guard lets `addr` be announced.
    pub fn may_announce(&self, addr: IpAddr) -> bool {
        let host = Prefix::host(addr);
        self.anycast_prefixes.iter().any(|p| p.contains(&host))
    }
}

/// One route to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub prefix: Prefix,
    pub next_hop: IpAddr,
    pub communities: Vec<Community>,
    pub med: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_contain() {
        let p: Prefix = "203.0.113.0/24".parse().unwrap();
        assert!(p.contains(&Prefix::host("203.0.113.10".parse().unwrap())));
        assert!(!p.contains(&Prefix::host("203.0.114.10".parse().unwrap())));
        assert!(!p.contains(&Prefix::host("2001:db8::1".parse().unwrap())));
        let q: Prefix = "2001:db8:f::/48".parse().unwrap();
        assert!(q.contains(&Prefix::host("2001:db8:f::10".parse().unwrap())));
        assert!(!q.contains(&Prefix::host("2001:db8:e::10".parse().unwrap())));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(&Prefix::host("192.0.2.1".parse().unwrap())));
        assert!(
            "203.0.113.1/24"
                .parse::<Prefix>()
                .unwrap_err()
                .contains("host bits")
        );
        assert!("203.0.113.0/33".parse::<Prefix>().is_err());
        assert!("203.0.113.0".parse::<Prefix>().is_err());
        assert_eq!(p.to_string(), "203.0.113.0/24");
    }

    #[test]
    fn communities_parse_and_print() {
        let c: Community = "65001:100".parse().unwrap();
        assert_eq!(c.0, (65001 << 16) | 100);
        assert_eq!(c.to_string(), "65001:100");
        assert!("70000:1".parse::<Community>().is_err());
        assert!("65001".parse::<Community>().is_err());
    }
}
