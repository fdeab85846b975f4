//! A VIP as the configuration, the control API, the state file and the
//! fleet store hold it: its reals, their health checks, encapsulation and
//! QUIC routing (serialized as JSON by the state file and the store).
use std::{fmt, net::IpAddr, time::Duration};

use serde::{Deserialize, Serialize};

use super::{
    DEFAULT_CHECK_FALL, DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_RISE, DEFAULT_CHECK_TIMEOUT,
    DEFAULT_MIN_HEALTHY,
};
use crate::{
    bgp::Community,
    maglev::RingSize,
    vocab::{Encapsulation, Proto, VipId},
};

/// What a health check does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CheckKind {
    /// No check: the real is always healthy.
    None,
    /// A TCP connection is accepted.
    Tcp,
    /// `GET path` answers with `expect_status`.
    Http { path: String, expect_status: u16 },
    /// A datagram with `payload` gets any reply.
    Udp { payload: String },
    /// `sh -c command` exits 0 (LB_REAL and LB_PORT in its environment).
    Exec { command: String },
}

/// A health check of one real.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Check {
    #[serde(flatten)]
    pub kind: CheckKind,
    /// The port probed; `None` = the VIP's port.
    pub port: Option<u16>,
    #[serde(with = "millis")]
    pub interval: Duration,
    #[serde(with = "millis")]
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl Check {
    /// No check.
    pub fn none() -> Self {
        Check {
            kind: CheckKind::None,
            port: None,
            interval: DEFAULT_CHECK_INTERVAL,
            timeout: DEFAULT_CHECK_TIMEOUT,
            rise: DEFAULT_CHECK_RISE,
            fall: DEFAULT_CHECK_FALL,
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        match &self.kind {
            CheckKind::None => return f.write_str("none"),
            CheckKind::Tcp => write!(f, "tcp{port}")?,
            CheckKind::Http {
                path,
                expect_status,
            } => write!(f, "http{port}{path} -> {expect_status}")?,
            CheckKind::Udp { .. } => write!(f, "udp{port}")?,
            CheckKind::Exec { command } => write!(f, "exec `{command}`")?,
        }
        write!(
            f,
            " every {:?} (timeout {:?}, rise {}, fall {})",
            self.interval, self.timeout, self.rise, self.fall
        )
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A real of a VIP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealConfig {
    pub address: IpAddr,
    pub weight: u32,
    /// Overrides the VIP's check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Check>,
    /// Overrides the VIP's encapsulation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encap: Option<Encapsulation>,
}

/// A VIP with its reals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipConfig {
    pub address: IpAddr,
    /// 0 = every port.
    pub port: u16,
    pub protocol: Proto,
    pub ring_size: u32,
    #[serde(default)]
    pub no_conn_table: bool,
    /// QUIC (UDP VIPs): route short-header packets by the real's id in
    /// their destination connection id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quic: bool,
    /// How its packets reach its reals (unless a real says otherwise).
    #[serde(default, skip_serializing_if = "Encapsulation::is_ipip")]
    pub encap: Encapsulation,
    /// The check of its reals (unless a real has its own).
    pub health: Check,
    /// Healthy reals needed for its address to be announced.
    #[serde(default = "default_min_healthy")]
    pub min_healthy: u32,
    /// BGP communities of its address (default: `[bgp] communities`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub communities: Option<Vec<Community>>,
    /// BGP MED of its address (default: `[bgp] med`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub med: Option<u32>,
    pub reals: Vec<RealConfig>,
}

fn default_min_healthy() -> u32 {
    DEFAULT_MIN_HEALTHY
}

impl VipConfig {
    pub fn id(&self) -> VipId {
        VipId {
            addr: self.address,
            port: self.port,
            proto: self.protocol,
        }
    }

    pub fn ring(&self) -> RingSize {
        RingSize::new(self.ring_size).unwrap_or_default()
    }

    /// The check of real `r`.
    pub fn check_of<'a>(&'a self, r: &'a RealConfig) -> &'a Check {
        r.health.as_ref().unwrap_or(&self.health)
    }

    /// How packets reach real `r`: its own choice, else the VIP's.
    pub fn encap_of(&self, r: &RealConfig) -> Encapsulation {
        r.encap.unwrap_or(self.encap)
    }
}
