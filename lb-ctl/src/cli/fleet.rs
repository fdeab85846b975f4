//! `lb-ctl fleet`: the fleet's desired state in etcd (apply, get) and what
//! every host made of it (status).
use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use lb_ctl::{
    config::{self, DEFAULT_DIAL_TIMEOUT, DEFAULT_FLEET_PREFIX, FleetSettings},
    errors::chain,
    fleet::{
        schema::Desired,
        status,
        store::{Store, StoreError},
    },
};
use serde::Serialize;

use super::client::print_json;

/// Which store and fleet: `lb-ctl fleet` and `lb-ctl checker` take these.
#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The etcd members, comma-separated (`HOST:PORT` or `http://HOST:PORT`).
    #[arg(
        long,
        env = "LB_FLEET_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub endpoints: Vec<String>,
    /// The fleet's key prefix.
    #[arg(long, env = "LB_FLEET_PREFIX", default_value = DEFAULT_FLEET_PREFIX)]
    pub prefix: String,
}

#[derive(Debug, clap::Args)]
pub struct FleetArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum FleetCommand {
    /// Make the store's desired state the file's: VIPs written as in the
    /// configuration file (`[[vip]]`), and `[[host]]` tables for hosts that
    /// serve only some VIPs. Validated before anything is written; written
    /// in one transaction that is refused if the desired state changed
    /// since it was read (or since `--if-revision`).
    ///
    /// Example: `lb-ctl fleet --endpoints 192.0.2.50:2379 apply fleet.toml`
    Apply {
        file: PathBuf,
        /// Refuse if the desired state changed after this revision (as
        /// `fleet get` printed it).
        #[arg(long)]
        if_revision: Option<i64>,
    },
    /// The store's desired state, as JSON, with its revision.
    ///
    /// Example: `lb-ctl fleet --endpoints 192.0.2.50:2379 get`
    Get,
    /// Every host: the revision it applied or refused and why, whether it
    /// is connected and current.
    ///
    /// Example: `lb-ctl fleet --endpoints 192.0.2.50:2379 status --json`
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// `fleet get`'s answer.
#[derive(Debug, Serialize)]
struct Got {
    /// The revision of the desired state's last change (for `--if-revision`).
    revision: i64,
    vips: Vec<config::VipConfig>,
    hosts: std::collections::BTreeMap<String, Vec<String>>,
}

/// The store's settings from `--endpoints` and `--prefix`, checked as the
/// `[fleet]` section's are.
pub(super) fn store_settings(endpoints: &[String], prefix: &str) -> anyhow::Result<FleetSettings> {
    let endpoints = endpoints
        .iter()
        .map(|e| config::endpoint_url(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    config::valid_prefix(prefix).map_err(anyhow::Error::msg)?;
    Ok(FleetSettings {
        endpoints,
        prefix: prefix.to_owned(),
        // Not written by these commands.
        host: String::new(),
        lkg: PathBuf::new(),
        dial_timeout: DEFAULT_DIAL_TIMEOUT,
        stale_after: config::DEFAULT_STALE_AFTER,
        max_down_permille: config::DEFAULT_MAX_DOWN_PERMILLE,
    })
}

pub fn run(args: FleetArgs) -> anyhow::Result<ExitCode> {
    let f = store_settings(&args.store.endpoints, &args.store.prefix)?;
    // Read and check the file before reaching for the store.
    let file = match &args.command {
        FleetCommand::Apply { file, .. } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Some(config::parse_fleet_file(file, &text)?)
        }
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut store = Store::connect(&f)
            .await
            .map_err(|e| anyhow::anyhow!(chain(&e)))?;
        let failed = |e: StoreError| anyhow::anyhow!(chain(&e));
        match args.command {
            FleetCommand::Apply { if_revision, .. } => {
                let wanted = Desired::from(file.expect("read above"));
                let vips = wanted.vips.len();
                let done = store.apply(&wanted, if_revision).await.map_err(failed)?;
                if done.puts + done.deletes == 0 {
                    println!("unchanged at revision {} ({vips} VIPs)", done.revision);
                } else {
                    println!(
                        "applied at revision {}: {vips} VIPs; {} keys written, {} deleted",
                        done.revision, done.puts, done.deletes
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            FleetCommand::Get => {
                let (desired, listing) = store.desired().await.map_err(failed)?;
                print_json(&Got {
                    revision: listing.last_change(),
                    vips: desired.vips.into_values().collect(),
                    hosts: desired
                        .hosts
                        .into_iter()
                        .map(|(h, v)| (h, v.iter().map(ToString::to_string).collect()))
                        .collect(),
                })
            }
            FleetCommand::Status { json } => {
                let s = status::read(&mut store).await.map_err(failed)?;
                if json {
                    return print_json(&s);
                }
                println!(
                    "store revision {}; desired state last changed at revision {}",
                    s.revision, s.config_revision
                );
                println!(
                    "{:<20} {:>9} {:>5} {:<12} {:<8} REFUSED",
                    "HOST", "APPLIED", "VIPS", "CONNECTED", "CURRENT"
                );
                for h in &s.hosts {
                    let refused = h.status.refused.as_ref().map_or("-".to_owned(), |r| {
                        format!("revision {}: {}", r.revision, r.error)
                    });
                    println!(
                        "{:<20} {:>9} {:>5} {:<12} {:<8} {refused}",
                        h.status.host,
                        h.status
                            .applied_revision
                            .map_or("-".to_owned(), |r| r.to_string()),
                        h.status.vips,
                        if h.connected { "yes" } else { "no" },
                        if h.current { "yes" } else { "no" },
                    );
                }
                match (&s.round, s.checkers.first()) {
                    (Some(r), _) => println!(
                        "checkers: {} (leader {}); round {} {} ms ago: {} up, {} down, {} unknown",
                        s.checkers.join(", "),
                        r.checker,
                        r.round,
                        s.round_age_ms.unwrap_or(0),
                        r.up,
                        r.down,
                        r.unknown
                    ),
                    (None, Some(_)) => {
                        println!("checkers: {} (no heartbeat yet)", s.checkers.join(", "))
                    }
                    (None, None) => println!("checkers: none (hosts check their reals themselves)"),
                }
                for u in &s.unreadable {
                    println!("unreadable: {u}");
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    })
}
