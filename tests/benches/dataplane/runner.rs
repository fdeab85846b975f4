//! The sides under measurement, run in turn: which to load (this tree's
//! object, a baseline's), in how many rounds of fresh loads, and the
//! runner that measures each path on every side and gathers the rows.
use std::sync::Arc;

use crate::{
    profile,
    side::{How, Side},
    table::Row,
};

/// Packets per run.
pub const PACKETS: u32 = 2_000_000;

/// A baseline revision's balancer object and its name.
pub type Baseline = Option<(Arc<[u8]>, String)>;

/// `LB_BENCH_BASELINE_TABLES` (`V4,V6` entries), if set.
fn baseline_tables() -> Option<[u32; 2]> {
    let text = std::env::var("LB_BENCH_BASELINE_TABLES").ok()?;
    let sizes: Vec<u32> = text
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<_>>()
        .filter(|v: &Vec<u32>| v.len() == 2)
        .unwrap_or_else(|| panic!("LB_BENCH_BASELINE_TABLES={text}: want two sizes, V4,V6"));
    Some([sizes[0], sizes[1]])
}

/// `LB_BENCH_BASELINE_RING` (slots of the baseline's VIP rings), if set.
fn baseline_ring() -> Option<u32> {
    let text = std::env::var("LB_BENCH_BASELINE_RING").ok()?;
    match text.trim().parse::<u32>() {
        Ok(m) if m >= 2 => Some(m),
        _ => panic!("LB_BENCH_BASELINE_RING={text}: want a ring size (a prime, e.g. 16381)"),
    }
}

/// The sides (this tree, and the baseline if any), run in turn, in one
/// round; `rows` gathers every round's samples.
pub struct Runner {
    pub sides: Vec<Side>,
    /// Runs per path and side in this round.
    pub runs: usize,
    pub rows: Vec<Row>,
    /// The next row of this round (rows come in the same order each round).
    pub next_row: usize,
}

impl Runner {
    /// Applies `f` to every side.
    pub fn each(&mut self, mut f: impl FnMut(&mut Side)) {
        for side in &mut self.sides {
            f(side);
        }
    }

    /// Runs the path `runs` times on each side, A B B A ...; returns its row.
    /// (With `--profile`, only the floors and the rows profiled are run;
    /// the others are left empty.)
    pub fn measure(&mut self, name: &str, how: How, floor: Option<usize>) -> usize {
        let n = self.sides.len();
        let mut samples = vec![Vec::with_capacity(self.runs); n];
        if profile::measured(name, floor.is_none()) {
            for run in 0..self.runs {
                for k in 0..n {
                    let i = if run % 2 == 0 { k } else { n - 1 - k };
                    samples[i].push(self.sides[i].sample(&how, PACKETS));
                }
            }
            // Profiled (--profile): as many runs again, sampled; the
            // row's figures stay those of the unsampled runs.
            let floor_name = floor.map(|f| self.rows[f].name.clone());
            let (runs, side) = (self.runs, &mut self.sides[0]);
            profile::sample(
                name,
                floor_name.as_deref(),
                crate::table::median(&samples[0]),
                || (0..runs).map(|_| side.sample(&how, PACKETS)).collect(),
            );
        }
        let at = self.next_row;
        self.next_row += 1;
        match self.rows.get_mut(at) {
            Some(row) => {
                assert_eq!(row.name, name, "rows come in the same order each round");
                for (all, more) in row.samples.iter_mut().zip(samples) {
                    all.extend(more);
                }
            }
            None => self.rows.push(Row {
                name: name.to_owned(),
                samples,
                floor,
            }),
        }
        at
    }
}

/// Rounds of fresh loads (`LB_BENCH_ROUNDS`): by default 5 against a
/// baseline (at most one per run), else 1.
pub fn rounds(baseline: bool, runs: usize) -> usize {
    match std::env::var("LB_BENCH_ROUNDS") {
        Err(_) if baseline => runs.min(5),
        Err(_) => 1,
        Ok(n) => match n.parse::<usize>() {
            Ok(n) if (1..=runs).contains(&n) => n,
            _ => panic!("LB_BENCH_ROUNDS={n:?}: a whole number of rounds, 1 to the runs ({runs})"),
        },
    }
}

/// This tree's side and the baseline's, in that order; `baseline_first`
/// loads the baseline first (its maps and programs allocated before).
pub fn load_sides(
    baseline: &Baseline,
    tables: [u32; 2],
    ifindex: u32,
    baseline_first: bool,
) -> Vec<Side> {
    let this = || Side::load(None, tables, ifindex, "this tree".into());
    let Some((object, rev)) = baseline else {
        return vec![this()];
    };
    let base = || {
        let mut side = Side::load(
            Some(object.clone()),
            baseline_tables().unwrap_or(tables),
            ifindex,
            format!("baseline {rev}"),
        );
        if let Some(ring) = baseline_ring() {
            side.ring = ring;
        }
        side
    };
    if baseline_first {
        let b = base();
        vec![this(), b]
    } else {
        let a = this();
        vec![a, base()]
    }
}
