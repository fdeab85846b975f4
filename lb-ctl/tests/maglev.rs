//! Measured properties of the Maglev builder: balance, weights, disruption,
//! determinism (order, processes) and the golden tables.
use std::{
    net::{IpAddr, Ipv6Addr},
    process::Command,
};

use lb_ctl::maglev::{self, EMPTY, Member, RingSize, Table};

const M: u32 = maglev::DEFAULT_RING_SIZE;

/// `n` distinct reals in 2001:db8::/32 (documentation range).
fn addrs(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                0,
                0,
                0,
                (i >> 16) as u16,
                i as u16 + 1,
            ))
        })
        .collect()
}

fn ids(addrs: &[IpAddr]) -> Vec<Vec<u8>> {
    addrs.iter().map(maglev::identity).collect()
}

fn members<'a>(ids: &'a [Vec<u8>], weights: &[u32]) -> Vec<Member<'a>> {
    ids.iter()
        .zip(weights)
        .map(|(id, &weight)| Member {
            identity: id,
            weight,
        })
        .collect()
}

fn build(size: u32, members: &[Member<'_>]) -> Table {
    maglev::build(RingSize::new(size).unwrap(), members).unwrap()
}

/// `full` without the member at `removed`.
fn without<'a>(full: &[Member<'a>], removed: usize) -> Vec<Member<'a>> {
    full.iter()
        .enumerate()
        .filter(|(i, _)| *i != removed)
        .map(|(_, m)| *m)
        .collect()
}

/// Slots whose owner changed between `before` and `after`, leaving out
/// those `gone` owned.
fn moved_others(before: &[Option<&[u8]>], after: &[Option<&[u8]>], gone: &[u8]) -> usize {
    before
        .iter()
        .zip(after)
        .filter(|(x, y)| x != y && **x != Some(gone))
        .count()
}

/// Slot owners as identities, comparable across member orders.
fn owners<'a>(table: &Table, members: &[Member<'a>]) -> Vec<Option<&'a [u8]>> {
    table
        .slots()
        .iter()
        .map(|&s| (s != EMPTY).then(|| members[s as usize].identity))
        .collect()
}

#[test]
fn equal_reals_get_shares_within_one_percent() {
    for n in [10, 100, 1000] {
        let ids = ids(&addrs(n));
        let ms = members(&ids, &vec![1; n]);
        let shares = build(M, &ms).shares(n);
        let avg = f64::from(M) / n as f64;
        let (min, max) = (*shares.iter().min().unwrap(), *shares.iter().max().unwrap());
        let (lo, hi) = (f64::from(min) / avg, f64::from(max) / avg);
        println!("N={n}: max/avg {hi:.4}, min/avg {lo:.4}");
        assert!(
            hi <= 1.01 && lo >= 0.99,
            "N={n}: shares {min}..{max}, avg {avg:.2}"
        );
        assert_eq!(shares.iter().sum::<u32>(), M, "every slot is owned");
    }
}

#[test]
fn shares_follow_weights_within_one_percent() {
    let cases: [&[u32]; 3] = [&[1, 2], &[1, 2, 3, 4, 10], &[5, 5, 1, 7, 3, 2, 9, 4, 8, 6]];
    for weights in cases {
        let ids = ids(&addrs(weights.len()));
        let ms = members(&ids, weights);
        let shares = build(M, &ms).shares(ms.len());
        let total: u32 = weights.iter().sum();
        for (share, &w) in shares.iter().zip(weights) {
            let expected = f64::from(M) * f64::from(w) / f64::from(total);
            let ratio = f64::from(*share) / expected;
            assert!(
                (ratio - 1.0).abs() <= 0.01,
                "weights {weights:?}: weight {w} got {share}, expected {expected:.1}"
            );
        }
    }
    // Weight 0 owns nothing; the others share everything.
    let ids = ids(&addrs(3));
    let shares = build(M, &members(&ids, &[1, 0, 1])).shares(3);
    assert_eq!(shares[1], 0);
    assert_eq!(shares[0] + shares[2], M);
}

