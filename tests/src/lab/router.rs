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
            // IPv6 routes are replaced in one step, as IPv4 routes always
            // are: without this zebra changes an IPv6 route by deleting
            // it and adding the new one, and a packet that arrives in
            // between is dropped with "no route" (docs/FAILOVER.md).
            ("zebra", vec!["--v6-rr-semantics".to_owned()]),
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

/// Packets that namespace `ns` could not forward for want of a route, IPv4
/// and IPv6 together (`IpExtInNoRoutes` + `Ip6InNoRoutes`): a router that
/// changes a route by deleting it and adding the new one drops what
/// arrives in between, and counts it here.
pub fn no_route_drops(ns: &str) -> anyhow::Result<u64> {
    let read = |file: &str| -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat", file])
            .output()
            .with_context(|| format!("read {file} in {ns}"))?;
        anyhow::ensure!(out.status.success(), "read {file} in {ns}");
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let v6 = snmp6_counter(&read("/proc/net/snmp6")?, "Ip6InNoRoutes")
        .context("Ip6InNoRoutes in /proc/net/snmp6")?;
    let v4 = netstat_counter(&read("/proc/net/netstat")?, "IpExt", "InNoRoutes")
        .context("IpExt InNoRoutes in /proc/net/netstat")?;
    Ok(v4 + v6)
}

/// A counter of `/proc/net/snmp6` (`name value` per line).
fn snmp6_counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(name)).then(|| it.next()?.parse().ok())?
    })
}

/// A counter of `/proc/net/netstat` (pairs of lines: `Group: names...`,
/// `Group: values...`).
fn netstat_counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let i = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(i)?.parse().ok()
}

/// Records every change of namespace `ns`'s routing tables
/// (`ip monitor route`) until dropped.
pub struct RouteMonitor {
    child: std::process::Child,
    log: PathBuf,
}

impl RouteMonitor {
    /// Starts recording into `log`; returns once `ip monitor` listens.
    pub fn start(ns: &str, log: &Path) -> anyhow::Result<RouteMonitor> {
        let file = std::fs::File::create(log)?;
        let child = Command::new("ip")
            .args(["-n", ns, "monitor", "route"])
            .stdout(file)
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("start ip monitor route")?;
        // `ip monitor` subscribes right after it starts; give it that time.
        std::thread::sleep(Duration::from_millis(100));
        Ok(RouteMonitor {
            child,
            log: log.to_owned(),
        })
    }

    /// The events recorded so far, one string per event (an event's
    /// continuation lines, its next hops, are joined to it).
    pub fn events(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut events: Vec<String> = Vec::new();
        for line in text.lines() {
            match events.last_mut() {
                Some(last) if line.starts_with(char::is_whitespace) => {
                    last.push(' ');
                    last.push_str(line.trim());
                }
                _ => events.push(line.to_owned()),
            }
        }
        events
    }

    /// The recorded deletions of `vip`'s host route (`ip` prints a host
    /// route without its prefix length).
    pub fn deletions_of(&self, vip: IpAddr) -> Vec<String> {
        let host = format!("Deleted {vip} ");
        let with_len = format!("Deleted {vip}/");
        self.events()
            .into_iter()
            .filter(|e| e.starts_with(&host) || e.starts_with(&with_len))
            .collect()
    }
}

impl Drop for RouteMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_procfs_text() {
        let snmp6 = "Ip6InReceives                   4741\nIp6InNoRoutes                   3\n";
        assert_eq!(snmp6_counter(snmp6, "Ip6InNoRoutes"), Some(3));
        assert_eq!(snmp6_counter(snmp6, "Ip6Missing"), None);
        let netstat = "TcpExt: SyncookiesSent Foo\nTcpExt: 1 2\nIpExt: InNoRoutes InTruncatedPkts\nIpExt: 7 0\n";
        assert_eq!(netstat_counter(netstat, "IpExt", "InNoRoutes"), Some(7));
        assert_eq!(
            netstat_counter(netstat, "IpExt", "InTruncatedPkts"),
            Some(0)
        );
        assert_eq!(netstat_counter(netstat, "TcpExt", "InNoRoutes"), None);
    }
}
