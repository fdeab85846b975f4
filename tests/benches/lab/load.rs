//! The load and what it measures: the generator's UDP packets counted at
//! the backends, wrk's HTTP requests, the forwarding core's busy time from
//! `/proc/stat`, and where that time goes (`perf record -e cpu-clock`: this
//! VM has no hardware counters, a timer-driven sample works).
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    thread::sleep,
    time::{Duration, Instant},
};

use lb_tests::run_ok;

use crate::{
    forwarders::{Forwarder, Setup},
    generator::{Generator, udp_frame},
    net::{FWD_CPU, FWD_IFACES, GEN_CPU, GEN_IFACE, HTTP_PORT, Net, UDP_CLIENTS, UDP_PORT, VIP},
};

/// Before the measured window: flows set up, tables warm.
pub const WARM_UP: Duration = Duration::from_secs(1);
/// The measured window.
pub const WINDOW: Duration = Duration::from_secs(3);

/// The forwarding core's time, from `/proc/stat` (clock ticks).
#[derive(Clone, Copy)]
struct CpuTicks {
    busy: u64,
    all: u64,
}

fn cpu_ticks(cpu: u32) -> CpuTicks {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let name = format!("cpu{cpu} ");
    let line = stat
        .lines()
        .find(|l| l.starts_with(&name))
        .expect("the CPU's line in /proc/stat");
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().expect("a tick count"))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is in user).
    let all: u64 = v.iter().take(8).sum();
    CpuTicks {
        busy: all - v[3] - v[4],
        all,
    }
}

/// Busy seconds and the busy share of the forwarding core between two
/// readings.
fn busy_between(a: CpuTicks, b: CpuTicks) -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let busy = (b.busy - a.busy) as f64;
    let all = (b.all - a.all).max(1) as f64;
    (busy / hz, busy / all)
}

/// The MAC address of `ifname` in `ns`.
pub fn mac(ns: &lb_tests::netns::Netns, ifname: &str) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    let text = v[0]["address"].as_str().expect("a MAC");
    let mut mac = [0u8; 6];
    for (b, part) in mac.iter_mut().zip(text.split(':')) {
        *b = u8::from_str_radix(part, 16).expect("a MAC");
    }
    mac
}

/// The UDP flows the generator sends (sources in [`UDP_CLIENTS`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flows {
    /// 1,024 flows (source ports 0-1023 of 198.51.100.0), met again every
    /// 1,024 packets: the established path.
    Established,
    /// A 22-bit sequence of source address (198.51.100.0-63) and port:
    /// every packet a new flow, each met again after 4,194,304 packets.
    New,
}

impl Flows {
    /// The generator's `flows` (0: its whole sequence).
    fn count(self) -> u32 {
        match self {
            Flows::Established => 1 << 10,
            Flows::New => 1 << 22,
        }
    }
}

pub struct UdpSample {
    /// Packets per second that reached the backends, counted there.
    pub pps: f64,
    /// Packets per second the generator sent (the forwarder's veth drops
    /// what it has no room for).
    pub offered_pps: f64,
    /// Share of the forwarding core that was busy.
    pub busy: f64,
    /// Forwarding-core time per forwarded packet, ns.
    pub ns_per_packet: f64,
    /// Packets that reached a backend in a form they should not have (the
    /// other forwarder's form): must be 0.
    pub wrong_form: u64,
}

