//! systemd's service notification protocol (`sd_notify(3)`), spoken
//! directly: datagrams to the socket named by `NOTIFY_SOCKET`. The daemon
//! says `READY=1` once the balancer is attached and the API serves,
//! `RELOADING=1` / `READY=1` around a SIGHUP reload, `STOPPING=1` when it
//! stops, and `WATCHDOG=1` from its main loop at half of `WATCHDOG_USEC`,
//! so that a hung controller is restarted by systemd. Without
//! `NOTIFY_SOCKET` (not under systemd) every call does nothing.
use std::{
    os::unix::net::{SocketAddr, UnixDatagram},
    time::Duration,
};

/// Where notifications go, if anywhere, and the watchdog's period.
#[derive(Debug, Default)]
pub struct Notifier {
    target: Option<SocketAddr>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (a
    /// watchdog for another process is not ours) from `env`.
    pub fn from_vars(env: impl Fn(&str) -> Option<String>) -> Self {
        let target = env("NOTIFY_SOCKET").and_then(|path| {
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    <SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name)
                }
                None if path.starts_with('/') => SocketAddr::from_pathname(&path),
                None => return None,
            };
            addr.ok()
        });
        let ours =
            env("WATCHDOG_PID").is_none_or(|pid| pid.trim().parse() == Ok(std::process::id()));
        let watchdog = env("WATCHDOG_USEC")
            .and_then(|usec| usec.trim().parse::<u64>().ok())
            .filter(|usec| *usec > 0 && ours)
            .map(Duration::from_micros);
        Self { target, watchdog }
    }

    /// From this process's environment.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// How often to send `WATCHDOG=1`: half the watchdog's timeout, as
    /// `sd_watchdog_enabled(3)` advises; `None` without a watchdog.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|t| t / 2)
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines). Failures are
    /// logged, never fatal: the balancer forwards regardless.
    pub fn notify(&self, state: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), target));
        if let Err(e) = sent {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }

    /// The service is up: attached and serving the API.
    pub fn ready(&self, status: &str) {
        self.notify(&format!("READY=1\nSTATUS={status}"));
    }

    /// A reload starts (`READY=1` follows when it is over).
    pub fn reloading(&self) {
        self.notify("RELOADING=1");
    }

    /// The service is stopping (withdrawing routes first).
    pub fn stopping(&self) {
        self.notify("STOPPING=1\nSTATUS=stopping: withdrawing every route first");
    }

    /// The main loop is alive.
    pub fn watchdog(&self) {
        self.notify("WATCHDOG=1");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn notifier(vars: &[(&str, &str)]) -> Notifier {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Notifier::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_environment_decides_where_and_how_often() {
        let me = std::process::id().to_string();
        for (vars, target, interval) in [
            (vec![], false, None),
            (vec![("NOTIFY_SOCKET", "/run/systemd/notify")], true, None),
            (vec![("NOTIFY_SOCKET", "@abstract")], true, None),
            (vec![("NOTIFY_SOCKET", "relative")], false, None),
            (
                vec![("NOTIFY_SOCKET", "/n"), ("WATCHDOG_USEC", "10000000")],
                true,
                Some(Duration::from_secs(5)),
            ),
            (
                vec![
                    ("NOTIFY_SOCKET", "/n"),
                    ("WATCHDOG_USEC", "2000000"),
                    ("WATCHDOG_PID", me.as_str()),
                ],
                true,
                Some(Duration::from_secs(1)),
            ),
            (
                vec![
                    ("NOTIFY_SOCKET", "/n"),
                    ("WATCHDOG_USEC", "2000000"),
                    ("WATCHDOG_PID", "1"),
                ],
                true,
                None,
            ),
            (
                vec![("NOTIFY_SOCKET", "/n"), ("WATCHDOG_USEC", "0")],
                true,
                None,
            ),
            (
                vec![("NOTIFY_SOCKET", "/n"), ("WATCHDOG_USEC", "soon")],
                true,
                None,
            ),
        ] {
            let n = notifier(&vars);
            assert_eq!(n.target.is_some(), target, "{vars:?}");
            assert_eq!(n.watchdog_interval(), interval, "{vars:?}");
        }
    }

    #[test]
    fn messages_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("lb-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = notifier(&[("NOTIFY_SOCKET", path.to_str().unwrap())]);
        n.ready("4 VIPs");
        n.watchdog();
        let mut buf = [0u8; 256];
        let got = |buf: &mut [u8]| {
            let len = listener.recv(buf).unwrap();
            String::from_utf8_lossy(&buf[..len]).into_owned()
        };
        assert_eq!(got(&mut buf), "READY=1\nSTATUS=4 VIPs");
        assert_eq!(got(&mut buf), "WATCHDOG=1");
        // Not under systemd: nothing is sent, nothing fails.
        Notifier::default().ready("x");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
