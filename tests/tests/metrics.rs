//! The daemon's metrics as a monitoring system sees them: served in both
//! exposition formats, accepted by `promtool check metrics`, and scraped by
//! a real Prometheus (Debian `prometheus`) inside the LB host's namespace,
//! whose query API then answers with lb's families: verdicts, drop reasons,
//! traffic per real, and a probe failure with its reason.
use std::{
    io::{Read as _, Write as _},
    net::IpAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use lb_tests::{
    lab::{HTTP_PORT, Lab, LabOptions, VIP4, client::http_get, test_bins},
    netns::{run_in, unique_tag},
    require_root,
};
use serde_json::Value;

const METRICS: &str = "127.0.0.1:9180";
const PROMETHEUS: &str = "127.0.0.1:9190";
/// lb's alert rules, loaded by the test's Prometheus.
const ALERT_RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../monitoring/prometheus/lb-alerts.yml"
);

/// One HTTP/1.0 GET on loopback inside `ns`: (head, body).
fn get(ns: &str, addr: &str, path: &str, accept: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.0\r\nHost: lb\r\nAccept: {accept}\r\n\r\n");
    let addr = addr.to_owned();
    run_in(ns, move || {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        let (head, body) = all.split_once("\r\n\r\n").expect("an HTTP answer");
        (head.to_owned(), body.to_owned())
    })
}

/// `text` with every byte but unreserved ones percent-encoded.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server in `ns` scraping lb-ctl every second; killed and
/// its files removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    ns: String,
}

impl Prometheus {
    fn start(ns: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lbt-prometheus-{}", unique_tag()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: lb\n    static_configs:\n      - targets: ['{METRICS}']\n",
                rules = ALERT_RULES,
            ),
        )
        .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus"])
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={PROMETHEUS}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect(
                "start prometheus (Debian package prometheus; `cargo xtask setup` installs it)",
            );
        Self {
            child,
            dir,
            ns: ns.to_owned(),
        }
    }

    /// The `data` of an API call.
    fn api(&self, path: &str) -> Value {
        let (head, body) = get(&self.ns, PROMETHEUS, path, "application/json");
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}\n{body}"
        );
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["status"], "success", "{body}");
        v["data"].clone()
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> Vec<Value> {
        self.api(&format!("/api/v1/query?query={}", url_encode(promql)))["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls an instant query (every 250 ms, for up to 30 s: Prometheus
    /// starts, then scrapes every second) until it has one sample for
    /// which `wanted` holds; returns its value.
    fn wait_for(&self, promql: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        let start = Instant::now();
        let mut last = None;
        loop {
            let listening = run_in(&self.ns, || {
                std::net::TcpStream::connect_timeout(
                    &PROMETHEUS.parse().unwrap(),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if listening && let [one] = self.query(promql).as_slice() {
                let value: f64 = one["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("a sample value");
                if wanted(value) {
                    return value;
                }
                last = Some(value);
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "Prometheus: {promql} never as wanted (last value {last:?})"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_real_prometheus_scrapes_the_daemon_and_promtool_accepts_its_metrics() {
    if !require_root("a_real_prometheus_scrapes_the_daemon_and_promtool_accepts_its_metrics") {
        return;
    }
    let lab = Lab::up(LabOptions::new(
        &format!("lbtm{}", unique_tag()),
        test_bins(),
    ))
    .expect("lab up");
    lab.route_vips(&['A']).unwrap();
    let ns = lab.lbs.get(&'A').expect("site A").ns.clone();
    let vip: IpAddr = VIP4.parse().unwrap();
    for _ in 0..20 {
        http_get(&lab.ns("c1"), vip, HTTP_PORT).expect("a request through the VIP");
    }
    // a1 stops: its probes fail with "connection refused".
    lab.stop_server("a1").unwrap();

    // The classic text format, as curl and promtool get it.
    let (head, classic) = get(&ns, METRICS, "/metrics", "text/plain");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian package prometheus)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(classic.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{classic}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // OpenMetrics, as Prometheus asks for it.
    let (head, open) = get(
        &ns,
        METRICS,
        "/metrics",
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(open.ends_with("# EOF\n"));
    let (head, _) = get(&ns, METRICS, "/other", "*/*");
    assert!(head.starts_with("HTTP/1.0 404"), "{head}");

    let prometheus = Prometheus::start(&ns);
    prometheus.wait_for("up{job=\"lb\"}", |v| v == 1.0);
    prometheus.wait_for("lb_up", |v| v == 1.0);
    prometheus.wait_for("lb_xdp_verdicts_total{verdict=\"tx\"}", |v| v >= 20.0);
    // A dropped packet has one drop reason: the reasons sum to the drop
    // verdicts (one query, so both come from the same scrape).
    prometheus.wait_for(
        "sum(lb_drops_total) - sum(lb_xdp_verdicts_total{verdict=\"drop\"})",
        |v| v == 0.0,
    );
    prometheus.wait_for(
        "sum(lb_real_packets_total{vip=\"203.0.113.10:80/tcp\"})",
        |v| v >= 20.0,
    );
    // a1's failed probes carry their reason, and a1 leaves the ring.
    prometheus.wait_for(
        "sum(lb_health_probe_failures_total{real=\"192.0.2.18\",reason=\"refused\"})",
        |v| v >= 1.0,
    );
    prometheus.wait_for(
        "lb_real_up{vip=\"203.0.113.10:80/tcp\",real=\"192.0.2.18\"}",
        |v| v == 0.0,
    );
    prometheus.wait_for(
        "lb_real_up{vip=\"203.0.113.10:80/tcp\",real=\"192.0.2.22\"}",
        |v| v == 1.0,
    );

    // lb's alert rules run on these series: every rule evaluates without
    // an error (its health is "ok" once evaluated).
    let start = Instant::now();
    loop {
        let groups = prometheus.api("/api/v1/rules");
        let rules: Vec<&Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        assert_eq!(rules.len(), 8, "the test's Prometheus loaded lb's rules");
        let unhealthy: Vec<String> = rules
            .iter()
            .filter(|r| r["health"] != "ok")
            .map(|r| format!("{}: {} {}", r["name"], r["health"], r["lastError"]))
            .collect();
        if unhealthy.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "rules not evaluated cleanly: {unhealthy:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}
