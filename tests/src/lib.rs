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

/// Runs `cmd` and returns its standard output; panics with both outputs if
/// it cannot start or exits unsuccessfully.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The benchmarks' `LB_BENCH_RUNS` (runs or rounds per row): `default`
/// when unset; panics on anything but a whole number of at least 1.
pub fn bench_runs(default: usize) -> usize {
    match std::env::var("LB_BENCH_RUNS") {
        Err(_) => default,
        Ok(n) => match n.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => panic!("LB_BENCH_RUNS={n:?}: a whole number of runs, at least 1"),
        },
    }
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

/// Runs the calling thread on CPU `cpu` only; panics if the kernel refuses.
pub fn pin_to_cpu(cpu: u32) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and
    // sched_setaffinity only read and write it, for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        let rc = libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
        assert_eq!(rc, 0, "pin this thread to CPU {cpu}");
    }
}
