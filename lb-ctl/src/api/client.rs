//! The control API's client, as the CLI uses it: a gRPC channel over the
//! daemon's Unix socket.
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use super::pb::control_client::ControlClient;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the lb-ctl daemon at {} (is `lb-ctl daemon` running? --socket names another socket)", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to the daemon's socket at `path`.
pub async fn connect(path: &Path) -> Result<ControlClient<Channel>, ClientError> {
    let socket = path.to_owned();
    // The URI is required by the API but unused: the connector dials the socket.
    let channel = Endpoint::from_static("http://lb-ctl.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(socket).await?)) }
        }))
        .await
        .map_err(|source| ClientError::Connect {
            path: path.to_owned(),
            source,
        })?;
    Ok(ControlClient::new(channel))
}
