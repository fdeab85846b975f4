//! `cargo xtask soak`: the end-to-end tests run many times in a row under
//! CPU load, to show that a timing-sensitive test is green every time and
//! not just on a quiet machine.
//!
//! The test binaries are built once (`cargo test --no-run`), `stress-ng`
//! keeps every CPU busy, and each round runs every chosen binary; each
//! binary's output goes to `target/soak/`, and the closing line counts the
//! rounds that passed and failed.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    cmd::{self, step},
    setup,
};

#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Rounds; each runs every chosen test binary once.
    #[arg(long, default_value_t = 30)]
    runs: u32,
    /// CPU-bound load workers beside the tests (0: none; default: one per
    /// CPU).
    #[arg(long)]
    load: Option<usize>,
    /// The integration test binaries of `tests/` to run (default: the
    /// end-to-end ones: bgp, lab_e2e, daemon).
    #[arg(long = "test", value_name = "NAME")]
    tests: Vec<String>,
    /// Passed on to every test binary, e.g. a test name filter.
    #[arg(last = true)]
    rest: Vec<String>,
}

/// The end-to-end tests: lab namespaces, real daemons, real routers.
const END_TO_END: [&str; 3] = ["bgp", "lab_e2e", "daemon"];

/// A background CPU load, stopped when dropped.
struct Load(Child);

impl Load {
    fn start(workers: usize) -> anyhow::Result<Load> {
        let child = Command::new("stress-ng")
            .args(["--cpu", &workers.to_string(), "--quiet"])
            // Bounded even if this process dies without dropping it.
            .args(["--timeout", "6h"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "start stress-ng (Debian package stress-ng; `cargo xtask setup` installs it)",
            )?;
        Ok(Load(child))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // stress-ng's workers follow their parent's SIGTERM.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Builds the workspace's tests once; returns the executables of `names`.
fn build_tests(names: &[String]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    step("building the tests once (cargo test --no-run)");
    let out = cmd::stdout(cmd::cargo().args([
        "test",
        "--workspace",
        "--no-run",
        "--message-format=json",
    ]))?;
    let mut found = Vec::new();
    for line in out.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let target = &msg["target"];
        let is_test = target["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "test"));
        let (Some(name), Some(exe)) = (target["name"].as_str(), msg["executable"].as_str()) else {
            continue;
        };
        if is_test && names.iter().any(|n| n == name) {
            found.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    for n in names {
        ensure!(
            found.iter().any(|(f, _)| f == n),
            "no integration test named `{n}` in tests/tests/"
        );
    }
    found.sort_by_key(|(n, _)| names.iter().position(|m| m == n));
    Ok(found)
}

pub fn run(args: &SoakArgs) -> anyhow::Result<()> {
    setup::run()?;
    ensure!(
        setup::is_root(),
        "the end-to-end tests create network namespaces: run the soak as root"
    );
    let names: Vec<String> = if args.tests.is_empty() {
        END_TO_END.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.tests.clone()
    };
    let binaries = build_tests(&names)?;
    let logs = cmd::workspace_root().join("target/soak");
    std::fs::create_dir_all(&logs)?;
    let workers = args
        .load
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let _load = if workers > 0 {
        step(&format!("CPU load: stress-ng --cpu {workers}"));
        Some(Load::start(workers)?)
    } else {
        None
    };
    step(&format!(
        "{} rounds of {} (logs in {})",
        args.runs,
        names.join(", "),
        logs.display()
    ));
    let (mut passed, mut failed) = (0u32, 0u32);
    let mut failures = Vec::new();
    for round in 1..=args.runs {
        let started = Instant::now();
        let mut round_ok = true;
        let mut line = format!("    round {round:>3}:");
        for (name, exe) in &binaries {
            let log = logs.join(format!("{round:03}-{name}.log"));
            let file = std::fs::File::create(&log)?;
            let t = Instant::now();
            let status = Command::new(exe)
                .args(&args.rest)
                .current_dir(cmd::workspace_root().join("tests"))
                .stdout(file.try_clone()?)
                .stderr(file)
                .status()
                .with_context(|| format!("run {}", exe.display()))?;
            let ok = status.success();
            line.push_str(&format!(
                " {name} {} ({:.0} s)",
                if ok { "ok" } else { "FAILED" },
                t.elapsed().as_secs_f64()
            ));
            if !ok {
                round_ok = false;
                failures.push(log);
            }
        }
        println!("{line}  [{:.0} s]", started.elapsed().as_secs_f64());
        if round_ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    for f in &failures {
        println!("    failed: {}", f.display());
    }
    println!("soak: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} of {} rounds failed", args.runs);
    }
    Ok(())
}