#[test]
fn removing_one_real_moves_at_most_one_percent_of_other_slots() {
    for n in [10, 100, 1000] {
        let all = ids(&addrs(n));
        let full = members(&all, &vec![1; n]);
        let before = build(M, &full);
        let removed = n / 3;
        let rest = without(&full, removed);
        let after = build(M, &rest);
        let (b, a) = (owners(&before, &full), owners(&after, &rest));
        let own = b
            .iter()
            .filter(|o| **o == Some(full[removed].identity))
            .count();
        let moved_others = moved_others(&b, &a, full[removed].identity);
        let frac = moved_others as f64 / f64::from(M);
        println!(
            "N={n}: removed real owned {own} slots; {moved_others} other slots moved ({:.2}%)",
            frac * 100.0
        );
        assert!(frac <= 0.01, "N={n}: {moved_others} other slots moved");

        // Adding it back restores the original table exactly.
        let again = build(M, &full);
        assert_eq!(
            owners(&again, &full),
            b,
            "N={n}: re-adding restores the table"
        );
        // And the incremental diff names exactly the changed slots.
        let changes = maglev::diff(
            &before.map_ids(&(0..n as u32).collect::<Vec<_>>(), u32::MAX),
            &after.map_ids(
                &(0..n as u32)
                    .filter(|&i| i as usize != removed)
                    .collect::<Vec<_>>(),
                u32::MAX,
            ),
        );
        assert_eq!(changes.len(), own + moved_others);
    }
}

#[test]
fn table_depends_on_the_set_not_the_order() {
    let ids = ids(&addrs(50));
    let weights: Vec<u32> = (0..50).map(|i| 1 + i % 4).collect();
    let ms = members(&ids, &weights);
    let reference = owners(&build(M, &ms), &ms);
    // A deterministic shuffle (LCG), several times.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..5 {
        let mut shuffled = ms.clone();
        for i in (1..shuffled.len()).rev() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            shuffled.swap(i, (seed >> 33) as usize % (i + 1));
        }
        assert_eq!(owners(&build(M, &shuffled), &shuffled), reference);
    }
}

/// Runs `lb-ctl maglev` and returns the digest line's value.
fn cli_digest(reals: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_lb-ctl"))
        .arg("maglev")
        .args(reals)
        .output()
        .expect("run lb-ctl maglev");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("digest "))
        .expect("digest line")
        .to_owned()
}

#[test]
fn two_processes_with_shuffled_input_build_identical_tables() {
    let addrs = addrs(20);
    let args: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{a}={}", 1 + i % 3))
        .collect();
    let mut reversed = args.clone();
    reversed.reverse();
    let mut rotated = args.clone();
    rotated.rotate_left(7);
    let (a, b, c) = (
        cli_digest(&args),
        cli_digest(&reversed),
        cli_digest(&rotated),
    );
    assert_eq!(a, b);
    assert_eq!(a, c);
    // And the same as this process computes.
    let ids = ids(&addrs);
    let weights: Vec<u32> = (0..20).map(|i| 1 + i % 3).collect();
    let ms = members(&ids, &weights);
    assert_eq!(a, format!("{:016x}", maglev::digest(&build(M, &ms), &ms)));
}

/// The golden tables: the reals and sizes below, and what the builder made
/// of them when the file was written. See tests/data/maglev/README.md.
fn golden_cases() -> Vec<(u32, Vec<(IpAddr, u32)>)> {
    let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
    vec![
        (
            13,
            vec![
                (v4("198.51.100.1"), 1),
                (v4("198.51.100.2"), 1),
                (v4("198.51.100.3"), 1),
            ],
        ),
        (
            251,
            vec![
                (v4("203.0.113.10"), 1),
                (v4("203.0.113.11"), 2),
                (v4("2001:db8::5"), 3),
                (v4("192.0.2.99"), 0),
            ],
        ),
        (M, addrs(10).into_iter().map(|a| (a, 1)).collect()),
        (
            M,
            addrs(100)
                .into_iter()
                .enumerate()
                .map(|(i, a)| (a, 1 + (i as u32 % 5)))
                .collect(),
        ),
        (655_373, addrs(1000).into_iter().map(|a| (a, 1)).collect()),
    ]
}

