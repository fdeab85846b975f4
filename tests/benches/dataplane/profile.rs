//! Where one path's time goes (`cargo xtask bench dataplane --profile
//! ROW`): xtask runs the bench under `perf record -D -1 -k mono --control
//! fifo:...` (sampling off, CLOCK_MONOTONIC timestamps); the bench
//! measures only the floors and the rows whose name contains ROW. Each of
//! those runs unsampled first (its figures), then as many times again with
//! sampling on, and the bench notes, in `rows` beside the fifos, its name,
//! its floor's name, both medians and when the sampled runs began and
//! ended. xtask then reports each row's samples alone (`perf report
//! --time`), beside its floor's: neither the set-up nor the table's
//! prefill is in the profile, and what the row adds to its floor shows
//! function by function.
use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    sync::{Mutex, OnceLock},
};

/// `LB_BENCH_PROFILE_ROW` (texts separated by `|`: a row whose name holds
/// any of them is profiled) and `LB_BENCH_PROFILE_DIR` (which holds the
/// fifos `ctl` and `ack` of `perf record --control`).
struct Profile {
    row: String,
    dir: PathBuf,
    ctl: Mutex<(File, BufReader<File>)>,
}

fn profile() -> Option<&'static Profile> {
    static PROFILE: OnceLock<Option<Profile>> = OnceLock::new();
    PROFILE
        .get_or_init(|| {
            let row = std::env::var("LB_BENCH_PROFILE_ROW").ok()?;
            let dir = PathBuf::from(
                std::env::var_os("LB_BENCH_PROFILE_DIR")
                    .expect("LB_BENCH_PROFILE_DIR names the fifos of perf record --control"),
            );
            let ctl = OpenOptions::new()
                .write(true)
                .open(dir.join("ctl"))
                .expect("open perf's control fifo");
            let ack = File::open(dir.join("ack")).expect("open perf's ack fifo");
            Some(Profile {
                row,
                dir,
                ctl: Mutex::new((ctl, BufReader::new(ack))),
            })
        })
        .as_ref()
}

/// Whether the row `name` is run: every row without profiling; with it,
/// the floors and the rows profiled (and then they are also profiled).
pub fn measured(name: &str, is_floor: bool) -> bool {
    profile().is_none_or(|p| is_floor || p.row.split('|').any(|text| name.contains(text)))
}

/// With profiling, runs `sampled` (the row's runs again) with perf's
/// sampling on and notes the row for xtask: its name, its floor's,
/// `unsampled` (the median of its figures), the sampled runs' median and
/// their CLOCK_MONOTONIC span.
pub fn sample(name: &str, floor: Option<&str>, unsampled: f64, sampled: impl FnOnce() -> Vec<f64>) {
    let Some(p) = profile() else { return };
    command(p, "enable");
    let start = monotonic();
    let runs = sampled();
    let end = monotonic();
    command(p, "disable");
    let line = format!(
        "{name}\t{}\t{unsampled}\t{}\t{start:.6}\t{end:.6}\n",
        floor.unwrap_or(""),
        crate::table::median(&runs)
    );
    let mut rows = OpenOptions::new()
        .create(true)
        .append(true)
        .open(p.dir.join("rows"))
        .expect("open the profile's rows");
    rows.write_all(line.as_bytes())
        .expect("write the profile's rows");
}

/// CLOCK_MONOTONIC in seconds (perf's `-k mono` timestamps).
fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn command(p: &Profile, what: &str) {
    let mut guard = p.ctl.lock().unwrap();
    let (ctl, ack) = &mut *guard;
    writeln!(ctl, "{what}").expect("write to perf's control fifo");
    let mut line = String::new();
    ack.read_line(&mut line).expect("read perf's ack");
    // perf ends its answer with a NUL, which the next read starts with.
    let answer = line.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    assert_eq!(answer, "ack", "perf answered {line:?}");
}

/// With profiling, writes where `lb_balance`'s JIT code came from (see
/// `jit_lines`) beside the profile.
pub fn write_jit_lines(side: &mut crate::side::Side) {
    let Some(p) = profile() else { return };
    let prog = side.xdp("lb_balance");
    let id = prog.info().expect("program info").id();
    let fd = prog.fd().expect("a loaded program");
    crate::jit_lines::write(fd, id, &p.dir).expect("write the JIT's line records");
}
