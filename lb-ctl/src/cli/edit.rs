//! Where `lb-ctl vip`/`real` changes go: to this host's daemon, or, in
//! fleet mode, to the fleet's store, once for every host serving the VIP.
//! The store is the one the daemon says it follows, or the one
//! `--fleet-endpoints` names (from a machine without a daemon).
use std::{net::IpAddr, path::Path, process::ExitCode};

use lb_ctl::{
    api::{
        self, client,
        commands::Change,
        pb::{self, control_client::ControlClient},
    },
    config::DEFAULT_FLEET_PREFIX,
    errors::chain,
    fleet::{edit::edit, store::Store},
    vocab::VipId,
};
use tonic::transport::Channel;

use super::{client::status_error, fleet::store_settings};

/// The store to change instead of asking the daemon.
#[derive(Debug, clap::Args)]
pub struct EditTarget {
    /// Fleet mode: make changes in the fleet's store at these etcd members
    /// (comma-separated). Without it, a daemon that follows a store names
    /// it, and a daemon that does not takes the change itself.
    #[arg(
        long = "fleet-endpoints",
        env = "LB_FLEET_ENDPOINTS",
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Vec<String>,
    /// The fleet's key prefix (with `--fleet-endpoints`).
    #[arg(long = "fleet-prefix", env = "LB_FLEET_PREFIX", default_value = DEFAULT_FLEET_PREFIX, global = true)]
    pub prefix: String,
}

/// A change as the CLI asks for it.
pub enum Request {
    AddVip(pb::AddVipRequest),
    DelVip(VipId),
    AddReal(pb::AddRealRequest),
    DelReal(VipId, IpAddr),
    SetWeight(VipId, IpAddr, u32),
}

impl Request {
    /// The change, parsed and with its defaults, as the daemon makes it.
    fn change(&self) -> anyhow::Result<Change> {
        Ok(match self {
            Request::AddVip(r) => Change::AddVip(api::vip_config(r)?),
            Request::DelVip(id) => Change::DelVip(*id),
            Request::AddReal(r) => {
                let (id, real) = api::real_config(r)?;
                Change::AddReal(id, real)
            }
            Request::DelReal(id, addr) => Change::DelReal(*id, *addr),
            Request::SetWeight(id, addr, w) => Change::SetWeight(*id, *addr, *w),
        })
    }

    /// Sends the change to the daemon; its summary.
    async fn send(self, c: &mut ControlClient<Channel>) -> anyhow::Result<String> {
        let reply = match self {
            Request::AddVip(r) => c.add_vip(r).await,
            Request::DelVip(id) => {
                c.del_vip(pb::DelVipRequest {
                    vip: Some((&id).into()),
                })
                .await
            }
            Request::AddReal(r) => c.add_real(r).await,
            Request::DelReal(id, addr) => {
                c.del_real(pb::DelRealRequest {
                    vip: Some((&id).into()),
                    address: addr.to_string(),
                })
                .await
            }
            Request::SetWeight(id, addr, weight) => {
                c.set_weight(pb::SetWeightRequest {
                    vip: Some((&id).into()),
                    address: addr.to_string(),
                    weight,
                })
                .await
            }
        };
        Ok(reply.map_err(status_error)?.into_inner().summary)
    }
}

/// Makes the change where it belongs and prints what it did.
pub fn run(socket: &Path, target: &EditTarget, request: Request) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (endpoints, prefix) = if target.endpoints.is_empty() {
            let mut c = client::connect(socket).await?;
            let status = c
                .status(pb::StatusRequest {})
                .await
                .map_err(status_error)?
                .into_inner();
            if status.fleet_endpoints.is_empty() {
                println!("{}", request.send(&mut c).await?);
                return Ok(ExitCode::SUCCESS);
            }
            (status.fleet_endpoints, status.fleet_prefix)
        } else {
            (target.endpoints.clone(), target.prefix.clone())
        };
        let change = request.change()?;
        let settings = store_settings(&endpoints, &prefix)?;
        let mut store = Store::connect(&settings)
            .await
            .map_err(|e| anyhow::anyhow!(chain(&e)))?;
        let done = edit(&mut store, change)
            .await
            .map_err(|e| anyhow::anyhow!(chain(&e)))?;
        println!(
            "{} in the fleet's store at revision {} (lb-ctl fleet status: which hosts applied it)",
            done.summary, done.revision
        );
        Ok(ExitCode::SUCCESS)
    })
}
