//! The lab: clients, a router, two LB host "sites" and their backends, as
//! network namespaces joined by veth pairs (see [`topology`]). The LB hosts
//! run `lb-ctl daemon` (see [`lb`]); the backends run the decapsulator
//! (`lb-ctl decap`) and [`lb-lab-server`](../../src/bin/lb-lab-server.rs)
//! with the VIPs on `lo`. Used by the end-to-end tests and by
//! `cargo xtask lab` / `demo`.
pub mod cli;
pub mod client;
pub mod demo_fleet;
pub mod fleet;
pub mod lb;
pub mod router;
pub mod topology;
pub mod traffic;

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
};

use anyhow::{Context as _, bail, ensure};
pub use lb::LbHost;
use lb_common::{decap::DecapStats, stats::Stats};
use lb_ctl::{
    decap,
    vocab::{Encapsulation, Proto, VipId},
};
use topology::{EDGE_MTU, FABRIC_MTU, LEAVES, Leaf, ROUTER, Role, leaf, leaves};
pub use topology::{HTTP_PORT, UDP_PORT, VIP4, VIP6};

use crate::netns::run_in;

/// Ring size of the lab's VIPs (prime; small keeps set-up fast).
pub const LAB_RING_SIZE: u32 = 4093;

/// How the lab runs an operator's gobgpd (at lb-ctl's default API address).
const OPERATOR_GOBGPD_ARGS: [&str; 5] = [
    "--api-hosts",
    "127.0.0.1:50051",
    "--pprof-disable",
    "-l",
    "warn",
];

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
    /// Route the VIPs with BGP (FRR on the router, lb-ctl's gobgpd on the
    /// LB hosts) instead of static routes.
    pub bgp: bool,
    /// Sites whose gobgpd the lab runs, as an operator would
    /// (`manage = false` in their daemon's config), instead of lb-ctl.
    pub operator_gobgpd: Vec<char>,
    /// Fleet mode: etcd members (0: none) in the router's namespace; the
    /// VIPs (with site A's backends) go to the store and both LB hosts
    /// follow it.
    pub fleet: usize,
    /// The LB hosts' `[dataplane] max_reals`.
    pub max_reals: u32,
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
            bgp: false,
            operator_gobgpd: Vec::new(),
            fleet: 0,
            max_reals: lb_common::MAX_REALS,
            bins,
        }
    }
}

/// A lab that is up. Dropping it takes it down, unless `keep` was set.
pub struct Lab {
    pub prefix: String,
    keep: bool,
    bins: LabBins,
    pub lbs: BTreeMap<char, LbHost>,
    /// Daemons and servers started by this process, reaped when the lab
    /// goes down.
    children: Mutex<Vec<Child>>,
    /// The daemon of each site, when started by this process.
    daemons: BTreeMap<char, Child>,
    /// FRR on the router, in BGP mode.
    pub frr: Option<router::Frr>,
    /// The fleet's etcd members, in fleet mode.
    pub etcd: Vec<fleet::EtcdMember>,
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
    /// The binaries the lab runs.
    pub fn bins(&self) -> &LabBins {
        &self.bins
    }

    pub fn ns(&self, short: &str) -> String {
        ns_name(&self.prefix, short)
    }

    /// The lab's directory for files (configurations, logs); removed with
    /// the lab.
    pub fn run_dir(&self) -> PathBuf {
        run_dir(&self.prefix)
    }

    fn pin_root(&self) -> PathBuf {
        pin_root(&self.prefix)
    }

