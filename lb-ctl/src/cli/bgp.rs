//! `lb-ctl bgp status`.
use std::{path::Path, process::ExitCode};

use lb_ctl::api::pb;

use super::client::{print_json, status_error, with_client};

#[derive(Debug, clap::Subcommand)]
pub enum BgpCommand {
    /// Sessions and their state, what is announced, what is withheld and
    /// why.
    ///
    /// Example: `lb-ctl bgp status --json`
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(socket: &Path, cmd: BgpCommand) -> anyhow::Result<ExitCode> {
    let BgpCommand::Status { json } = cmd;
    with_client(socket, |mut c| async move {
        let s = c
            .bgp_status(pb::BgpStatusRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        if json {
            return print_json(&s);
        }
        if !s.enabled {
            println!("BGP is off (no [bgp] section)");
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "AS {} router-id {}; gobgpd {} (restarted {} times)",
            s.asn, s.router_id, s.gobgpd, s.gobgpd_restarts
        );
        println!("anycast prefixes: {}", s.anycast_prefixes.join(" "));
        for p in &s.peers {
            println!(
                "neighbor {:<24} AS {:<10} {:<12} {} s",
                p.address, p.asn, p.state, p.uptime_s
            );
        }
        for r in &s.announced {
            println!(
                "announced {:<26} next hop {} med {} communities {}",
                r.prefix,
                r.next_hop,
                r.med,
                r.communities.join(" ")
            );
        }
        for w in &s.withheld {
            println!("withheld  {:<26} {}", w.prefix, w.reason);
        }
        if !s.last_error.is_empty() {
            println!("last error: {}", s.last_error);
        }
        Ok(ExitCode::SUCCESS)
    })
}
