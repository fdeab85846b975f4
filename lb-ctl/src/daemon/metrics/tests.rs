//! The families and both formats, rendered from snapshots built here.
use lb_common::stats::Counter;

use super::{
    dataplane::{CounterFamily, classify},
    exposition::{classic, openmetrics},
    families::registry,
};
use crate::api::{commands::MetricsSnapshot, pb};

#[test]
fn every_balancer_counter_belongs_to_exactly_one_family() {
    let unplaced: Vec<_> = Counter::ALL
        .iter()
        .filter(|c| classify(c.name()).is_none())
        .map(|c| c.name())
        .collect();
    assert!(
        unplaced.is_empty(),
        "counters no metric family takes: {unplaced:?}"
    );
    let verdicts: Vec<_> = Counter::ALL
        .iter()
        .filter_map(|c| match classify(c.name()) {
            Some((CounterFamily::Verdict, label)) => Some(label),
            _ => None,
        })
        .collect();
    assert_eq!(verdicts, ["pass", "tx", "drop", "aborted", "redirect"]);
    assert_eq!(classify("drop_mtu"), Some((CounterFamily::Drop, "mtu")));
    assert_eq!(
        classify("pass_not_vip"),
        Some((CounterFamily::Pass, "not_vip"))
    );
    assert_eq!(classify("nonsense"), None);
}

fn snapshot() -> MetricsSnapshot {
    let counter = |name: &str, value| pb::Counter {
        name: name.into(),
        value,
        rate: 0.0,
    };
    let vip = pb::Vip {
        address: "203.0.113.10".into(),
        port: 80,
        protocol: "tcp".into(),
    };
    MetricsSnapshot {
        stats: pb::StatsReply {
            counters: vec![
                counter("xdp_tx", 7),
                counter("xdp_drop", 3),
                counter("xdp_pass", 2),
                counter("drop_mtu", 1),
                counter("drop_truncated", 2),
                counter("pass_not_vip", 2),
                counter("conn_hit", 6),
                counter("icmp_echo_reply", 1),
                counter("vlan", 4),
            ],
            vips: vec![pb::VipStats {
                vip: Some(vip.clone()),
                traffic: Some(pb::Traffic {
                    packets: 3,
                    bytes: 300,
                    ..Default::default()
                }),
                reals: vec![],
            }],
            nic: Some(pb::NicStats {
                interface: "eth0".into(),
                driver: "veth".into(),
                xdp_tx_errors: Some(4),
            }),
        },
        health: pb::HealthReply {
            reals: vec![pb::RealHealth {
                address: "192.0.2.18".into(),
                // What escaping must handle: a quote, a backslash, a newline.
                check: "http /a\"b\\c\n -> 200".into(),
                healthy: true,
                checks: 9,
                failures_by_reason: [("timeout".to_owned(), 2), ("status".to_owned(), 1)]
                    .into_iter()
                    .collect(),
                ..Default::default()
            }],
        },
        vips: pb::ListVipsReply::default(),
        bgp: pb::BgpStatusReply {
            enabled: true,
            peers: vec![pb::BgpPeer {
                address: "198.51.100.1".into(),
                state: "established".into(),
                ..Default::default()
            }],
            ..Default::default()
        },
        uptime_s: 5,
    }
}

fn samples(text: &str) -> Vec<(&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a value");
            (series, value.parse().expect("a number"))
        })
        .collect()
}

#[test]
fn verdicts_and_reasons_are_separate_families() {
    let text = classic(&openmetrics(&registry(&snapshot())));
    let s = samples(&text);
    let sum = |family: &str| -> f64 {
        s.iter()
            .filter(|(series, _)| series.split('{').next() == Some(family))
            .map(|(_, v)| v)
            .sum()
    };
    // A sum over the verdict family counts each packet once.
    assert_eq!(sum("lb_xdp_verdicts_total"), 12.0, "{text}");
    assert_eq!(sum("lb_drops_total"), 3.0, "{text}");
    assert_eq!(sum("lb_passes_total"), 2.0);
    for line in [
        "lb_xdp_verdicts_total{verdict=\"tx\"} 7",
        "lb_drops_total{reason=\"mtu\"} 1",
        "lb_passes_total{reason=\"not_vip\"} 2",
        "lb_conn_table_total{event=\"hit\"} 6",
        "lb_icmp_total{event=\"echo_reply\"} 1",
        "lb_vlan_tagged_packets_total 4",
        "lb_nic_xdp_tx_errors_total{interface=\"eth0\",driver=\"veth\"} 4",
        "lb_vip_packets_total{vip=\"203.0.113.10:80/tcp\"} 3",
        "lb_bgp_peer_established{neighbor=\"198.51.100.1\"} 1",
        "lb_up 1",
        "lb_uptime_seconds 5",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
}

#[test]
fn label_values_are_escaped_and_probe_failures_carry_their_reason() {
    let text = classic(&openmetrics(&registry(&snapshot())));
    let check = r#"check="http /a\"b\\c\n -> 200""#;
    for line in [
        format!("lb_health_healthy{{real=\"192.0.2.18\",{check}}} 1"),
        format!("lb_health_checks_total{{real=\"192.0.2.18\",{check}}} 9"),
        format!(
            "lb_health_probe_failures_total{{real=\"192.0.2.18\",{check},reason=\"timeout\"}} 2"
        ),
        format!(
            "lb_health_probe_failures_total{{real=\"192.0.2.18\",{check},reason=\"status\"}} 1"
        ),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
}

#[test]
fn every_classic_sample_follows_its_own_help_and_type() {
    let text = classic(&openmetrics(&registry(&snapshot())));
    assert!(!text.contains("# EOF"));
    let mut family = "";
    let mut helped = "";
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped = rest.split(' ').next().unwrap();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            family = rest.split(' ').next().unwrap();
            assert_eq!(family, helped, "TYPE after its HELP");
            if rest.ends_with(" counter") {
                assert!(family.ends_with("_total"), "{line}");
            }
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, family, "{line} is outside its family");
        }
    }
}

#[test]
fn openmetrics_ends_with_eof_and_names_counters_without_total() {
    let text = openmetrics(&registry(&snapshot()));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# TYPE lb_drops counter\n"));
    assert!(text.contains("lb_drops_total{reason=\"mtu\"} 1\n"));
}

#[test]
fn bgp_families_appear_only_with_bgp() {
    let mut s = snapshot();
    s.bgp.enabled = false;
    let text = classic(&openmetrics(&registry(&s)));
    assert!(!text.contains("lb_bgp_"), "{text}");
}
