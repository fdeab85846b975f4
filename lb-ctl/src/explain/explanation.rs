//! What `explain` reports of a flow: plain data, printed as text
//! ([`super::text`]) or JSON.
use std::collections::BTreeMap;

use serde::Serialize;

/// The VIP a flow matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VipMatch {
    pub vip: String,
    pub vip_id: u32,
    pub ring_size: u32,
    /// Matched as a port-less VIP (every port of the address).
    pub portless: bool,
    pub no_conn_table: bool,
    /// A QUIC VIP: a packet whose connection id names a usable real of it
    /// goes there instead (explain sees no payload: it shows the rest).
    pub quic: bool,
}

/// The connection table's entry for the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnView {
    pub real_id: u32,
    pub real_generation: u32,
    pub vip_id: u32,
    pub vip_generation: u32,
    /// Why the entry no longer applies (the flow is hashed again), if so.
    pub stale: Option<String>,
}

/// A real as the maps hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RealView {
    pub real_id: u32,
    pub address: String,
    pub state: String,
    pub generation: u32,
}

/// How the packet leaves toward its real.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncapView {
    /// `ipip` (IPv4 in IPv4), `ip6ip6`, `ip4in6`, `ip6in4`, or GUE:
    /// `gue4in4`, `gue6in6`, `gue4in6`, `gue6in4` (inner in outer).
    pub kind: String,
    pub outer_src: String,
    pub outer_dst: String,
    pub overhead: u16,
    /// GUE: the UDP source and destination ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_ports: Option<(u16, u16)>,
}

/// Whether a packet of the asked size fits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SizeView {
    pub size: u16,
    /// The configured MTU toward the reals (0: unchecked).
    pub mtu: u16,
    pub fits: bool,
    /// What happens to it, in words.
    pub outcome: String,
}

/// Everything `explain` says of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub flow: String,
    pub flow_hash: u32,
    /// `forward`, `drop` or `pass`.
    pub verdict: String,
    /// The counter the program adds the packet to (docs/DATAPLANE.md).
    pub reason: String,
    /// Why, in words.
    pub why: String,
    pub vip: Option<VipMatch>,
    pub connection: Option<ConnView>,
    /// The ring slot the flow hashes to, and the real it names.
    pub ring_slot: Option<u32>,
    pub ring_real: Option<u32>,
    pub real: Option<RealView>,
    pub encap: Option<EncapView>,
    pub size: Option<SizeView>,
    /// The real's health checks as the daemon has them (`None`: no daemon
    /// answered, only the maps' state is known).
    pub health: Option<HealthDetail>,
}

/// What the daemon's health checks say of the real.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthDetail {
    pub check: String,
    pub healthy: bool,
    pub last_error: String,
    pub failures_by_reason: BTreeMap<String, u64>,
}
