//! The lab: clients, a router, two LB host "sites" and their backends, as
//! network namespaces joined by veth pairs (see [`topology`]). The LB hosts
//! run the real balancer (pinned, so it keeps forwarding when the process
//! that set it up exits), the backends run the decapsulator (`lb-ctl decap`)
//! and [`lb-lab-server`](../../src/bin/lb-lab-server.rs) with the VIPs on
//! `lo`. Used by the end-to-end tests and by `cargo xtask lab` / `demo`.
pub mod cli;
pub mod client;
pub mod topology;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail, ensure};
use lb_common::{
    config::{CONFIG_F_ICMP_ECHO, CONFIG_F_ICMP_TOO_BIG, Config, MAC_MODE_REFLECT},
    decap::DecapStats,
    hash::flow_hash,
    maps::FlowKey,
    stats::Stats,
};
use lb_ctl::{
    dataplane::{Dataplane, LoadOptions},
    decap,
    maglev::RingSize,
    programs::{self, AttachMode, Program},
    reconcile::{Proto, RealSpec, Reconciler, VipId, VipSpec},
};
use topology::{EDGE_MTU, FABRIC_MTU, LEAVES, Leaf, ROUTER, Role, leaf, leaves};
pub use topology::{HTTP_PORT, UDP_PORT, VIP4, VIP6};

use crate::netns::run_in;

/// Ring size of the lab's VIPs (prime; small keeps set-up fast).
pub const LAB_RING_SIZE: u32 = 4093;

/// The programs the lab runs.
#[derive(Debug, Clone)]
pub struct LabBins {
    pub lb_ctl: PathBuf,
    pub server: PathBuf,
}

impl LabBins {
    /// The binaries next to `dir` (a cargo target profile directory).
    pub fn in_dir(dir: &Path) -> Self {
        LabBins {
            lb_ctl: dir.join("lb-ctl"),
            server: dir.join("lb-lab-server"),
        }
    }
}

/// How to build the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Namespaces are `<prefix>-<leaf>`; pins live under
    /// `/sys/fs/bpf/<prefix>`.
    pub prefix: String,
    /// Leave everything in place when the [`Lab`] is dropped.
    pub keep: bool,
    /// The sites the router's VIP route points to (ECMP when both).
    pub sites: Vec<char>,
    /// The backends of each site's VIPs at the start.
    pub backends: BTreeMap<char, Vec<&'static str>>,
    pub bins: LabBins,
}

impl LabOptions {
    /// Both sites, two backends each (a3 spare), under `prefix`.
    pub fn new(prefix: &str, bins: LabBins) -> Self {
        LabOptions {
            prefix: prefix.to_owned(),
            keep: false,
            sites: vec!['A', 'B'],
            backends: BTreeMap::from([('A', vec!["a1", "a2"]), ('B', vec!["b1", "b2"])]),
            bins,
        }
    }
}

/// One LB host's balancer, driven in-process.
pub struct LbHost {
    pub dp: Dataplane,
    pub reconciler: Reconciler,
    pub backends: Vec<&'static str>,
}

/// A lab that is up. Dropping it takes it down, unless `keep` was set.
pub struct Lab {
    pub prefix: String,
    keep: bool,
    bins: LabBins,
    pub lbs: BTreeMap<char, LbHost>,
    /// Servers started by this process, reaped when the lab goes down.
    servers: std::sync::Mutex<Vec<std::process::Child>>,
}

/// The VIPs every site serves: v4 and v6, HTTP over TCP and UDP echo.
pub fn lab_vips() -> Vec<VipId> {
    let mut v = Vec::new();
    for addr in [VIP4, VIP6] {
        let addr: IpAddr = addr.parse().expect("VIP");
        v.push(VipId {
            addr,
            port: HTTP_PORT,
            proto: Proto::Tcp,
        });
        v.push(VipId {
            addr,
            port: UDP_PORT,
            proto: Proto::Udp,
        });
    }
    v
}

fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args))
}

impl Lab {
    pub fn ns(&self, short: &str) -> String {
        ns_name(&self.prefix, short)
    }

    fn pin_root(&self) -> PathBuf {
        pin_root(&self.prefix)
    }

    /// Builds the lab: namespaces, links, routes, servers, decapsulators,
    /// balancers. On failure, what was made is removed.
    pub fn up(opts: LabOptions) -> anyhow::Result<Lab> {
        down(&opts.prefix);
        let mut lab = Lab {
            prefix: opts.prefix.clone(),
            keep: false,
            bins: opts.bins.clone(),
            lbs: BTreeMap::new(),
            servers: Default::default(),
        };
        lab.build_network(&opts.sites)?;
        for b in leaves(Role::Backend, None) {
            lab.setup_backend(b)?;
        }
        for lb in leaves(Role::LbHost, None) {
            let site = lb.site.expect("LB hosts have a site");
            let backends = opts.backends.get(&site).cloned().unwrap_or_default();
            lab.setup_lb(lb, backends)?;
        }
        lab.keep = opts.keep;
        Ok(lab)
    }

