//! What `explain` reports beyond the verdict: MTU outcome, encapsulation,
//! the "why none" answer, the text lines, and the daemon's health view.
use super::{
    FlowQuery, explain,
    tests::{maps, q},
};
use crate::vocab::Proto;

#[test]
fn the_details_say_what_the_operator_needs() {
    let m = maps();
    let web = q(Proto::Tcp, "198.51.100.7:40000", "203.0.113.10:80");
    let e = explain(
        &m,
        &FlowQuery {
            size: Some(1481),
            ..web
        },
    );
    let size = e.size.as_ref().unwrap();
    assert!(!size.fits);
    assert!(size.outcome.contains("MTU 1480"), "{}", size.outcome);
    let e = explain(&m, &web);
    let encap = e.encap.as_ref().unwrap();
    assert_eq!((encap.kind.as_str(), encap.overhead), ("ipip", 20));
    assert_eq!(encap.outer_src, "192.0.2.254");
    let e = explain(&m, &q(Proto::Udp, "198.51.100.7:1", "203.0.113.20:9"));
    assert_eq!(e.encap.as_ref().unwrap().kind, "ip4in6");
    assert!(e.vip.as_ref().unwrap().portless);
    let e = explain(&m, &q(Proto::Tcp, "198.51.100.7:1", "203.0.113.10:81"));
    assert!(e.why.contains("203.0.113.10:80/tcp"), "{}", e.why);
    let text = super::text(&explain(&m, &web));
    for line in [
        "flow ", "verdict ", "vip ", "conn ", "hash ", "ring ", "real ", "encap ",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// A GUE real's kind and UDP ports; a QUIC VIP says so.
#[test]
fn gue_ports_and_quic_vips_are_named() {
    use lb_common::maps::{REAL_F_GUE, VIP_F_QUIC};
    let mut m = maps();
    for r in m.reals.values_mut() {
        r.flags = REAL_F_GUE;
    }
    for meta in m.vips.values_mut() {
        meta.flags |= VIP_F_QUIC;
    }
    let web = q(Proto::Tcp, "198.51.100.7:40000", "203.0.113.10:80");
    let e = explain(&m, &web);
    let encap = e.encap.as_ref().unwrap();
    assert_eq!((encap.kind.as_str(), encap.overhead), ("gue4in4", 28));
    let (sport, dport) = encap.udp_ports.expect("GUE ports");
    assert!(sport >= 49152, "{sport}");
    assert_eq!(dport, m.config.unwrap().gue_port);
    let text = super::text(&e);
    assert!(text.contains(&format!("UDP {sport} -> {dport}")), "{text}");
    assert!(e.vip.as_ref().unwrap().quic);
    assert!(text.contains("QUIC: a connection id"), "{text}");
    // Without the flags: neither.
    let e = explain(&maps(), &web);
    assert_eq!(e.encap.as_ref().unwrap().udp_ports, None);
    assert!(!e.vip.as_ref().unwrap().quic);
}

#[test]
fn the_daemons_health_view_of_that_real_for_that_vip_is_added() {
    use crate::api::pb;
    let m = maps();
    let web = q(Proto::Tcp, "198.51.100.7:40000", "203.0.113.10:80");
    let mut e = explain(&m, &web);
    assert!(super::text(&e).contains("health   unknown: no daemon answered"));
    let real = e.real.as_ref().unwrap().address.clone();
    let probe = |vip: &str, port, healthy, error: &str| pb::RealHealth {
        address: real.clone(),
        check: format!("tcp (port {port})"),
        healthy,
        last_error: error.into(),
        vips: vec![pb::Vip {
            address: vip.into(),
            port,
            protocol: "tcp".into(),
        }],
        ..Default::default()
    };
    let reply = pb::HealthReply {
        reals: vec![
            probe("203.0.113.40", 443, true, ""),
            probe("203.0.113.10", 80, false, "connect 192.0.2.11:80: refused"),
        ],
    };
    super::add_health(&mut e, &reply);
    let h = e
        .health
        .as_ref()
        .expect("the probe of that real for that VIP");
    assert!(!h.healthy && h.check == "tcp (port 80)", "{h:?}");
    assert!(
        super::text(&e).contains("health   down: connect 192.0.2.11:80: refused (tcp (port 80))"),
        "{}",
        super::text(&e)
    );
    // No probe of that real: nothing is made up.
    let mut e = explain(&m, &web);
    super::add_health(&mut e, &pb::HealthReply::default());
    assert_eq!(e.health, None);
}
