//! Command-line mistakes are refused by the parser (exit 2, a message
//! naming the option) before anything is sent to a daemon: a table of
//! cases. No daemon runs here; the socket named does not exist, so a case
//! that got past the parser would fail differently (exit 1, "cannot
//! reach").
use std::process::Command;

fn lb_ctl(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
        .args(["--socket", "/nonexistent/lb-test.sock"])
        .args(args)
        .env_remove("LB_LOG")
        .envs(env.iter().copied())
        .output()
        .expect("run lb-ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the case is, its environment, its arguments, what stderr must say.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

#[test]
fn mistakes_are_refused_by_the_parser_with_their_option_named() {
    let cases: &[Case] = &[
        (
            "a --health-* option without --health would be ignored",
            &[],
            &["vip", "add", "203.0.113.10:80/tcp", "--health-port", "81"],
            "--health <KIND>",
        ),
        (
            "the same on real add",
            &[],
            &[
                "real",
                "add",
                "--vip",
                "203.0.113.10:80/tcp",
                "192.0.2.18",
                "--health-rise",
                "3",
            ],
            "--health <KIND>",
        ),
        (
            "a bad health interval",
            &[],
            &[
                "vip",
                "add",
                "203.0.113.10:80/tcp",
                "--health",
                "tcp",
                "--health-interval",
                "fast",
            ],
            "not a duration",
        ),
        (
            "a log filter tracing cannot read",
            &[],
            &["--log-level", "lb_ctl=[", "status"],
            "not a log filter",
        ),
        (
            "the same from LB_LOG",
            &[("LB_LOG", "x=[")],
            &["status"],
            "not a log filter",
        ),
        (
            "a VIP that does not parse",
            &[],
            &["vip", "del", "203.0.113.10:80/sctp"],
            "sctp",
        ),
    ];
    for (what, env, args, says) in cases {
        let (code, _, err) = lb_ctl(env, args);
        assert_eq!(code, Some(2), "{what}: exit {code:?}, stderr: {err}");
        assert!(err.contains(says), "{what}: `{err}` should say `{says}`");
    }
}

#[test]
fn help_shows_the_real_ring_size_default() {
    let (code, out, err) = lb_ctl(&[], &["vip", "add", "--help"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("[default: 65537]"), "{out}");
}
