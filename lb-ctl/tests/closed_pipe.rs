//! A CLI command whose reader goes away (`lb-ctl ... | head -1`) ends
//! quietly, killed by SIGPIPE as Unix tools are, not with a panic (exit
//! 101) on its next write.
use std::{
    io::Read as _,
    os::unix::process::ExitStatusExt as _,
    process::{Command, Stdio},
};

#[test]
fn a_closed_stdout_ends_the_cli_quietly() {
    // Enough reals for many lines of output.
    let reals: Vec<String> = (1..=200).map(|i| format!("192.0.2.{i}")).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
        .arg("maglev")
        .args(&reals)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lb-ctl");
    // Close the reading end before lb-ctl writes anything.
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert!(!stderr.contains("panicked"), "lb-ctl panicked: {stderr}");
    assert_ne!(status.code(), Some(101), "{status}: {stderr}");
    assert!(
        status.success() || status.signal() == Some(libc::SIGPIPE),
        "ended by SIGPIPE (or done before writing): {status}: {stderr}"
    );
}
