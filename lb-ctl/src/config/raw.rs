//! The configuration file as written: TOML, every field optional where a
//! default exists, positions kept (`Spanned`) so that a mistake is reported
//! with its line. `super::validate` turns this into [`super::Settings`].
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub daemon: Spanned<RawDaemon>,
    #[serde(default)]
    pub dataplane: Option<Spanned<RawDataplane>>,
    #[serde(default)]
    pub bgp: Option<Spanned<RawBgp>>,
    #[serde(default)]
    pub fleet: Option<Spanned<RawFleet>>,
    #[serde(default, rename = "vip")]
    pub vips: Vec<Spanned<RawVip>>,
}

/// The `[fleet]` section: this host follows a fleet's store (etcd).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub endpoints: Spanned<Vec<Spanned<String>>>,
    pub prefix: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub lkg: Option<Spanned<PathBuf>>,
    pub dial_timeout: Option<Spanned<String>>,
    pub stale_after: Option<Spanned<String>>,
    pub max_down_share: Option<Spanned<f64>>,
}

/// The file `lb-ctl fleet apply` takes: VIPs written as in the
/// configuration file, and which hosts serve which VIPs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetFile {
    #[serde(default, rename = "vip")]
    pub vips: Vec<Spanned<RawVip>>,
    #[serde(default, rename = "host")]
    pub hosts: Vec<Spanned<RawHost>>,
}

/// A `[[host]]` of the fleet file: the VIPs host `id` serves (a host
/// without one serves every VIP).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub id: Spanned<String>,
    pub vips: Spanned<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBgp {
    pub asn: Spanned<u64>,
    pub router_id: Spanned<String>,
    pub anycast_prefixes: Spanned<Vec<Spanned<String>>>,
    pub gobgpd: Option<PathBuf>,
    pub api: Option<Spanned<String>>,
    pub manage: Option<bool>,
    pub listen_port: Option<Spanned<i64>>,
    pub hold_down: Option<Spanned<String>>,
    pub next_hop_v4: Option<Spanned<String>>,
    pub next_hop_v6: Option<Spanned<String>>,
    pub communities: Option<Vec<Spanned<String>>>,
    pub med: Option<u32>,
    #[serde(default, rename = "neighbor")]
    pub neighbors: Vec<Spanned<RawNeighbor>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub address: Spanned<String>,
    pub asn: Spanned<u64>,
    pub keepalive: Option<Spanned<String>>,
    pub hold: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub interface: Spanned<String>,
    pub xdp_mode: Option<Spanned<String>>,
    pub pin_dir: Option<Spanned<PathBuf>>,
    pub socket: Option<Spanned<PathBuf>>,
    pub metrics: Option<Spanned<String>>,
    pub state_file: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataplane {
    pub source_v4: Option<Spanned<String>>,
    pub source_v6: Option<Spanned<String>>,
    pub source_v4_prefix: Option<Spanned<String>>,
    pub source_v6_prefix: Option<Spanned<String>>,
    pub next_hop: Option<Spanned<String>>,
    pub conn_table_size: Option<Spanned<u32>>,
    pub conn_table_size_v6: Option<Spanned<u32>>,
    pub max_reals: Option<Spanned<u32>>,
    pub max_conn_rate: Option<u32>,
    pub gue_port: Option<Spanned<u32>>,
    pub quic_cid_len: Option<Spanned<u32>>,
    pub quic_server_id_offset: Option<Spanned<u32>>,
    pub quic_server_id_len: Option<Spanned<u32>>,
    pub mtu: Option<Spanned<u32>>,
    pub icmp_echo: Option<bool>,
    pub icmp_too_big: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub address: Spanned<String>,
    pub port: Option<Spanned<u32>>,
    pub protocol: Spanned<String>,
    pub ring_size: Option<Spanned<u32>>,
    pub no_conn_table: Option<bool>,
    pub quic: Option<bool>,
    pub encap: Option<Spanned<String>>,
    pub health: Option<Spanned<RawHealth>>,
    pub min_healthy: Option<Spanned<u32>>,
    pub communities: Option<Vec<Spanned<String>>>,
    pub med: Option<u32>,
    #[serde(default, rename = "real")]
    pub reals: Vec<Spanned<RawReal>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReal {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<u32>>,
    pub health: Option<Spanned<RawHealth>>,
    pub encap: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub kind: Spanned<String>,
    pub port: Option<Spanned<u32>>,
    pub path: Option<Spanned<String>>,
    pub expect_status: Option<Spanned<u32>>,
    pub payload: Option<String>,
    pub command: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub rise: Option<Spanned<u32>>,
    pub fall: Option<Spanned<u32>>,
}
