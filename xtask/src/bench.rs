//! `cargo xtask bench`: the benchmarks, built in release mode, printing
//! their figures (markdown tables, ratios against a baseline measured in the
//! same run). `docs/BENCHMARKS.md` records them.
use crate::{
    baseline,
    cmd::{self, step},
    profile, setup,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// Maglev table build time.
    Maglev,
    /// Nanoseconds per packet of the XDP balancer (root).
    Dataplane,
    /// Fleet mode on the lab: propagation, a large state (root, etcd).
    Fleet,
    /// End to end on veth: lb against nftables DNAT and HAProxy (root;
    /// installs nftables, HAProxy, nginx, wrk and perf).
    Lab,
    /// Everything.
    All,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[arg(value_enum, default_value = "all")]
    which: Which,
    /// Data plane: also build the balancer of this revision (a commit,
    /// branch or tag) and run both in one run, interleaved (A B B A ...),
    /// printing each path's paired ratio this tree / baseline.
    #[arg(long, value_name = "REV")]
    baseline: Option<String>,
    /// Runs per path (data plane: each of 2,000,000 packets, default 5, or
    /// 10 pairs with --baseline; lab: rounds per row, default 3). The
    /// median is reported.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Data plane: rounds of fresh loads the runs are shared among (both
    /// sides loaded again, tables filled again; default 5 with --baseline,
    /// else 1), so that a load that happens to run faster falls on each
    /// side in turn.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rounds: Option<u32>,
    /// Data plane: where the time of the rows whose name contains TEXT
    /// (several texts: separated by `|`) goes (perf, sampling only during those rows' runs; the other rows
    /// are left out). Not with --baseline.
    #[arg(long, value_name = "TEXT")]
    profile: Option<String>,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.baseline.is_some() && args.which != Which::Dataplane {
        anyhow::bail!("--baseline is an option of `cargo xtask bench dataplane`");
    }
    if args.runs.is_some() && !matches!(args.which, Which::Dataplane | Which::Lab) {
        anyhow::bail!("--runs is an option of `cargo xtask bench dataplane` and `bench lab`");
    }
    if (args.rounds.is_some() || args.profile.is_some()) && args.which != Which::Dataplane {
        anyhow::bail!("--rounds and --profile are options of `cargo xtask bench dataplane`");
    }
    if args.profile.is_some() && args.baseline.is_some() {
        anyhow::bail!("--profile profiles this tree alone: not with --baseline");
    }
    setup::run()?;
    if matches!(args.which, Which::Maglev | Which::All) {
        step("benchmark: Maglev table build");
        cmd::run(cmd::cargo().args(["bench", "-p", "lb-ctl", "--bench", "maglev"]))?;
    }
    if matches!(args.which, Which::Dataplane | Which::All) {
        let mut bench = cmd::cargo();
        bench.args(["bench", "-p", "lb-tests", "--bench", "dataplane"]);
        if let Some(rev) = &args.baseline {
            let base = baseline::build(rev)?;
            bench
                .env("LB_BENCH_BASELINE", &base.object)
                .env("LB_BENCH_BASELINE_REV", format!("{rev} ({:.12})", base.sha));
        }
        if let Some(runs) = args.runs {
            bench.env("LB_BENCH_RUNS", runs.to_string());
        }
        if let Some(rounds) = args.rounds {
            bench.env("LB_BENCH_ROUNDS", rounds.to_string());
        }
        if let Some(row) = &args.profile {
            setup::install_packages(&[("linux-perf", "perf, to sample where the time goes")])?;
            profile::run(&bench, row)?;
        } else {
            step("benchmark: XDP data plane (BPF_PROG_TEST_RUN, live frames on veth)");
            cmd::run(&mut bench)?;
        }
    }
    if matches!(args.which, Which::Lab | Which::All) {
        setup::install_packages(setup::BENCH_LAB_PACKAGES)?;
        step("benchmark: lb against nftables DNAT and HAProxy, end to end on veth");
        build_lab_bins()?;
        let mut bench = cmd::cargo();
        bench.args(["bench", "-p", "lb-tests", "--bench", "lab"]);
        if let Some(runs) = args.runs {
            bench.env("LB_BENCH_RUNS", runs.to_string());
        }
        cmd::run(&mut bench)?;
    }
    if matches!(args.which, Which::Fleet | Which::All) {
        step("benchmark: fleet mode on the lab (etcd, two LB hosts)");
        build_lab_bins()?;
        cmd::run(cmd::cargo().args(["bench", "-p", "lb-tests", "--bench", "fleet"]))?;
    }
    Ok(())
}

/// The binaries the lab benches run beside them (lb-ctl: the daemon, the
/// decapsulator; lb-lab-server), in release mode.
fn build_lab_bins() -> anyhow::Result<()> {
    cmd::run(cmd::cargo().args([
        "build",
        "--release",
        "-p",
        "lb-ctl",
        "-p",
        "lb-tests",
        "--bins",
    ]))
}
