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
    #[serde(default, rename = "vip")]
    pub vips: Vec<Spanned<RawVip>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub interface: Spanned<String>,
    pub xdp_mode: Option<Spanned<String>>,
    pub pin_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub state_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataplane {
    pub source_v4: Option<Spanned<String>>,
    pub source_v6: Option<Spanned<String>>,
    pub next_hop: Option<Spanned<String>>,
    pub conn_table_size: Option<Spanned<u32>>,
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
    pub health: Option<Spanned<RawHealth>>,
    #[serde(default, rename = "real")]
    pub reals: Vec<Spanned<RawReal>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReal {
    pub address: Spanned<String>,
    pub weight: Option<Spanned<u32>>,
    pub health: Option<Spanned<RawHealth>>,
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
