//! `cargo xtask bench dataplane --profile ROW`: where one path's time goes.
//! The data-plane bench runs under `perf record` with sampling off
//! (`-D -1`), on the CPU it pins itself to (the last online one); it runs
//! only the floors and the rows whose name contains ROW, each once more
//! with sampling on (tests/benches/dataplane/profile.rs), and notes when.
//! Then each row's samples alone (`perf report --time --sort sym`: the
//! XDP program's own code, the kernel's map and XDP helpers) are printed
//! as ns per packet (a function's share of the row's median), beside its
//! floor's: what the path adds, function by function; then `lb_balance`'s
//! own samples by source line (the JIT's line records the bench wrote,
//! see [`print_lines`]).
use std::{
    ffi::CString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::cmd::{self, step};

/// Runs `bench` (the data-plane bench's cargo command) under perf, profiling
/// the rows whose name contains `row`, and prints where their time went.
pub fn run(bench: &Command, row: &str) -> anyhow::Result<()> {
    let dir = cmd::workspace_root().join("target/bench-profile");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for name in ["ctl", "ack", "rows", "perf.data", "perf.data.old"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    let (ctl, ack) = (dir.join("ctl"), dir.join("ack"));
    mkfifo(&ctl)?;
    mkfifo(&ack)?;
    let data = dir.join("perf.data");
    let cpu = last_online_cpu()?;
    let mut perf = Command::new("perf");
    perf.current_dir(cmd::workspace_root())
        .args([
            "record",
            "-e",
            "cpu-clock",
            "-F",
            "10000",
            "-C",
            &cpu,
            "-D",
            "-1",
            "-k",
            "mono",
        ])
        .arg(format!(
            "--control=fifo:{},{}",
            ctl.display(),
            ack.display()
        ))
        .arg("-o")
        .arg(&data)
        .arg("--")
        .arg(bench.get_program())
        .args(bench.get_args())
        .env("LB_BENCH_PROFILE_ROW", row)
        .env("LB_BENCH_PROFILE_DIR", &dir);
    for (key, value) in bench.get_envs() {
        match value {
            Some(v) => perf.env(key, v),
            None => perf.env_remove(key),
        };
    }
    step(&format!(
        "benchmark: profiling the rows matching {row:?} on CPU {cpu}"
    ));
    cmd::run(&mut perf)?;
    let rows = std::fs::read_to_string(dir.join("rows"))
        .with_context(|| format!("the bench noted no profiled row ({})", dir.display()))?;
    let rows: Vec<Profiled> = rows.lines().filter_map(Profiled::parse).collect();
    let mut shown = 0;
    for row in rows.iter().filter(|r| !r.floor.is_empty()) {
        let floor = rows.iter().find(|f| f.name == row.floor).with_context(|| {
            format!("no profile of {:?}, the floor of {:?}", row.floor, row.name)
        })?;
        let balance_ns = print_row(&data, row, floor)?;
        if let Err(e) = print_lines(&dir, &data, row, balance_ns) {
            println!("(no source lines for {:?}: {e:#})", row.name);
        }
        shown += 1;
    }
    if shown == 0 {
        bail!("no row's name contains {row:?}");
    }
    println!(
        "perf data: {} (samples on CPU {cpu}; `perf report -i ... --time START,END`)",
        data.display()
    );
    Ok(())
}

/// A profiled row as the bench noted it (tests/benches/dataplane/profile.rs).
struct Profiled {
    name: String,
    /// Its floor's name; empty for a floor.
    floor: String,
    /// Median ns per packet of the unsampled and the sampled runs.
    ns: f64,
    sampled_ns: f64,
    /// The sampled runs' span, CLOCK_MONOTONIC seconds.
    span: (String, String),
}

impl Profiled {
    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, floor, ns, sampled_ns, start, end] = f[..] else {
            return None;
        };
        Some(Profiled {
            name: name.to_owned(),
            floor: floor.to_owned(),
            ns: ns.parse().ok()?,
            sampled_ns: sampled_ns.parse().ok()?,
            span: (start.to_owned(), end.to_owned()),
        })
    }

    /// `perf SUBCOMMAND` over this row's sampled span of `data`.
    fn perf(&self, data: &Path, subcommand: &str, args: &[&str]) -> anyhow::Result<String> {
        let span = format!("{},{}", self.span.0, self.span.1);
        cmd::stdout(
            Command::new("perf")
                .arg(subcommand)
                .arg("-i")
                .arg(data)
                .args(["--time", &span])
                .args(args),
        )
    }

    /// Each function's share of this row's samples.
    fn shares(&self, data: &Path) -> anyhow::Result<Vec<(f64, String)>> {
        let report = self.perf(
            data,
            "report",
            &["--sort", "sym", "--stdio", "-q", "--percent-limit", "0.5"],
        )?;
        let shares = parse_report(&report);
        if shares.is_empty() {
            bail!("perf recorded no samples during {:?}: {report}", self.name);
        }
        Ok(shares)
    }
}

