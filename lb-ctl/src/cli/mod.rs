//! The CLI: argument types and one module per subcommand.
use std::{path::PathBuf, process::ExitCode};

use lb_ctl::programs::{AttachMode, Program};

mod assets;
mod attach;
mod bgp;
mod capture;
mod check;
mod checker;
mod client;
mod daemon;
mod decap;
mod edit;
mod explain;
mod fleet;
mod health_args;
mod maglev;
mod real;
mod show;
#[cfg(test)]
mod tests;
mod top;
mod vip;

/// lb-ctl: the controller of the lb anycast layer-4 load balancer.
#[derive(Debug, clap::Parser)]
#[command(version, about)]
pub struct Args {
    #[command(flatten)]
    pub log: LogArgs,
    /// Run in this network namespace (a name under /run/netns), as the lab
    /// does; unlike `ip netns exec` it keeps /sys/fs/bpf visible.
    #[arg(long, global = true, env = "LB_NETNS")]
    pub netns: Option<String>,
    /// The daemon's control socket (for the commands that talk to it).
    #[arg(long, global = true, env = "LB_SOCKET", default_value = lb_ctl::config::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// Logging options, common to every subcommand.
#[derive(Debug, clap::Args)]
pub struct LogArgs {
    /// Log filter (tracing's env-filter syntax), e.g. `info` or `lb_ctl=debug`.
    #[arg(long, global = true, env = "LB_LOG", default_value = "info", value_parser = log_filter)]
    pub log_level: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the controller: attach (or adopt) the balancer, keep the kernel
    /// in line with the configuration, the API and health checks.
    ///
    /// Example: `lb-ctl daemon --config /etc/lb/lb.toml`
    Daemon(daemon::DaemonArgs),
    /// VIPs: add, del (through the daemon, or in fleet mode in the
    /// fleet's store), list (what the daemon runs).
    Vip(vip::VipArgs),
    /// Reals: add, del, weight, drain (through the daemon, or in fleet
    /// mode in the fleet's store), list (what the daemon runs).
    Real(real::RealArgs),
    /// What the daemon runs.
    ///
    /// Example: `lb-ctl status --json`
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Counters, and traffic per VIP and per real, with rates.
    ///
    /// Example: `lb-ctl stats`
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Health checks and their state.
    ///
    /// Example: `lb-ctl health`
    Health {
        #[arg(long)]
        json: bool,
    },
    /// Capture the balancer's decisions into a pcapng file: each packet
    /// annotated with its verdict, reason, VIP and real; filtered by VIP,
    /// real and verdict; sampled; bounded by a count and a duration.
    ///
    /// Example: `lb-ctl capture --verdict drop --count 100 -w drops.pcapng`
    Capture(capture::CaptureArgs),
    /// A live view of VIPs and reals (packets/s, bits/s, health, weight,
    /// BGP state) and drop reasons, refreshed every second; `s` sorts, `f`
    /// filters by VIP, `q` quits.
    ///
    /// Example: `lb-ctl top`
    Top,
    /// Fleet mode: the desired state every LB host follows, kept in etcd
    /// (apply, get), and what each host made of it (status).
    Fleet(fleet::FleetArgs),
    /// Fleet mode: one replica of the fleet's health checker. Replicas
    /// elect one active checker in etcd; it probes every real of the store
    /// and writes the verdicts there for every LB host (docs/FLEET.md).
    ///
    /// Example: `lb-ctl checker --endpoints 192.0.2.50:2379 --id chk-1`
    Checker(checker::CheckerArgs),
    /// BGP: sessions, announced and withheld VIP addresses.
    #[command(subcommand)]
    Bgp(bgp::BgpCommand),
    /// Re-read the daemon's configuration file (as SIGHUP does); a file
    /// with a mistake is refused and nothing changes.
    ///
    /// Example: `lb-ctl reload`
    Reload,
    /// Load every embedded XDP program into the kernel (the verifier runs)
    /// and report; attaches nothing.
    ///
    /// Example: `lb-ctl check`
    Check,
    /// Attach an XDP program to an interface and pin the attachment, so it
    /// stays after lb-ctl exits.
    ///
    /// Example: `lb-ctl attach --iface eth0 --program pass --mode native`
    Attach(AttachArgs),
    /// The backends' decapsulator: attach, detach, counters.
    Decap(decap::DecapArgs),
    /// What the balancer does with one flow now, and why: the VIP it
    /// matches (or why none), its connection, hash, ring slot and real, the
    /// real's state, the encapsulation, and whether a packet of `--size`
    /// bytes fits. Reads the pinned maps; changes nothing.
    ///
    /// Example: `lb-ctl explain tcp 198.51.100.7:40000 203.0.113.10:80 --size 1500`
    Explain(explain::ExplainArgs),
    /// Print the Maglev table this host builds for a set of reals (digest,
    /// shares): equal digests on two hosts mean equal tables.
    ///
    /// Example: `lb-ctl maglev 198.51.100.10 198.51.100.11=2`
    Maglev(maglev::MaglevArgs),
    /// Remove an attachment made by `attach`.
    ///
    /// Example: `lb-ctl detach --iface eth0 --program pass`
    Detach(DetachArgs),
    /// Write the man pages and shell completions (for packaging).
    #[command(hide = true)]
    Assets(assets::AssetsArgs),
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// The interface to attach to.
    #[arg(long)]
    pub iface: String,
    /// Which program.
    #[arg(long, value_enum)]
    pub program: Program,
    /// XDP mode.
    #[arg(long, value_enum, default_value_t)]
    pub mode: AttachMode,
    /// The bpffs directory for pins.
    #[arg(long, default_value = lb_common::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// The interface to detach from.
    #[arg(long)]
    pub iface: String,
    /// Which program.
    #[arg(long, value_enum)]
    pub program: Program,
    /// The bpffs directory for pins.
    #[arg(long, default_value = lb_common::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

/// A log filter that tracing accepts (refused at parse time, not turned
/// into `info` behind the operator's back).
fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("not a log filter ({e}); e.g. `info`, `debug` or `lb_ctl=debug`"))
}

/// Sets up `tracing` to stderr from the logging options.
pub fn init_tracing(log: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if log.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

impl Args {
    /// Whether the command is the long-running daemon.
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Daemon(_))
    }
}

/// Runs the chosen subcommand.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(ns) = &args.netns {
        lb_ctl::netns::enter(ns)?;
    }
    match args.command {
        Command::Daemon(a) => daemon::run(&a),
        Command::Vip(c) => vip::run(&args.socket, c),
        Command::Real(c) => real::run(&args.socket, c),
        Command::Status { json } => show::status(&args.socket, json),
        Command::Stats { json } => show::stats(&args.socket, json),
        Command::Health { json } => show::health(&args.socket, json),
        Command::Reload => show::reload(&args.socket),
        Command::Bgp(c) => bgp::run(&args.socket, c),
        Command::Check => check::run(),
        Command::Attach(a) => attach::attach(&a),
        Command::Detach(a) => attach::detach(&a),
        Command::Maglev(a) => maglev::run(&a),
        Command::Decap(a) => decap::run(&a),
        Command::Assets(a) => assets::run(&a),
        Command::Explain(a) => explain::run(&args.socket, &a),
        Command::Top => top::run(&args.socket),
        Command::Capture(a) => capture::run(&a),
        Command::Fleet(a) => fleet::run(a),
        Command::Checker(a) => checker::run(a),
    }
}
