//! `lb-ctl daemon`.
use std::{path::PathBuf, process::ExitCode};

#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// The configuration file.
    #[arg(long, default_value = "/etc/lb/lb.toml")]
    pub config: PathBuf,
    /// Check FILE as a start would (the file, then the state file it
    /// names) and exit: 0 and a summary when it would start, non-zero with
    /// `file:line:column: what` when not. Attaches and changes nothing.
    ///
    /// Example: `lb-ctl daemon --check-config /etc/lb/lb.toml`
    #[arg(long, value_name = "FILE")]
    pub check_config: Option<PathBuf>,
}

pub fn run(args: &DaemonArgs) -> anyhow::Result<ExitCode> {
    if let Some(file) = &args.check_config {
        let summary = lb_ctl::daemon::check_config(file)
            .map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
        println!("{summary}");
        return Ok(ExitCode::SUCCESS);
    }
    // Read before any thread starts, and taken out of the environment so
    // that the processes the daemon starts (gobgpd, exec checks) do not
    // talk to systemd in its name.
    let notify = lb_ctl::daemon::notify::Notifier::from_env();
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        // SAFETY: no other thread runs yet (the runtime starts below).
        unsafe { std::env::remove_var(var) };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(lb_ctl::daemon::run(&args.config, notify))?;
    Ok(ExitCode::SUCCESS)
}
