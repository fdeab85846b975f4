//! `lb-ctl`: the command line of the lb load balancer.
use std::process::ExitCode;

use clap::Parser as _;

mod cli;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_tracing(&args.log);
    match cli::run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("lb-ctl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
