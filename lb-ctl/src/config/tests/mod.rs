//! The example loads; defaults are what the constants say; each kind of
//! mistake is refused with its line ([`dataplane`] and [`fleet`]: those
//! sections').
use std::path::Path;

use super::*;

fn parse_str(text: &str) -> Result<Settings, ConfigError> {
    parse(Path::new("lb.toml"), text)
}

const BASE: &str = "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.2\"\nsource_v6 = \"2001:db8::2\"\n";

/// BASE followed by `rest`; the error (which must happen) and its line.
fn refused(rest: &str) -> ConfigError {
    let text = format!("{BASE}{rest}");
    parse_str(&text).expect_err("must be refused")
}

#[test]
fn the_example_loads() {
    let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/lb.toml"));
    let s = load(path).expect("examples/lb.toml loads");
    assert_eq!(s.daemon.interface, "eth0");
    assert_eq!(s.vips.len(), 5);
    assert_eq!(s.vips[0].reals[2].weight, 2);
    assert!(s.vips[1].reals[2].address.is_ipv4(), "IPv6-in-IPv4");
    assert_eq!(s.vips[2].encap, crate::vocab::Encapsulation::Gue);
    assert!(s.vips[4].quic && !s.vips[0].quic);
    assert!(matches!(s.vips[0].health.kind, CheckKind::Http { .. }));
    assert_eq!(s.vips[2].reals[1].weight, 0, "drained real");
    assert_eq!(s.vips[3].port, 0, "port-less VIP");
    assert!(matches!(s.vips[3].health.kind, CheckKind::Exec { .. }));
    assert_eq!(s.dataplane.mtu, 1600);
    let b = s.bgp.as_ref().expect("[bgp]");
    assert_eq!(b.asn, 65001);
    assert_eq!(b.neighbors.len(), 1);
    assert_eq!(b.neighbors[0].hold, crate::bgp::DEFAULT_HOLD);
    assert_eq!(
        b.next_hop_v4, s.dataplane.source_v4,
        "next hop defaults to the source address"
    );
    assert_eq!(s.vips[0].min_healthy, 2);
    assert!(s.vips.iter().all(|v| b.may_announce(v.address)));
}

#[test]
fn bgp_mistakes_are_refused_with_their_line() {
    let base = "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.2\"\n[bgp]\n";
    let good = "asn = 65001\nrouter_id = \"192.0.2.2\"\nanycast_prefixes = [\"203.0.113.0/24\"]\n";
    assert!(parse_str(&format!("{base}{good}")).is_ok());
    let cases = [
        (
            "asn = 0\nrouter_id = \"192.0.2.2\"\nanycast_prefixes = [\"203.0.113.0/24\"]\n"
                .to_string(),
            6,
            "ASN 0",
        ),
        (
            "asn = 65001\nrouter_id = \"2001:db8::1\"\nanycast_prefixes = [\"203.0.113.0/24\"]\n"
                .to_string(),
            7,
            "IPv4",
        ),
        (
            "asn = 65001\nrouter_id = \"192.0.2.2\"\nanycast_prefixes = [\"203.0.113.1/24\"]\n"
                .to_string(),
            8,
            "host bits",
        ),
        (
            "asn = 65001\nrouter_id = \"192.0.2.2\"\nanycast_prefixes = []\n".to_string(),
            8,
            "empty",
        ),
        (format!("{good}communities = [\"65001\"]\n"), 9, "community"),
        (
            format!(
                "{good}[[bgp.neighbor]]\naddress = \"192.0.2.1\"\nasn = 65000\nhold = \"2s\"\n"
            ),
            12,
            "at least 3 s",
        ),
        (
            format!(
                "{good}[[bgp.neighbor]]\naddress = \"192.0.2.1\"\nasn = 65000\nkeepalive = \"2s\"\nhold = \"3s\"\n"
            ),
            13,
            "a third of hold",
        ),
        (
            format!("{good}[[vip]]\naddress = \"198.51.100.5\"\nprotocol = \"tcp\"\n"),
            10,
            "hijack guard",
        ),
        (
            format!(
                "{good}[[vip]]\naddress = \"203.0.113.5\"\nprotocol = \"tcp\"\nmin_healthy = 0\n"
            ),
            12,
            "min_healthy",
        ),
    ];
    for (rest, line, words) in cases {
        let e = parse_str(&format!("{base}{rest}")).expect_err(&rest);
        assert_eq!(e.line, line, "`{e}` for:\n{rest}");
        assert!(e.message.contains(words), "`{e}` says `{words}`");
    }
}

