//! The example loads; defaults are what the constants say; each kind of
//! mistake is refused with its line.
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
    assert_eq!(s.vips.len(), 4);
    assert_eq!(s.vips[0].reals[2].weight, 2);
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
        ("[[vip]]\naddress = \"2001:db8::10\"\nprotocol = \"tcp\"\n[[vip.real]]\naddress = \"192.0.2.1\"\n".into(), 10, "IPv6-in-IPv4"),
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
fn dataplane_mistakes_are_refused_with_their_line() {
    let cases = [
        ("source_v4 = \"2001:db8::1\"", "must be an IPv4"),
        ("source_v6 = \"192.0.2.1\"", "must be an IPv6"),
        ("next_hop = \"router\"", "next_hop `router`"),
        ("mtu = 100", "mtu 100"),
        ("conn_table_size = 10", "conn_table_size 10"),
        ("max_reals = 0", "max_reals 0 is outside 1024..=1048576"),
        ("max_reals = 1023", "max_reals 1023"),
        ("max_reals = 1048577", "max_reals 1048577"),
        ("max_reals = -5", "invalid value"),
        ("max_conn_rate = -1", "invalid value"),
        (
            "source_v4_prefix = \"2001:db8::/120\"",
            "must be an IPv4 prefix",
        ),
        ("source_v6_prefix = \"2001:db8::/64\"", "too short"),
        ("source_v4_prefix = \"198.51.100.0/24\"", "needs source_v4"),
        ("source_v4_prefix = \"198.51.100.1/24\"", "host bits"),
    ];
    for (line, words) in cases {
        let text = format!("[daemon]\ninterface = \"eth0\"\n[dataplane]\n{line}\n");
        let e = parse_str(&text).expect_err(line);
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains(words), "{e}");
    }
    let e = parse_str("[daemon]\ninterface = \"eth0\"\nxdp_mode = \"turbo\"\n").unwrap_err();
    assert_eq!(e.line, 3);
    let e = parse_str("[daemon]\n").unwrap_err();
    assert!(e.message.contains("interface"), "{e}");
    // A real of a family without a source address.
    let e = parse_str("[daemon]\ninterface = \"eth0\"\n[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\n[[vip.real]]\naddress = \"192.0.2.1\"\n").unwrap_err();
    assert_eq!(e.line, 7);
    assert!(e.message.contains("no source_v4"), "{e}");
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

#[test]
fn the_real_table_size_bounds_the_vip_set() {
    let at = |max_reals: u32| {
        let text = format!(
            "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.1\"\nmax_reals = {max_reals}\n"
        );
        parse_str(&text).unwrap().dataplane
    };
    assert_eq!(
        parse_str("[daemon]\ninterface = \"eth0\"\n")
            .unwrap()
            .dataplane
            .max_reals,
        lb_common::MAX_REALS
    );
    // 8 VIPs x 128 reals = 1,024 pairs; slot 0 is never used.
    let vips: Vec<VipConfig> = (0..8u16)
        .map(|p| VipConfig {
            address: "203.0.113.10".parse().unwrap(),
            port: 1000 + p,
            protocol: crate::vocab::Proto::Tcp,
            ring_size: 1021,
            no_conn_table: false,
            health: Check::none(),
            min_healthy: 1,
            communities: None,
            med: None,
            reals: (0..128u8)
                .map(|i| RealConfig {
                    address: std::net::IpAddr::from([198, 51, 100, i]),
                    weight: 1,
                    health: None,
                })
                .collect(),
        })
        .collect();
    let e = validate_vips(&vips, &at(1024), None).unwrap_err();
    assert!(
        e.contains("more than 1023 reals in all (raise [dataplane] max_reals)"),
        "{e}"
    );
    validate_vips(&vips, &at(1025), None).unwrap();
    validate_vips(&vips[..7], &at(1024), None).unwrap();
}