/// The row's functions in ns per packet (its share of the row's samples
/// times the row's unsampled median), beside the floor's and the
/// difference: what the row's path adds to its floor, function by function.
/// Returns the ns per packet of `lb_balance`'s own code in the row.
fn print_row(data: &Path, row: &Profiled, floor: &Profiled) -> anyhow::Result<f64> {
    let (r, f) = (row.shares(data)?, floor.shares(data)?);
    let ns_of = |shares: &[(f64, String)], total: f64, sym: &str| {
        shares
            .iter()
            .find(|(_, s)| s == sym)
            .map_or(0.0, |(share, _)| share / 100.0 * total)
    };
    let syms: Vec<&str> = r.iter().chain(&f).map(|(_, s)| s.as_str()).collect();
    let mut lines: Vec<(String, f64, f64)> = Vec::new();
    for sym in syms {
        if lines.iter().any(|(s, ..)| s == sym) {
            continue;
        }
        lines.push((
            sym.to_owned(),
            ns_of(&r, row.ns, sym),
            ns_of(&f, floor.ns, sym),
        ));
    }
    lines.sort_by(|a, b| (b.1 - b.2).total_cmp(&(a.1 - a.2)));
    println!();
    println!(
        "Where the time of \"{}\" goes, against \"{}\": ns per packet, each function's share \
         of the samples times the median of the unsampled runs ({:.1} and {:.1}; sampled runs \
         {:.1} and {:.1}); functions under 0.5% of a row's samples are left out:",
        row.name, floor.name, row.ns, floor.ns, row.sampled_ns, floor.sampled_ns
    );
    println!();
    println!("| function | row | floor | row - floor |");
    println!("|---|---:|---:|---:|");
    for (sym, in_row, in_floor) in &lines {
        println!(
            "| `{sym}` | {in_row:.1} | {in_floor:.1} | {:+.1} |",
            in_row - in_floor
        );
    }
    println!(
        "| all | {:.1} | {:.1} | {:+.1} |",
        row.ns,
        floor.ns,
        row.ns - floor.ns
    );
    println!();
    Ok(lines
        .iter()
        .filter(|(sym, ..)| sym.ends_with("_lb_balance"))
        .map(|(_, ns, _)| ns)
        .sum())
}

