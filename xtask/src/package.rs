//! `cargo xtask package`: lb as a Debian package, built with `dpkg-deb`
//! from a staged tree: the release `lb-ctl` in /usr/sbin, the example
//! configuration as the conffile /etc/lb/lb.toml, the systemd units, the
//! tmpfiles entry, man pages and shell completions generated from the
//! command line's definition, and the documentation. Depends are the
//! packages of the shared libraries the binary links (`objdump -p`, then
//! `dpkg -S`); gobgpd is recommended (anycast), bpftool suggested.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{
    cmd::{self, step, workspace_root},
    setup,
};

#[derive(Debug, clap::Args)]
pub struct PackageArgs {
    /// Where the .deb (and its staging tree) go.
    #[arg(long, default_value = "target/package")]
    pub out: PathBuf,
}

pub fn run(args: &PackageArgs) -> anyhow::Result<()> {
    setup::run()?;
    let deb = build(&workspace_root().join(&args.out))?;
    println!("==> {}", deb.display());
    Ok(())
}

/// Copies `from` to `to` (under the staging root) with `mode`.
fn install(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Writes `text` to `to` with `mode`.
fn write(to: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(to, text).with_context(|| format!("write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Gzips `from` into `to` as Debian wants man pages: best compression,
/// no name or time stamp (reproducible).
fn gzip(from: &Path, to: &Path) -> anyhow::Result<()> {
    let out = cmd::output(Command::new("gzip").args(["-9", "-n", "-c"]).arg(from))?;
    if !out.status.success() {
        bail!("gzip {} failed", from.display());
    }
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::write(to, out.stdout)?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// The packages (with a minimum upstream version) of the shared libraries
/// `binary` links.
fn library_depends(binary: &Path) -> anyhow::Result<Vec<String>> {
    let dump = cmd::stdout(Command::new("objdump").arg("-p").arg(binary))?;
    let mut depends = Vec::new();
    for lib in dump
        .lines()
        .filter_map(|l| l.trim().strip_prefix("NEEDED"))
        .map(str::trim)
    {
        let owners = cmd::stdout(Command::new("dpkg").args(["-S", &format!("*/{lib}")]))?;
        let package = owners
            .lines()
            .filter_map(|l| l.split_once(": ").map(|(p, _)| p))
            .flat_map(|p| p.split(", "))
            .map(|p| p.split(':').next().unwrap_or(p))
            .find(|p| !p.starts_with("lib32") && !p.starts_with("libx32"))
            .with_context(|| format!("no package has {lib}"))?
            .to_owned();
        let version =
            cmd::stdout(Command::new("dpkg-query").args(["-W", "-f=${Version}", &package]))?;
        let upstream = version.split('-').next().unwrap_or(&version).to_owned();
        let entry = format!("{package} (>= {upstream})");
        if !depends.contains(&entry) {
            depends.push(entry);
        }
    }
    Ok(depends)
}

const POSTINST: &str = r#"#!/bin/sh
# lb: make its directories and tell systemd about the units. It never
# enables or starts the service: the operator does, once /etc/lb/lb.toml
# describes this host (`lb-ctl daemon --check-config /etc/lb/lb.toml`,
# then `systemctl enable --now lb`). An upgrade does not restart a running
# lb either (a restart withdraws its routes for a moment): restart it when
# traffic may move.
set -e
if [ "$1" = configure ]; then
    if command -v systemd-tmpfiles >/dev/null 2>&1; then
        systemd-tmpfiles --create /usr/lib/tmpfiles.d/lb.conf || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null 2>&1 || true
    fi
fi
exit 0
"#;

const PRERM: &str = r#"#!/bin/sh
# lb: on removal, stop the service (gracefully: it withdraws its routes
# first) so that nothing runs a deleted binary. Upgrades leave it running.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop lb.service >/dev/null 2>&1 || true
fi
exit 0
"#;

const POSTRM: &str = r#"#!/bin/sh
# lb: on purge, remove the state file's directory (dpkg removes the
# conffile). The pinned XDP program and maps under /sys/fs/bpf are left:
# they are the running data plane (`lb-ctl detach` removes them).
set -e
if [ "$1" = purge ]; then
    rm -rf /var/lib/lb
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null 2>&1 || true
fi
exit 0
"#;

/// Builds the package into `out`; returns the .deb's path.
pub fn build(out: &Path) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    step("building lb-ctl for the package (release, with its XDP programs)");
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "lb-ctl"]))?;
    let binary = root.join("target/release/lb-ctl");
    let version = cmd::stdout(Command::new(&binary).arg("--version"))?
        .trim()
        .strip_prefix("lb-ctl ")
        .context("lb-ctl --version says `lb-ctl VERSION`")?
        .to_owned();
    let arch = cmd::stdout(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let name = format!("lb_{version}_{arch}");
    let stage = out.join(&name);
    step(&format!("staging {}", stage.display()));
    if stage.exists() {
        fs::remove_dir_all(&stage)?;
    }
    fs::create_dir_all(&stage)?;
    let at = |p: &str| stage.join(p);

    install(&binary, &at("usr/sbin/lb-ctl"), 0o755)?;
    cmd::run(
        Command::new("strip")
            .arg("--strip-debug")
            .arg(at("usr/sbin/lb-ctl")),
    )?;
    install(&root.join("examples/lb.toml"), &at("etc/lb/lb.toml"), 0o644)?;
    for unit in ["lb.service", "lb-decap@.service"] {
        install(
            &root.join("packaging/systemd").join(unit),
            &at(&format!("lib/systemd/system/{unit}")),
            0o644,
        )?;
    }
    install(
        &root.join("packaging/tmpfiles/lb.conf"),
        &at("usr/lib/tmpfiles.d/lb.conf"),
        0o644,
    )?;

    // Man pages and completions, from the binary's own command line.
    let assets = out.join(format!("{name}.assets"));
    if assets.exists() {
        fs::remove_dir_all(&assets)?;
    }
    cmd::run(
        Command::new(&binary)
            .arg("assets")
            .arg("--out")
            .arg(&assets),
    )?;
    for page in fs::read_dir(assets.join("man"))? {
        let page = page?.path();
        let file = page.file_name().unwrap().to_string_lossy().into_owned();
        gzip(&page, &at(&format!("usr/share/man/man8/{file}.gz")))?;
    }
    for (file, dest) in [
        ("lb-ctl", "usr/share/bash-completion/completions/lb-ctl"),
        ("_lb-ctl", "usr/share/zsh/vendor-completions/_lb-ctl"),
        (
            "lb-ctl.fish",
            "usr/share/fish/vendor_completions.d/lb-ctl.fish",
        ),
    ] {
        install(&assets.join("completions").join(file), &at(dest), 0o644)?;
    }

    // Documentation.
    let doc = at("usr/share/doc/lb");
    install(&root.join("README.md"), &doc.join("README.md"), 0o644)?;
    for entry in fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            install(
                &path,
                &doc.join("docs").join(path.file_name().unwrap()),
                0o644,
            )?;
        }
    }
    write(
        &doc.join("copyright"),
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: lb\n\n\
         Files: *\n\
         Copyright: the lb authors\n\
         License: Apache-2.0\n \
         On Debian systems, the full text of the Apache License 2.0 is in\n \
         /usr/share/common-licenses/Apache-2.0.\n",
        0o644,
    )?;

    // Control files.
    let depends = library_depends(&binary)?.join(", ");
    let installed_kib = dir_size(&stage)? / 1024;
    write(
        &at("DEBIAN/control"),
        &format!(
            "Package: lb\n\
             Version: {version}\n\
             Architecture: {arch}\n\
             Maintainer: lb developers <lb@example.org>\n\
             Installed-Size: {installed_kib}\n\
             Depends: {depends}\n\
             Recommends: gobgpd\n\
             Suggests: bpftool\n\
             Section: net\n\
             Priority: optional\n\
             Description: anycast layer-4 load balancer (XDP, Maglev, BGP)\n \
             lb forwards packets for virtual IPs to backends at line rate with an\n \
             XDP program: Maglev consistent hashing, a connection table and\n \
             IP-in-IP encapsulation (direct server return). Its controller,\n \
             lb-ctl, fills the maps from the configuration and health checks and\n \
             announces each VIP over BGP (through gobgpd) while it has healthy\n \
             backends.\n"
        ),
        0o644,
    )?;
    write(&at("DEBIAN/conffiles"), "/etc/lb/lb.toml\n", 0o644)?;
    write(&at("DEBIAN/postinst"), POSTINST, 0o755)?;
    write(&at("DEBIAN/prerm"), PRERM, 0o755)?;
    write(&at("DEBIAN/postrm"), POSTRM, 0o755)?;
    let sums = cmd::stdout(
        Command::new("sh")
            .arg("-c")
            .arg("find . -type f ! -path './DEBIAN/*' | sort | sed 's|^\\./||' | xargs md5sum")
            .current_dir(&stage),
    )?;
    write(&at("DEBIAN/md5sums"), &sums, 0o644)?;

    let deb = out.join(format!("{name}.deb"));
    step(&format!("building {}", deb.display()));
    cmd::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    Ok(deb)
}

/// Bytes of the files under `dir`.
fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}
