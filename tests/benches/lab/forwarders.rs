//! What runs in the forwarder's namespace (lb, nftables DNAT, HAProxy) and
//! on the backends (the counting sink, or nginx behind lb's decapsulator).
use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    maps::{Array, PerCpuArray},
    programs::{Xdp, XdpMode},
};
use lb_common::bench::{BenchHop, SinkCounts, SinkMatch};

use lb_tests::run_ok;

use crate::load::mac;
use crate::net::{
    BACKEND_IFACES, BACKENDS, FWD_CPU, FWD_IFACES, GEN_CPU, HTTP_PORT, Net, Return, UDP_PORT, VIP,
};

/// The forwarders compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Forwarder {
    /// `lb-ctl daemon`, native XDP on the forwarder's uplink, next hop by
    /// the kernel's FIB (`XDP_REDIRECT` to the backend's link).
    Lb,
    /// nftables DNAT in the forwarder's kernel (conntrack; this kernel has
    /// no IPVS).
    Nft,
    /// HAProxy in TCP mode on the forwarder's core, one thread.
    Haproxy,
    /// The floor: `lb_bench_fwd`, native XDP on the forwarder's uplink,
    /// which only rewrites the Ethernet addresses and redirects to a
    /// backend's link. No forwarder that moves packets with XDP on this
    /// topology does less; its rate is the ceiling of any of them here.
    XdpFloor,
}

impl Forwarder {
    pub fn label(self) -> &'static str {
        match self {
            Forwarder::Lb => "lb (XDP)",
            Forwarder::Nft => "nftables DNAT",
            Forwarder::Haproxy => "HAProxy (TCP mode)",
            Forwarder::XdpFloor => "floor: XDP redirect, no balancing",
        }
    }

    /// How the backends reply: directly for lb, through the forwarder for
    /// the others.
    pub fn return_path(self) -> Return {
        match self {
            Forwarder::Lb | Forwarder::XdpFloor => Return::Direct,
            Forwarder::Nft | Forwarder::Haproxy => Return::ViaForwarder,
        }
    }
}

/// What the backends run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backends {
    /// `lb_bench_sink`: counts and drops the UDP test packets.
    Sink,
    /// nginx on port 80 (behind lb's decapsulator when lb forwards).
    Http,
}

/// One run's set-up: the network, its forwarder and backends running.
pub struct Setup {
    pub net: Net,
    pub forwarder: Forwarder,
    /// The sink's object (its maps; its attachments live as long).
    sink: Option<Ebpf>,
    /// The floor forwarder's object, if it forwards.
    floor: Option<Ebpf>,
    lb_socket: Option<PathBuf>,
    lb_ctl: PathBuf,
}

impl Setup {
    pub fn up(forwarder: Forwarder, backends: Backends, lb_ctl: &Path) -> Setup {
        let net = Net::up(forwarder.return_path());
        let mut s = Setup {
            net,
            forwarder,
            sink: None,
            floor: None,
            lb_socket: None,
            lb_ctl: lb_ctl.to_path_buf(),
        };
        match backends {
            Backends::Sink => s.attach_sink(),
            Backends::Http => {
                s.net.backends_receive_on_gen_cpu();
                s.start_nginx(forwarder == Forwarder::Lb);
            }
        }
        match forwarder {
            Forwarder::Lb => s.start_lb(),
            Forwarder::Nft => s.load_nft(),
            Forwarder::Haproxy => s.start_haproxy(),
            Forwarder::XdpFloor => s.attach_floor(),
        }
        s.net.pin_napi_threads();
        s
    }

    fn attach_sink(&mut self) {
        let mut ebpf = Ebpf::load(lb_ctl::programs::OBJECT).expect("load the bench object");
        let want = SinkMatch {
            vip: VIP.parse::<std::net::Ipv4Addr>().expect("VIP").octets(),
            port: UDP_PORT.to_be(),
            _pad: 0,
        };
        Array::<_, SinkMatch>::try_from(ebpf.map_mut("LB_BENCH_SINK_MATCH").expect("sink map"))
            .expect("sink map")
            .set(0, want, 0)
            .expect("set the sink's match");
        let prog: &mut Xdp = ebpf
            .program_mut("lb_bench_sink")
            .expect("lb_bench_sink")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("load lb_bench_sink");
        for (i, ns) in self.net.backends.iter().enumerate() {
            let ifname = BACKEND_IFACES[i];
            ns.run(|| prog.attach(ifname, XdpMode::Driver))
                .unwrap_or_else(|e| panic!("attach the sink in {}: {e}", ns.name()));
        }
        self.sink = Some(ebpf);
    }

