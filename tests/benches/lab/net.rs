//! The benchmark's network: a generator, a forwarder and two backends, as
//! network namespaces joined by veth pairs, made fresh for every run and
//! removed on drop (namespaces, processes in them, BPF pins, files).
//!
//! ```text
//!  gen (lbb-gen) 198.51.100.129/25 ── lbb-up .130/25  fwd  lbb-b1 192.0.2.1/30 ── (lbb-be1) b1 .2/30
//!   │ r1 192.0.2.9/30                                  lbb-b2 192.0.2.5/30 ── b2 192.0.2.6/30
//!   │ r2 192.0.2.13/30 ── return links (lb's direct server return only) ── b1 .10, b2 .14
//! ```
//!
//! CPU 0 generates (the UDP generator, wrk) and runs the backends'
//! servers; CPU 1 forwards. Every veth of `fwd`, and the generator's link,
//! has GRO on (so the veth driver runs NAPI, with or without XDP) and
//! threaded NAPI, its kthread pinned: `fwd`'s to CPU 1, the generator's
//! to CPU 0 (replies that come back through the forwarder are received on
//! the client's core). A veth's receive otherwise runs on the core that
//! sent into it: for HTTP the backends' links are threaded too and pinned
//! to CPU 0 (their XDP program and TCP stack are the backends' work); for
//! UDP they are not, so the backends' XDP sink (a parse and a drop, the
//! same for every forwarder) runs on CPU 1, beside the forwarder, rather
//! than competing with the generator for CPU 0.
use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::Duration,
};

use lb_tests::{
    netns::{Netns, unique_tag, veth},
    run_ok,
};

pub const GEN_CPU: u32 = 0;
pub const FWD_CPU: u32 = 1;

pub const VIP: &str = "203.0.113.10";
pub const UDP_PORT: u16 = 5300;
pub const HTTP_PORT: u16 = 80;
pub const GEN_ADDR: &str = "198.51.100.129";
pub const FWD_UP_ADDR: &str = "198.51.100.130";
/// The generated UDP packets' sources (clients behind the generator's
/// link, off it: never one of the forwarder's addresses).
pub const UDP_CLIENTS: &str = "198.51.100.0/26";
/// The forwarder's interfaces (named apart from everything else on the
/// host: their NAPI kthreads are found by name).
pub const FWD_IFACES: [&str; 3] = ["lbb-up", "lbb-b1", "lbb-b2"];
/// The generator's link.
pub const GEN_IFACE: &str = "lbb-gen";
/// The backends' links to the forwarder, by backend.
pub const BACKEND_IFACES: [&str; 2] = ["lbb-be1", "lbb-be2"];

/// A backend: its namespace's short name, address, the forwarder's address
/// on its link, and its return link (backend side, generator side).
pub struct BackendAddrs {
    pub name: &'static str,
    pub addr: &'static str,
    pub fwd_addr: &'static str,
    pub ret: (&'static str, &'static str),
}

pub const BACKENDS: [BackendAddrs; 2] = [
    BackendAddrs {
        name: "b1",
        addr: "192.0.2.2",
        fwd_addr: "192.0.2.1",
        ret: ("192.0.2.10", "192.0.2.9"),
    },
    BackendAddrs {
        name: "b2",
        addr: "192.0.2.6",
        fwd_addr: "192.0.2.5",
        ret: ("192.0.2.14", "192.0.2.13"),
    },
];

/// How the backends send their replies back to the generator.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// Through the forwarder (its kernel forwards them; DNAT and a proxy
    /// need this).
    ViaForwarder,
    /// Over their own link to the generator, as direct server return does
    /// in a network: the balancer never sees them.
    Direct,
}

pub struct Net {
    pub gen_ns: Netns,
    pub fwd: Netns,
    pub backends: Vec<Netns>,
    /// Per run: configurations, sockets, logs.
    pub run_dir: PathBuf,
    /// Per run: BPF pins (the daemon's, the decapsulators').
    pub pin_dir: PathBuf,
    /// What [`Net::spawn`] started, with its log.
    children: Vec<(Child, PathBuf)>,
}

fn sysctl(ns: &Netns, settings: &[(&str, &str)]) {
    ns.run(|| {
        for (key, value) in settings {
            std::fs::write(format!("/proc/sys/{key}"), value)
                .unwrap_or_else(|e| panic!("sysctl {key}={value}: {e}"));
        }
    });
}

