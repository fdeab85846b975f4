//! `lb-ctl real add|del|weight|drain|list`.
use std::{net::IpAddr, path::Path, process::ExitCode};

use lb_ctl::{
    api::pb,
    vocab::{Encapsulation, VipId},
};

use super::{
    client::{print_json, status_error, with_client},
    edit::{self, EditTarget, Request},
    health_args::HealthArgs,
    vip::print_vips,
};

#[derive(Debug, clap::Args)]
pub struct RealArgs {
    #[command(flatten)]
    pub target: EditTarget,
    #[command(subcommand)]
    pub command: RealCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum RealCommand {
    /// Add a real to a VIP.
    ///
    /// Example: `lb-ctl real add --vip 203.0.113.10:80/tcp 192.0.2.18 --weight 2`
    Add {
        #[arg(long)]
        vip: VipId,
        address: IpAddr,
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Its own encapsulation (otherwise the VIP's): `ipip` or `gue`.
        #[arg(long, value_enum)]
        encap: Option<Encapsulation>,
        /// A check of its own (otherwise the VIP's).
        #[command(flatten)]
        health: HealthArgs,
    },
    /// Remove a real from a VIP: its flows move to the others.
    ///
    /// Example: `lb-ctl real del --vip 203.0.113.10:80/tcp 192.0.2.18`
    Del {
        #[arg(long)]
        vip: VipId,
        address: IpAddr,
    },
    /// Set a real's weight (0 drains it).
    ///
    /// Example: `lb-ctl real weight --vip 203.0.113.10:80/tcp 192.0.2.18 3`
    Weight {
        #[arg(long)]
        vip: VipId,
        address: IpAddr,
        weight: u32,
    },
    /// Drain a real: established flows stay, new ones go elsewhere
    /// (weight 0; `real weight` brings it back).
    ///
    /// Example: `lb-ctl real drain --vip 203.0.113.10:80/tcp 192.0.2.18`
    Drain {
        #[arg(long)]
        vip: VipId,
        address: IpAddr,
    },
    /// List the reals (of one VIP, or all).
    ///
    /// Example: `lb-ctl real list --vip 203.0.113.10:80/tcp`
    List {
        #[arg(long)]
        vip: Option<VipId>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(socket: &Path, args: RealArgs) -> anyhow::Result<ExitCode> {
    let request = match args.command {
        RealCommand::Add {
            vip,
            address,
            weight,
            encap,
            health,
        } => Request::AddReal(pb::AddRealRequest {
            vip: Some((&vip).into()),
            address: address.to_string(),
            weight,
            health: health.to_pb(),
            encap: encap.map(|e| e.to_string()).unwrap_or_default(),
        }),
        RealCommand::Del { vip, address } => Request::DelReal(vip, address),
        RealCommand::Weight {
            vip,
            address,
            weight,
        } => Request::SetWeight(vip, address, weight),
        RealCommand::Drain { vip, address } => Request::SetWeight(vip, address, 0),
        RealCommand::List { vip, json } => {
            return with_client(socket, |mut c| async move {
                let mut list = c
                    .list_vips(pb::ListVipsRequest {})
                    .await
                    .map_err(status_error)?
                    .into_inner();
                if let Some(only) = &vip {
                    let want = pb::Vip::from(only);
                    list.vips.retain(|v| v.vip.as_ref() == Some(&want));
                    anyhow::ensure!(!list.vips.is_empty(), "not found: no VIP {only}");
                }
                if json {
                    return print_json(&list);
                }
                print_vips(&list, vip.as_ref());
                Ok(ExitCode::SUCCESS)
            });
        }
    };
    edit::run(socket, &args.target, request)
}
