//! The control API's server: a gRPC service on a Unix socket (mode 0600)
//! that turns each request into a [`Command`] for the controller and waits
//! for its answer.
use std::{
    future::Future,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use tokio::{
    net::UnixListener,
    sync::{mpsc, oneshot},
};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::commands::{Change, Command, RequestError};
use super::pb::{self, control_server::ControlServer};
use crate::vocab::VipId;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on the control socket {}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds the socket: its directory is made, a stale socket removed, and
/// only root may connect (0600).
pub fn bind(path: &Path) -> Result<UnixListener, ServeError> {
    let err = |source| ServeError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    Ok(listener)
}

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: UnixListener,
    commands: mpsc::Sender<Command>,
    shutdown: impl Future<Output = ()>,
) {
    let service = ControlServer::new(Service { commands });
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
    {
        tracing::error!(error = %e, "control API stopped");
    }
}

struct Service {
    commands: mpsc::Sender<Command>,
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NotFound(m) => Status::not_found(m),
            RequestError::Exists(m) => Status::already_exists(m),
            RequestError::Invalid(m) => Status::invalid_argument(m),
            RequestError::Internal(m) => Status::internal(m),
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

fn vip_of(v: Option<&pb::Vip>) -> Result<VipId, Status> {
    VipId::try_from(v.ok_or_else(|| invalid("no VIP given"))?).map_err(invalid)
}

fn addr_of(s: &str) -> Result<std::net::IpAddr, Status> {
    s.parse()
        .map_err(|_| invalid(format!("`{s}` is not an IP address")))
}

impl Service {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| Status::unavailable("the daemon is stopping"))?;
        rx.await
            .map_err(|_| Status::unavailable("the daemon is stopping"))
    }

    async fn change(&self, change: Change) -> Result<Response<pb::ChangeReply>, Status> {
        let summary = self.ask(|tx| Command::Change(change, tx)).await??;
        Ok(Response::new(pb::ChangeReply { summary }))
    }
}

#[tonic::async_trait]
impl pb::control_server::Control for Service {
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusReply>, Status> {
        Ok(Response::new(self.ask(Command::Status).await?))
    }

    async fn list_vips(
        &self,
        _: Request<pb::ListVipsRequest>,
    ) -> Result<Response<pb::ListVipsReply>, Status> {
        Ok(Response::new(self.ask(Command::ListVips).await?))
    }

    async fn add_vip(
        &self,
        r: Request<pb::AddVipRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let vip = super::vip_config(&r.into_inner()).map_err(invalid)?;
        self.change(Change::AddVip(vip)).await
    }

    async fn del_vip(
        &self,
        r: Request<pb::DelVipRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        self.change(Change::DelVip(vip_of(r.into_inner().vip.as_ref())?))
            .await
    }

    async fn add_real(
        &self,
        r: Request<pb::AddRealRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let (id, real) = super::real_config(&r.into_inner()).map_err(invalid)?;
        self.change(Change::AddReal(id, real)).await
    }

    async fn del_real(
        &self,
        r: Request<pb::DelRealRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        self.change(Change::DelReal(
            vip_of(r.vip.as_ref())?,
            addr_of(&r.address)?,
        ))
        .await
    }

    async fn set_weight(
        &self,
        r: Request<pb::SetWeightRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        // The weight is checked with the VIP set, by the rules.
        self.change(Change::SetWeight(
            vip_of(r.vip.as_ref())?,
            addr_of(&r.address)?,
            r.weight,
        ))
        .await
    }

    async fn stats(
        &self,
        _: Request<pb::StatsRequest>,
    ) -> Result<Response<pb::StatsReply>, Status> {
        Ok(Response::new(self.ask(Command::Stats).await?))
    }

    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthReply>, Status> {
        Ok(Response::new(self.ask(Command::Health).await?))
    }

    async fn bgp_status(
        &self,
        _: Request<pb::BgpStatusRequest>,
    ) -> Result<Response<pb::BgpStatusReply>, Status> {
        Ok(Response::new(self.ask(Command::BgpStatus).await?))
    }

    async fn reload(
        &self,
        _: Request<pb::ReloadRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let summary = self.ask(Command::Reload).await??;
        Ok(Response::new(pb::ChangeReply { summary }))
    }
}
