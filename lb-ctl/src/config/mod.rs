//! The daemon's configuration: a TOML file (see `examples/lb.toml`), parsed
//! into [`raw`] types, then validated into [`Settings`]. A mistake is
//! reported as `file:line:column: reason`; nothing is applied from a file
//! that does not validate.
//!
//! [`VipConfig`] (a VIP, its reals and their health checks: `vip.rs`) is
//! also what the control API changes and what the state file stores (as
//! JSON).
pub mod advice;
#[cfg(test)]
pub(crate) mod fixtures;
mod raw;
pub mod rules;
mod spans;
mod validate;
mod validate_bgp;
mod validate_dataplane;
mod validate_fleet;
mod vip;

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Duration,
};

use crate::{bgp::BgpSettings, programs::AttachMode, vocab::VipId};
pub use validate::{parse_duration, validate_vips};
pub use validate_fleet::{
    DEFAULT_DIAL_TIMEOUT, DEFAULT_FLEET_LKG, DEFAULT_FLEET_PREFIX, DEFAULT_MAX_DOWN_PERMILLE,
    DEFAULT_STALE_AFTER, endpoint_url, valid_host_id, valid_prefix, validate_fleet_vips,
};
pub use vip::{Check, CheckKind, RealConfig, VipConfig};

/// Where the maps and programs are pinned unless configured otherwise.
pub const DEFAULT_PIN_DIR: &str = lb_common::DEFAULT_PIN_DIR;
/// The control API's socket unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "/run/lb/lb.sock";
/// Where API changes are kept unless configured otherwise.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/lb/state.json";
/// The MTU toward the reals unless configured otherwise.
pub const DEFAULT_MTU: u16 = 1500;
/// Health check defaults: fast failover (a dead real leaves within
/// interval * fall = 0.5 s, so a site whose reals all die is withdrawn
/// within a second), without flapping on one lost probe.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_millis(250);
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_millis(200);
pub const DEFAULT_CHECK_RISE: u32 = 2;
pub const DEFAULT_CHECK_FALL: u32 = 2;
pub const DEFAULT_HTTP_PATH: &str = "/";
pub const DEFAULT_HTTP_STATUS: u16 = 200;
pub const DEFAULT_UDP_PAYLOAD: &str = "lb-health";
/// Bounds of checks.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(50);
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);
/// Healthy reals a VIP needs for its address to be announced.
pub const DEFAULT_MIN_HEALTHY: u32 = 1;
/// Bounds of the connection table.
pub const MIN_CONN_TABLE_SIZE: u32 = 1024;
pub const MAX_CONN_TABLE_SIZE: u32 = 1 << 27;
/// Bounds of `[dataplane] max_reals`: the slots of the real table (and of
/// its per-CPU counters: 16 bytes a slot per CPU), one (VIP, real) pair a
/// slot; slot 0 is never used.
pub const MIN_MAX_REALS: u32 = 1024;
pub const MAX_MAX_REALS: u32 = 1 << 20;

/// A configuration error with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reading the file failed (before any parsing).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] ConfigError),
}

