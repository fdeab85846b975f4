//! The store's keys and values: what a host reads back is what `fleet
//! apply` wrote, a host list cuts the VIPs, and every kind of bad key or
//! value refuses the whole revision with the key named.
use std::path::Path;

use super::*;
use crate::config::parse_fleet_file;

const FILE: &str = r#"
[[vip]]
address = "203.0.113.10"
port = 80
protocol = "tcp"
health = { kind = "http", path = "/healthz" }
  [[vip.real]]
  address = "192.0.2.18"
  [[vip.real]]
  address = "192.0.2.22"
  weight = 0

[[vip]]
address = "2001:db8:f::10"
port = 53
protocol = "udp"
  [[vip.real]]
  address = "2001:db8:a1::2"

[[host]]
id = "lb-b"
vips = ["203.0.113.10:80/tcp"]
"#;

fn desired() -> Desired {
    parse_fleet_file(Path::new("fleet.toml"), FILE)
        .unwrap()
        .into()
}

fn read(keys: &Keys, kvs: &BTreeMap<String, Vec<u8>>) -> Result<Desired, String> {
    Desired::from_kvs(keys, kvs.iter().map(|(k, v)| (k.as_bytes(), v.as_slice())))
}

#[test]
fn what_apply_writes_a_host_reads_back() {
    let keys = Keys::new("/lb/v1/");
    let d = desired();
    let kvs = d.to_kvs(&keys);
    assert_eq!(
        kvs.keys().collect::<Vec<_>>(),
        [
            "/lb/v1/config/hosts/lb-b",
            "/lb/v1/config/vips/203.0.113.10:80/tcp",
            "/lb/v1/config/vips/[2001:db8:f::10]:53/udp",
        ]
    );
    assert_eq!(read(&keys, &kvs).unwrap(), d);
    // A host without an entry serves every VIP; lb-b only its list.
    assert_eq!(d.for_host("lb-a").unwrap().len(), 2);
    let b = d.for_host("lb-b").unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].id().to_string(), "203.0.113.10:80/tcp");
    assert_eq!(b[0].reals[1].weight, 0, "drain is kept");
}

#[test]
fn diff_puts_what_changed_and_deletes_what_vanished() {
    let keys = Keys::new("/lb/v1/");
    let before = desired().to_kvs(&keys);
    let mut d = desired();
    d.hosts.clear();
    d.vips.values_mut().next().unwrap().reals[1].weight = 3;
    let (puts, deletes) = diff(&before, &d.to_kvs(&keys));
    assert_eq!(
        puts.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["/lb/v1/config/vips/203.0.113.10:80/tcp"]
    );
    assert_eq!(deletes, ["/lb/v1/config/hosts/lb-b"]);
    let (puts, deletes) = diff(&before, &before);
    assert!(puts.is_empty() && deletes.is_empty());
}

#[test]
fn a_bad_key_or_value_refuses_the_revision_and_names_the_key() {
    let keys = Keys::new("/lb/v1/");
    let good = desired().to_kvs(&keys);
    let vip_key = "/lb/v1/config/vips/203.0.113.10:80/tcp";
    let vip_json = String::from_utf8(good[vip_key].clone()).unwrap();
    let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
        ("not JSON", vip_key.into(), b"{ nope".to_vec(), "not a VIP"),
        ("not UTF-8", vip_key.into(), vec![0xff, 0xfe], "not UTF-8"),
        (
            "a value of another VIP",
            "/lb/v1/config/vips/203.0.113.11:80/tcp".into(),
            vip_json.clone().into_bytes(),
            "holds VIP 203.0.113.10:80/tcp, not 203.0.113.11:80/tcp",
        ),
        (
            "a key that is no VIP",
            "/lb/v1/config/vips/203.0.113.10".into(),
            vip_json.clone().into_bytes(),
            "write a VIP as",
        ),
        (
            "a VIP without reals field",
            vip_key.into(),
            vip_json.replace("\"reals\"", "\"realz\"").into_bytes(),
            "not a VIP",
        ),
        (
            "an unknown key",
            "/lb/v1/config/globalz".into(),
            b"{}".to_vec(),
            "unknown key",
        ),
        (
            "a bad host id",
            "/lb/v1/config/hosts/lb b".into(),
            br#"{"vips":[]}"#.to_vec(),
            "may hold only",
        ),
        (
            "a host doc with an unknown field",
            "/lb/v1/config/hosts/lb-c".into(),
            br#"{"vips":[],"extra":1}"#.to_vec(),
            "unknown field",
        ),
        (
            "a host listing a VIP twice",
            "/lb/v1/config/hosts/lb-c".into(),
            br#"{"vips":["203.0.113.10:80/tcp","203.0.113.10:80/tcp"]}"#.to_vec(),
            "listed twice",
        ),
        (
            "a host listing garbage",
            "/lb/v1/config/hosts/lb-c".into(),
            br#"{"vips":["here"]}"#.to_vec(),
            "write a VIP as",
        ),
    ];
    for (what, key, value, want) in cases {
        let mut kvs = good.clone();
        kvs.insert(key.clone(), value);
        let err = read(&keys, &kvs).expect_err(what);
        assert!(err.contains(want), "{what}: {err}");
        assert!(
            err.starts_with(&key),
            "{what}: the key is named first: {err}"
        );
    }
    // A host listing a VIP the store lacks: readable, but not servable.
    let mut kvs = good.clone();
    kvs.insert(
        "/lb/v1/config/hosts/lb-c".into(),
        br#"{"vips":["203.0.113.99:80/tcp"]}"#.to_vec(),
    );
    let d = read(&keys, &kvs).unwrap();
    let err = d.for_host("lb-c").unwrap_err();
    assert!(err.contains("203.0.113.99:80/tcp"), "{err}");
    assert!(d.for_host("lb-a").is_ok(), "other hosts are not affected");
}