    /// Re-opens a lab left up by an earlier process (`keep`): adopts the
    /// pinned balancers.
    pub fn attach(prefix: &str, bins: LabBins) -> anyhow::Result<Lab> {
        ensure!(
            Path::new(&format!("/run/netns/{}", ns_name(prefix, ROUTER))).exists(),
            "no lab `{prefix}` is up (cargo xtask lab up)"
        );
        let mut lab = Lab {
            prefix: prefix.to_owned(),
            keep: true,
            bins,
            lbs: BTreeMap::new(),
            servers: Default::default(),
        };
        for lb in leaves(Role::LbHost, None) {
            let site = lb.site.expect("site");
            let dp = Dataplane::load(&LoadOptions {
                conn_table_size: 65_536,
                pin_dir: Some(lab.pin_root().join(lb.name)),
            })?;
            let reconciler = Reconciler::adopt(&dp)?;
            let vip = lab_vips()[0];
            let backends = leaves(Role::Backend, Some(site))
                .filter(|b| reconciler.real_id(&vip, &b.addr4()).is_some())
                .map(|b| b.name)
                .collect();
            lab.lbs.insert(
                site,
                LbHost {
                    dp,
                    reconciler,
                    backends,
                },
            );
        }
        Ok(lab)
    }

    /// Keeps the lab after this value is dropped (or not).
    pub fn set_keep(&mut self, keep: bool) {
        self.keep = keep;
    }

