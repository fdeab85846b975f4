//! One table of VIP sets run through every entry point: the configuration
//! file (`config::parse`), the control API (the request conversions the
//! server uses, then the rules the daemon applies to its whole VIP set),
//! and the state file (written, read back and checked as the daemon does at
//! start). Each bad case must be refused by all three, and the baseline
//! accepted by all three: the entry points accept exactly the same sets.
use std::path::Path;

use lb_ctl::{
    api::{self, pb},
    config::{self, Settings, VipConfig},
    daemon::state_file,
};

const BASE: &str = "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.2\"\nsource_v6 = \"2001:db8::2\"\n";

fn quote(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn health_toml(h: &pb::HealthCheck) -> String {
    let mut parts = vec![format!("kind = {}", quote(&h.kind))];
    if let Some(p) = h.port {
        parts.push(format!("port = {p}"));
    }
    if let Some(p) = &h.path {
        parts.push(format!("path = {}", quote(p)));
    }
    if let Some(s) = h.expect_status {
        parts.push(format!("expect_status = {s}"));
    }
    if let Some(p) = &h.payload {
        parts.push(format!("payload = {}", quote(p)));
    }
    if let Some(c) = &h.command {
        parts.push(format!("command = {}", quote(c)));
    }
    if let Some(i) = h.interval_ms {
        parts.push(format!("interval = \"{i}ms\""));
    }
    if let Some(t) = h.timeout_ms {
        parts.push(format!("timeout = \"{t}ms\""));
    }
    if let Some(r) = h.rise {
        parts.push(format!("rise = {r}"));
    }
    if let Some(f) = h.fall {
        parts.push(format!("fall = {f}"));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// The configuration file that says what the requests say.
fn as_file(vip: &pb::AddVipRequest, reals: &[pb::AddRealRequest]) -> String {
    let v = vip.vip.as_ref().expect("vip");
    let mut t = format!(
        "{BASE}[[vip]]\naddress = {}\nprotocol = {}\n",
        quote(&v.address),
        quote(&v.protocol)
    );
    if v.port != 0 {
        t.push_str(&format!("port = {}\n", v.port));
    }
    if let Some(r) = vip.ring_size {
        t.push_str(&format!("ring_size = {r}\n"));
    }
    if let Some(m) = vip.min_healthy {
        t.push_str(&format!("min_healthy = {m}\n"));
    }
    if let Some(h) = &vip.health {
        t.push_str(&format!("health = {}\n", health_toml(h)));
    }
    if vip.quic {
        t.push_str("quic = true\n");
    }
    if !vip.encap.is_empty() {
        t.push_str(&format!("encap = {}\n", quote(&vip.encap)));
    }
    for r in reals {
        t.push_str(&format!(
            "[[vip.real]]\naddress = {}\nweight = {}\n",
            quote(&r.address),
            r.weight
        ));
        if let Some(h) = &r.health {
            t.push_str(&format!("health = {}\n", health_toml(h)));
        }
        if !r.encap.is_empty() {
            t.push_str(&format!("encap = {}\n", quote(&r.encap)));
        }
    }
    t
}

fn settings() -> Settings {
    config::parse(Path::new("base.toml"), BASE).expect("the base file")
}

/// The file entry point.
fn through_file(vip: &pb::AddVipRequest, reals: &[pb::AddRealRequest]) -> Result<(), String> {
    config::parse(Path::new("lb.toml"), &as_file(vip, reals))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The VIP set the requests make (parsed, not checked).
fn from_requests(
    vip: &pb::AddVipRequest,
    reals: &[pb::AddRealRequest],
) -> Result<VipConfig, String> {
    let mut v = api::vip_config(vip).map_err(|e| e.0)?;
    for r in reals {
        let (_, real) = api::real_config(r).map_err(|e| e.0)?;
        v.reals.push(real);
    }
    Ok(v)
}

/// The API entry point: conversions, then the daemon's check of its set.
fn through_api(vip: &pb::AddVipRequest, reals: &[pb::AddRealRequest]) -> Result<(), String> {
    let s = settings();
    let v = from_requests(vip, reals)?;
    config::validate_vips(&[v], &s.dataplane, s.bgp.as_ref())
}

/// The state file entry point: what a state file holding this set makes
/// of it at the daemon's start.
fn through_state_file(vip: &pb::AddVipRequest, reals: &[pb::AddRealRequest]) -> Result<(), String> {
    let Ok(v) = from_requests(vip, reals) else {
        // Not expressible as a VipConfig at all: no state file holds it.
        return Err("not a VIP".into());
    };
    let dir = std::env::temp_dir().join(format!("lb-entry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("state-{:x}.json", rand_tag()));
    state_file::save(&path, &[v]).expect("write the state file");
    let loaded = state_file::load(&path).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&path);
    let s = settings();
    let vips = loaded?.expect("a state file");
    config::validate_vips(&vips, &s.dataplane, s.bgp.as_ref())
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn http() -> pb::HealthCheck {
    pb::HealthCheck {
        kind: "http".into(),
        path: Some("/healthz".into()),
        ..Default::default()
    }
}

fn baseline() -> (pb::AddVipRequest, Vec<pb::AddRealRequest>) {
    let vip = pb::Vip {
        address: "203.0.113.10".into(),
        port: 80,
        protocol: "tcp".into(),
    };
    let real = |a: &str| pb::AddRealRequest {
        vip: Some(vip.clone()),
        address: a.into(),
        weight: 1,
        health: None,
        encap: String::new(),
    };
    (
        pb::AddVipRequest {
            vip: Some(vip.clone()),
            health: Some(http()),
            ..Default::default()
        },
        vec![real("192.0.2.18"), real("192.0.2.22")],
    )
}

/// A change to the baseline requests.
type Edit = Box<dyn Fn(&mut pb::AddVipRequest, &mut Vec<pb::AddRealRequest>)>;

#[test]
fn every_entry_point_accepts_and_refuses_the_same_vip_sets() {
    let (vip, reals) = baseline();
    assert_eq!(
        through_file(&vip, &reals),
        Ok(()),
        "{}",
        as_file(&vip, &reals)
    );
    assert_eq!(through_api(&vip, &reals), Ok(()));
    assert_eq!(through_state_file(&vip, &reals), Ok(()));

    let set_addr = |v: &mut pb::AddVipRequest, reals: &mut Vec<pb::AddRealRequest>, a: &str| {
        v.vip.as_mut().unwrap().address = a.into();
        for r in reals {
            r.vip.as_mut().unwrap().address = a.into();
        }
    };
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "a multicast VIP",
            Box::new(move |v, r| set_addr(v, r, "224.0.0.10")),
            "multicast",
        ),
        (
            "a loopback VIP",
            Box::new(move |v, r| set_addr(v, r, "127.0.0.1")),
            "loopback",
        ),
        (
            "the unspecified VIP",
            Box::new(move |v, r| set_addr(v, r, "0.0.0.0")),
            "unspecified",
        ),
        (
            "the broadcast address as VIP",
            Box::new(move |v, r| set_addr(v, r, "255.255.255.255")),
            "broadcast",
        ),
        (
            "a link-local VIP",
            Box::new(move |v, r| set_addr(v, r, "169.254.1.1")),
            "link-local",
        ),
        (
            "a multicast real",
            Box::new(|_, r| r[0].address = "239.1.1.1".into()),
            "multicast",
        ),
        (
            "a loopback real",
            Box::new(|_, r| r[0].address = "127.0.0.2".into()),
            "loopback",
        ),
        (
            "a real that is the VIP",
            Box::new(|_, r| r[0].address = "203.0.113.10".into()),
            "VIP address",
        ),
        (
            "a real listed twice",
            Box::new(|_, r| r[1].address = r[0].address.clone()),
            "listed twice",
        ),
        (
            "an interval of 1 ms",
            Box::new(|v, _| v.health.as_mut().unwrap().interval_ms = Some(1)),
            "interval",
        ),
        (
            "an interval of 0",
            Box::new(|v, _| v.health.as_mut().unwrap().interval_ms = Some(0)),
            "interval",
        ),
        (
            "a timeout of 0",
            Box::new(|v, _| v.health.as_mut().unwrap().timeout_ms = Some(0)),
            "timeout",
        ),
        (
            "a timeout above the interval",
            Box::new(|v, _| {
                let h = v.health.as_mut().unwrap();
                h.interval_ms = Some(500);
                h.timeout_ms = Some(600);
            }),
            "timeout",
        ),
        (
            "rise 1000",
            Box::new(|v, _| v.health.as_mut().unwrap().rise = Some(1000)),
            "rise 1000",
        ),
        (
            "rise 0",
            Box::new(|v, _| v.health.as_mut().unwrap().rise = Some(0)),
            "rise 0",
        ),
        (
            "fall 0",
            Box::new(|v, _| v.health.as_mut().unwrap().fall = Some(0)),
            "fall 0",
        ),
        (
            "status 99",
            Box::new(|v, _| v.health.as_mut().unwrap().expect_status = Some(99)),
            "not an HTTP status",
        ),
        (
            "status 1000",
            Box::new(|v, _| v.health.as_mut().unwrap().expect_status = Some(1000)),
            "not an HTTP status",
        ),
        (
            "status 70000",
            Box::new(|v, _| v.health.as_mut().unwrap().expect_status = Some(70000)),
            "not an HTTP status",
        ),
        (
            "a path without /",
            Box::new(|v, _| v.health.as_mut().unwrap().path = Some("healthz".into())),
            "must start with /",
        ),
        (
            "an empty path",
            Box::new(|v, _| v.health.as_mut().unwrap().path = Some(String::new())),
            "must start with /",
        ),
        (
            "a path with a space",
            Box::new(|v, _| v.health.as_mut().unwrap().path = Some("/a b".into())),
            "spaces",
        ),
        (
            "a path on a tcp check",
            Box::new(|v, _| v.health.as_mut().unwrap().kind = "tcp".into()),
            "only for http",
        ),
        (
            "an exec check with a blank command",
            Box::new(|v, _| {
                v.health = Some(pb::HealthCheck {
                    kind: "exec".into(),
                    command: Some("  ".into()),
                    ..Default::default()
                });
            }),
            "needs a command",
        ),
        (
            "an exec check without a command",
            Box::new(|v, _| {
                v.health = Some(pb::HealthCheck {
                    kind: "exec".into(),
                    ..Default::default()
                });
            }),
            "needs a command",
        ),
        (
            "health port 0",
            Box::new(|v, _| v.health.as_mut().unwrap().port = Some(0)),
            "port 0",
        ),
        (
            "min_healthy 0",
            Box::new(|v, _| v.min_healthy = Some(0)),
            "min_healthy",
        ),
        (
            "a ring size that is not prime",
            Box::new(|v, _| v.ring_size = Some(65536)),
            "not prime",
        ),
        (
            "ring size 0",
            Box::new(|v, _| v.ring_size = Some(0)),
            "ring size",
        ),
        (
            "a weight above the maximum",
            Box::new(|_, r| r[0].weight = 2_000_000),
            "weight 2000000",
        ),
        (
            "a port-less VIP whose check has no port",
            Box::new(|v, r| {
                v.vip.as_mut().unwrap().port = 0;
                for r in r {
                    r.vip.as_mut().unwrap().port = 0;
                }
            }),
            "give the check a port",
        ),
        (
            "QUIC on a TCP VIP",
            Box::new(|v, _| v.quic = true),
            "quic = true is for UDP VIPs",
        ),
        (
            "an unknown encapsulation of a VIP",
            Box::new(|v, _| v.encap = "udp".into()),
            "encap `udp`: use ipip or gue",
        ),
        (
            "an unknown encapsulation of a real",
            Box::new(|_, r| r[0].encap = "GUE".into()),
            "encap `GUE`: use ipip or gue",
        ),
        (
            "a real's own check out of bounds",
            Box::new(|_, r| {
                r[0].health = Some(pb::HealthCheck {
                    kind: "tcp".into(),
                    rise: Some(0),
                    ..Default::default()
                });
            }),
            "rise 0",
        ),
    ];
    let mut failures = Vec::new();
    for (what, edit, says) in &cases {
        let (mut vip, mut reals) = baseline();
        edit(&mut vip, &mut reals);
        for (entry, result) in [
            ("file", through_file(&vip, &reals)),
            ("API", through_api(&vip, &reals)),
            ("state file", through_state_file(&vip, &reals)),
        ] {
            match result {
                Ok(()) => failures.push(format!("{what}: accepted by the {entry}")),
                Err(e) if entry != "state file" && !e.contains(says) => {
                    failures.push(format!("{what}: the {entry} says `{e}`, not `{says}`"));
                }
                Err(_) => {}
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_its_place() {
    let dir = std::env::temp_dir().join(format!("lb-utf8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("lb.toml");
    let mut bytes = BASE.as_bytes().to_vec();
    bytes.extend_from_slice(b"# caf\xe9\n");
    std::fs::write(&path, &bytes).unwrap();
    let e = config::load(&path).expect_err("not UTF-8");
    let _ = std::fs::remove_dir_all(&dir);
    let msg = e.to_string();
    assert!(msg.contains("lb.toml:6:6: not UTF-8"), "{msg}");
}

#[test]
fn empty_daemon_paths_are_refused() {
    for field in ["pin_dir", "socket", "state_file"] {
        let text = format!("[daemon]\ninterface = \"eth0\"\n{field} = \"\"\n");
        let e = config::parse(Path::new("lb.toml"), &text).expect_err(field);
        assert_eq!(
            (e.line, e.message.clone()),
            (3, format!("{field} is empty")),
            "{e}"
        );
    }
}
