//! The lab's router with BGP: FRR (zebra and bgpd from Debian) in the
//! router namespace, peering with each LB host's gobgpd, installing the
//! VIP routes into the namespace's kernel table with ECMP over the LB hosts
//! that announce them.
use std::{
    net::IpAddr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::topology::{Leaf, Role, leaves};

/// The router's AS.
pub const ROUTER_ASN: u32 = 65000;
/// The LB hosts' AS (both sites: the same anycast operator).
pub const LB_ASN: u32 = 65001;

/// FRR's configuration for the lab router: eBGP to every LB host, fast
/// timers (keepalive 1 s, hold 3 s), ECMP, no policy needed.
pub fn frr_config(run: &Path) -> String {
    let lbs: Vec<&Leaf> = leaves(Role::LbHost, None).collect();
    let mut c = format!(
        "frr defaults datacenter\nhostname lab-router\nlog file {}/frr.log\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id 198.51.100.1\n no bgp ebgp-requires-policy\n",
        run.display()
    );
    for l in &lbs {
        c.push_str(&format!(
            " neighbor {a} remote-as {LB_ASN}\n neighbor {a} timers 1 3\n neighbor {a} timers connect 1\n",
            a = l.v4.1
        ));
    }
    c.push_str(" !\n address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n !\n address-family ipv6 unicast\n");
    for l in &lbs {
        c.push_str(&format!("  neighbor {} activate\n", l.v4.1));
    }
    c.push_str("  maximum-paths 8\n exit-address-family\n!\n");
    c
}

/// FRR in namespace `ns`, its files under `run`.
pub struct Frr {
    pub ns: String,
    pub run: PathBuf,
}

impl Frr {
    /// Starts zebra and bgpd in `ns` (they daemonize; the namespace's
    /// removal kills them).
    pub fn start(ns: &str, run: &Path) -> anyhow::Result<Frr> {
        std::fs::create_dir_all(run)?;
        std::fs::write(run.join("frr.conf"), frr_config(run))?;
        let chown = Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(run)
            .status()?;
        anyhow::ensure!(chown.success(), "chown {} to frr", run.display());
        let r = run.display().to_string();
        for (daemon, extra) in [
            ("zebra", vec![]),
            ("bgpd", vec!["-f".to_owned(), format!("{r}/frr.conf")]),
        ] {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    &format!("/usr/lib/frr/{daemon}"),
                    "-d",
                    "-N",
                    ns,
                ])
                .args([
                    "-i",
                    &format!("{r}/{daemon}.pid"),
                    "-z",
                    &format!("{r}/zserv.api"),
                    "--vty_socket",
                    &r,
                ])
                .args(&extra)
                .output()
                .with_context(|| format!("start FRR's {daemon} (Debian package frr)"))?;
            if !out.status.success() {
                bail!(
                    "FRR's {daemon} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(Frr {
            ns: ns.to_owned(),
            run: run.to_owned(),
        })
    }

    /// Runs a vtysh command, returns its output.
    pub fn vtysh(&self, cmd: &str) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.run)
            .args(["-c", cmd])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The next hops of `vip`'s host route in namespace `ns`'s kernel table
/// (empty: no route).
pub fn kernel_nexthops(ns: &str, vip: IpAddr) -> Vec<IpAddr> {
    let (fam, prefix) = if vip.is_ipv4() {
        ("-4", format!("{vip}/32"))
    } else {
        ("-6", format!("{vip}/128"))
    };
    let Ok(out) = Command::new("ip")
        .args(["-n", ns, fam, "-j", "route", "show", &prefix])
        .output()
    else {
        return Vec::new();
    };
    let Ok(routes) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
        return Vec::new();
    };
    let mut hops = Vec::new();
    for r in routes.as_array().into_iter().flatten() {
        if let Some(gw) = r["gateway"].as_str().and_then(|g| g.parse().ok()) {
            hops.push(gw);
        }
        for nh in r["nexthops"].as_array().into_iter().flatten() {
            if let Some(gw) = nh["gateway"].as_str().and_then(|g| g.parse().ok()) {
                hops.push(gw);
            }
        }
    }
    hops.sort();
    hops
}

/// Waits until `vip`'s next hops in `ns` are exactly `want` (sorted);
/// returns how long it took.
pub fn wait_nexthops(
    ns: &str,
    vip: IpAddr,
    want: &[IpAddr],
    limit: Duration,
) -> anyhow::Result<Duration> {
    let mut want = want.to_vec();
    want.sort();
    let start = Instant::now();
    loop {
        let now = kernel_nexthops(ns, vip);
        if now == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("{vip} in {ns}: next hops {now:?}, wanted {want:?} (waited {limit:?})");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
