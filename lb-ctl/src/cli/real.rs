//! `lb-ctl real add|del|weight|drain|list`.
use std::{net::IpAddr, path::Path, process::ExitCode};

use lb_ctl::{api::pb, vocab::VipId};

use super::{
    client::{print_json, status_error, with_client},
    health_args::HealthArgs,
    vip::print_vips,
};

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

pub fn run(socket: &Path, cmd: RealCommand) -> anyhow::Result<ExitCode> {
    with_client(socket, |mut c| async move {
        let summary = match cmd {
            RealCommand::Add {
                vip,
                address,
                weight,
                health,
            } => c
                .add_real(pb::AddRealRequest {
                    vip: Some((&vip).into()),
                    address: address.to_string(),
                    weight,
                    health: health.to_pb(),
                })
                .await
                .map_err(status_error)?,
            RealCommand::Del { vip, address } => c
                .del_real(pb::DelRealRequest {
                    vip: Some((&vip).into()),
                    address: address.to_string(),
                })
                .await
                .map_err(status_error)?,
            RealCommand::Weight {
                vip,
                address,
                weight,
            } => c
                .set_weight(pb::SetWeightRequest {
                    vip: Some((&vip).into()),
                    address: address.to_string(),
                    weight,
                })
                .await
                .map_err(status_error)?,
            RealCommand::Drain { vip, address } => c
                .set_weight(pb::SetWeightRequest {
                    vip: Some((&vip).into()),
                    address: address.to_string(),
                    weight: 0,
                })
                .await
                .map_err(status_error)?,
            RealCommand::List { vip, json } => {
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
                return Ok(ExitCode::SUCCESS);
            }
        };
        println!("{}", summary.into_inner().summary);
        Ok(ExitCode::SUCCESS)
    })
}