fn golden_text() -> String {
    let mut out = String::new();
    for (size, reals) in golden_cases() {
        let ids: Vec<Vec<u8>> = reals.iter().map(|(a, _)| maglev::identity(a)).collect();
        let weights: Vec<u32> = reals.iter().map(|(_, w)| *w).collect();
        let ms = members(&ids, &weights);
        let table = build(size, &ms);
        out.push_str(&format!(
            "table size={size} reals={} digest={:016x}\n",
            reals.len(),
            maglev::digest(&table, &ms)
        ));
        if size < 1000 {
            let names: Vec<String> = reals.iter().map(|(a, w)| format!("{a}={w}")).collect();
            out.push_str(&format!("  reals {}\n", names.join(" ")));
            let slots: Vec<String> = table
                .slots()
                .iter()
                .map(|&s| {
                    if s == EMPTY {
                        "-".into()
                    } else {
                        s.to_string()
                    }
                })
                .collect();
            out.push_str(&format!("  slots {}\n", slots.join(" ")));
        }
    }
    out
}

#[test]
fn golden_tables_are_unchanged() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/maglev/golden.txt");
    let now = golden_text();
    if std::env::var_os("LB_REGENERATE_GOLDEN").is_some() {
        std::fs::write(path, &now).unwrap();
        eprintln!("wrote {path}");
        return;
    }
    let pinned = std::fs::read_to_string(path).expect("golden file");
    assert_eq!(
        now, pinned,
        "the Maglev tables changed: every LB host of a fleet must build the same table, \
         so a change of the hash or the fill is a fleet-splitting change (see tests/data/maglev/README.md)"
    );
}

/// Balance and disruption of a ring of `m` slots over `n` equal reals:
/// (max share / average, min share / average, other slots moved when one
/// real is removed, as a fraction of `m`).
fn ring_quality(m: u32, n: usize) -> (f64, f64, f64) {
    let all = ids(&addrs(n));
    let full = members(&all, &vec![1; n]);
    let before = build(m, &full);
    let shares = before.shares(n);
    let avg = f64::from(m) / n as f64;
    let hi = f64::from(*shares.iter().max().unwrap()) / avg;
    let lo = f64::from(*shares.iter().min().unwrap()) / avg;
    let removed = n / 3;
    let rest = without(&full, removed);
    let (b, a) = (owners(&before, &full), owners(&build(m, &rest), &rest));
    let moved = moved_others(&b, &a, full[removed].identity);
    (hi, lo, moved as f64 / f64::from(m))
}

/// docs/DATAPLANE.md advises rings of at least 100 times the reals (and
/// 4093 slots for VIPs of up to 40 reals): at that ratio every ring size
/// stays within 1% of even, and the other slots moved when a real goes
/// (flows not in the connection table change real) stay within the bound
/// of each row; the smaller the ring, the more it moves. (The builder is
/// deterministic: these are exact figures, not samples.)
#[test]
fn rings_of_100_times_the_reals_stay_even_and_move_few_other_slots() {
    let cases = [
        (65_537, 10, 0.002),
        (65_537, 40, 0.004),
        (65_537, 163, 0.007),
        (65_537, 655, 0.008),
        (16_381, 10, 0.008),
        (16_381, 40, 0.010),
        (16_381, 163, 0.018),
        (4_093, 10, 0.008),
        (4_093, 20, 0.018),
        (4_093, 40, 0.020),
        (1_021, 10, 0.031),
    ];
    for (m, n, most_moved) in cases {
        let (hi, lo, moved) = ring_quality(m, n);
        println!(
            "M={m} N={n}: max/avg {hi:.4}, min/avg {lo:.4}, other slots moved {:.2}%",
            moved * 100.0
        );
        assert!(
            hi <= 1.01 && lo >= 0.99,
            "M={m} N={n}: shares {lo:.4}..{hi:.4} of even"
        );
        assert!(
            moved <= most_moved,
            "M={m} N={n}: {:.2}% of other slots moved, more than {:.1}%",
            moved * 100.0,
            most_moved * 100.0
        );
    }
}