    /// `lb_bench_fwd` on the forwarder's uplink, a hop per backend.
    fn attach_floor(&mut self) {
        let mut ebpf = Ebpf::load(lb_ctl::programs::OBJECT).expect("load the bench object");
        let mut hops = Array::<_, BenchHop>::try_from(ebpf.map_mut("LB_BENCH_HOPS").expect("map"))
            .expect("hops map");
        for (i, ns) in self.net.backends.iter().enumerate() {
            let fwd_if = FWD_IFACES[1 + i];
            let hop = BenchHop {
                ifindex: self.net.fwd.run(|| lb_tests::balancer::ifindex(fwd_if)),
                dst_mac: mac(ns, BACKEND_IFACES[i]),
                src_mac: mac(&self.net.fwd, fwd_if),
            };
            hops.set(i as u32, hop, 0).expect("set a hop");
        }
        let prog: &mut Xdp = ebpf
            .program_mut("lb_bench_fwd")
            .expect("lb_bench_fwd")
            .try_into()
            .expect("an XDP program");
        prog.load().expect("load lb_bench_fwd");
        self.net
            .fwd
            .run(|| prog.attach(FWD_IFACES[0], XdpMode::Driver))
            .expect("attach the floor forwarder");
        self.floor = Some(ebpf);
    }

    /// Test packets that reached the backends, summed over CPUs.
    pub fn sink_counts(&self) -> SinkCounts {
        let ebpf = self.sink.as_ref().expect("the backends run the sink");
        let map = PerCpuArray::<_, SinkCounts>::try_from(ebpf.map("LB_BENCH_SINK").expect("map"))
            .expect("sink counts");
        let per_cpu = map.get(&0, 0).expect("read sink counts");
        per_cpu
            .iter()
            .fold(SinkCounts::default(), |a, c| SinkCounts {
                tunnelled: a.tunnelled + c.tunnelled,
                plain: a.plain + c.plain,
                passed: a.passed + c.passed,
            })
    }

