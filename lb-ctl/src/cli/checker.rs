//! `lb-ctl checker`: one replica of the fleet's health checker (see
//! `lb_ctl::fleet::checker`), until SIGTERM or SIGINT (it then resigns).
use std::process::ExitCode;

use lb_ctl::{
    config::{parse_duration, valid_host_id},
    fleet::checker,
};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, clap::Args)]
pub struct CheckerArgs {
    #[command(flatten)]
    pub store: super::fleet::StoreArgs,
    /// This checker's id in the election (default: the host name).
    #[arg(long)]
    pub id: Option<String>,
    /// The lease of its leadership: a leader gone this long is replaced.
    #[arg(long, default_value = "5s", value_parser = lease_ttl)]
    pub lease_ttl: std::time::Duration,
}

fn lease_ttl(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s) {
        Some(d) if d.as_secs() >= 2 && d.subsec_nanos() == 0 => Ok(d),
        Some(_) => Err("a lease is whole seconds, 2s or more (etcd grants seconds)".into()),
        None => Err(format!("`{s}` is not a duration like 5s")),
    }
}

pub fn run(args: CheckerArgs) -> anyhow::Result<ExitCode> {
    let settings = super::fleet::store_settings(&args.store.endpoints, &args.store.prefix)?;
    let id = match args.id {
        Some(id) => id,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")?
            .trim()
            .to_owned(),
    };
    valid_host_id(&id).map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = stop_tx.send(true);
        });
        tracing::info!(%id, endpoints = ?settings.endpoints, ttl = ?args.lease_ttl, "checker: starting");
        checker::run(settings, id, args.lease_ttl, stop).await;
        Ok(ExitCode::SUCCESS)
    })
}