impl Net {
    pub fn up(ret: Return) -> Net {
        let tag = unique_tag();
        let run_dir = PathBuf::from(format!("/run/lbt-bench-{tag}"));
        let pin_dir = PathBuf::from(format!("/sys/fs/bpf/lbt-bench-{tag}"));
        std::fs::create_dir_all(&run_dir).expect("run dir");
        let net = Net {
            gen_ns: Netns::new("bgen"),
            fwd: Netns::new("bfwd"),
            backends: BACKENDS.iter().map(|b| Netns::new(b.name)).collect(),
            run_dir,
            pin_dir,
            children: Vec::new(),
        };
        net.wire(ret);
        net
    }

    fn wire(&self, ret: Return) {
        let (g, f) = (&self.gen_ns, &self.fwd);
        link(g, GEN_IFACE, f, FWD_IFACES[0]);
        g.ip(&["addr", "add", &format!("{GEN_ADDR}/25"), "dev", GEN_IFACE]);
        g.ip(&["route", "add", &format!("{VIP}/32"), "via", FWD_UP_ADDR]);
        g.ip(&["route", "add", "192.0.2.0/24", "via", FWD_UP_ADDR]);
        let up = FWD_IFACES[0];
        f.ip(&["addr", "add", &format!("{FWD_UP_ADDR}/25"), "dev", up]);
        // Locally sent TCP carries a partial checksum on veth; a forwarder
        // that does not go through the stack (XDP) would pass it on broken.
        run_ok(g.command("ethtool").args(["-K", GEN_IFACE, "tx", "off"]));
        sysctl(
            g,
            &[
                ("net/ipv4/conf/all/rp_filter", "0"),
                ("net/ipv4/conf/default/rp_filter", "0"),
                ("net/ipv4/ip_local_port_range", "10000 60999"),
            ],
        );
        let forwarding = [
            ("net/ipv4/ip_forward", "1"),
            ("net/ipv4/conf/all/rp_filter", "0"),
        ];
        sysctl(f, &forwarding);
        for (i, (b, ns)) in BACKENDS.iter().zip(&self.backends).enumerate() {
            let (fwd_if, be_if) = (FWD_IFACES[1 + i], BACKEND_IFACES[i]);
            link(f, fwd_if, ns, be_if);
            f.ip(&["addr", "add", &format!("{}/30", b.fwd_addr), "dev", fwd_if]);
            ns.ip(&["addr", "add", &format!("{}/30", b.addr), "dev", be_if]);
            for (n, ifname) in [(f, fwd_if), (ns, be_if)] {
                n.ip(&["link", "set", "dev", ifname, "mtu", "1600"]);
            }
            ns.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
            sysctl(
                ns,
                &[
                    ("net/ipv4/conf/all/arp_ignore", "1"),
                    ("net/ipv4/conf/all/arp_announce", "2"),
                    ("net/ipv4/conf/all/rp_filter", "0"),
                    ("net/ipv4/conf/default/rp_filter", "0"),
                ],
            );
            match ret {
                Return::ViaForwarder => {
                    ns.ip(&["route", "add", "default", "via", b.fwd_addr]);
                }
                Return::Direct => {
                    let gen_if = format!("r{}", i + 1);
                    link(ns, "ret", g, &gen_if);
                    ns.ip(&["addr", "add", &format!("{}/30", b.ret.0), "dev", "ret"]);
                    g.ip(&["addr", "add", &format!("{}/30", b.ret.1), "dev", &gen_if]);
                    ns.ip(&["route", "add", "default", "via", b.ret.1]);
                    sysctl(g, &[(&format!("net/ipv4/conf/{gen_if}/rp_filter"), "0")]);
                }
            }
        }
        threaded_napi(f, &FWD_IFACES);
        // The client's receive (replies through the forwarder) runs on the
        // generator's core, not on the forwarder's.
        threaded_napi(g, &[GEN_IFACE]);
        // Neighbours resolved before traffic (lb's `fib` next hop looks
        // them up; the first packets would otherwise go through the stack).
        for b in &BACKENDS {
            run_ok(f.command("ping").args(["-c1", "-W1", "-q", b.addr]));
        }
        run_ok(g.command("ping").args(["-c1", "-W1", "-q", FWD_UP_ADDR]));
    }

    /// Moves the backends' receive (their XDP program and TCP stack) off
    /// the forwarding core: threaded NAPI on their links, later pinned to
    /// [`GEN_CPU`] with the servers. Without it, what the forwarder hands
    /// to a backend is processed on the forwarder's core (the veth's
    /// receive runs where the sender runs).
    pub fn backends_receive_on_gen_cpu(&self) {
        for (ns, ifname) in self.backends.iter().zip(BACKEND_IFACES) {
            threaded_napi(ns, &[ifname]);
        }
    }

