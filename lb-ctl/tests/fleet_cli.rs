//! `lb-ctl fleet` refuses bad input before it reaches for the store: a
//! table of arguments and fleet files run through the binary, each failing
//! with exit 1 and a message naming the mistake (and, for a file, its
//! `file:line:column`). The endpoint is a closed port on loopback: a case
//! that reached for the store would fail with "cannot reach" instead.
use std::process::Command;

const CLOSED: &str = "127.0.0.1:1";

fn fleet(args: &[&str]) -> (Option<i32>, String) {
    lb_ctl(&[&["fleet"], args].concat())
}

fn lb_ctl(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
        .args(args)
        .env_remove("LB_FLEET_ENDPOINTS")
        .env_remove("LB_FLEET_PREFIX")
        .output()
        .expect("run lb-ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_and_files_are_refused_before_the_store_is_reached() {
    let dir = std::env::temp_dir().join(format!("lb-fleet-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[vip]]\naddress = \"203.0.113.10\"\nprotocol = \"sctp\"\n",
    )
    .unwrap();
    let unknown_host_vip = dir.join("host.toml");
    std::fs::write(
        &unknown_host_vip,
        "[[host]]\nid = \"lb-a\"\nvips = [\"203.0.113.10:80/tcp\"]\n",
    )
    .unwrap();
    let (bad, unknown_host_vip) = (
        bad.display().to_string(),
        unknown_host_vip.display().to_string(),
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["--endpoints", "https://192.0.2.50:2379", "status"],
            "TLS is not built into lb-ctl",
        ),
        (&["--endpoints", "192.0.2.50", "status"], "is not HOST:PORT"),
        (
            &["--endpoints", "192.0.2.50:99999", "get"],
            "is not HOST:PORT",
        ),
        (
            &["--endpoints", CLOSED, "--prefix", "lb", "status"],
            "must start and end with `/`",
        ),
        (
            &["--endpoints", CLOSED, "--prefix", "/lb v1/", "status"],
            "without spaces",
        ),
        (
            &["--endpoints", CLOSED, "apply", "/nonexistent/fleet.toml"],
            "cannot read /nonexistent/fleet.toml",
        ),
        (
            &["--endpoints", CLOSED, "apply", &bad],
            ":3:12: protocol `sctp`: use tcp or udp",
        ),
        (
            &["--endpoints", CLOSED, "apply", &unknown_host_vip],
            ":3:9: host lb-a: VIP 203.0.113.10:80/tcp is not in this file",
        ),
        (
            &["--endpoints", CLOSED, "apply", "--if-revision", "x", &bad],
            "invalid value 'x'",
        ),
        (&["status"], "--endpoints"),
    ];
    for (args, want) in cases {
        let (code, err) = fleet(args);
        assert_ne!(code, Some(0), "{args:?} must fail");
        assert!(err.contains(want), "{args:?}: wanted `{want}` in: {err}");
        assert!(
            !err.contains("cannot reach"),
            "{args:?} reached for the store: {err}"
        );
    }
    // A good request to no store: says which store it could not reach.
    let (code, err) = fleet(&["--endpoints", CLOSED, "status"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot reach the fleet's store at http://127.0.0.1:1"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checker_with_bad_arguments_does_not_start() {
    let cases: &[(&[&str], &str)] = &[
        (&["--endpoints", CLOSED, "--lease-ttl", "1s"], "2s or more"),
        (
            &["--endpoints", CLOSED, "--lease-ttl", "2500ms"],
            "whole seconds",
        ),
        (
            &["--endpoints", CLOSED, "--lease-ttl", "soon"],
            "is not a duration",
        ),
        (&["--endpoints", CLOSED, "--id", "chk 1"], "may hold only"),
        (&["--endpoints", CLOSED, "--id", ""], "1 to 64 characters"),
        (
            &["--endpoints", "https://192.0.2.50:2379"],
            "TLS is not built into lb-ctl",
        ),
        (
            &["--endpoints", CLOSED, "--prefix", "lb"],
            "must start and end with `/`",
        ),
        (&[], "--endpoints"),
    ];
    for (args, want) in cases {
        let (code, err) = lb_ctl(&[&["checker"], *args].concat());
        assert_ne!(code, Some(0), "{args:?} must fail");
        assert!(err.contains(want), "{args:?}: wanted `{want}` in: {err}");
    }
}

#[test]
fn vip_and_real_changes_for_a_fleet_refuse_bad_input_before_the_store_is_reached() {
    let vip = "203.0.113.10:80/tcp";
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "vip",
                "--fleet-endpoints",
                "https://192.0.2.50:2379",
                "add",
                vip,
            ],
            "TLS is not built into lb-ctl",
        ),
        (
            &["vip", "add", vip, "--fleet-endpoints", "192.0.2.50"],
            "is not HOST:PORT",
        ),
        (
            &[
                "real",
                "--fleet-endpoints",
                CLOSED,
                "--fleet-prefix",
                "lb",
                "del",
                "--vip",
                vip,
                "192.0.2.18",
            ],
            "must start and end with `/`",
        ),
        (
            &[
                "vip",
                "--fleet-endpoints",
                CLOSED,
                "add",
                "203.0.113.10:80/sctp",
            ],
            "invalid value",
        ),
        (
            &[
                "vip",
                "--fleet-endpoints",
                CLOSED,
                "add",
                vip,
                "--health",
                "ping",
            ],
            "ping",
        ),
        (
            &[
                "vip",
                "--fleet-endpoints",
                CLOSED,
                "add",
                vip,
                "--health-path",
                "/",
            ],
            "--health <KIND>",
        ),
        (
            &[
                "real",
                "--fleet-endpoints",
                CLOSED,
                "add",
                "--vip",
                vip,
                "192.0.2.300",
            ],
            "invalid value",
        ),
        (
            &[
                "real",
                "--fleet-endpoints",
                CLOSED,
                "weight",
                "--vip",
                vip,
                "192.0.2.18",
                "-1",
            ],
            "unexpected argument",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = lb_ctl(args);
        assert_ne!(code, Some(0), "{args:?} must fail");
        assert!(err.contains(want), "{args:?}: wanted `{want}` in: {err}");
        assert!(
            !err.contains("cannot reach"),
            "{args:?} reached for the store: {err}"
        );
    }
    // A good change with a store named goes to it (not to a daemon).
    let (code, err) = lb_ctl(&[
        "real",
        "drain",
        "--vip",
        vip,
        "192.0.2.18",
        "--fleet-endpoints",
        CLOSED,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot reach the fleet's store at http://127.0.0.1:1"),
        "{err}"
    );
}
