//! `cargo xtask demo` (the README's first command) and `cargo xtask lab`:
//! set up, build, then run the lab binary (`lb-lab`, from the tests crate)
//! that builds the namespaces, the balancers and the backends.
use std::process::Command;

use crate::{
    cmd::{self, step},
    setup,
};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Which demo: one lab of two sites (default), or `fleet`: the same
    /// lab following etcd with two health checkers.
    #[arg(value_enum, default_value_t)]
    which: Which,
    /// Leave the lab up at the end (`cargo xtask lab down` removes it).
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    /// Traffic, DSR, a backend failure, a site withdrawn and back.
    #[default]
    Site,
    /// etcd, two checkers, a VIP added for the fleet with one command, the
    /// active checker killed, etcd stopped under traffic.
    Fleet,
}

#[derive(Debug, clap::Args)]
pub struct LabArgs {
    #[arg(value_enum)]
    action: LabAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LabAction {
    /// Build the lab and leave it running.
    Up,
    /// Remove the lab (also after a crash).
    Down,
    /// Show what is up, with counters.
    Status,
}

fn lb_lab() -> Command {
    Command::new(cmd::workspace_root().join("target/debug/lb-lab"))
}

fn prepare() -> anyhow::Result<()> {
    setup::run()?;
    cmd::build()?;
    anyhow::ensure!(
        setup::is_root(),
        "the lab creates network namespaces: run it as root"
    );
    Ok(())
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    prepare()?;
    let mut c = lb_lab();
    match args.which {
        Which::Site => {
            step("demo: the lab up, traffic, a backend failure, the lab down");
            c.arg("demo");
        }
        Which::Fleet => {
            step(
                "demo fleet: etcd, two checkers, a VIP for the fleet, a checker killed, etcd stopped",
            );
            c.arg("demo-fleet");
        }
    }
    if args.keep {
        c.arg("--keep");
    }
    cmd::run(&mut c)
}

pub fn lab(args: &LabArgs) -> anyhow::Result<()> {
    match args.action {
        LabAction::Down => cmd::run(lb_lab().arg("down")).or_else(|_| {
            // Not built yet: nothing of ours can be up.
            println!("lb-lab is not built; nothing to take down");
            Ok(())
        }),
        LabAction::Up => {
            prepare()?;
            cmd::run(lb_lab().arg("up"))
        }
        LabAction::Status => cmd::run(lb_lab().arg("status")),
    }
}
