//! `lb-lab`: the lab by hand. `cargo xtask lab ...` and `cargo xtask demo`
//! build the workspace and run this.
//!
//! - `lb-lab up`: build the lab and leave it running (namespaces `lab-*`).
//! - `lb-lab status`: what is up, with counters.
//! - `lb-lab down`: remove everything (also after a crash).
//! - `lb-lab demo [--keep]`: up, traffic, a readable report, a backend
//!   failure, then down (unless `--keep`).
//! - `lb-lab demo-fleet [--keep]`: the lab in fleet mode (etcd, two
//!   checkers), a VIP added for the fleet, a checker killed, etcd stopped.
use std::process::ExitCode;

use lb_tests::lab::{self, LabBins};

/// The persistent lab's prefix: namespaces `lab-r`, `lab-c1`, ...
const PREFIX: &str = "lab";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bins = LabBins::in_dir(
        std::env::current_exe()
            .expect("own path")
            .parent()
            .expect("in a directory"),
    );
    let keep = args.iter().any(|a| a == "--keep");
    let result = match args.first().map(String::as_str) {
        Some("up") => lab::cli::up(PREFIX, bins),
        Some("down") => {
            lab::down(PREFIX);
            println!("lab down");
            Ok(())
        }
        Some("status") => lab::cli::status(PREFIX, bins),
        Some("demo") => lab::cli::demo(PREFIX, bins, keep),
        Some("demo-fleet") => lab::demo_fleet::demo_fleet(PREFIX, bins, keep),
        _ => {
            eprintln!("usage: lb-lab up|down|status|demo|demo-fleet [--keep]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lb-lab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
