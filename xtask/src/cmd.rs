//! Running commands: each is printed before it runs, and a failure names it.
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context as _, bail};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits inside the workspace")
        .to_path_buf()
}

/// Prints a step heading.
pub fn step(msg: &str) {
    println!("==> {msg}");
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` with inherited output; fails if it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let what = describe(cmd);
    println!("    $ {what}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{what}`"))?;
    if !status.success() {
        bail!("`{what}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its output, whatever its status.
pub fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    let what = describe(cmd);
    cmd.output()
        .with_context(|| format!("could not start `{what}`"))
}

/// Runs `cmd` quietly; returns its stdout; fails with its stderr if it fails.
pub fn stdout(cmd: &mut Command) -> anyhow::Result<String> {
    let what = describe(cmd);
    let out = output(cmd)?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A `cargo` command run at the workspace root.
pub fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Builds the workspace (lb-ctl and its embedded XDP programs, xtask, tests).
pub fn build() -> anyhow::Result<()> {
    step("building the workspace (lb-ctl embeds the XDP programs it builds)");
    run(cargo().args(["build", "--bins"]))
}