/// How encapsulated packets find the next hop (see docs/DATAPLANE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// Back to the MAC they came from.
    Reflect,
    /// From the kernel's FIB.
    Fib,
    /// To this MAC.
    Gateway([u8; 6]),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    pub interface: String,
    pub mode: AttachMode,
    pub pin_dir: PathBuf,
    pub socket: PathBuf,
    /// Where Prometheus metrics are served (`GET /metrics`); off if unset.
    pub metrics: Option<std::net::SocketAddr>,
    pub state_file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneSettings {
    pub source_v4: Option<Ipv4Addr>,
    pub source_v6: Option<Ipv6Addr>,
    /// Per-flow IPv4 outer sources in this prefix instead of `source_v4`
    /// (for RSS on the reals).
    pub source_v4_prefix: Option<crate::bgp::Prefix>,
    /// The same for IPv6.
    pub source_v6_prefix: Option<crate::bgp::Prefix>,
    pub next_hop: NextHop,
    /// IPv4 connection table entries.
    pub conn_table_size: u32,
    /// IPv6 connection table entries (unset: a quarter of
    /// `conn_table_size`, at least [`MIN_CONN_TABLE_SIZE`]).
    pub conn_table_size_v6: u32,
    /// Slots of the real table: at most `max_reals - 1` (VIP, real) pairs.
    pub max_reals: u32,
    /// Connections each CPU may remember per second (0 = no limit).
    pub max_conn_rate: u32,
    pub mtu: u16,
    /// UDP destination port of GUE tunnels (reals with `encap = "gue"`).
    pub gue_port: u16,
    /// QUIC VIPs: the connection-id length of short headers, and where
    /// the real's id lies in it (offset, length in bytes).
    pub quic_cid_len: u8,
    pub quic_id_offset: u8,
    pub quic_id_len: u8,
    pub icmp_echo: bool,
    pub icmp_too_big: bool,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub daemon: DaemonSettings,
    pub dataplane: DataplaneSettings,
    /// Anycast announcements; none without a `[bgp]` section.
    pub bgp: Option<BgpSettings>,
    /// The fleet's store this host follows; none without a `[fleet]`
    /// section (the VIPs are then the file's and the API's).
    pub fleet: Option<FleetSettings>,
    pub vips: Vec<VipConfig>,
}

impl Settings {
    /// Where the desired VIPs are kept across restarts: the fleet's last
    /// known good state in fleet mode, else the state file.
    pub fn state_path(&self) -> &Path {
        match &self.fleet {
            Some(f) => &f.lkg,
            None => &self.daemon.state_file,
        }
    }
}

/// The `[fleet]` section: which etcd, which keys, which host this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// `http://HOST:PORT` of each etcd member.
    pub endpoints: Vec<String>,
    /// Every key of the fleet starts with it (`/lb/v1/`).
    pub prefix: String,
    /// This host's id in the store (`config/hosts/<host>`, `hosts/<host>/status`).
    pub host: String,
    /// The last known good state: the VIPs of the last revision applied,
    /// and that revision (what a start without the store boots from).
    pub lkg: PathBuf,
    /// How long one attempt to reach the store may take.
    pub dial_timeout: Duration,
    /// Fleet health older than this is stale: the host checks locally.
    pub stale_after: Duration,
    /// A checker finding more than this share of all reals down is not
    /// believed, in thousandths (500 = half).
    pub max_down_permille: u32,
}

/// A fleet file (`lb-ctl fleet apply`), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetFile {
    pub vips: Vec<VipConfig>,
    /// Hosts that serve only some VIPs; a host not listed serves them all.
    pub hosts: std::collections::BTreeMap<String, std::collections::BTreeSet<VipId>>,
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Settings, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            // Placed at the first byte that is not UTF-8.
            let valid = e.utf8_error().valid_up_to();
            let good = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let (line, column) = line_col(&good, valid);
            return Err(LoadError::Invalid(ConfigError {
                file: path.to_owned(),
                line,
                column,
                message: "not UTF-8 text (TOML files are UTF-8)".into(),
            }));
        }
    };
    Ok(parse(path, &text)?)
}

/// Parses and validates `text` (read from `path`, for messages).
pub fn parse(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    parse_with(path, text, validate::settings)
}

/// Parses and validates a fleet file (`lb-ctl fleet apply`): the VIPs
/// checked with the same rules as the configuration file's, as far as they
/// do not depend on one host (each host checks the rest when it applies).
pub fn parse_fleet_file(path: &Path, text: &str) -> Result<FleetFile, ConfigError> {
    parse_with(path, text, validate_fleet::fleet_file)
}

/// TOML `text` into raw type `R`, then `validate`d; a mistake of either
/// step placed at its line and column.
fn parse_with<R: serde::de::DeserializeOwned, T>(
    path: &Path,
    text: &str,
    validate: impl FnOnce(R) -> Result<T, validate::Fail>,
) -> Result<T, ConfigError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| {
        let (line, column) = span.map_or((1, 1), |s| line_col(text, s.start));
        ConfigError {
            file: path.to_owned(),
            line,
            column,
            message,
        }
    };
    let raw: R = toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
    validate(raw).map_err(|(span, msg)| at(Some(span), msg))
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
