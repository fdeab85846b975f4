//! The data-plane bench's tables: each path's median alone, or, against
//! a baseline, the paired ratios A/B (run i of A against run i of B) with
//! their range, the ratio of the costs above each side's floor, and both
//! sides' medians and ranges; and the balancer's verified program.

use crate::side::Xlated;

/// One measured path: its samples on each side (ns/packet, one per run).
pub struct Row {
    pub name: String,
    pub samples: Vec<Vec<f64>>,
    /// The row whose medians this one's cost is counted above.
    pub floor: Option<usize>,
}

/// The median (of an even count, the mean of the middle two).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n.is_multiple_of(2) {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    } else {
        v[n / 2]
    }
}

fn range(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// The table: medians (and their floor's difference) alone, or with a
/// baseline the medians, ranges and paired ratios of both sides.
pub fn print_rows(labels: &[String], rows: &[Row], runs: usize, packets: u32) {
    let above = |row: &Row, side: usize| {
        row.floor
            .map(|f| median(&row.samples[side]) - median(&rows[f].samples[side]))
    };
    let fmt_above = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.1}"));
    if labels.len() == 1 {
        println!("| path | ns/packet (median of {runs} x {packets}) | above its floor |");
        println!("|---|---:|---:|");
        for row in rows.iter().filter(|r| !r.samples[0].is_empty()) {
            println!(
                "| {} | {:.1} | {} |",
                row.name,
                median(&row.samples[0]),
                fmt_above(above(row, 0))
            );
        }
        return;
    }
    println!(
        "A = {}, B = {}; {runs} runs of {packets} packets each per side, interleaved A B B A ...",
        labels[0], labels[1]
    );
    println!();
    println!(
        "| path | A/B paired (median) | A/B paired (range) | A above floor / B above floor | A median (range) | B median (range) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for row in rows.iter().filter(|r| !r.samples[0].is_empty()) {
        let (a, b) = (&row.samples[0], &row.samples[1]);
        let ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        let (lo, hi) = range(&ratios);
        let above_ratio = match (above(row, 0), above(row, 1)) {
            (Some(x), Some(y)) => format!("{x:.1} / {y:.1} = {:.3}", x / y),
            _ => String::new(),
        };
        let side = |v: &[f64]| {
            let (lo, hi) = range(v);
            format!("{:.1} ({lo:.1}-{hi:.1})", median(v))
        };
        println!(
            "| {} | {:.3} | {lo:.3}-{hi:.3} | {above_ratio} | {} | {} |",
            row.name,
            median(&ratios),
            side(a),
            side(b),
        );
    }
}

/// Against a baseline, over several rounds of fresh loads: each round's
/// paired median A/B per path. A round whose floors are off 1.000 is one
/// where a load, not the code, made one side faster.
pub fn print_rounds(rows: &[Row], per_round: usize) {
    let Some(first) = rows.first() else { return };
    let rounds = first.samples[0].len() / per_round;
    if first.samples.len() < 2 || rounds < 2 {
        return;
    }
    println!();
    let runs = if per_round == 1 { "run" } else { "runs" };
    println!(
        "A/B paired median per round ({per_round} {runs} each, both sides loaded afresh; \
         rounds 2, 4, ... load B first):"
    );
    println!();
    let heads: Vec<String> = (1..=rounds).map(|k| format!("round {k}")).collect();
    println!("| path | {} |", heads.join(" | "));
    println!("|---|{}", "---:|".repeat(rounds));
    for row in rows.iter().filter(|r| !r.samples[0].is_empty()) {
        let (a, b) = (&row.samples[0], &row.samples[1]);
        let cells: Vec<String> = (0..rounds)
            .map(|k| {
                let span = k * per_round..(k + 1) * per_round;
                let ratios: Vec<f64> = a[span.clone()]
                    .iter()
                    .zip(&b[span])
                    .map(|(x, y)| x / y)
                    .collect();
                format!("{:.3}", median(&ratios))
            })
            .collect();
        println!("| {} | {} |", row.name, cells.join(" | "));
    }
}

/// The balancer's verified program on each side: where a difference in
/// time may come from.
pub fn print_xlated(labels: &[String], xlated: &[Result<Xlated, String>]) {
    println!();
    println!(
        "| lb_balance as verified (bpftool prog dump xlated) | instructions | 1-byte loads | 2-byte | 4-byte | 8-byte | calls |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (label, x) in labels.iter().zip(xlated) {
        match x {
            Ok(x) => println!(
                "| {label} | {} | {} | {} | {} | {} | {} |",
                x.insns, x.loads[0], x.loads[1], x.loads[2], x.loads[3], x.calls
            ),
            Err(e) => println!("| {label} | not counted: {e} | | | | | |"),
        }
    }
}

/// Every sample as CSV (path, side, round, run within the round, ns per
/// packet), for analysis beyond the tables (e.g. how much of the spread
/// is between loads rather than between runs of one load).
pub fn write_samples(
    path: &std::path::Path,
    labels: &[String],
    rows: &[Row],
    per_round: usize,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut csv = String::from("path,side,round,run,ns\n");
    for row in rows {
        for (label, samples) in labels.iter().zip(&row.samples) {
            for (i, ns) in samples.iter().enumerate() {
                let _ = writeln!(
                    csv,
                    "\"{}\",\"{label}\",{},{},{ns}",
                    row.name,
                    i / per_round + 1,
                    i % per_round + 1
                );
            }
        }
    }
    std::fs::write(path, csv)
}
