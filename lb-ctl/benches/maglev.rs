//! Maglev table build time for N = 10, 100, 1000 equal reals at M = 65537
//! and 655373: median of several builds, printed as a markdown table.
//!
//! Baseline, measured in the same run: one pass writing all M slots in
//! order (what any table fill costs at least), so that figures taken on a
//! shared, noisy machine can be read as ratios.
//!
//! Run with `cargo xtask bench maglev` (or `cargo bench -p lb-ctl --bench maglev`).
use std::{
    hint::black_box,
    net::{IpAddr, Ipv6Addr},
    time::{Duration, Instant},
};

use lb_ctl::maglev::{self, Member, RingSize};

const RUNS: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<F: FnMut()>(mut f: F) -> Duration {
    f(); // warm-up
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn main() {
    println!(
        "| reals N | ring size M | build (median of {RUNS}) | baseline: write M slots | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for m in [65_537u32, 655_373] {
        let size = RingSize::new(m).expect("prime");
        let baseline = time(|| {
            let mut slots = vec![0u32; m as usize];
            for (i, s) in slots.iter_mut().enumerate() {
                *s = i as u32 % 7;
            }
            black_box(&slots);
        });
        for n in [10usize, 100, 1000] {
            let ids: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1));
                    maglev::identity(&a)
                })
                .collect();
            let members: Vec<Member<'_>> = ids
                .iter()
                .map(|id| Member {
                    identity: id,
                    weight: 1,
                })
                .collect();
            let build = time(|| {
                black_box(maglev::build(size, black_box(&members)).expect("build"));
            });
            println!(
                "| {n} | {m} | {:.2} ms | {:.3} ms | {:.1}x |",
                build.as_secs_f64() * 1e3,
                baseline.as_secs_f64() * 1e3,
                build.as_secs_f64() / baseline.as_secs_f64()
            );
        }
    }
}