#[test]
fn defaults_are_the_named_constants() {
    let s = parse_str("[daemon]\ninterface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\nport = 80\nhealth = { kind = \"tcp\" }\n").unwrap();
    assert_eq!(s.daemon.pin_dir, Path::new(DEFAULT_PIN_DIR));
    assert_eq!(s.daemon.socket, Path::new(DEFAULT_SOCKET));
    assert_eq!(s.daemon.state_file, Path::new(DEFAULT_STATE_FILE));
    assert_eq!(s.daemon.mode, AttachMode::Native);
    assert_eq!(s.dataplane.next_hop, NextHop::Reflect);
    assert_eq!(s.dataplane.mtu, DEFAULT_MTU);
    assert_eq!(
        s.dataplane.conn_table_size,
        lb_common::DEFAULT_CONN_TABLE_SIZE
    );
    assert_eq!(
        s.dataplane.conn_table_size_v6,
        lb_common::DEFAULT_CONN_TABLE_SIZE_V6
    );
    assert_eq!(
        s.dataplane.max_conn_rate,
        lb_common::config::DEFAULT_MAX_CONN_RATE
    );
    assert!(s.dataplane.icmp_echo && s.dataplane.icmp_too_big);
    let v = &s.vips[0];
    assert_eq!(v.ring_size, crate::maglev::DEFAULT_RING_SIZE);
    assert_eq!(v.health.interval, DEFAULT_CHECK_INTERVAL);
    assert_eq!(v.health.timeout, DEFAULT_CHECK_TIMEOUT);
    assert_eq!(
        (v.health.rise, v.health.fall),
        (DEFAULT_CHECK_RISE, DEFAULT_CHECK_FALL)
    );
    // The defaults make a dead real leave within half a second (and a dead
    // site withdraw within a second, BGP included).
    assert!(DEFAULT_CHECK_INTERVAL * DEFAULT_CHECK_FALL <= std::time::Duration::from_millis(500));
}

#[test]
fn each_kind_of_mistake_is_refused_with_its_line() {
    // (the rest of the file, the line the error must name, words it must say)
    let vip = "[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\nport = 80\n";
    let cases: Vec<(String, usize, &str)> = vec![
        ("[[vip]]\naddress = \"203.0.113.300\"\nprotocol = \"tcp\"\n".into(), 7, "not an IP address"),
        ("[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"sctp\"\n".into(), 8, "protocol `sctp`"),
        ("[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\nport = 70000\n".into(), 9, "above 65535"),
        (format!("{vip}ring_size = 65536\n"), 10, "not prime"),
        (format!("{vip}[[vip.real]]\naddress = \"192.0.2.1\"\nweight = 2000000\n"), 12, "weight 2000000"),
        (format!("{vip}[[vip.real]]\naddress = \"192.0.2.1\"\n[[vip.real]]\naddress = \"192.0.2.1\"\n"), 13, "listed twice"),
        (format!("{vip}{vip}"), 10, "configured twice"),
        (format!("{vip}health = {{ kind = \"ping\" }}\n"), 10, "health kind `ping`"),
        (format!("{vip}health = {{ kind = \"tcp\", interval = \"fast\" }}\n"), 10, "not a duration"),
        (format!("{vip}health = {{ kind = \"tcp\", interval = \"1s\", timeout = \"2s\" }}\n"), 10, "at most the interval"),
        (format!("{vip}health = {{ kind = \"tcp\", fall = 0 }}\n"), 10, "fall 0"),
        (format!("{vip}health = {{ kind = \"exec\" }}\n"), 10, "needs a command"),
        (format!("{vip}health = {{ kind = \"http\", path = \"healthz\" }}\n"), 10, "must start with /"),
        ("[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\nhealth = { kind = \"tcp\" }\n".into(), 9, "give the check a port"),
        (format!("{vip}colour = \"blue\"\n"), 10, "unknown field `colour`"),
        (format!("{vip}port = \"eighty\"\n"), 10, "duplicate key"),
        ("[[vip]\naddress = 1\n".into(), 6, ""),
    ];
    for (rest, line, words) in cases {
        let e = refused(&rest);
        assert_eq!(e.line, line, "line of `{e}` for:\n{rest}");
        assert!(e.message.contains(words), "`{e}` says `{words}`");
        assert!(
            e.to_string().starts_with(&format!("lb.toml:{line}:")),
            "{e}"
        );
    }
}

#[test]
fn durations_parse() {
    assert_eq!(
        parse_duration("500ms"),
        Some(std::time::Duration::from_millis(500))
    );
    assert_eq!(
        parse_duration("2s"),
        Some(std::time::Duration::from_secs(2))
    );
    assert_eq!(
        parse_duration("1m"),
        Some(std::time::Duration::from_secs(60))
    );
    assert_eq!(parse_duration("1.5s"), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_duration("10h"), None);
}

#[test]
fn vip_configs_round_trip_through_json() {
    let s = load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/lb.toml"
    )))
    .unwrap();
    let json = serde_json::to_string(&s.vips).unwrap();
    let back: Vec<VipConfig> = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s.vips);
    validate_vips(&back, &s.dataplane, s.bgp.as_ref()).unwrap();
}

mod dataplane;
mod fleet;
