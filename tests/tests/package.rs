//! The Debian package as an operator gets it (`cargo xtask package`; `cargo
//! xtask test` builds it first and names it in `LB_DEB`): its fields, its
//! contents with their modes and owners, its conffile and maintainer
//! scripts; unpacked into a throwaway root, its `lb-ctl` runs and accepts
//! its own configuration, its man pages render and its completions parse;
//! and its systemd units pass `systemd-analyze verify` as installed (the
//! package's files laid over /usr in a private mount namespace, so that
//! nothing on this machine changes).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use lb_tests::{netns::unique_tag, run_ok};

/// The .deb to check: `LB_DEB`. Without it the test is skipped, except
/// under `CI=true` (where `cargo xtask test` always sets it).
fn deb() -> Option<PathBuf> {
    match std::env::var_os("LB_DEB") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            let msg = "package tests: LB_DEB is not set (`cargo xtask test` builds the package and sets it; or `cargo xtask package` and LB_DEB=target/package/lb_*.deb)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{msg}; CI=true forbids skipping"
            );
            eprintln!("SKIPPED {msg}");
            None
        }
    }
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn field(deb: &Path, name: &str) -> String {
    run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
        .trim()
        .to_owned()
}

#[test]
fn the_package_says_what_it_is_and_needs() {
    let Some(deb) = deb() else { return };
    assert_eq!(field(&deb, "Package"), "lb");
    assert_eq!(field(&deb, "Version"), env!("CARGO_PKG_VERSION"));
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field(&deb, "Architecture"), arch.trim());
    let depends = field(&deb, "Depends");
    assert!(depends.contains("libc6 (>= "), "{depends}");
    assert_eq!(field(&deb, "Recommends"), "gobgpd");
    assert_eq!(field(&deb, "Suggests"), "bpftool");
    assert_eq!(field(&deb, "Section"), "net");
}

#[test]
fn the_package_holds_every_file_with_its_mode_and_owner() {
    let Some(deb) = deb() else { return };
    let listing = run_ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    // path -> (mode, owner)
    let entries: BTreeMap<String, (String, String)> = listing
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let path = cols[5].trim_start_matches('.').to_owned();
            (path, (cols[0].to_owned(), cols[1].to_owned()))
        })
        .collect();
    let expect = |path: &str, mode: &str| {
        let (m, owner) = entries
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from the package:\n{listing}"));
        assert_eq!((m.as_str(), owner.as_str()), (mode, "root/root"), "{path}");
    };
    expect("/usr/sbin/lb-ctl", "-rwxr-xr-x");
    expect("/etc/lb/lb.toml", "-rw-r--r--");
    expect("/lib/systemd/system/lb.service", "-rw-r--r--");
    expect("/lib/systemd/system/lb-decap@.service", "-rw-r--r--");
    expect("/usr/lib/tmpfiles.d/lb.conf", "-rw-r--r--");
    expect(
        "/usr/share/bash-completion/completions/lb-ctl",
        "-rw-r--r--",
    );
    expect("/usr/share/zsh/vendor-completions/_lb-ctl", "-rw-r--r--");
    expect(
        "/usr/share/fish/vendor_completions.d/lb-ctl.fish",
        "-rw-r--r--",
    );
    expect("/usr/share/doc/lb/copyright", "-rw-r--r--");
    for page in [
        "lb-ctl",
        "lb-ctl-daemon",
        "lb-ctl-vip-add",
        "lb-ctl-real-drain",
        "lb-ctl-bgp-status",
        "lb-ctl-decap-attach",
    ] {
        expect(&format!("/usr/share/man/man8/{page}.8.gz"), "-rw-r--r--");
    }
    // Nothing writable by others, no set-id bits, every directory 0755.
    for (path, (mode, owner)) in &entries {
        assert_eq!(owner, "root/root", "{path}");
        let ok = if mode.starts_with('d') {
            mode == "drwxr-xr-x"
        } else {
            mode == "-rw-r--r--" || mode == "-rwxr-xr-x"
        };
        assert!(ok, "{path} has mode {mode}");
    }
}

#[test]
fn the_configuration_is_a_conffile_and_the_scripts_start_nothing() {
    let Some(deb) = deb() else { return };
    let dir = TempDir(std::env::temp_dir().join(format!("lbt-deb-control-{}", unique_tag())));
    run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(&dir.0),
    );
    let conffiles = std::fs::read_to_string(dir.0.join("conffiles")).unwrap();
    assert_eq!(conffiles, "/etc/lb/lb.toml\n");
    for script in ["postinst", "prerm", "postrm"] {
        let path = dir.0.join(script);
        run_ok(Command::new("sh").arg("-n").arg(&path));
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        for surprise in [
            "systemctl enable",
            "systemctl start",
            "systemctl restart",
            "deb-systemd-invoke start",
        ] {
            assert!(!code.contains(surprise), "{script} runs `{surprise}`");
        }
    }
    let md5sums = std::fs::read_to_string(dir.0.join("md5sums")).unwrap();
    assert!(md5sums.contains("usr/sbin/lb-ctl"), "{md5sums}");
}

