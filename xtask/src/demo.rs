//! `cargo xtask demo`: the README's first command. Sets up, builds, and shows
//! lb's XDP program loaded and attached inside throwaway network namespaces,
//! with traffic crossing it; then removes everything it made.
use std::process::Command;

use anyhow::Context as _;

use crate::{
    cmd::{self, step},
    setup,
};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Leave the namespaces in place at the end (remove them with
    /// `ip netns del lbdemo-client; ip netns del lbdemo-lb`).
    #[arg(long)]
    keep: bool,
}

const CLIENT_NS: &str = "lbdemo-client";
const LB_NS: &str = "lbdemo-lb";
const CLIENT_IF: &str = "lbdemo-c";
const LB_IF: &str = "lbdemo-l";
const CLIENT_ADDR: &str = "192.0.2.1";
const LB_ADDR: &str = "192.0.2.2";
const PIN_DIR: &str = "/sys/fs/bpf/lbdemo";

/// Removes the demo's namespaces and pins when dropped, also on failure.
struct Cleanup {
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            println!("==> keeping namespaces {CLIENT_NS} and {LB_NS} (--keep)");
            return;
        }
        remove_all();
    }
}

fn remove_all() {
    for ns in [CLIENT_NS, LB_NS] {
        let _ = cmd::output(Command::new("ip").args(["netns", "del", ns]));
    }
    let _ = std::fs::remove_dir_all(PIN_DIR);
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    cmd::run(Command::new("ip").args(args))
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    setup::run()?;
    cmd::build()?;
    anyhow::ensure!(
        setup::is_root(),
        "the demo creates network namespaces: run it as root"
    );

    step("removing leftovers of an earlier demo, if any");
    remove_all();
    let _cleanup = Cleanup { keep: args.keep };

    step("lab: two namespaces joined by a veth pair (192.0.2.0/24, documentation range)");
    ip(&["netns", "add", CLIENT_NS])?;
    ip(&["netns", "add", LB_NS])?;
    ip(&[
        "link", "add", CLIENT_IF, "netns", CLIENT_NS, "type", "veth", "peer", "name", LB_IF,
        "netns", LB_NS,
    ])?;
    for (ns, ifname, addr) in [(CLIENT_NS, CLIENT_IF, CLIENT_ADDR), (LB_NS, LB_IF, LB_ADDR)] {
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            ifname,
        ])?;
        ip(&["-n", ns, "link", "set", ifname, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
    }

    let lb_ctl = cmd::lb_ctl_bin();
    step("lb-ctl check: loading every XDP program through the kernel verifier");
    cmd::run(Command::new(&lb_ctl).arg("check"))?;

    step(&format!(
        "lb-ctl attach: the pass program on {LB_IF} in {LB_NS}, native XDP, link pinned"
    ));
    cmd::run(Command::new(&lb_ctl).args([
        "--netns",
        LB_NS,
        "attach",
        "--iface",
        LB_IF,
        "--program",
        "pass",
        "--mode",
        "native",
        "--pin-dir",
        PIN_DIR,
    ]))?;
    let link = cmd::stdout(Command::new("ip").args(["-n", LB_NS, "-d", "link", "show", LB_IF]))?;
    println!("{}", link.trim_end());

    step("traffic: 3 pings from the client through the XDP program");
    let out = cmd::stdout(Command::new("ip").args([
        "netns", "exec", CLIENT_NS, "ping", "-c", "3", "-i", "0.2", "-W", "1", LB_ADDR,
    ]))
    .context("ping through the XDP program failed")?;
    println!("{}", out.trim_end());

    step("lb-ctl detach");
    cmd::run(Command::new(&lb_ctl).args([
        "--netns",
        LB_NS,
        "detach",
        "--iface",
        LB_IF,
        "--program",
        "pass",
        "--pin-dir",
        PIN_DIR,
    ]))?;
    println!("==> demo done");
    Ok(())
}