    /// Builds the lab: namespaces, links, routes, servers, decapsulators,
    /// balancers. On failure, what was made is removed.
    pub fn up(opts: LabOptions) -> anyhow::Result<Lab> {
        down(&opts.prefix);
        let mut lab = Lab::empty(&opts.prefix, opts.bins.clone(), false);
        std::fs::create_dir_all(run_dir(&opts.prefix))?;
        lab.build_network(if opts.bgp { &[] } else { &opts.sites })?;
        if opts.bgp {
            let ns = lab.ns(ROUTER);
            lab.frr = Some(router::Frr::start(&ns, &run_dir(&opts.prefix).join("frr"))?);
        }
        for b in leaves(Role::Backend, None) {
            lab.setup_backend(b)?;
        }
        let fleet = if opts.fleet > 0 {
            let endpoints = lab.start_etcd(opts.fleet)?;
            let backends = opts.backends.get(&'A').cloned().unwrap_or_default();
            lab.fleet_apply(&lb::vips_text(&backends))?;
            Some(endpoints)
        } else {
            None
        };
        for l in leaves(Role::LbHost, None) {
            let site = l.site.expect("LB hosts have a site");
            let backends = opts.backends.get(&site).cloned().unwrap_or_default();
            let mut host = LbHost::new(&lab.prefix, &run_dir(&lab.prefix), l);
            host.bgp = opts.bgp;
            host.fleet = fleet.clone();
            host.max_reals = opts.max_reals;
            if opts.bgp && opts.operator_gobgpd.contains(&site) {
                host.manage_gobgpd = false;
                lab.start_detached(&host.ns, Command::new("gobgpd").args(OPERATOR_GOBGPD_ARGS))
                    .context("start the operator's gobgpd")?;
            }
            let daemon = host.start(&lab.bins, &backends)?;
            lab.daemons.insert(site, daemon);
            lab.lbs.insert(site, host);
        }
        if opts.bgp {
            // Up when the router's kernel table has every announcing site.
            let r = lab.ns(ROUTER);
            for vip in [VIP4, VIP6] {
                let vip: IpAddr = vip.parse().expect("VIP");
                let hops: Vec<IpAddr> = leaves(Role::LbHost, None)
                    .filter(|l| opts.sites.contains(&l.site.expect("site")))
                    .map(|l| l.addr_for(vip))
                    .collect();
                router::wait_nexthops(&r, vip, &hops, std::time::Duration::from_secs(30))
                    .context("BGP: the router did not install the VIP routes")?;
            }
        }
        lab.keep = opts.keep;
        Ok(lab)
    }

    fn empty(prefix: &str, bins: LabBins, keep: bool) -> Lab {
        Lab {
            prefix: prefix.to_owned(),
            keep,
            bins,
            lbs: BTreeMap::new(),
            children: Mutex::default(),
            daemons: BTreeMap::new(),
            frr: None,
            etcd: Vec::new(),
        }
    }