#[test]
fn fleet_files_are_checked_with_their_place() {
    let cases = [
        (
            "[[host]]\nid = \"a\"\nvips = [\"203.0.113.10:80/tcp\"]\n",
            "not in this file",
            3,
        ),
        ("[[host]]\nid = \"a b\"\nvips = []\n", "may hold only", 2),
        (
            "[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"sctp\"\n",
            "use tcp or udp",
            3,
        ),
        (
            "[[vip]]\naddress = \"127.0.0.1\"\nprotocol = \"tcp\"\n",
            "loopback",
            2,
        ),
        ("[daemon]\ninterface = \"eth0\"\n", "unknown field", 1),
        (
            "[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\n[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\n",
            "configured twice",
            4,
        ),
        (
            "[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"tcp\"\n[[host]]\nid = \"a\"\nvips = [\"203.0.113.10/tcp\", \"203.0.113.10/tcp\"]\n",
            "listed twice",
            6,
        ),
    ];
    for (text, want, line) in cases {
        let err = parse_fleet_file(Path::new("f.toml"), text).expect_err(text);
        assert!(err.message.contains(want), "{text}: {err}");
        assert_eq!(err.line, line, "{text}: {err}");
    }
}

#[test]
fn prefix_end_is_the_first_key_after_the_prefix() {
    use crate::fleet::store::prefix_end;
    assert_eq!(prefix_end("/lb/v1/"), b"/lb/v10".to_vec());
    assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
}

/// A VIP's encapsulation and QUIC values as a broken tool might write them
/// into the store: what JSON cannot be a VIP refuses the revision at read
/// (the key named); what reads but breaks a rule is refused by the host's
/// own rules, as every offer is (`validate_vips`, the controller's check of
/// a fleet offer), with the VIP named.
#[test]
fn encap_and_quic_values_from_the_store_are_refused_with_their_vip() {
    let keys = Keys::new("/lb/v1/");
    let good = desired().to_kvs(&keys);
    let tcp_key = keys.vip(&"203.0.113.10:80/tcp".parse().unwrap());
    let udp_key = good.keys().find(|k| k.ends_with("/udp")).unwrap().clone();
    let host = crate::config::parse(
        Path::new("lb.toml"),
        "[daemon]\ninterface = \"eth0\"\n[dataplane]\nsource_v4 = \"192.0.2.1\"\nsource_v6 = \"2001:db8::1\"\nmax_reals = 131072\n",
    )
    .unwrap();
    let set = |key: &str, path: &[&str], value: serde_json::Value| {
        let mut vip: serde_json::Value = serde_json::from_slice(&good[key]).unwrap();
        let mut at = &mut vip;
        for step in &path[..path.len() - 1] {
            at = match step.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*step],
            };
        }
        at[path[path.len() - 1]] = value;
        let mut kvs = good.clone();
        kvs.insert(key.to_owned(), serde_json::to_vec(&vip).unwrap());
        kvs
    };
    use serde_json::json;
    // (what, key, field path, value, refused at read?, words)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<&'a str>,
        serde_json::Value,
        bool,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "an unknown encapsulation",
            &tcp_key,
            vec!["encap"],
            json!("vxlan"),
            true,
            "unknown variant `vxlan`",
        ),
        (
            "an encapsulation in capitals",
            &tcp_key,
            vec!["encap"],
            json!("GUE"),
            true,
            "unknown variant `GUE`",
        ),
        (
            "an encapsulation as a number",
            &tcp_key,
            vec!["encap"],
            json!(1),
            true,
            "not a VIP",
        ),
        (
            "a real's unknown encapsulation",
            &tcp_key,
            vec!["reals", "0", "encap"],
            json!("gre"),
            true,
            "unknown variant `gre`",
        ),
        (
            "quic as a string",
            &udp_key,
            vec!["quic"],
            json!("yes"),
            true,
            "not a VIP",
        ),
        (
            "quic on a TCP VIP",
            &tcp_key,
            vec!["quic"],
            json!(true),
            false,
            "quic = true is for UDP VIPs",
        ),
        (
            "quic with more reals than its ids hold",
            &udp_key,
            vec!["quic"],
            json!(true),
            false,
            "real ids go up to 131071",
        ),
    ];
    for (what, key, path, value, at_read, words) in cases {
        let kvs = set(key, &path, value);
        let err = match read(&keys, &kvs) {
            Err(e) => {
                assert!(at_read, "{what}: refused at read: {e}");
                assert!(e.starts_with(key), "{what}: the key is named first: {e}");
                e
            }
            Ok(d) => {
                assert!(!at_read, "{what}: read");
                let vips = d.for_host("lb-a").unwrap();
                let e = crate::config::validate_vips(&vips, &host.dataplane, None).expect_err(what);
                let vip = key.rsplit("vips/").next().unwrap();
                assert!(e.contains(vip), "{what}: the VIP is named: {e}");
                e
            }
        };
        assert!(err.contains(words), "{what}: {err}");
    }
    // The same fields, well formed, are read and pass the rules.
    let kvs = set(&tcp_key, &["reals", "0", "encap"], json!("gue"));
    let d = read(&keys, &kvs).unwrap();
    let vips = d.for_host("lb-a").unwrap();
    assert!(
        vips.iter()
            .any(|v| v.reals.iter().any(|r| r.encap.is_some()))
    );
    crate::config::validate_vips(&vips, &host.dataplane, None).unwrap();
}