    /// Pins the NAPI kthreads: the forwarder's to [`FWD_CPU`], the
    /// generator's and the backends' (where threaded) to [`GEN_CPU`]; call
    /// after everything attached (an XDP attach may make new ones). Panics
    /// if the forwarder's or the generator's link has none.
    pub fn pin_napi_threads(&self) {
        pin_napi(&FWD_IFACES, FWD_CPU, true);
        pin_napi(&[GEN_IFACE], GEN_CPU, true);
        pin_napi(&BACKEND_IFACES, GEN_CPU, false);
    }

    /// A command in namespace `ns` pinned to `cpu`.
    pub fn pinned(ns: &Netns, cpu: u32, program: &str) -> Command {
        let mut cmd = Command::new("taskset");
        cmd.args([
            "-c",
            &cpu.to_string(),
            "ip",
            "netns",
            "exec",
            ns.name(),
            program,
        ]);
        cmd
    }

    /// Starts `cmd` (output to `log` in the run directory); it is killed
    /// with the namespaces.
    pub fn spawn(&mut self, mut cmd: Command, log: &str) {
        let log = self.run_dir.join(log);
        let file = std::fs::File::create(&log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
        self.children.push((child, log));
    }

    /// Whether every spawned process still runs; panics naming the first
    /// that exited, with its log's end.
    pub fn check_alive(&mut self, what: &str) {
        for (child, log) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(20).collect();
                panic!(
                    "{what}: a process exited ({status}); the end of {}:\n{}",
                    log.display(),
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
    }

    /// Waits until `addr:port` accepts connections from `ns` (and every
    /// spawned process still runs).
    pub fn wait_tcp(&mut self, ns: &str, addr: &str, port: u16) {
        let target: std::net::SocketAddr = format!("{addr}:{port}").parse().expect("address");
        for _ in 0..200 {
            if lb_tests::netns::run_in(ns, || {
                std::net::TcpStream::connect_timeout(&target, Duration::from_millis(100)).is_ok()
            }) {
                return;
            }
            self.check_alive(&format!("waiting for {addr}:{port}"));
            sleep(Duration::from_millis(25));
        }
        panic!("{addr}:{port} does not answer from {ns}");
    }
}

/// A veth pair with TSO off at both ends. This kernel's veth hands a
/// socket buffer to the receiving end's NAPI (threaded where the bench
/// says, on the core it says) only if the sending end has no TSO, or the
/// receiver runs XDP; otherwise the receive runs on the sender's core. With
/// TSO on, DNAT's and HAProxy's backends and client received on the
/// forwarding core while lb's (XDP redirect) received on CPU 0: the
/// forwarders were charged for different work.
fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    veth(a, a_if, b, b_if);
    for (ns, ifname) in [(a, a_if), (b, b_if)] {
        run_ok(ns.command("ethtool").args(["-K", ifname, "tso", "off"]));
    }
}

/// GRO on (so that the veth driver runs NAPI even without XDP) and
/// threaded NAPI on `ifaces` of `ns`.
fn threaded_napi(ns: &Netns, ifaces: &[&str]) {
    for &ifname in ifaces {
        run_ok(ns.command("ethtool").args(["-K", ifname, "gro", "on"]));
        // sysfs shows the namespace it was mounted in: `ip netns exec`
        // mounts the namespace's own.
        run_ok(
            ns.command("sh")
                .args(["-c", &format!("echo 1 > /sys/class/net/{ifname}/threaded")]),
        );
    }
}

/// Pins the NAPI kthreads of `ifaces` (found by name: `napi/<if>-<id>`)
/// to `cpu`; `required`: panic if one has none.
fn pin_napi(ifaces: &[&str], cpu: u32, required: bool) {
    let mut found = vec![false; ifaces.len()];
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
            continue;
        };
        let Some(rest) = comm.trim().strip_prefix("napi/") else {
            continue;
        };
        for (i, ifname) in ifaces.iter().enumerate() {
            if rest.starts_with(&format!("{ifname}-")) {
                let pid = entry.file_name().to_string_lossy().into_owned();
                run_ok(Command::new("taskset").args(["-p", "-c", &cpu.to_string(), &pid]));
                found[i] = true;
            }
        }
    }
    for (ifname, found) in ifaces.iter().zip(found) {
        assert!(
            found || !required,
            "no NAPI kthread for {ifname}: threaded NAPI is off"
        );
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The namespaces go with their fields (processes killed first);
        // pins and files stay unless removed.
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}
