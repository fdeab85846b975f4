//! The commands that read the pinned maps (`explain`, `capture`) refuse
//! what names or bounds nothing, with a message and a non-zero exit, before
//! reading or turning on anything: a table of cases each, run through the
//! binary with a pin directory where no balancer is.
use std::process::Command;

/// (what, arguments, exit code, what stderr says)
type Case<'a> = (&'a str, &'a [&'a str], i32, &'a str);

fn refused(command: &str, cases: &[Case]) {
    for (what, args, code, says) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
            .arg(command)
            .args(*args)
            .args(["--pin-dir", "/nonexistent/lb-test-pins"])
            .env_remove("LB_LOG")
            .output()
            .expect("run lb-ctl");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{command} {what}: {err}");
        assert!(
            err.contains(says),
            "{command} {what}: `{err}` should say `{says}`"
        );
        assert!(out.stdout.is_empty(), "{command} {what}: nothing on stdout");
    }
}

#[test]
fn explain_refuses_what_names_no_flow() {
    let cases: &[Case] = &[
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
    refused("explain", cases);
}

#[test]
fn capture_refuses_unbounded_or_unnamed_requests() {
    let cases: &[Case] = &[
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
    refused("capture", cases);
    assert!(
        !std::path::Path::new("/tmp/lb-capture-args.pcapng").exists(),
        "no file is made when the balancer cannot be read"
    );
}
