//! `cargo xtask bench`: the benchmarks, built in release mode, printing
//! their figures (markdown tables, ratios against a baseline measured in the
//! same run). `docs/BENCHMARKS.md` records them.
use crate::{
    cmd::{self, step},
    setup,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Maglev table build time.
    Maglev,
    /// Nanoseconds per packet of the XDP balancer (root).
    Dataplane,
    /// Fleet mode on the lab: propagation, a large state (root, etcd).
    Fleet,
    /// Everything.
    All,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[arg(value_enum, default_value = "all")]
    which: Which,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    setup::run()?;
    if matches!(args.which, Which::Maglev | Which::All) {
        step("benchmark: Maglev table build");
        cmd::run(cmd::cargo().args(["bench", "-p", "lb-ctl", "--bench", "maglev"]))?;
    }
    if matches!(args.which, Which::Dataplane | Which::All) {
        step("benchmark: XDP data plane (BPF_PROG_TEST_RUN, live frames on veth)");
        cmd::run(cmd::cargo().args(["bench", "-p", "lb-tests", "--bench", "dataplane"]))?;
    }
    if matches!(args.which, Which::Fleet | Which::All) {
        step("benchmark: fleet mode on the lab (etcd, two LB hosts)");
        // The lab runs the binaries next to the bench: build them too.
        cmd::run(cmd::cargo().args([
            "build",
            "--release",
            "-p",
            "lb-ctl",
            "-p",
            "lb-tests",
            "--bins",
        ]))?;
        cmd::run(cmd::cargo().args(["bench", "-p", "lb-tests", "--bench", "fleet"]))?;
    }
    Ok(())
}