/// `lb_balance`'s samples in the row, by source line: each sample's
/// address in the JIT code belongs to the last line record starting at
/// or before it (`jit-lines`, written by the bench), whose instruction
/// `xlated.txt` shows under its source line. `balance_ns`: the program's
/// own ns per packet in the row, shared out by the lines' samples.
fn print_lines(dir: &Path, data: &Path, row: &Profiled, balance_ns: f64) -> anyhow::Result<()> {
    let records = parse_jit_lines(&std::fs::read_to_string(dir.join("jit-lines"))?)?;
    let sources = parse_xlated_lines(&std::fs::read_to_string(dir.join("xlated.txt"))?);
    let script = row.perf(data, "script", &["-F", "ip,sym"])?;
    let mut counts: Vec<(String, usize)> = Vec::new();
    let mut total = 0;
    for line in script.lines() {
        let mut fields = line.split_whitespace();
        let (Some(ip), Some(sym)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !sym.ends_with("_lb_balance") {
            continue;
        }
        let Ok(ip) = u64::from_str_radix(ip, 16) else {
            continue;
        };
        total += 1;
        let at = records.partition_point(|&(addr, _)| addr <= ip);
        let source = at
            .checked_sub(1)
            .and_then(|i| sources.get(&records[i].1))
            .cloned()
            .unwrap_or_else(|| "(before the first line record)".to_owned());
        match counts.iter_mut().find(|(s, _)| *s == source) {
            Some((_, n)) => *n += 1,
            None => counts.push((source, 1)),
        }
    }
    if total == 0 {
        bail!("no samples inside lb_balance");
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    println!(
        "`lb_balance`'s own {balance_ns:.1} ns by source line ({total} samples; the 15 largest):"
    );
    println!();
    println!("| source | at | share | ns per packet |");
    println!("|---|---|---:|---:|");
    for (source, n) in counts.iter().take(15) {
        let share = *n as f64 / total as f64;
        let (text, at) = split_source(source);
        println!(
            "| `{}` | {at} | {:.1}% | {:.1} |",
            text.replace('|', "\\|"),
            share * 100.0,
            share * balance_ns
        );
    }
    println!();
    Ok(())
}

/// bpftool's `text [file:PATH line_num:N line_col:C]` as (text, `file:N`),
/// the file without its directories.
fn split_source(source: &str) -> (&str, String) {
    let Some((text, place)) = source.rsplit_once(" [file:") else {
        return (source, String::new());
    };
    let mut parts = place.trim_end_matches(']').split_whitespace();
    let file = parts.next().unwrap_or("");
    let file = file.rsplit('/').next().unwrap_or(file);
    let line = parts
        .find_map(|p| p.strip_prefix("line_num:"))
        .unwrap_or("?");
    (text, format!("{file}:{line}"))
}

/// `jit-lines`: `address<TAB>instruction` per line record, sorted by address.
fn parse_jit_lines(text: &str) -> anyhow::Result<Vec<(u64, usize)>> {
    let mut records = text
        .lines()
        .map(|l| {
            let (addr, insn) = l.split_once('\t').context("a jit-lines record")?;
            Ok((u64::from_str_radix(addr, 16)?, insn.parse()?))
        })
        .collect::<anyhow::Result<Vec<(u64, usize)>>>()?;
    records.sort_unstable();
    Ok(records)
}

/// `bpftool prog dump xlated linum`: each instruction's number mapped to
/// the source line printed above it (`; text [file:line:col]`, or the
/// like).
fn parse_xlated_lines(text: &str) -> std::collections::HashMap<usize, String> {
    let mut map = std::collections::HashMap::new();
    let mut source = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if let Some(comment) = trimmed.strip_prefix(';') {
            source = comment.trim().to_owned();
        } else if let Some((num, _)) = trimmed.split_once(':')
            && let Ok(insn) = num.parse::<usize>()
        {
            map.insert(insn, source.clone());
        }
    }
    map
}

/// `perf report --sort sym --stdio -q` lines (`  33.40%  [k] name`) as
/// (percent, name).
fn parse_report(text: &str) -> Vec<(f64, String)> {
    text.lines()
        .filter_map(|line| {
            let (pct, rest) = line.trim().split_once('%')?;
            let share: f64 = pct.trim().parse().ok()?;
            let sym = rest.trim();
            let sym = sym
                .strip_prefix("[k]")
                .or_else(|| sym.strip_prefix("[.]"))
                .unwrap_or(sym)
                .trim();
            Some((share, sym.to_owned()))
        })
        .collect()
}

fn mkfifo(path: &Path) -> anyhow::Result<()> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        bail!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// The last online CPU (`/sys/devices/system/cpu/online`, e.g. `0-1`):
/// the one the bench pins itself to.
fn last_online_cpu() -> anyhow::Result<String> {
    let path = PathBuf::from("/sys/devices/system/cpu/online");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    last_cpu_of(&text).with_context(|| format!("{}: {text:?}", path.display()))
}

fn last_cpu_of(list: &str) -> Option<String> {
    let last = list.trim().rsplit(',').next()?;
    let cpu = last.rsplit('-').next()?;
    cpu.parse::<u32>().ok().map(|n| n.to_string())
}

#[cfg(test)]
mod tests;