/// Starts the generator on its core, measures a window, stops it.
pub fn udp_window(setup: &mut Setup, flows: Flows, profile: Option<&Path>) -> UdpSample {
    let net = &setup.net;
    let client: Ipv4Addr = UDP_CLIENTS
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("UDP_CLIENTS");
    let frame = udp_frame(
        mac(&net.fwd, FWD_IFACES[0]),
        mac(&net.gen_ns, GEN_IFACE),
        client,
        VIP.parse().expect("VIP"),
        0,
        UDP_PORT,
    );
    let generator = Generator::start(net.gen_ns.name(), GEN_CPU, frame, flows.count());
    sleep(WARM_UP);
    let (c0, t0, o0, cpu0) = (
        setup.sink_counts(),
        Instant::now(),
        generator.sent(),
        cpu_ticks(FWD_CPU),
    );
    match profile {
        Some(out) => record_profile(out, WINDOW),
        None => sleep(WINDOW),
    }
    let (c1, t1, o1, cpu1) = (
        setup.sink_counts(),
        Instant::now(),
        generator.sent(),
        cpu_ticks(FWD_CPU),
    );
    generator.stop();
    let secs = (t1 - t0).as_secs_f64();
    let (good, wrong) = match setup.forwarder {
        Forwarder::Lb => (c1.tunnelled - c0.tunnelled, c1.plain - c0.plain),
        Forwarder::Nft | Forwarder::Haproxy | Forwarder::XdpFloor => {
            (c1.plain - c0.plain, c1.tunnelled - c0.tunnelled)
        }
    };
    let (busy_s, busy) = busy_between(cpu0, cpu1);
    UdpSample {
        pps: good as f64 / secs,
        offered_pps: (o1 - o0) as f64 / secs,
        busy,
        ns_per_packet: busy_s * 1e9 / (good.max(1) as f64),
        wrong_form: wrong,
    }
}

pub struct TcpSample {
    pub rps: f64,
    pub busy: f64,
    /// Forwarding-core time per request, µs.
    pub us_per_request: f64,
    /// wrk's 99th percentile latency, ms.
    pub p99_ms: f64,
    /// wrk's error lines (non-2xx answers, socket errors): must be empty.
    pub errors: Vec<String>,
}

/// Connections wrk keeps open.
const WRK_CONNECTIONS: u32 = 32;

/// Runs wrk on the generator's core for [`WINDOW`]; `close`: a new
/// connection for every request.
pub fn tcp_window(setup: &mut Setup, close: bool, profile: Option<&Path>) -> TcpSample {
    let mut cmd = Net::pinned(&setup.net.gen_ns, GEN_CPU, "wrk");
    cmd.args(["-t1", "--latency", &format!("-c{WRK_CONNECTIONS}")])
        .arg(format!("-d{}s", WINDOW.as_secs()));
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://{VIP}:{HTTP_PORT}/"));
    let perf = profile.map(|out| {
        let out = out.to_path_buf();
        std::thread::spawn(move || record_profile(&out, WINDOW))
    });
    let c0 = cpu_ticks(FWD_CPU);
    let out = run_ok(&mut cmd);
    let c1 = cpu_ticks(FWD_CPU);
    if let Some(p) = perf {
        p.join().expect("perf");
    }
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{out}"));
    let p99_ms = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(|v| duration_ms(v.trim()))
        .unwrap_or(f64::NAN);
    let errors = out
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Non-2xx") || l.starts_with("Socket errors"))
        .map(str::to_string)
        .collect();
    let (busy_s, busy) = busy_between(c0, c1);
    let requests = rps * WINDOW.as_secs_f64();
    TcpSample {
        rps,
        busy,
        us_per_request: busy_s * 1e6 / requests.max(1.0),
        p99_ms,
        errors,
    }
}

/// wrk's durations ("512.00us", "1.20ms", "1.01s") in ms.
fn duration_ms(text: &str) -> Option<f64> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (value, unit) = text.split_at(split);
    let value: f64 = value.parse().ok()?;
    let scale = match unit {
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        _ => return None,
    };
    Some(value * scale)
}

/// Samples the forwarding core for `dur` (`perf record -e cpu-clock`).
fn record_profile(out: &Path, dur: Duration) {
    run_ok(
        Command::new("perf")
            .args([
                "record",
                "-q",
                "-g",
                "-F",
                "499",
                "-e",
                "cpu-clock",
                "-C",
                &FWD_CPU.to_string(),
                "-o",
            ])
            .arg(out)
            .args(["--", "sleep", &dur.as_secs().to_string()]),
    );
}

/// The top symbols of a profile, as `share symbol` lines.
pub fn profile_top(data: &PathBuf, n: usize) -> Vec<String> {
    let out = run_ok(
        Command::new("perf")
            .args([
                "report",
                "--stdio",
                "-q",
                "--no-children",
                "-g",
                "none",
                "--sort",
                "sym",
                "--percent-limit",
                "1",
                "-i",
            ])
            .arg(data),
    );
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(n)
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}
