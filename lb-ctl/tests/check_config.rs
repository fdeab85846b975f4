//! `lb-ctl daemon --check-config FILE`: what a start would do with a file,
//! without starting. A table of files (and state files) run through the
//! binary: the example config passes; every mistake fails with exit 1 and
//! the place (`file:line:column`, or the state file's name) in its message.
use std::{path::Path, process::Command};

/// A temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lb-check-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn check(file: &Path) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
        .args(["daemon", "--check-config"])
        .arg(file)
        .env_remove("LB_LOG")
        .output()
        .expect("run lb-ctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/lb.toml");

/// The example with its state file moved into `dir` (so that a state file
/// of this machine plays no part).
fn example_in(dir: &Path) -> String {
    let state = dir.join("state.json");
    std::fs::read_to_string(EXAMPLE).unwrap().replace(
        "# state_file = \"/var/lib/lb/state.json\"",
        &format!("state_file = \"{}\"", state.display()),
    )
}

#[test]
fn the_example_config_passes_and_says_what_a_start_would_take() {
    let dir = TempDir::new("ok");
    let file = dir.0.join("lb.toml");
    let text = example_in(&dir.0);
    assert!(
        text.contains(&dir.0.display().to_string()),
        "state file moved"
    );
    std::fs::write(&file, text).unwrap();
    let (code, out, err) = check(&file);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!("{}: OK: ", file.display())),
        "{out}"
    );
    assert!(out.contains("VIPs from the file"), "{out}");
    assert!(out.contains("BGP on"), "{out}");
}

#[test]
fn a_ring_small_for_its_reals_passes_with_a_note() {
    let dir = TempDir::new("ring");
    let file = dir.0.join("lb.toml");
    let text = example_in(&dir.0).replacen("# ring_size = 65537", "ring_size = 13", 1);
    std::fs::write(&file, text).unwrap();
    let (code, out, err) = check(&file);
    assert_eq!(code, Some(0), "advice is not a failure: {err}");
    assert!(out.contains("OK: "), "{out}");
    assert!(
        out.contains(
            "\nnote: VIP 203.0.113.10:80/tcp: its ring of 13 slots gives its lightest real"
        ),
        "{out}"
    );
    // The example as it is draws no advice.
    std::fs::write(&file, example_in(&dir.0)).unwrap();
    let (_, out, _) = check(&file);
    assert!(!out.contains("note: VIP"), "{out}");
}

#[test]
fn a_start_would_fail_so_the_check_fails_with_the_place() {
    let dir = TempDir::new("bad");
    let good = example_in(&dir.0);
    let file = dir.0.join("lb.toml");
    let line_of = |text: &str, needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in the example"))
            + 1
    };
    // (what, the file's text, what stderr must say)
    let cases: Vec<(&str, String, String)> = vec![
        (
            "a ring size that is not prime",
            good.replacen("[[vip]]", "[[vip]]\nring_size = 1000", 1),
            format!("{}:{}:", file.display(), line_of(&good, "[[vip]]") + 1),
        ),
        (
            "an unknown field",
            good.replace("mtu = 1600", "mtu = 1600\nmtus = 1"),
            format!(
                "{}:{}:1: unknown field `mtus`",
                file.display(),
                line_of(&good, "mtu = 1600") + 1
            ),
        ),
        (
            "not TOML",
            good.replace("[daemon]", "[daemon"),
            format!("{}:{}:", file.display(), line_of(&good, "[daemon]")),
        ),
        (
            "a multicast VIP",
            good.replacen("203.0.113.10", "224.0.0.10", 1),
            "multicast".to_owned(),
        ),
        (
            "an empty state file path",
            good.replace(
                &format!("state_file = \"{}\"", dir.0.join("state.json").display()),
                "state_file = \"\"",
            ),
            "state_file".to_owned(),
        ),
    ];
    for (what, text, says) in &cases {
        assert_ne!(text, &good, "{what}: the case changes the file");
        std::fs::write(&file, text).unwrap();
        let (code, out, err) = check(&file);
        assert_eq!(code, Some(1), "{what}: {out}{err}");
        assert!(
            err.contains(says.as_str()),
            "{what}: `{err}` should say `{says}`"
        );
        assert!(out.is_empty(), "{what}: nothing on stdout: {out}");
    }

    // The file is fine, but the state file a start would take is not.
    std::fs::write(&file, &good).unwrap();
    let state = dir.0.join("state.json");
    let settings = lb_ctl::config::parse(&file, &good).unwrap();
    let mut refused = settings.vips.clone();
    refused[0].reals[0].address = refused[0].address;
    let bad_vips = {
        lb_ctl::daemon::state_file::save(&state, &refused).unwrap();
        std::fs::read_to_string(&state).unwrap()
    };
    for (what, content, says) in [
        ("not JSON", "{ not json".to_owned(), "is not valid"),
        (
            "another version",
            r#"{"version":99,"vips":[]}"#.to_owned(),
            "version 99",
        ),
        ("a real equal to its VIP", bad_vips, "203.0.113.10"),
    ] {
        std::fs::write(&state, content).unwrap();
        let (code, out, err) = check(&file);
        assert_eq!(code, Some(1), "{what}: {out}{err}");
        assert!(err.contains(says), "{what}: `{err}` should say `{says}`");
    }
    // A good state file is what a start takes.
    lb_ctl::daemon::state_file::save(&state, &settings.vips[..1]).unwrap();
    let (code, out, err) = check(&file);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("1 VIPs from the state file"), "{out}");

    let (code, _, err) = check(&dir.0.join("missing.toml"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("cannot read") && err.contains("missing.toml"),
        "{err}"
    );
}
