//! The balancer object of another revision, for `cargo xtask bench
//! dataplane --baseline REV`: the revision's tree is exported with `git
//! archive` (no worktree is registered, the checkout is untouched) under
//! `target/bench-baseline/`, and `cargo check -p lb-ctl` there runs its
//! build script, which compiles the XDP programs in release mode (aya-build
//! always does). The object is copied to `target/bench-baseline/<sha>.o`
//! and reused by later runs.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::cmd::{self, step};

/// A built baseline: the commit it was built from and its object file.
pub struct Baseline {
    pub sha: String,
    pub object: PathBuf,
}

/// Builds (or finds, if built before) the balancer object of `rev`.
pub fn build(rev: &str) -> anyhow::Result<Baseline> {
    let root = cmd::workspace_root();
    let sha = cmd::stdout(Command::new("git").current_dir(&root).args([
        "rev-parse",
        "--verify",
        &format!("{rev}^{{commit}}"),
    ]))
    .with_context(|| format!("`{rev}` is not a commit of this repository"))?
    .trim()
    .to_owned();
    let dir = root.join("target/bench-baseline");
    let object = dir.join(format!("{sha}.o"));
    if object.exists() {
        step(&format!(
            "baseline {rev} ({sha:.12}): object built before, {}",
            object.display()
        ));
        return Ok(Baseline { sha, object });
    }
    step(&format!("baseline {rev} ({sha:.12}): exporting its tree"));
    let src = dir.join(format!("src-{sha}"));
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    let archive = cmd::output(Command::new("git").current_dir(&root).args([
        "archive",
        "--format=tar",
        &sha,
    ]))?;
    if !archive.status.success() {
        bail!(
            "git archive {sha} failed: {}",
            String::from_utf8_lossy(&archive.stderr).trim()
        );
    }
    untar(&archive.stdout, &src)?;

    step(&format!(
        "baseline {rev} ({sha:.12}): building its XDP programs (cargo check -p lb-ctl runs its build script)"
    ));
    let out = cmd::stdout(
        cmd::cargo()
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .args(["check", "-p", "lb-ctl", "--message-format=json"]),
    )
    .context("building the baseline (run with the same setup as this tree)")?;
    let out_dir =
        lb_ctl_out_dir(&out).context("cargo's messages name no build-script output of lb-ctl")?;
    let built = out_dir.join("lb");
    std::fs::copy(&built, &object)
        .with_context(|| format!("copying {} to {}", built.display(), object.display()))?;
    std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    Ok(Baseline { sha, object })
}

/// Unpacks a tar archive into `dir` with the system's tar. `-m`: the files
/// get the time of unpacking, not the commit's. Every baseline shares one
/// target directory, where cargo names a workspace crate's build by its
/// path inside the workspace (the same in every exported tree) and trusts
/// it while the sources are older: with the commit's times, a baseline
/// older than the last one built would be compiled from the other's
/// crates.
fn untar(archive: &[u8], dir: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut tar = Command::new("tar")
        .args(["-x", "-m", "-C"])
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .context("starting tar")?;
    tar.stdin
        .take()
        .expect("piped")
        .write_all(archive)
        .context("writing to tar")?;
    let status = tar.wait().context("waiting for tar")?;
    if !status.success() {
        bail!("tar -x failed ({status})");
    }
    Ok(())
}

/// The `OUT_DIR` of lb-ctl's build script in cargo's JSON messages.
fn lb_ctl_out_dir(messages: &str) -> Option<PathBuf> {
    messages.lines().find_map(|line| {
        let msg: serde_json::Value = serde_json::from_str(line).ok()?;
        if msg["reason"] != "build-script-executed" {
            return None;
        }
        let id = msg["package_id"].as_str()?;
        // `path+file:///…/lb-ctl#0.1.0`, or `…#lb-ctl@0.1.0` when the
        // directory is named otherwise (cargo's package id spec).
        if !id.contains("/lb-ctl#") && !id.contains("#lb-ctl@") {
            return None;
        }
        msg["out_dir"].as_str().map(PathBuf::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lb_ctl_out_dir_among_other_build_scripts() {
        let messages = [
            r#"{"reason":"compiler-artifact","package_id":"path+file:///x/src-ab/lb-ctl#0.1.0"}"#,
            r#"{"reason":"build-script-executed","package_id":"registry+https://github.com/rust-lang/crates.io-index#libc@0.2.1","out_dir":"/t/libc/out"}"#,
            r#"{"reason":"build-script-executed","package_id":"path+file:///x/src-ab/lb-common#0.1.0","out_dir":"/t/lb-common/out"}"#,
            r#"{"reason":"build-script-executed","package_id":"path+file:///x/src-ab/lb-ctl#0.1.0","out_dir":"/t/lb-ctl/out"}"#,
            "not json",
        ]
        .join("\n");
        assert_eq!(
            lb_ctl_out_dir(&messages),
            Some(PathBuf::from("/t/lb-ctl/out"))
        );
        assert_eq!(lb_ctl_out_dir(&messages.replace("lb-ctl#", "lb-x#")), None);
    }
}
