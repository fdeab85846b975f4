//! `cargo xtask test`: the README's test command, and what CI runs.
//!
//! Set-up, then formatting and clippy, then the Debian package (release
//! build; its tests read it from `LB_DEB`), then one `cargo test` of the
//! workspace: unit tests and the kernel tests in `tests/` share one build.
use anyhow::bail;

use crate::{
    cmd::{self, step},
    package, setup,
};

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip `cargo fmt --check` and clippy.
    #[arg(long)]
    no_lint: bool,
    /// Passed on to `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    rest: Vec<String>,
}

pub fn run(args: &TestArgs) -> anyhow::Result<()> {
    setup::run()?;
    if std::env::var("CI").as_deref() == Ok("true") && !setup::is_root() {
        bail!("CI=true but not root: the kernel tests need root and must not be skipped in CI");
    }
    if !args.no_lint {
        step("formatting (cargo fmt --check)");
        cmd::run(cmd::cargo().args(["fmt", "--all", "--", "--check"]))?;
        step("lints (cargo clippy -D warnings)");
        cmd::run(cmd::cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]))?;
    }
    // The package first: its tests (tests/tests/package.rs) check the
    // .deb named in LB_DEB.
    let deb = package::build(&cmd::workspace_root().join("target/package"))?;
    step("tests: unit tests and kernel tests (real XDP, real namespaces)");
    cmd::run(
        cmd::cargo()
            .arg("test")
            .env("LB_DEB", &deb)
            .arg("--")
            .args(&args.rest),
    )?;
    println!("==> all tests passed");
    Ok(())
}
