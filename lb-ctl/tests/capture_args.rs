//! `lb-ctl capture` refuses what bounds or names nothing, with a message
//! and a non-zero exit, before turning any capture on: a table of cases.
use std::process::Command;

#[test]
fn capture_refuses_unbounded_or_unnamed_requests() {
    // (what, arguments, exit code, what stderr says)
    let cases: &[(&str, &[&str], i32, &str)] = &[
        ("no file", &[], 2, "--write <FILE>"),
        (
            "sampling 1 in 0",
            &["-w", "/tmp/x.pcapng", "--sample", "0"],
            2,
            "--sample",
        ),
        (
            "no packets",
            &["-w", "/tmp/x.pcapng", "--count", "0"],
            2,
            "--count",
        ),
        (
            "more than a million",
            &["-w", "/tmp/x.pcapng", "--count", "2000000"],
            2,
            "--count",
        ),
        (
            "a snaplen below 64",
            &["-w", "/tmp/x.pcapng", "--snaplen", "10"],
            2,
            "--snaplen",
        ),
        (
            "an unknown verdict",
            &["-w", "/tmp/x.pcapng", "--verdict", "maybe"],
            2,
            "--verdict",
        ),
        (
            "a bad duration",
            &["-w", "/tmp/x.pcapng", "--duration", "soon"],
            2,
            "--duration",
        ),
        (
            "a bad VIP",
            &["-w", "/tmp/x.pcapng", "--vip", "203.0.113.10:80"],
            2,
            "--vip",
        ),
        (
            "stop and a file",
            &["--stop", "-w", "/tmp/x.pcapng"],
            2,
            "cannot be used with",
        ),
        (
            "no balancer pinned there",
            &["-w", "/tmp/lb-capture-args.pcapng"],
            1,
            "cannot read the pinned map LB_VIPS",
        ),
        (
            "stop with no balancer",
            &["--stop"],
            1,
            "cannot open the pinned map LB_CONFIG",
        ),
    ];
    for (what, args, code, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
            .arg("capture")
            .args(["--pin-dir", "/nonexistent/lb-test-pins"])
            .args(*args)
            .env_remove("LB_LOG")
            .output()
            .expect("run lb-ctl");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{what}: {err}");
        assert!(err.contains(says), "{what}: `{err}` should say `{says}`");
    }
    assert!(
        !std::path::Path::new("/tmp/lb-capture-args.pcapng").exists(),
        "no file is made when the balancer cannot be read"
    );
}
