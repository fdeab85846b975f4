//! The `[dataplane]` section: its mistakes, the real table's size, the
//! per-flow source prefixes.
use super::*;
use crate::vocab::Encapsulation;

#[test]
fn dataplane_mistakes_are_refused_with_their_line() {
    let cases = [
        ("source_v4 = \"2001:db8::1\"", "must be an IPv4"),
        ("source_v6 = \"192.0.2.1\"", "must be an IPv6"),
        ("next_hop = \"router\"", "next_hop `router`"),
        ("mtu = 100", "mtu 100"),
        ("conn_table_size = 10", "conn_table_size 10"),
        (
            "conn_table_size = 1023",
            "conn_table_size 1023 is outside 1024..=134217728",
        ),
        ("conn_table_size = 134217729", "conn_table_size 134217729"),
        ("conn_table_size = -1", "invalid value"),
        (
            "conn_table_size_v6 = 0",
            "conn_table_size_v6 0 is outside 1024..=134217728",
        ),
        (
            "conn_table_size_v6 = 134217729",
            "conn_table_size_v6 134217729",
        ),
        ("conn_table_size_v6 = \"1M\"", "invalid type"),
        ("conn_table_size_v6 = 1.5", "invalid type"),
        ("max_reals = 0", "max_reals 0 is outside 1024..=1048576"),
        ("max_reals = 1023", "max_reals 1023"),
        ("max_reals = 1048577", "max_reals 1048577"),
        ("max_reals = -5", "invalid value"),
        ("max_conn_rate = -1", "invalid value"),
        ("gue_port = 0", "gue_port 0 is outside 1..=65535"),
        ("gue_port = 65536", "gue_port 65536 is outside 1..=65535"),
        ("gue_port = \"6080\"", "invalid type"),
        ("quic_cid_len = 0", "quic_cid_len 0 is outside 1..=20"),
        ("quic_cid_len = 21", "quic_cid_len 21 is outside 1..=20"),
        (
            "quic_server_id_len = 5",
            "quic_server_id_len 5 is outside 1..=4",
        ),
        (
            "quic_server_id_offset = 20",
            "quic_server_id_offset 20 is outside 0..=19",
        ),
        (
            "quic_cid_len = 2",
            "does not fit a connection id of 2 bytes",
        ),
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
    // An IPv6 VIP's IPv4 real (IPv6-in-IPv4): needs source_v4 as well,
    // and is accepted with it.
    let v6_vip = "[[vip]]\naddress = \"2001:db8::10\"\nprotocol = \"tcp\"\n[[vip.real]]\naddress = \"192.0.2.1\"\n";
    let e = parse_str(&format!("[daemon]\ninterface = \"eth0\"\n{v6_vip}")).unwrap_err();
    assert_eq!(e.line, 7);
    assert!(e.message.contains("no source_v4"), "{e}");
    let s = parse_str(&format!(
        "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.250\"\n{v6_vip}"
    ))
    .unwrap();
    assert!(s.vips[0].address.is_ipv6() && s.vips[0].reals[0].address.is_ipv4());
}

#[test]
fn the_ipv6_connection_table_is_a_quarter_of_the_ipv4_one_unless_set() {
    let base = "[daemon]\ninterface = \"eth0\"\n[dataplane]\n";
    for (lines, v4, v6) in [
        ("", 1 << 20, 1 << 18),
        ("conn_table_size = 4000000\n", 4_000_000, 1_000_000),
        // Never below the smallest table.
        ("conn_table_size = 2048\n", 2048, 1024),
        ("conn_table_size_v6 = 3000000\n", 1 << 20, 3_000_000),
        (
            "conn_table_size = 1024\nconn_table_size_v6 = 65536\n",
            1024,
            65536,
        ),
    ] {
        let d = parse_str(&format!("{base}{lines}")).unwrap().dataplane;
        assert_eq!(
            (d.conn_table_size, d.conn_table_size_v6),
            (v4, v6),
            "{lines}"
        );
    }
}

#[test]
fn quic_vips_and_their_connection_id_layout() {
    let base = "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.250\"\n";
    let vip = "[[vip]]\naddress = \"203.0.113.10\"\nport = 443\nprotocol = \"udp\"\nquic = true\n";
    let s = parse_str(&format!("{base}{vip}")).unwrap();
    assert!(s.vips[0].quic);
    let d = &s.dataplane;
    assert_eq!((d.quic_cid_len, d.quic_id_offset, d.quic_id_len), (8, 1, 2));
    let s = parse_str(&format!(
        "{base}quic_cid_len = 20\nquic_server_id_offset = 16\nquic_server_id_len = 4\nmax_reals = 1048576\n{vip}"
    ))
    .unwrap();
    let d = &s.dataplane;
    assert_eq!(
        (d.quic_cid_len, d.quic_id_offset, d.quic_id_len),
        (20, 16, 4)
    );
    // Refused: QUIC on TCP; ids that cannot hold every real id.
    for (text, line, words) in [
        (
            format!("{base}[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\nquic = true\n"),
            5,
            "quic = true is for UDP VIPs",
        ),
        (
            format!("{base}max_reals = 65537\n{vip}"),
            6,
            "real ids go up to 65536",
        ),
        (
            format!("{base}quic_server_id_len = 1\n{vip}"),
            6,
            "quic_server_id_len = 1 holds 255",
        ),
    ] {
        let e = parse_str(&text).expect_err(&text);
        assert_eq!(e.line, line, "{e}");
        assert!(e.message.contains(words), "{e}");
    }
}

#[test]
fn encapsulation_per_vip_and_per_real_and_the_gue_port() {
    let text = "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.250\"\n\
        [[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"udp\"\nencap = \"gue\"\n\
        [[vip.real]]\naddress = \"192.0.2.1\"\n\
        [[vip.real]]\naddress = \"192.0.2.2\"\nencap = \"ipip\"\n\
        [[vip]]\naddress = \"203.0.113.11\"\nprotocol = \"udp\"\n\
        [[vip.real]]\naddress = \"192.0.2.3\"\nencap = \"gue\"\n";
    let s = parse_str(text).unwrap();
    assert_eq!(s.dataplane.gue_port, lb_common::config::DEFAULT_GUE_PORT);
    let encaps: Vec<(String, Encapsulation)> = s
        .vips
        .iter()
        .flat_map(|v| {
            v.reals
                .iter()
                .map(move |r| (r.address.to_string(), v.encap_of(r)))
        })
        .collect();
    assert_eq!(
        encaps,
        [
            ("192.0.2.1".to_owned(), Encapsulation::Gue),
            ("192.0.2.2".to_owned(), Encapsulation::Ipip),
            ("192.0.2.3".to_owned(), Encapsulation::Gue),
        ]
    );
    let s = parse_str("[daemon]\ninterface = \"eth0\"\n[dataplane]\ngue_port = 5555\n").unwrap();
    assert_eq!(s.dataplane.gue_port, 5555);
    // Bad values, at their line, for the VIP's and the real's key.
    for (rest, line) in [
        ("encap = \"udp\"\n", 8),
        ("encap = \"\"\n", 8),
        (
            "[[vip.real]]\naddress = \"192.0.2.1\"\nencap = \"GUE\"\n",
            10,
        ),
    ] {
        let text = format!(
            "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.250\"\n\
             [[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"udp\"\n{rest}"
        );
        let e = parse_str(&text).expect_err(rest);
        assert_eq!(e.line, line, "{e} for {rest}");
        assert!(e.message.contains("use ipip or gue"), "{e}");
    }
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
            ring_size: 1021,
            reals: (0..128u8)
                .map(|i| fixtures::real(&format!("198.51.100.{i}")))
                .collect(),
            ..fixtures::vip("203.0.113.10", 1000 + p)
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
