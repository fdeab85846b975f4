//! The `[fleet]` section: its mistakes, each with its line.
use super::*;

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
