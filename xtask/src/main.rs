//! `cargo xtask`: set-up, build, tests, the demo and benchmarks of lb.
//!
//! The README's two commands are `cargo xtask demo` and `cargo xtask test`;
//! both start with `setup`, which installs what this machine lacks.
use std::process::ExitCode;

use clap::Parser as _;

mod baseline;
mod bench;
mod cmd;
mod demo;
mod fuzz;
mod package;
mod profile;
mod setup;
mod soak;
mod test;

#[derive(Debug, clap::Parser)]
#[command(about = "lb's developer commands")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Install what is missing (Debian packages, nightly rust-src,
    /// bpf-linker, bpffs); idempotent.
    Setup,
    /// Set up and build the workspace (lb-ctl with its XDP programs).
    Build,
    /// Set up, build, and run every test (formatting, clippy, unit tests,
    /// kernel tests).
    Test(test::TestArgs),
    /// Run the benchmarks (release build) and print their figures.
    Bench(bench::BenchArgs),
    /// Set up, build, and show the load balancer at work in network
    /// namespaces: clients, a router, two LB hosts, backends.
    Demo(demo::DemoArgs),
    /// The lab by hand: `up`, `status`, `down`.
    Lab(demo::LabArgs),
    /// Fuzz the balancer in the kernel: N seeded packets, well-formed and
    /// damaged, checked against the documented behaviour.
    Fuzz(fuzz::FuzzArgs),
    /// Run the end-to-end tests many times in a row under CPU load
    /// (stress-ng) and count the rounds that passed.
    Soak(soak::SoakArgs),
    /// Build the Debian package (release lb-ctl, systemd units, man pages,
    /// completions) into target/package.
    Package(package::PackageArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Setup => setup::run(),
        Command::Build => setup::run().and_then(|()| cmd::build()),
        Command::Test(a) => test::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Lab(a) => demo::lab(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Soak(a) => soak::run(&a),
        Command::Fuzz(a) => fuzz::run(&a),
        Command::Package(a) => package::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
