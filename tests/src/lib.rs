//! Helpers for lb's integration tests: root checks that skip (or fail under
//! CI), RAII guards for namespaces and veth pairs, and a packet builder.
pub mod balancer;
pub mod fuzz;
pub mod lab;
pub mod netns;
pub mod packet;

/// True when the test may use the kernel (root). Otherwise prints why the
/// test is skipped and returns false; under `CI=true` a skip is a failure,
/// since CI runs as root and must run every test.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let msg = format!("{test}: needs root (BPF_PROG_TEST_RUN, netns, XDP attach)");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{msg}; CI=true forbids skipping");
    }
    eprintln!("SKIPPED {msg}");
    false
}

/// Polls every 5 ms until `done` or `limit`; the time it took, or `None`
/// when `limit` passed first.
pub fn time_until(
    limit: std::time::Duration,
    mut done: impl FnMut() -> bool,
) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    None
}
