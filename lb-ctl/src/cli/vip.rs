//! `lb-ctl vip add|del|list`.
use std::{path::Path, process::ExitCode};

use lb_ctl::{
    api::pb,
    vocab::{Encapsulation, VipId},
};

use super::{
    client::{print_json, status_error, with_client},
    edit::{self, EditTarget, Request},
    health_args::HealthArgs,
};

#[derive(Debug, clap::Args)]
pub struct VipArgs {
    #[command(flatten)]
    pub target: EditTarget,
    #[command(subcommand)]
    pub command: VipCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum VipCommand {
    /// Add a VIP (no reals yet: `lb-ctl real add`).
    ///
    /// Example: `lb-ctl vip add 203.0.113.10:80/tcp --health http --health-path /healthz`
    Add {
        /// ADDRESS:PORT/PROTOCOL; no port for every port (203.0.113.20/tcp).
        vip: VipId,
        /// Maglev ring size (a prime).
        #[arg(long, default_value_t = lb_ctl::maglev::DEFAULT_RING_SIZE)]
        ring_size: u32,
        /// Hash every packet; keep no connection table for this VIP.
        #[arg(long)]
        no_conn_table: bool,
        /// QUIC (UDP VIPs): send short-header packets to the real whose id
        /// their connection id carries (`[dataplane] quic_*`; the id is
        /// the one `real list` shows).
        #[arg(long)]
        quic: bool,
        /// How packets reach its reals: IP-in-IP, or GUE (UDP to
        /// `[dataplane] gue_port`); a real may override it.
        #[arg(long, value_enum, default_value_t)]
        encap: Encapsulation,
        /// Healthy reals needed for its address to be announced (BGP).
        #[arg(long, default_value_t = 1)]
        min_healthy: u32,
        /// BGP community of its address, ASN:VALUE (repeatable).
        #[arg(long = "community")]
        communities: Vec<String>,
        /// BGP MED of its address.
        #[arg(long)]
        med: Option<u32>,
        #[command(flatten)]
        health: HealthArgs,
    },
    /// Remove a VIP and its reals.
    ///
    /// Example: `lb-ctl vip del 203.0.113.10:80/tcp`
    Del { vip: VipId },
    /// List the VIPs and their reals.
    ///
    /// Example: `lb-ctl vip list --json`
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(socket: &Path, args: VipArgs) -> anyhow::Result<ExitCode> {
    let request = match args.command {
        VipCommand::Add {
            vip,
            ring_size,
            no_conn_table,
            quic,
            encap,
            min_healthy,
            communities,
            med,
            health,
        } => Request::AddVip(pb::AddVipRequest {
            vip: Some((&vip).into()),
            ring_size: Some(ring_size),
            no_conn_table,
            quic,
            encap: encap.to_string(),
            health: health.to_pb(),
            min_healthy: Some(min_healthy),
            communities,
            med,
        }),
        VipCommand::Del { vip } => Request::DelVip(vip),
        VipCommand::List { json } => {
            return with_client(socket, |mut c| async move {
                let list = c
                    .list_vips(pb::ListVipsRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner();
                if json {
                    return print_json(&list);
                }
                print_vips(&list, None);
                Ok(ExitCode::SUCCESS)
            });
        }
    };
    edit::run(socket, &args.target, request)
}

/// A VIP as the CLI writes it.
pub fn vip_text(v: Option<&pb::Vip>) -> String {
    v.and_then(|v| VipId::try_from(v).ok())
        .map_or_else(|| "?".into(), |id| id.to_string())
}

/// Prints VIPs and their reals (only `only`, if given).
pub fn print_vips(list: &pb::ListVipsReply, only: Option<&VipId>) {
    for v in &list.vips {
        let id = vip_text(v.vip.as_ref());
        if only.is_some_and(|o| o.to_string() != id) {
            continue;
        }
        let check = v
            .health
            .as_ref()
            .map_or("none".to_owned(), |h| h.kind.clone());
        println!(
            "{id}  ring {}  id {}  check {check}{}{}{}",
            v.ring_size,
            v.vip_id,
            if v.no_conn_table {
                "  no-conn-table"
            } else {
                ""
            },
            if v.encap == "gue" { "  encap gue" } else { "" },
            if v.quic { "  quic" } else { "" }
        );
        for r in &v.reals {
            println!(
                "    {:<40} weight {:<5} {:<9} id {:<6} {}",
                r.address, r.weight, r.state, r.real_id, r.encap
            );
        }
    }
}