    fn start_nginx(&mut self, decap: bool) {
        for (b, i) in BACKENDS.iter().zip(0..) {
            let dir = self.net.run_dir.join(b.name);
            std::fs::create_dir_all(&dir).expect("nginx dir");
            let d = dir.display();
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
                 error_log {d}/error.log;\nevents {{ worker_connections 8192; }}\n\
                 http {{\n  access_log off;\n  keepalive_requests 10000000;\n  \
                 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
                 fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                 scgi_temp_path {d}/scgi;\n  \
                 server {{ listen {HTTP_PORT}; location / {{ return 200 \"{name}\\n\"; }} }}\n}}\n",
                name = b.name
            );
            let path = dir.join("nginx.conf");
            std::fs::write(&path, conf).expect("nginx.conf");
            let ns = &self.net.backends[i];
            if decap {
                run_ok(
                    Command::new(&self.lb_ctl)
                        .args(["--netns", ns.name(), "decap", "attach", "--iface"])
                        .arg(BACKEND_IFACES[i])
                        .args(["--mode", "native", "--pin-dir"])
                        .arg(self.net.pin_dir.join(b.name)),
                );
            }
            let mut cmd = Net::pinned(ns, GEN_CPU, "nginx");
            cmd.arg("-c").arg(&path).args(["-e", "/dev/null"]);
            self.net.spawn(cmd, &format!("{}-nginx.log", b.name));
        }
        for (i, b) in BACKENDS.iter().enumerate() {
            let ns = self.net.backends[i].name().to_string();
            self.net.wait_tcp(&ns, b.addr, HTTP_PORT);
        }
    }

    fn start_lb(&mut self) {
        let dir = &self.net.run_dir;
        let socket = dir.join("lb.sock");
        let mut conf = format!(
            "# cargo xtask bench lab\n[daemon]\ninterface = \"{up}\"\nxdp_mode = \"native\"\n\
             pin_dir = \"{pins}\"\nsocket = \"{sock}\"\nstate_file = \"{state}\"\n\n\
             [dataplane]\nsource_v4 = \"{src}\"\nnext_hop = \"fib\"\nmtu = 1600\n",
            up = FWD_IFACES[0],
            pins = self.net.pin_dir.join("lb").display(),
            sock = socket.display(),
            state = dir.join("state.json").display(),
            src = BACKENDS[0].fwd_addr,
        );
        for (port, proto) in [(UDP_PORT, "udp"), (HTTP_PORT, "tcp")] {
            let _ = write!(
                conf,
                "\n[[vip]]\naddress = \"{VIP}\"\nport = {port}\nprotocol = \"{proto}\"\n"
            );
            for b in &BACKENDS {
                let _ = write!(conf, "  [[vip.real]]\n  address = \"{}\"\n", b.addr);
            }
        }
        let path = dir.join("lb.toml");
        std::fs::write(&path, conf).expect("lb.toml");
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &GEN_CPU.to_string()])
            .arg(&self.lb_ctl)
            .args(["--netns", self.net.fwd.name(), "daemon", "--config"])
            .arg(&path);
        self.net.spawn(cmd, "lb.log");
        let start = Instant::now();
        loop {
            let ready = Command::new(&self.lb_ctl)
                .args(["status", "--json", "--socket"])
                .arg(&socket)
                .output()
                .is_ok_and(|o| o.status.success());
            if ready {
                break;
            }
            self.net.check_alive("lb-ctl daemon");
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "lb-ctl daemon not ready in 20 s"
            );
            sleep(Duration::from_millis(50));
        }
        self.lb_socket = Some(socket);
    }

    /// lb's counters (`lb-ctl stats --json`), if lb forwards.
    pub fn lb_stats(&self) -> Option<serde_json::Value> {
        let socket = self.lb_socket.as_ref()?;
        let out = run_ok(
            Command::new(&self.lb_ctl)
                .args(["stats", "--json", "--socket"])
                .arg(socket),
        );
        Some(serde_json::from_str(&out).expect("lb-ctl stats --json"))
    }

    fn load_nft(&mut self) {
        let map = BACKENDS
            .iter()
            .enumerate()
            .map(|(i, b)| format!("{i} : {}", b.addr))
            .collect::<Vec<_>>()
            .join(", ");
        let n = BACKENDS.len();
        let rules = format!(
            "table ip lbbench {{\n  chain pre {{\n    type nat hook prerouting priority dstnat; policy accept;\n    \
             ip daddr {VIP} udp dport {UDP_PORT} dnat to jhash ip saddr . udp sport mod {n} map {{ {map} }}\n    \
             ip daddr {VIP} tcp dport {HTTP_PORT} dnat to jhash ip saddr . tcp sport mod {n} map {{ {map} }}\n  }}\n}}\n"
        );
        let path = self.net.run_dir.join("dnat.nft");
        std::fs::write(&path, rules).expect("dnat.nft");
        run_ok(self.net.fwd.command("nft").arg("-f").arg(&path));
    }

    fn start_haproxy(&mut self) {
        let fwd = &self.net.fwd;
        fwd.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
        let mut conf = format!(
            "global\n  nbthread 1\n  maxconn 8000\n  pidfile {d}/haproxy.pid\n\n\
             defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n\n\
             frontend vip\n  bind {VIP}:{HTTP_PORT}\n  default_backend web\n\n\
             backend web\n  balance roundrobin\n",
            d = self.net.run_dir.display()
        );
        for b in &BACKENDS {
            let _ = writeln!(conf, "  server {} {}:{HTTP_PORT}", b.name, b.addr);
        }
        let path = self.net.run_dir.join("haproxy.cfg");
        std::fs::write(&path, conf).expect("haproxy.cfg");
        let mut cmd = Net::pinned(fwd, FWD_CPU, "haproxy");
        cmd.arg("-db").arg("-f").arg(&path);
        self.net.spawn(cmd, "haproxy.log");
        let gen_ns = self.net.gen_ns.name().to_string();
        self.net.wait_tcp(&gen_ns, VIP, HTTP_PORT);
    }
}