#[test]
fn unpacked_its_lb_ctl_runs_and_its_man_pages_and_completions_work() {
    let Some(deb) = deb() else { return };
    let root = TempDir(std::env::temp_dir().join(format!("lbt-deb-root-{}", unique_tag())));
    run_ok(Command::new("dpkg").arg("-x").arg(&deb).arg(&root.0));
    let lb_ctl = root.0.join("usr/sbin/lb-ctl");
    let version = run_ok(Command::new(&lb_ctl).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("lb-ctl {}", env!("CARGO_PKG_VERSION"))
    );
    // Its configuration, with the state file moved away from this host's.
    let config = root.0.join("etc/lb/lb.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "# state_file = \"/var/lib/lb/state.json\"",
        &format!("state_file = \"{}\"", root.0.join("state.json").display()),
    );
    std::fs::write(&config, text).unwrap();
    let checked = run_ok(
        Command::new(&lb_ctl)
            .args(["daemon", "--check-config"])
            .arg(&config),
    );
    assert!(checked.contains(": OK: "), "{checked}");
    // The man page of the daemon renders and documents --check-config.
    let page = run_ok(
        Command::new("man")
            .arg("-l")
            .arg(root.0.join("usr/share/man/man8/lb-ctl-daemon.8.gz"))
            .env("MANWIDTH", "100")
            .env("MAN_KEEP_FORMATTING", "0"),
    );
    assert!(page.contains("--check-config"), "{page}");
    // Bash completes commands, subcommands and their options.
    let bash = root.0.join("usr/share/bash-completion/completions/lb-ctl");
    for (words, want) in [
        (&["da"][..], "daemon"),
        (&["daemon", "--che"][..], "--check-config"),
        (&["vip", "ad"][..], "add"),
        (&["real", "add", "--wei"][..], "--weight"),
        (&["decap", "att"][..], "attach"),
    ] {
        let cur = words[words.len() - 1];
        let prev = if words.len() > 1 {
            words[words.len() - 2]
        } else {
            "lb-ctl"
        };
        let script = format!(
            "source '{}'\nCOMP_WORDS=(lb-ctl {})\nCOMP_CWORD={}\n_lb__ctl lb-ctl '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            bash.display(),
            words.join(" "),
            words.len(),
        );
        let got = run_ok(Command::new("bash").arg("-c").arg(&script));
        assert!(
            got.lines().any(|l| l == want),
            "lb-ctl {words:?}<TAB>: {got:?}, wanted {want}"
        );
    }
    for (file, head) in [
        (
            "usr/share/zsh/vendor-completions/_lb-ctl",
            "#compdef lb-ctl",
        ),
        (
            "usr/share/fish/vendor_completions.d/lb-ctl.fish",
            "complete -c lb-ctl",
        ),
    ] {
        let text = std::fs::read_to_string(root.0.join(file)).unwrap();
        assert!(text.starts_with(head) || text.contains(head), "{file}");
        assert!(
            text.contains("check-config") && text.contains("decap"),
            "{file}"
        );
    }
}

#[test]
fn the_units_pass_systemd_analyze_verify_as_installed() {
    let Some(deb) = deb() else { return };
    if !lb_tests::require_root("the_units_pass_systemd_analyze_verify_as_installed") {
        return;
    }
    let root = TempDir(std::env::temp_dir().join(format!("lbt-deb-units-{}", unique_tag())));
    run_ok(Command::new("dpkg").arg("-x").arg(&deb).arg(&root.0));
    let units = root.0.join("lib/systemd/system");
    // The template, and an instance of it as an operator enables it.
    std::fs::copy(
        units.join("lb-decap@.service"),
        root.0.join("lb-decap@eth0.service"),
    )
    .unwrap();
    // In a mount namespace of its own, the package's /usr/sbin and man
    // pages lie over this machine's (overlayfs, read-only): the units see
    // /usr/sbin/lb-ctl and man:lb-ctl(8) where the package puts them.
    let script = format!(
        "set -e\n\
         mount -t overlay lb-sbin -o lowerdir={r}/usr/sbin:/usr/sbin /usr/sbin\n\
         mount -t overlay lb-man -o lowerdir={r}/usr/share/man:/usr/share/man /usr/share/man\n\
         systemd-analyze verify {u}/lb.service {r}/lb-decap@eth0.service 2>&1\n",
        r = root.0.display(),
        u = units.display(),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );
}
