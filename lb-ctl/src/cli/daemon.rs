//! `lb-ctl daemon`.
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The configuration file.
    #[arg(long, default_value = "/etc/lb/lb.toml")]
    pub config: PathBuf,
}

pub fn run(args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(lb_ctl::daemon::run(&args.config))?;
    Ok(ExitCode::SUCCESS)
}
