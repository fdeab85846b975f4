//! Running CLI commands against the daemon: a small runtime, the client,
//! and errors turned into one clear line.
use std::{future::Future, path::Path, process::ExitCode};

use lb_ctl::api::{client, pb::control_client::ControlClient};
use tonic::transport::Channel;

/// Runs `f` with a client of the daemon at `socket`.
pub fn with_client<F, Fut>(socket: &Path, f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(ControlClient<Channel>) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let c = client::connect(socket).await?;
        f(c).await
    })
}

/// A refused request as one line: `not found: no VIP 203.0.113.10:81/tcp`.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    let what = match s.code() {
        tonic::Code::NotFound => "not found",
        tonic::Code::AlreadyExists => "already exists",
        tonic::Code::InvalidArgument => "refused",
        tonic::Code::Unavailable => "unavailable",
        _ => "failed",
    };
    anyhow::anyhow!("{what}: {}", s.message())
}

/// Prints `value` as JSON (the documented `--json` format).
pub fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}
