//! `lb-ctl explain` refuses what names no flow, with a message and a
//! non-zero exit, before (or instead of) reading any map: a table of cases.
use std::process::Command;

#[test]
fn explain_refuses_what_names_no_flow() {
    // (what, arguments, exit code, what stderr says)
    let cases: &[(&str, &[&str], i32, &str)] = &[
        (
            "a protocol lb does not balance",
            &["sctp", "198.51.100.7:1", "203.0.113.10:80"],
            2,
            "not tcp or udp",
        ),
        (
            "an address without a port",
            &["tcp", "198.51.100.7", "203.0.113.10:80"],
            2,
            "invalid socket address",
        ),
        (
            "a size past 65535",
            &[
                "tcp",
                "198.51.100.7:1",
                "203.0.113.10:80",
                "--size",
                "70000",
            ],
            2,
            "--size",
        ),
        (
            "two families",
            &["tcp", "198.51.100.7:1", "[2001:db8::10]:80"],
            1,
            "different address families",
        ),
        (
            "no balancer pinned there",
            &["tcp", "198.51.100.7:1", "203.0.113.10:80"],
            1,
            "cannot read the pinned map LB_VIPS",
        ),
    ];
    for (what, args, code, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
            .arg("explain")
            .args(*args)
            .args(["--pin-dir", "/nonexistent/lb-test-pins"])
            .env_remove("LB_LOG")
            .output()
            .expect("run lb-ctl");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{what}: {err}");
        assert!(err.contains(says), "{what}: `{err}` should say `{says}`");
        assert!(out.stdout.is_empty(), "{what}");
    }
}
