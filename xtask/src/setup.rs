//! `cargo xtask setup`: install what this machine lacks to build and test lb,
//! and nothing else. Every step checks first and says what it found; a
//! second run changes nothing.
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd::{self, step};

/// Debian packages the project uses, each with why.
const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("iproute2", "ip netns / veth for the lab and the tests"),
    ("iputils-ping", "ping across the test namespaces"),
    ("bpftool", "inspecting the pinned maps and programs"),
    (
        "ethtool",
        "the lab's veth links: checksum offload off toward the LB hosts",
    ),
    (
        "protobuf-compiler",
        "protoc, for lb-ctl's control API and the GoBGP client",
    ),
    (
        "libprotobuf-dev",
        "the protobuf well-known types (GoBGP's API imports them)",
    ),
    (
        "golang-github-osrg-gobgp-dev",
        "GoBGP's API protos, compiled into lb-ctl's BGP client",
    ),
    ("gobgpd", "the BGP speaker lb-ctl drives"),
    ("frr", "the lab's router: real BGP and a kernel FIB"),
    ("stress-ng", "CPU load for `cargo xtask soak`"),
    (
        "prometheus",
        "a real Prometheus scrapes the daemon's metrics in a test; promtool checks them",
    ),
    ("binutils", "objdump and strip, for `cargo xtask package`"),
    (
        "etcd-server",
        "the fleet's store: a real etcd that the fleet tests and demo start",
    ),
    (
        "systemd",
        "systemd-analyze, which verifies the package's units in a test",
    ),
    (
        "man-db",
        "man, which renders the package's man pages in a test",
    ),
    (
        "tcpdump",
        "reads the pcap files `lb-ctl capture` writes, in a test",
    ),
    ("tmux", "a terminal for the `lb-ctl top` test"),
];

/// The bpf-linker release that works with the nightly's LLVM here (newer ones
/// want a system LLVM 23).
const BPF_LINKER_VERSION: &str = "0.10.3";

/// The toolchain aya-build compiles the XDP programs with.
const NIGHTLY: &str = "nightly";

/// Where bpffs must be mounted for the pins.
const BPFFS: &str = "/sys/fs/bpf";

pub fn run() -> anyhow::Result<()> {
    step("setup: checking what this machine has");
    let mut changed = false;
    changed |= debian_packages()?;
    changed |= nightly_rust_src()?;
    changed |= bpf_linker()?;
    changed |= bpffs()?;
    if changed {
        println!("==> setup: done");
    } else {
        println!("==> setup: nothing to do, everything was already in place");
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Debian packages that only `cargo xtask bench lab` uses (what users run
/// instead of lb, and the load), each with why: installed when it runs.
pub const BENCH_LAB_PACKAGES: &[(&str, &str)] = &[
    ("nftables", "nftables DNAT, a forwarder lb is compared with"),
    (
        "haproxy",
        "HAProxy in TCP mode, a forwarder lb is compared with",
    ),
    ("nginx", "the backends' HTTP servers"),
    ("wrk", "the HTTP load"),
    (
        "linux-perf",
        "where the forwarding core's time goes (perf record)",
    ),
];

fn debian_packages() -> anyhow::Result<bool> {
    install_packages(DEBIAN_PACKAGES)
}

/// Installs those of `packages` that are missing (apt-get); true if it
/// installed any.
pub fn install_packages(packages: &[(&str, &str)]) -> anyhow::Result<bool> {
    let mut missing = Vec::new();
    for (pkg, why) in packages {
        let out =
            cmd::output(Command::new("dpkg-query").args(["-W", "-f=${db:Status-Status}", pkg]))
                .context("dpkg-query is missing: this set-up expects Debian")?;
        if String::from_utf8_lossy(&out.stdout).trim() == "installed" {
            println!("    apt: {pkg} is installed");
        } else {
            println!("    apt: {pkg} is missing ({why})");
            missing.push(*pkg);
        }
    }
    if missing.is_empty() {
        return Ok(false);
    }
    if !is_root() {
        bail!(
            "Debian packages missing: {}; run as root or install them: apt-get install {}",
            missing.join(" "),
            missing.join(" ")
        );
    }
    step(&format!(
        "installing Debian packages: {}",
        missing.join(" ")
    ));
    cmd::run(Command::new("apt-get").args(["update", "-q"]))
        .context("apt-get update failed: are Debian's mirrors reachable?")?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
    .with_context(|| format!("installing {} failed", missing.join(" ")))?;
    Ok(true)
}

fn nightly_rust_src() -> anyhow::Result<bool> {
    let toolchains = cmd::stdout(Command::new("rustup").args(["toolchain", "list"]))
        .context("rustup is missing: lb needs rustup with stable and nightly")?;
    let has_nightly = toolchains
        .lines()
        .any(|l| l.starts_with(&format!("{NIGHTLY}-")));
    if !has_nightly {
        step("installing the nightly toolchain with rust-src (builds the XDP programs)");
        cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]))?;
        return Ok(true);
    }
    let components = cmd::stdout(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        NIGHTLY,
        "--installed",
    ]))?;
    if components.lines().any(|l| l.trim().starts_with("rust-src")) {
        println!("    rustup: {NIGHTLY} with rust-src is installed");
        return Ok(false);
    }
    step("adding rust-src to the nightly toolchain (needed for -Z build-std=core)");
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ]))?;
    Ok(true)
}

fn bpf_linker() -> anyhow::Result<bool> {
    let version = cmd::output(Command::new("bpf-linker").arg("--version"))
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let wanted = format!("bpf-linker {BPF_LINKER_VERSION}");
    match version {
        Some(v) if v == wanted => {
            println!("    cargo: {wanted} is installed");
            return Ok(false);
        }
        Some(v) => step(&format!(
            "replacing {v} with {wanted} (newer ones need LLVM 23)"
        )),
        None => step(&format!(
            "installing {wanted} (links the XDP programs; about a minute)"
        )),
    }
    cmd::run(cmd::cargo().args([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
        "--force",
    ]))
    .context("installing bpf-linker failed")?;
    Ok(true)
}

fn bpffs() -> anyhow::Result<bool> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let mounted = mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_dev, dir, fstype) = (f.next(), f.next(), f.next());
        dir == Some(BPFFS) && fstype == Some("bpf")
    });
    if mounted {
        println!("    bpffs is mounted at {BPFFS}");
        return Ok(false);
    }
    if !is_root() {
        bail!("bpffs is not mounted at {BPFFS}; as root: mount -t bpf bpf {BPFFS}");
    }
    step(&format!("mounting bpffs at {BPFFS}"));
    std::fs::create_dir_all(BPFFS).with_context(|| format!("creating {BPFFS}"))?;
    cmd::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    Ok(true)
}
