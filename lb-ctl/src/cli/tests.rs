//! The command line as an entry point for bad input: each mistake is
//! refused by the parser with words that say what is wrong, before
//! anything runs (what only the daemon can judge, a ring size that is not
//! prime or a real that is a VIP, is tested against a running daemon in
//! tests/tests/daemon.rs).
use clap::Parser;

use super::Args;

const VIP: &str = "203.0.113.10:80/tcp";

fn parse(args: &[&str]) -> Result<Args, String> {
    Args::try_parse_from(std::iter::once("lb-ctl").chain(args.iter().copied()))
        .map_err(|e| e.to_string())
}

#[test]
fn mistakes_on_the_command_line_are_refused_with_what_is_wrong() {
    let decap = ["decap", "attach", "--iface", "eth0"];
    let with = |base: &[&'static str], more: &[&'static str]| -> Vec<&'static str> {
        base.iter().chain(more).copied().collect()
    };
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            with(&decap, &["--gue-port", "65536"]),
            "65536 is not in 0..=65535",
        ),
        (
            with(&decap, &["--gue-port", "-1"]),
            "unexpected argument '-1'",
        ),
        (with(&decap, &["--gue-port", "6080x"]), "invalid digit"),
        (with(&decap, &["--gue-port"]), "a value is required"),
        (
            with(&decap, &["--address", "192.0.2.300"]),
            "invalid IP address",
        ),
        (with(&decap, &["--mode", "turbo"]), "invalid value 'turbo'"),
        (vec!["decap", "attach"], "--iface <IFACE>"),
        (
            vec!["vip", "add", VIP, "--encap", "vxlan"],
            "possible values: ipip, gue",
        ),
        (
            vec!["vip", "add", VIP, "--encap", "GUE"],
            "invalid value 'GUE'",
        ),
        (
            vec!["vip", "add", VIP, "--ring-size", "-7"],
            "unexpected argument '-7'",
        ),
        (
            vec!["vip", "add", VIP, "--ring-size", "4294967296"],
            "4294967296 is not in 0..=4294967295",
        ),
        (
            vec!["vip", "add", VIP, "--quic=yes"],
            "unexpected value 'yes'",
        ),
        (vec!["vip", "add", "203.0.113.10:80/sctp"], "sctp"),
        (vec!["vip", "add", "203.0.113.10:99999/tcp"], "99999"),
        (
            vec!["real", "add", "--vip", VIP, "192.0.2.18", "--encap", "gre"],
            "possible values: ipip, gue",
        ),
        (
            vec!["real", "add", "--vip", VIP, "192.0.2.18", "--weight", "1.5"],
            "invalid digit",
        ),
        (
            vec!["real", "add", "--vip", VIP, "not-an-address"],
            "invalid IP address",
        ),
    ];
    for (args, words) in cases {
        let err = parse(&args)
            .err()
            .unwrap_or_else(|| panic!("{args:?} was accepted"));
        assert!(
            err.contains(words),
            "lb-ctl {args:?}: `{err}` should say `{words}`"
        );
    }
    // The same options, well formed, parse.
    for args in [
        with(
            &decap,
            &[
                "--gue-port",
                "0",
                "--address",
                "192.0.2.1",
                "--mode",
                "generic",
            ],
        ),
        vec![
            "vip",
            "add",
            VIP,
            "--encap",
            "gue",
            "--ring-size",
            "65537",
            "--quic",
        ],
        vec![
            "real",
            "add",
            "--vip",
            VIP,
            "192.0.2.18",
            "--encap",
            "ipip",
            "--weight",
            "3",
        ],
    ] {
        parse(&args).unwrap_or_else(|e| panic!("lb-ctl {args:?}: {e}"));
    }
}
