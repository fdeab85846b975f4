//! Network namespaces and veth pairs made by tests, removed on drop (also
//! when the test panics), and running code inside a namespace.
use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A unique short tag for names made by this process: `<pid % 10000>x<n>`.
/// Interface names must fit in 15 bytes, so tags stay short.
pub fn unique_tag() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}x{n}", std::process::id() % 10000)
}

/// Runs `ip` with `args`; panics with its stderr if it fails.
pub fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace, deleted on drop with every process still in it.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `lbt-<role>-<tag>` with `lo` up.
    pub fn new(role: &str) -> Self {
        let name = format!("lbt-{role}-{}", unique_tag());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> args`; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// A command that runs inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its
    /// result. Sockets, interface lookups and XDP attachments made by `f`
    /// belong to the namespace.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        run_in(&self.name, f)
    }
}

/// Runs `f` on a thread that has entered the namespace `name` (under
/// /run/netns), and returns its result; a panic in `f` is re-raised.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        match s
            .spawn(|| {
                let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                // SAFETY: setns on a valid namespace fd changes only this
                // thread's network namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
        {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill what still runs inside, then delete (veths in it go too).
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill has no memory-safety preconditions.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Joins `a` and `b` by a veth pair named `a_if` (in `a`) and `b_if` (in
/// `b`), both up. The pair goes away with either namespace.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    ip(&[
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}