    /// Re-opens a lab left up by an earlier process (`keep`).
    pub fn attach(prefix: &str, bins: LabBins) -> anyhow::Result<Lab> {
        ensure!(
            is_up(prefix),
            "no lab `{prefix}` is up (cargo xtask lab up)"
        );
        let mut lab = Lab::empty(prefix, bins, true);
        for l in leaves(Role::LbHost, None) {
            let mut host = LbHost::new(prefix, &run_dir(prefix), l);
            host.refresh_view()?;
            lab.lbs.insert(host.site, host);
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
        sysctl(
            &r,
            &[
                ("/proc/sys/net/ipv4/ip_forward", "1"),
                ("/proc/sys/net/ipv6/conf/all/forwarding", "1"),
                ("/proc/sys/net/ipv4/fib_multipath_hash_policy", "3"),
                ("/proc/sys/net/ipv4/fib_multipath_hash_fields", "0x37"),
                ("/proc/sys/net/ipv6/fib_multipath_hash_policy", "3"),
                ("/proc/sys/net/ipv6/fib_multipath_hash_fields", "0x37"),
            ],
        )?;
        self.route_vips(sites)?;
        // Site B's per-flow outer sources lead back to its LB host (where
        // ICMP errors about its tunnels belong).
        let lbb = leaf("lbb");
        for (prefix, fam, via) in [
            (lb::SITE_B_SOURCE_PREFIXES[0], "-4", lbb.v4.1),
            (lb::SITE_B_SOURCE_PREFIXES[1], "-6", lbb.v6.1),
        ] {
            ip(&[
                "-n", &r, fam, "route", "add", prefix, "via", via, "dev", lbb.name,
            ])?;
        }
        // veth delivers XDP_TX frames only to a peer that runs XDP: the
        // router's side of each LB host link runs the pass program. And
        // veth hands packets on with their checksum left to "offload"
        // (CHECKSUM_PARTIAL), which XDP_TX loses: the router's links to the
        // LB hosts compute checksums, as a real wire always carries them.
        for lb in leaves(Role::LbHost, None) {
            run(Command::new("ip")
                .args(["netns", "exec", &r, "ethtool", "-K", lb.name, "tx", "off"]))
            .context("turn TX checksum offload off (ethtool)")?;
            // Checked, not assumed: with it on, TCP through the balancer
            // would work or not depending on where the checksum is filled.
            let features = Command::new("ip")
                .args(["netns", "exec", &r, "ethtool", "-k", lb.name])
                .output()
                .context("ethtool -k")?;
            ensure!(
                String::from_utf8_lossy(&features.stdout).contains("tx-checksumming: off"),
                "TX checksum offload is still on on the router's {} link",
                lb.name
            );
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

    /// Removes the pass program from the router's end of the link to
    /// `lb` (an LB host's leaf name): the LB host's XDP_TX frames are then
    /// dropped by the veth driver, as on a misconfigured veth.
    pub fn remove_router_xdp(&self, lb: &str) -> anyhow::Result<()> {
        let r = self.ns(ROUTER);
        let pins = self.pin_root().join(ROUTER);
        run(Command::new(&self.bins.lb_ctl)
            .args([
                "--netns",
                &r,
                "detach",
                "--iface",
                lb,
                "--program",
                "pass",
                "--pin-dir",
            ])
            .arg(&pins))
        .context("detach the router's pass program")?;
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
        // The VIP is on lo: never answer ARP for it on eth0, and accept
        // client sources arriving on eth0.
        sysctl(
            &ns,
            &[
                ("/proc/sys/net/ipv4/conf/all/arp_ignore", "1"),
                ("/proc/sys/net/ipv4/conf/all/arp_announce", "2"),
                ("/proc/sys/net/ipv4/conf/all/rp_filter", "0"),
                ("/proc/sys/net/ipv4/conf/eth0/rp_filter", "0"),
            ],
        )?;
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

    /// Starts `program` in namespace `ns`, detached (its own session, so it
    /// outlives this process when the lab is kept); the lab reaps it.
    fn start_detached(&self, ns: &str, program: &Command) -> anyhow::Result<()> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(program.get_program())
            .args(program.get_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.spawn_detached(cmd)
            .with_context(|| format!("start {:?} in {ns}", program.get_program()))?;
        Ok(())
    }

    /// Spawns `cmd` in its own session; the lab reaps it. Its pid.
    fn spawn_detached(&self, mut cmd: Command) -> anyhow::Result<i32> {
        // SAFETY: setsid in the child before exec has no memory effects.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        self.children.lock().expect("children").push(child);
        Ok(pid)
    }

    /// Starts backend `name`'s server (detached: it outlives this process
    /// when the lab is kept).
    pub fn start_server(&self, name: &str) -> anyhow::Result<()> {
        let ns = self.ns(name);
        let mut server = Command::new(&self.bins.server);
        server.arg(name);
        self.start_detached(&ns, &server)?;
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

    /// Gives site `site`'s VIPs exactly `backends` (weight 1), through its
    /// daemon's API; returns once they are healthy.
    pub fn set_backends(&mut self, site: char, backends: &[&'static str]) -> anyhow::Result<()> {
        self.lbs
            .get_mut(&site)
            .context("no such site")?
            .set_backends(backends)
    }

    /// Gives site `site`'s `vip` exactly the reals `addrs`, reached by
    /// `encap` (an IPv6 VIP may take IPv4 reals); returns once healthy.
    pub fn set_reals(
        &mut self,
        site: char,
        vip: &VipId,
        addrs: &[IpAddr],
        encap: Encapsulation,
    ) -> anyhow::Result<()> {
        self.lbs
            .get_mut(&site)
            .context("no such site")?
            .set_reals(vip, addrs, encap)
    }

    /// Makes site `site`'s `vip` a QUIC VIP (see [`lb::LbHost::make_quic`]).
    pub fn make_quic(&mut self, site: char, vip: &VipId) -> anyhow::Result<()> {
        self.lbs
            .get_mut(&site)
            .context("no such site")?
            .make_quic(vip)
    }

    /// Backend `name`'s real id for `vip` at site `site` (what a QUIC
    /// server of that backend puts in its connection ids).
    pub fn real_id(&self, site: char, vip: &VipId, name: &str) -> Option<u32> {
        self.lbs.get(&site)?.real_id(vip, name)
    }

    /// The backend site `site`'s balancer picks for a new flow from
    /// `client` to `vip`.
    pub fn predict(&self, site: char, vip: &VipId, client: SocketAddr) -> Option<&'static str> {
        self.lbs.get(&site)?.predict(vip, client)
    }

    /// Site `site`'s balancer counters.
    pub fn lb_stats(&self, site: char) -> anyhow::Result<Stats> {
        self.lbs.get(&site).context("no such site")?.stats()
    }

    /// Backend `name`'s decapsulator counters.
    pub fn decap_stats(&self, name: &str) -> anyhow::Result<DecapStats> {
        Ok(decap::pinned_stats(&self.pin_root().join(name))?)
    }

    /// The process id of site `site`'s daemon, if started here.
    pub fn daemon_pid(&self, site: char) -> Option<u32> {
        self.daemons.get(&site).map(Child::id)
    }

    /// Kills site `site`'s daemon with SIGKILL, as a crash would; the
    /// balancer stays attached.
    pub fn kill_daemon(&mut self, site: char) -> anyhow::Result<()> {
        let mut d = self
            .daemons
            .remove(&site)
            .context("no daemon of that site started here")?;
        d.kill()?;
        d.wait()?;
        Ok(())
    }

    /// Stops site `site`'s daemon with SIGTERM (gracefully: it withdraws
    /// its routes first) and waits for it to exit; returns when it exited.
    pub fn stop_daemon(&mut self, site: char) -> anyhow::Result<std::time::Instant> {
        let mut d = self
            .daemons
            .remove(&site)
            .context("no daemon of that site started here")?;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
        let status = d.wait()?;
        let exited = std::time::Instant::now();
        ensure!(
            status.success(),
            "site {site}'s daemon exited with {status}"
        );
        Ok(exited)
    }

    /// Kills every process of LB host `site` (daemon, gobgpd) and takes its
    /// link down: the host dies hard.
    pub fn kill_lb_host(&mut self, site: char) -> anyhow::Result<()> {
        let host = self.lbs.get(&site).context("no such site")?;
        kill_all_in(&host.ns);
        ip(&["-n", &host.ns, "link", "set", "eth0", "down"])?;
        if let Some(mut d) = self.daemons.remove(&site) {
            let _ = d.wait();
        }
        Ok(())
    }

    /// Freezes every process of LB host `site` (SIGSTOP): nothing closes
    /// its BGP session, its keepalives just stop, as when a host hangs.
    pub fn freeze_lb_host(&self, site: char) -> anyhow::Result<()> {
        let host = self.lbs.get(&site).context("no such site")?;
        signal_all_in(&host.ns, libc::SIGSTOP);
        Ok(())
    }

    /// Starts site `site`'s daemon again (same configuration); returns once
    /// it is ready.
    pub fn start_daemon(&mut self, site: char) -> anyhow::Result<()> {
        let host = self.lbs.get_mut(&site).context("no such site")?;
        let reals = host.api(|mut c| async move {
            let s = c.status(lb_ctl::api::pb::StatusRequest {}).await;
            Ok(s.map(|s| s.into_inner().reals).unwrap_or(0))
        });
        ensure!(reals.is_err(), "site {site}'s daemon is still running");
        let backends: Vec<&str> = Vec::new();
        let child = host.start(&self.bins, &backends)?;
        self.daemons.insert(site, child);
        Ok(())
    }
}

/// The VIPs every site serves, as [`VipId`]s.
pub fn vip_ids() -> Vec<VipId> {
    lab_vips()
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if std::thread::panicking() {
            for host in self.lbs.values() {
                let log = std::fs::read_to_string(&host.log).unwrap_or_default();
                eprintln!("--- lb-ctl daemon log of site {} ---\n{log}", host.site);
            }
        }
        down(&self.prefix);
        // down() killed them; reap them.
        let children = self
            .children
            .get_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let daemons = std::mem::take(&mut self.daemons).into_values();
        for mut child in children.into_iter().chain(daemons) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `/proc/sys` settings inside namespace `ns`.
fn sysctl(ns: &str, settings: &[(&str, &str)]) -> anyhow::Result<()> {
    run_in(ns, || {
        for (path, v) in settings {
            std::fs::write(path, v).with_context(|| format!("write {path} in {ns}"))?;
        }
        Ok(())
    })
}

fn ns_name(prefix: &str, short: &str) -> String {
    format!("{prefix}-{short}")
}

fn pin_root(prefix: &str) -> PathBuf {
    PathBuf::from("/sys/fs/bpf").join(prefix)
}

/// Where the lab keeps the daemons' configurations, sockets, state files
/// and logs.
fn run_dir(prefix: &str) -> PathBuf {
    PathBuf::from("/run").join(prefix)
}

fn kill_all_in(ns: &str) {
    signal_all_in(ns, libc::SIGKILL);
}

fn signal_all_in(ns: &str, signal: i32) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill has no memory-safety preconditions.
                unsafe { libc::kill(pid, signal) };
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
    let _ = std::fs::remove_dir_all(run_dir(prefix));
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
