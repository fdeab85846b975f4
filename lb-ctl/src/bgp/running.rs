//! A gobgpd that runs already: what it announces (a crashed lb-ctl's
//! routes), the pid a managed one was recorded with, and stopping it by pid.
use std::time::{Duration, Instant};

use super::{
    BgpSettings, Prefix,
    gobgp::{self, Gobgp},
};

/// The pid recorded in `pid_file`, if that process still runs `gobgpd`
/// (the pid may have been reused since).
pub(super) fn recorded_gobgpd(pid_file: &std::path::Path, gobgpd: &std::path::Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = gobgpd.file_name()?;
    (exe.file_name() == Some(name)).then_some(pid)
}

/// Sends SIGTERM to `pid` and waits (up to 3 s, then SIGKILL) until it is
/// gone. Not a child: it is polled through `/proc`.
pub(super) async fn stop_process(pid: u32) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let start = Instant::now();
    while alive() {
        if start.elapsed() > Duration::from_secs(3) {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The addresses of the host routes a gobgpd already running at the
/// configured API address announces (in its global RIB) for the configured
/// AS: what a crashed lb-ctl left announced. Empty if none answers.
pub async fn announced_by_running_gobgpd(
    settings: &BgpSettings,
) -> std::collections::BTreeSet<std::net::IpAddr> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(mut c) = Gobgp::connect(settings.api, Duration::from_millis(300)).await else {
        return out;
    };
    match c.global().await {
        Ok(g) if g.asn == settings.asn => {}
        _ => return out,
    }
    for probe in ["0.0.0.0", "::"] {
        let fam = gobgp::family(probe.parse().expect("address"));
        for p in c.prefixes(None, fam).await.unwrap_or_default() {
            if let Ok(prefix) = p.parse::<Prefix>() {
                out.insert(prefix.addr);
            }
        }
    }
    out
}