    fn build_network(&self, sites: &[char]) -> anyhow::Result<()> {
        let r = self.ns(ROUTER);
        ip(&["netns", "add", &r])?;
        ip(&["-n", &r, "link", "set", "lo", "up"])?;
        for l in LEAVES {
            let ns = self.ns(l.name);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&[
                "link", "add", l.name, "netns", &r, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ])?;
            let mtu = if l.role == Role::Client {
                EDGE_MTU
            } else {
                FABRIC_MTU
            }
            .to_string();
            for (n, dev) in [(&r, l.name), (&ns, "eth0")] {
                ip(&["-n", n, "link", "set", dev, "mtu", &mtu, "up"])?;
            }
            ip(&[
                "-n",
                &r,
                "addr",
                "add",
                &format!("{}/30", l.v4.0),
                "dev",
                l.name,
            ])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/30", l.v4.1),
                "dev",
                "eth0",
            ])?;
            ip(&[
                "-n",
                &r,
                "-6",
                "addr",
                "add",
                &format!("{}/64", l.v6.0),
                "dev",
                l.name,
                "nodad",
            ])?;
            ip(&[
                "-n",
                &ns,
                "-6",
                "addr",
                "add",
                &format!("{}/64", l.v6.1),
                "dev",
                "eth0",
                "nodad",
            ])?;
            // Backends answer clients directly: keep replies within what
            // the client links carry.
            let route_mtu = if l.role == Role::Backend {
                vec!["mtu", "1500"]
            } else {
                vec![]
            };
            let mut args = vec!["-n", ns.as_str(), "route", "add", "default", "via", l.v4.0];
            args.extend(&route_mtu);
            ip(&args)?;
            let mut args = vec![
                "-n",
                ns.as_str(),
                "-6",
                "route",
                "add",
                "default",
                "via",
                l.v6.0,
            ];
            args.extend(&route_mtu);
            ip(&args)?;
        }
        // The router forwards and spreads flows over ECMP next hops by their
        // 5-tuple read from the headers (custom policy 3, fields 0x37: both
        // addresses, protocol, both ports), as a hardware router does.
        // Policy 1 would reuse the hash the sending socket put on the skb,
        // which veth carries across namespaces and TCP changes when it
        // retransmits: a SYN and its retransmission could reach two sites.
        run_in(&r, || -> anyhow::Result<()> {
            for (path, v) in [
                ("/proc/sys/net/ipv4/ip_forward", "1"),
                ("/proc/sys/net/ipv6/conf/all/forwarding", "1"),
                ("/proc/sys/net/ipv4/fib_multipath_hash_policy", "3"),
                ("/proc/sys/net/ipv4/fib_multipath_hash_fields", "0x37"),
                ("/proc/sys/net/ipv6/fib_multipath_hash_policy", "3"),
                ("/proc/sys/net/ipv6/fib_multipath_hash_fields", "0x37"),
            ] {
                std::fs::write(path, v).with_context(|| format!("write {path}"))?;
            }
            Ok(())
        })?;
        self.route_vips(sites)?;
        // veth delivers XDP_TX frames only to a peer that runs XDP: the
        // router's side of each LB host link runs the pass program. And
        // veth hands packets on with their checksum left to "offload"
        // (CHECKSUM_PARTIAL), which XDP_TX loses: the router's links to the
        // LB hosts compute checksums, as a real wire always carries them.
        for lb in leaves(Role::LbHost, None) {
            run(Command::new("ip")
                .args(["netns", "exec", &r, "ethtool", "-K", lb.name, "tx", "off"]))
            .context("turn TX checksum offload off (ethtool)")?;
            let pins = self.pin_root().join(ROUTER);
            run(Command::new(&self.bins.lb_ctl)
                .args([
                    "--netns",
                    &r,
                    "attach",
                    "--iface",
                    lb.name,
                    "--program",
                    "pass",
                    "--mode",
                    "native",
                    "--pin-dir",
                ])
                .arg(&pins))
            .context("attach the pass program on the router (is lb-ctl built?)")?;
        }
        Ok(())
    }

    /// Points the router's VIP routes at the LB hosts of `sites` (ECMP).
    pub fn route_vips(&self, sites: &[char]) -> anyhow::Result<()> {
        let r = self.ns(ROUTER);
        for (vip, fam) in [(VIP4, "-4"), (VIP6, "-6")] {
            let prefix = if fam == "-4" {
                format!("{vip}/32")
            } else {
                format!("{vip}/128")
            };
            let _ = ip(&["-n", &r, fam, "route", "del", &prefix]);
            if sites.is_empty() {
                continue;
            }
            let mut args: Vec<String> = ["-n", &r, fam, "route", "add", &prefix]
                .iter()
                .map(|s| s.to_string())
                .collect();
            for lb in leaves(Role::LbHost, None).filter(|l| sites.contains(&l.site.expect("site")))
            {
                let via = if fam == "-4" { lb.v4.1 } else { lb.v6.1 };
                args.extend(["nexthop", "via", via, "dev", lb.name].map(String::from));
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ip(&args)?;
        }
        Ok(())
    }

    fn setup_backend(&self, b: &Leaf) -> anyhow::Result<()> {
        let ns = self.ns(b.name);
        ip(&["-n", &ns, "addr", "add", &format!("{VIP4}/32"), "dev", "lo"])?;
        ip(&[
            "-n",
            &ns,
            "-6",
            "addr",
            "add",
            &format!("{VIP6}/128"),
            "dev",
            "lo",
            "nodad",
        ])?;
        run_in(&ns, || -> anyhow::Result<()> {
            // The VIP is on lo: never answer ARP for it on eth0, and accept
            // client sources arriving on eth0.
            for (path, v) in [
                ("/proc/sys/net/ipv4/conf/all/arp_ignore", "1"),
                ("/proc/sys/net/ipv4/conf/all/arp_announce", "2"),
                ("/proc/sys/net/ipv4/conf/all/rp_filter", "0"),
                ("/proc/sys/net/ipv4/conf/eth0/rp_filter", "0"),
            ] {
                std::fs::write(path, v).with_context(|| format!("write {path}"))?;
            }
            Ok(())
        })?;
        let pins = self.pin_root().join(b.name);
        run(Command::new(&self.bins.lb_ctl)
            .args([
                "--netns",
                &ns,
                "decap",
                "attach",
                "--iface",
                "eth0",
                "--mode",
                "native",
                "--pin-dir",
            ])
            .arg(&pins))
        .with_context(|| format!("lb-ctl decap attach in {ns}"))?;
        self.start_server(b.name)
    }

    /// Starts backend `name`'s server (detached: it outlives this process
    /// when the lab is kept).
    pub fn start_server(&self, name: &str) -> anyhow::Result<()> {
        let ns = self.ns(name);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&self.bins.server)
            .arg(name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: setsid in the child before exec has no memory effects.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("start the server in {ns}"))?;
        self.servers.lock().expect("servers").push(child);
        // Ready when both ports answer.
        let vip: IpAddr = VIP4.parse().expect("VIP");
        for _ in 0..100 {
            let up = run_in(&ns, || {
                std::net::TcpStream::connect(SocketAddr::new(vip, HTTP_PORT)).is_ok()
            });
            if up {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        bail!("the server in {ns} did not come up")
    }

    /// Stops backend `name`'s server (the backend stays: its VIPs still
    /// route to it).
    pub fn stop_server(&self, name: &str) -> anyhow::Result<()> {
        kill_all_in(&self.ns(name));
        Ok(())
    }

    fn setup_lb(&mut self, lb: &Leaf, backends: Vec<&'static str>) -> anyhow::Result<()> {
        let ns = self.ns(lb.name);
        let site = lb.site.expect("LB hosts have a site");
        let pins = self.pin_root().join(lb.name);
        let mut dp = run_in(&ns, || -> anyhow::Result<Dataplane> {
            let mut dp = Dataplane::load(&LoadOptions {
                conn_table_size: 65_536,
                pin_dir: Some(pins.clone()),
            })?;
            let mut cfg = Config {
                mtu: FABRIC_MTU,
                mac_mode: MAC_MODE_REFLECT,
                flags: CONFIG_F_ICMP_ECHO | CONFIG_F_ICMP_TOO_BIG,
                ..Config::default()
            };
            if let IpAddr::V4(a) = lb.addr4() {
                cfg.src_v4 = a.octets();
            }
            if let IpAddr::V6(a) = lb.addr6() {
                cfg.src_v6 = a.octets();
            }
            dp.set_config(&cfg)?;
            programs::attach_pinned(
                dp.program(),
                Program::Balance,
                "eth0",
                AttachMode::Native,
                &pins,
            )?;
            Ok(dp)
        })?;
        let mut reconciler = Reconciler::new();
        reconciler.apply(&mut dp, &site_state(&backends))?;
        self.lbs.insert(
            site,
            LbHost {
                dp,
                reconciler,
                backends,
            },
        );
        Ok(())
    }

    /// Gives site `site`'s VIPs exactly `backends` (weight 1, healthy).
    pub fn set_backends(&mut self, site: char, backends: &[&'static str]) -> anyhow::Result<()> {
        let lb = self.lbs.get_mut(&site).context("no such site")?;
        lb.reconciler.apply(&mut lb.dp, &site_state(backends))?;
        lb.backends = backends.to_vec();
        Ok(())
    }

    /// The backend site `site`'s balancer picks for a new flow from
    /// `client` to `vip` (from the shared flow hash and the ring it holds).
    pub fn predict(&self, site: char, vip: &VipId, client: SocketAddr) -> Option<&'static str> {
        let lb = self.lbs.get(&site)?;
        let ring = lb.reconciler.ring(vip)?;
        let flow = FlowKey::new(
            client.ip(),
            client.port(),
            vip.addr,
            vip.port,
            vip.proto.number(),
        );
        let real_id = ring[(flow_hash(&flow) % ring.len() as u32) as usize];
        leaves(Role::Backend, Some(site))
            .find(|b| lb.reconciler.real_id(vip, &b.addr_for(vip.addr)) == Some(real_id))
            .map(|b| b.name)
    }

    /// Site `site`'s balancer counters.
    pub fn lb_stats(&self, site: char) -> anyhow::Result<Stats> {
        Ok(self.lbs.get(&site).context("no such site")?.dp.stats()?)
    }

    /// Backend `name`'s decapsulator counters.
    pub fn decap_stats(&self, name: &str) -> anyhow::Result<DecapStats> {
        Ok(decap::pinned_stats(&self.pin_root().join(name))?)
    }
}

/// The desired state of one site: every lab VIP served by `backends`.
pub fn site_state(backends: &[&str]) -> Vec<VipSpec> {
    lab_vips()
        .into_iter()
        .map(|id| VipSpec {
            id,
            ring_size: RingSize::new(LAB_RING_SIZE).expect("prime"),
            no_conn_table: false,
            reals: backends
                .iter()
                .map(|b| RealSpec {
                    addr: leaf(b).addr_for(id.addr),
                    weight: 1,
                    healthy: true,
                })
                .collect(),
        })
        .collect()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            down(&self.prefix);
            // down() killed them; reap them.
            let servers = self
                .servers
                .get_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            for mut child in servers {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn ns_name(prefix: &str, short: &str) -> String {
    format!("{prefix}-{short}")
}

fn pin_root(prefix: &str) -> PathBuf {
    PathBuf::from("/sys/fs/bpf").join(prefix)
}

fn kill_all_in(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// Removes every namespace, process and pin of lab `prefix`; safe to call
/// when nothing (or only part) is there, e.g. after a crash.
pub fn down(prefix: &str) {
    let names = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mine = format!("{prefix}-");
    for ns in names.lines().filter_map(|l| l.split_whitespace().next()) {
        if ns.starts_with(&mine) {
            kill_all_in(ns);
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
    let _ = std::fs::remove_dir_all(pin_root(prefix));
}

/// Whether lab `prefix` is up (its router namespace exists).
pub fn is_up(prefix: &str) -> bool {
    Path::new(&format!("/run/netns/{}", ns_name(prefix, ROUTER))).exists()
}

/// The lab's binaries for a test binary of this workspace: lb-ctl and
/// lb-lab-server from the target profile directory (a workspace-wide
/// `cargo test` builds both).
pub fn test_bins() -> LabBins {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bins = LabBins::in_dir(profile_dir);
    for bin in [&bins.lb_ctl, &bins.server] {
        assert!(
            bin.exists(),
            "{} is missing: run the tests with `cargo test` at the workspace root (or `cargo build` first)",
            bin.display()
        );
    }
    bins
}
