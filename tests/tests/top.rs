//! `lb-ctl top` in a real terminal: tmux (a server of the test's own) runs
//! it against a daemon in the lab; the test reads the pane, sends keys,
//! stops a backend, and quits: the view shows the VIPs, reals and health,
//! sorts and filters on the keys, refreshes by itself, and on `q` leaves the
//! terminal as it was (alternate screen off).
use std::{
    process::Command,
    time::{Duration, Instant},
};

use lb_tests::{
    lab::{HTTP_PORT, Lab, LabOptions, VIP4, client::http_get, test_bins},
    netns::unique_tag,
    require_root,
};

/// A tmux server of the test's own (`-L`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux (Debian package tmux)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pane(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "top"])
    }

    /// Polls the pane until `ok` holds (10 s at most).
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let pane = self.pane();
            if ok(&pane) {
                return pane;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the pane never showed {what}:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn top_shows_sorts_filters_refreshes_and_quits_cleanly() {
    if !require_root("top_shows_sorts_filters_refreshes_and_quits_cleanly") {
        return;
    }
    let lab = Lab::up(LabOptions::new(
        &format!("lbtt{}", unique_tag()),
        test_bins(),
    ))
    .expect("lab up");
    lab.route_vips(&['A']).unwrap();
    for _ in 0..5 {
        http_get(&lab.ns("c1"), VIP4.parse().unwrap(), HTTP_PORT).unwrap();
    }
    let socket = lab.lbs[&'A'].socket.clone();
    let tmux = Tmux {
        socket: format!("lbt-top-{}", unique_tag()),
    };
    // The exit status goes to a file: tmux reports a pane dead when its pty
    // closes, and its status only once it has reaped the process, which it
    // did not always do within seconds under load.
    let status_file = std::env::temp_dir().join(format!("{}.status", tmux.socket));
    let _ = std::fs::remove_file(&status_file);
    let command = format!(
        "{} --socket {} top; echo $? > {}",
        test_bins().lb_ctl.display(),
        socket.display(),
        status_file.display()
    );
    tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "40",
        &command,
    ]);
    tmux.cmd(&["set-option", "-t", "top", "remain-on-exit", "on"]);

    let pane = tmux.wait("the VIPs and reals", |p| {
        p.contains("203.0.113.10:80/tcp") && p.contains("192.0.2.18") && p.contains("sort: name")
    });
    assert!(
        pane.contains("VIP / real") && pane.contains("pkt/s"),
        "{pane}"
    );
    assert!(pane.contains("4 VIPs, 8 reals, 8 healthy"), "{pane}");
    eprintln!("lb-ctl top, as first drawn:\n{pane}");

    tmux.cmd(&["send-keys", "-t", "top", "s"]);
    tmux.wait("the packets/s order", |p| p.contains("sort: packets/s"));

    // `f`: the first VIP by name alone.
    tmux.cmd(&["send-keys", "-t", "top", "f"]);
    let pane = tmux.wait("one VIP", |p| p.contains("VIP: 203.0.113.10:5300/udp"));
    let table: String = pane.lines().skip(3).collect::<Vec<_>>().join("\n");
    assert!(
        table.contains("203.0.113.10:5300/udp") && !table.contains("203.0.113.10:80/tcp"),
        "{pane}"
    );
    tmux.cmd(&["send-keys", "-t", "top", "f", "f", "f", "f"]);
    tmux.wait("all VIPs again", |p| p.contains("VIP: all"));

    // It refreshes by itself: a backend stops, its health turns down.
    lab.stop_server("a1").unwrap();
    tmux.wait("a1 down", |p| {
        p.lines()
            .any(|l| l.contains("192.0.2.18") && l.contains("down"))
    });

    tmux.cmd(&["send-keys", "-t", "top", "q"]);
    let start = Instant::now();
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && text.ends_with('\n')
        {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "lb-ctl top did not exit on q:\n{}",
            tmux.pane()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = std::fs::remove_file(&status_file);
    assert_eq!(status.trim(), "0", "lb-ctl top exited with {status}");
    let alternate = tmux.cmd(&["display-message", "-p", "-t", "top", "#{alternate_on}"]);
    assert_eq!(alternate.trim(), "0", "the alternate screen is left");
    let after = tmux.pane();
    assert!(!after.contains("VIP / real"), "the view is gone:\n{after}");
}
