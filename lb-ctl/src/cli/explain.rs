//! `lb-ctl explain`: what the balancer does with one flow now (read from
//! the pinned maps; nothing is loaded or written).
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::bail;
use lb_ctl::{
    explain::{self, FlowQuery, pinned::PinnedMaps},
    vocab::Proto,
};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The flow's protocol: tcp or udp.
    #[arg(value_parser = parse_proto)]
    pub proto: Proto,
    /// The client's address and port: 198.51.100.7:40000, [2001:db8::7]:40000.
    pub src: SocketAddr,
    /// The address and port the client sends to: 203.0.113.10:80.
    pub dst: SocketAddr,
    /// Also say whether an IP packet of this many bytes fits the MTU once
    /// encapsulated (and what the client is told if not).
    #[arg(long, value_name = "BYTES")]
    pub size: Option<u16>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The balancer's pin directory.
    #[arg(long, default_value = lb_common::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

fn parse_proto(s: &str) -> Result<Proto, String> {
    match s {
        "tcp" => Ok(Proto::Tcp),
        "udp" => Ok(Proto::Udp),
        _ => Err(format!("`{s}` is not tcp or udp")),
    }
}

/// The daemon's health view, if one answers at `socket` within a second.
fn daemon_health(socket: &std::path::Path) -> Option<lb_ctl::api::pb::HealthReply> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(async {
        let ask = async {
            let mut c = lb_ctl::api::client::connect(socket).await.ok()?;
            c.health(lb_ctl::api::pb::HealthRequest {})
                .await
                .ok()
                .map(tonic::Response::into_inner)
        };
        tokio::time::timeout(std::time::Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    })
}

pub fn run(socket: &std::path::Path, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    if args.src.is_ipv4() != args.dst.is_ipv4() {
        bail!(
            "{} and {} are of different address families: no packet carries both",
            args.src,
            args.dst
        );
    }
    let maps =
        PinnedMaps::open(&args.pin_dir).map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
    let query = FlowQuery {
        proto: args.proto,
        src: args.src,
        dst: args.dst,
        size: args.size,
    };
    let mut e = explain::explain(&maps, &query);
    if let Some(health) = daemon_health(socket) {
        explain::add_health(&mut e, &health);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print!("{}", explain::text(&e));
    }
    Ok(ExitCode::SUCCESS)
}
