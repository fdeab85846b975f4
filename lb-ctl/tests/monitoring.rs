//! The monitoring files in `monitoring/` against lb's real metric families
//! and a real `promtool` (Debian `prometheus`): the alert rules load and
//! pass their unit tests (`promtool test rules`), and every metric the
//! rules and the Grafana dashboard name is one lb-ctl exports (with the
//! labels they group by); the dashboard's queries are valid PromQL (checked
//! by promtool as recording rules).
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use lb_ctl::{
    api::{commands::MetricsSnapshot, pb},
    daemon::metrics::{exposition, families},
};

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

/// Whether promtool is here; under `CI=true` it must be.
fn have_promtool() -> bool {
    let found = Command::new("promtool").arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool missing (Debian package prometheus; `cargo xtask setup` installs it); CI=true forbids skipping"
        );
        eprintln!("SKIPPED: promtool missing (Debian package prometheus)");
    }
    found
}

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{said}");
    said
}

/// A snapshot in which every family has a sample: BGP on, a NIC counter,
/// a probe failure, a VIP with a real.
fn full_snapshot() -> MetricsSnapshot {
    let vip = pb::Vip {
        address: "203.0.113.10".into(),
        port: 80,
        protocol: "tcp".into(),
    };
    MetricsSnapshot {
        stats: pb::StatsReply {
            counters: lb_common::stats::Counter::ALL
                .iter()
                .map(|c| pb::Counter {
                    name: c.name().into(),
                    value: 1,
                    rate: 0.0,
                })
                .collect(),
            vips: vec![pb::VipStats {
                vip: Some(vip.clone()),
                traffic: Some(pb::Traffic::default()),
                reals: vec![pb::RealStats {
                    address: "192.0.2.18".into(),
                    traffic: Some(pb::Traffic::default()),
                }],
            }],
            nic: Some(pb::NicStats {
                interface: "eth0".into(),
                driver: "veth".into(),
                xdp_tx_errors: Some(0),
            }),
        },
        vips: pb::ListVipsReply {
            vips: vec![pb::VipInfo {
                vip: Some(vip),
                reals: vec![pb::RealInfo {
                    address: "192.0.2.18".into(),
                    weight: 1,
                    state: "up".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        },
        health: pb::HealthReply {
            reals: vec![pb::RealHealth {
                address: "192.0.2.18".into(),
                check: "tcp".into(),
                failures_by_reason: [("timeout".to_owned(), 1)].into_iter().collect(),
                ..Default::default()
            }],
        },
        bgp: pb::BgpStatusReply {
            enabled: true,
            peers: vec![pb::BgpPeer {
                address: "192.0.2.1".into(),
                ..Default::default()
            }],
            withheld: vec![pb::BgpWithheld {
                prefix: "203.0.113.10/32".into(),
                reason: "x".into(),
            }],
            ..Default::default()
        },
        uptime_s: 1,
    }
}

/// lb's series names (as a query names them: counters with `_total`) and
/// the labels each carries.
fn exported() -> BTreeMap<String, BTreeSet<String>> {
    let text = exposition::classic(&exposition::openmetrics(&families::registry(
        &full_snapshot(),
    )));
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let series = line.rsplit_once(' ').unwrap().0;
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let entry = out.entry(name.to_owned()).or_default();
        for pair in labels
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
        {
            entry.insert(pair.split('=').next().unwrap().to_owned());
        }
    }
    out
}

/// Every `lb_...` metric name in `text`.
fn lb_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("lb_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if boundary {
            names.insert(text[start..end].to_owned());
        }
        i = end;
    }
    names
}

/// The labels a query groups by (`by (a, b)`).
fn grouped_by(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("by (") {
        let inner = &rest[at + 4..];
        let close = inner.find(')').unwrap();
        for l in inner[..close].split(',') {
            out.insert(l.trim().to_owned());
        }
        rest = &inner[close..];
    }
    out
}

#[test]
fn the_alert_rules_load_and_pass_their_tests() {
    if !have_promtool() {
        return;
    }
    let dir = monitoring().join("prometheus");
    let checked = promtool(&["check", "rules", "lb-alerts.yml"], &dir);
    assert!(checked.contains("SUCCESS: 8 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "lb-alerts.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
fn the_rules_and_the_dashboard_name_only_what_lb_exports() {
    let exported = exported();
    assert!(exported.contains_key("lb_drops_total"), "{exported:?}");
    let rules = std::fs::read_to_string(monitoring().join("prometheus/lb-alerts.yml")).unwrap();
    let tests =
        std::fs::read_to_string(monitoring().join("prometheus/lb-alerts.test.yml")).unwrap();
    let dashboard =
        std::fs::read_to_string(monitoring().join("grafana/lb-dashboard.json")).unwrap();
    for (file, text) in [
        ("rules", &rules),
        ("rule tests", &tests),
        ("dashboard", &dashboard),
    ] {
        let names = lb_names(text);
        assert!(names.len() >= 5, "{file}: {names:?}");
        for name in &names {
            assert!(
                exported.contains_key(name),
                "{file} names {name}, which lb does not export ({:?})",
                exported.keys().collect::<Vec<_>>()
            );
        }
    }
    // The input series of the rule tests carry lb's labels, no others
    // (beyond what a scrape adds).
    for line in tests
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- series: '"))
    {
        let (name, labels) = line.trim_end_matches('\'').split_once('{').unwrap();
        if name == "up" {
            continue;
        }
        for pair in labels.trim_end_matches('}').split(',') {
            let label = pair.split('=').next().unwrap();
            assert!(
                label == "job" || label == "instance" || exported[name].contains(label),
                "{name} has no label {label} in lb's output"
            );
        }
    }
}

#[test]
fn the_dashboard_queries_are_valid_and_group_by_real_labels() {
    let text = std::fs::read_to_string(monitoring().join("grafana/lb-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "lb-overview");
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let exported = exported();
    let mut exprs = Vec::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap();
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(expr.contains("instance=~\"$instance\""), "{title}: {expr}");
            let names = lb_names(expr);
            for label in grouped_by(expr) {
                assert!(
                    names.iter().any(|n| exported[n].contains(&label)) || label == "instance",
                    "{title}: groups by {label}, which {names:?} do not carry"
                );
            }
            exprs.push(expr.to_owned());
        }
    }
    assert!(exprs.len() >= 12, "{exprs:?}");
    for needed in [
        "lb_vip_packets_total",
        "lb_real_packets_total",
        "lb_drops_total",
        "lb_health_transitions_total",
        "lb_bgp_peer_established",
        "lb_bgp_announced",
        "lb_conn_table_total",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "the dashboard shows {needed}"
        );
    }
    if !have_promtool() {
        return;
    }
    // Grafana's variables as Prometheus would see them, then each query
    // as a recording rule: promtool parses them all.
    let dir = std::env::temp_dir().join(format!("lb-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    std::fs::write(dir.join("dashboard.yml"), rules).unwrap();
    let said = promtool(&["check", "rules", "dashboard.yml"], &dir);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{said}"
    );
}
