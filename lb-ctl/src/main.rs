//! `lb-ctl`: the command line of the lb load balancer.
use std::process::ExitCode;

use clap::Parser as _;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    if !args.is_daemon() {
        // A command whose reader went away (`lb-ctl stats | head -1`) ends
        // quietly, as Unix tools do, instead of panicking on the write.
        // The daemon keeps SIGPIPE ignored: it writes to sockets.
        // SAFETY: called before any thread starts; SIG_DFL is always valid.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    cli::init_tracing(&args.log);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lb-ctl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
