//! Health check options shared by `vip add` and `real add`. Every
//! `--health-*` option needs `--health KIND`: alone it would be ignored.
use lb_ctl::{api::pb, config::parse_duration};

#[derive(Debug, Clone, clap::Args)]
pub struct HealthArgs {
    /// Check kind: none, tcp, http, udp or exec.
    #[arg(long = "health")]
    pub kind: Option<String>,
    /// Port probed on the real (default: the VIP's port).
    #[arg(long = "health-port", requires = "kind")]
    pub port: Option<u16>,
    /// http: the path requested.
    #[arg(long = "health-path", requires = "kind")]
    pub path: Option<String>,
    /// http: the status expected.
    #[arg(long = "health-status", requires = "kind")]
    pub status: Option<u16>,
    /// udp: the payload sent.
    #[arg(long = "health-payload", requires = "kind")]
    pub payload: Option<String>,
    /// exec: the command (LB_REAL and LB_PORT in its environment).
    #[arg(long = "health-command", requires = "kind")]
    pub command: Option<String>,
    /// How often, e.g. 500ms or 2s.
    #[arg(long = "health-interval", value_parser = duration, requires = "kind")]
    pub interval: Option<std::time::Duration>,
    /// How long a probe may take.
    #[arg(long = "health-timeout", value_parser = duration, requires = "kind")]
    pub timeout: Option<std::time::Duration>,
    /// Successes in a row to come up.
    #[arg(long = "health-rise", requires = "kind")]
    pub rise: Option<u32>,
    /// Failures in a row to go down.
    #[arg(long = "health-fall", requires = "kind")]
    pub fall: Option<u32>,
}

pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).ok_or_else(|| format!("`{s}` is not a duration like 500ms, 2s or 1m"))
}

impl HealthArgs {
    /// The check asked for, if any option was given.
    pub fn to_pb(&self) -> Option<pb::HealthCheck> {
        let kind = self.kind.clone()?;
        Some(pb::HealthCheck {
            kind,
            port: self.port.map(u32::from),
            path: self.path.clone(),
            expect_status: self.status.map(u32::from),
            payload: self.payload.clone(),
            command: self.command.clone(),
            interval_ms: self.interval.map(|d| d.as_millis() as u64),
            timeout_ms: self.timeout.map(|d| d.as_millis() as u64),
            rise: self.rise,
            fall: self.fall,
        })
    }
}