#[test]
fn source_prefixes_become_per_flow_bits() {
    let s = parse_str(
        "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.2\"\nsource_v6 = \"2001:db8:a::2\"\nsource_v4_prefix = \"198.51.100.0/24\"\nsource_v6_prefix = \"2001:db8:5::/112\"\n",
    )
    .unwrap();
    let cfg = crate::daemon::dataplane_config(&s.dataplane, None);
    assert_eq!(cfg.src_v4, [198, 51, 100, 0]);
    assert_eq!(cfg.src_v4_flow_bits, 8);
    assert_eq!(
        std::net::Ipv6Addr::from(cfg.src_v6),
        "2001:db8:5::".parse::<std::net::Ipv6Addr>().unwrap()
    );
    assert_eq!(cfg.src_v6_flow_bits, 16);
    // Without prefixes: the single addresses, no per-flow bits.
    let s = parse_str("[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.2\"\n")
        .unwrap();
    let cfg = crate::daemon::dataplane_config(&s.dataplane, None);
    assert_eq!((cfg.src_v4, cfg.src_v4_flow_bits), ([192, 0, 2, 2], 0));
}

#[test]
fn fleet_sections_are_checked_with_their_line() {
    let ok = parse_str(&format!(
        "{BASE}[fleet]\nendpoints = [\"192.0.2.50:2379\", \"http://[2001:db8::50]:2379\"]\nhost = \"lb-a\"\n"
    ))
    .unwrap();
    let f = ok.fleet.as_ref().unwrap();
    assert_eq!(
        f.endpoints,
        ["http://192.0.2.50:2379", "http://[2001:db8::50]:2379"]
    );
    assert_eq!(f.prefix, DEFAULT_FLEET_PREFIX);
    assert_eq!(f.lkg, Path::new(DEFAULT_FLEET_LKG));
    assert_eq!(f.dial_timeout, DEFAULT_DIAL_TIMEOUT);
    assert_eq!(f.stale_after, DEFAULT_STALE_AFTER);
    assert_eq!(f.max_down_permille, 500);
    assert_eq!(
        ok.state_path(),
        Path::new(DEFAULT_FLEET_LKG),
        "the LKG is the state"
    );
    let head = "[fleet]\nhost = \"lb-a\"\n";
    // BASE has 5 lines; the section starts on line 6.
    for (rest, want, line) in [
        ("[fleet]\nendpoints = []\n", "endpoints is empty", 7),
        (
            "[fleet]\nendpoints = [\"https://192.0.2.50:2379\"]\n",
            "TLS is not built in",
            7,
        ),
        (
            "[fleet]\nendpoints = [\"192.0.2.50\"]\n",
            "is not HOST:PORT",
            7,
        ),
        (
            "[fleet]\nendpoints = [\"192.0.2.50:0\"]\n",
            "is not HOST:PORT",
            7,
        ),
        (
            "[fleet]\nendpoints = [\"http://192.0.2.50:2379/x\"]\n",
            "is not HOST:PORT",
            7,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nprefix = \"lb\"\n"),
            "must start and end with `/`",
            9,
        ),
        (
            "[fleet]\nendpoints = [\"192.0.2.50:2379\"]\nhost = \"lb a\"\n",
            "may hold only",
            8,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nlkg = \"\"\n"),
            "lkg is empty",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\ndial_timeout = \"soon\"\n"),
            "not a duration",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\ndial_timeout = \"0s\"\n"),
            "above 0",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nrole = \"x\"\n"),
            "unknown field",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nstale_after = \"500ms\"\n"),
            "1s or more",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nmax_down_share = 1.5\n"),
            "at most 1",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nmax_down_share = 0.0\n"),
            "above 0",
            9,
        ),
        (
            &format!("{head}endpoints = [\"192.0.2.50:2379\"]\nmax_down_share = \"half\"\n"),
            "invalid type",
            9,
        ),
        (
            &format!(
                "{head}endpoints = [\"192.0.2.50:2379\"]\n[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\n"
            ),
            "the VIPs come from the fleet's store",
            9,
        ),
    ] {
        let e = refused(rest);
        assert!(e.message.contains(want), "{rest}: {e}");
        assert_eq!(e.line, line, "{rest}: {e}");
    }
}
