//! The data-plane fuzz test: seeded packets, well-formed and damaged every
//! way (`lb_tests::fuzz`), run through the real balancer with
//! BPF_PROG_TEST_RUN and checked against an oracle written from
//! docs/DATAPLANE.md: never XDP_ABORTED; a pass is byte-identical; a
//! transmit is a correct outer header toward the flow's real carrying the
//! client's packet byte for byte, or an ICMP answer with valid checksums;
//! flows stay on their real when the ring changes; a packet that is
//! dropped leaves no connection behind.
//!
//! `LB_FUZZ_PACKETS` and `LB_FUZZ_SEED` change the run (`cargo xtask fuzz
//! --packets N --seed S` sets them); CI runs the default 200,000 packets.
use lb_tests::{
    fuzz::{World, run},
    require_root,
};

const DEFAULT_PACKETS: u64 = 200_000;
const DEFAULT_SEED: u64 = 0x1b_f022;

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

#[test]
fn the_balancer_matches_the_documented_behaviour_on_fuzzed_packets() {
    if !require_root("the_balancer_matches_the_documented_behaviour_on_fuzzed_packets") {
        return;
    }
    let packets = env_u64("LB_FUZZ_PACKETS", DEFAULT_PACKETS);
    let seed = env_u64("LB_FUZZ_SEED", DEFAULT_SEED);
    let mut world = World::new();
    let started = std::time::Instant::now();
    let report = run(&mut world, seed, packets, 20);
    eprintln!(
        "fuzz: {} packets from seed {seed} in {:.1} s; expected {:?}",
        report.packets,
        started.elapsed().as_secs_f64(),
        report.by_expectation
    );
    assert!(
        report.failures.is_empty(),
        "{} packets differ from docs/DATAPLANE.md:\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
    // Every expectation was exercised, so the oracle is not vacuous.
    for kind in ["pass", "drop", "encap", "echo reply", "too-big answer"] {
        assert!(
            report.by_expectation.get(kind).copied().unwrap_or(0) > packets / 1000,
            "too few `{kind}` cases: {:?}",
            report.by_expectation
        );
    }
    // Only flows that were forwarded are remembered, each in its family's
    // table (the family is byte 37 of a flow key).
    let counts = world.lb.dp.conn_counts();
    let forwarded = |family: u8| {
        report
            .forwarded_flows
            .iter()
            .filter(|f| f[37] == family)
            .count()
    };
    for (name, conns, family) in [
        ("IPv4", counts.v4, lb_common::FAMILY_V4),
        ("IPv6", counts.v6, lb_common::FAMILY_V6),
    ] {
        let flows = forwarded(family);
        assert!(
            conns <= flows,
            "{conns} {name} connections remembered, but only {flows} {name} flows were forwarded"
        );
        assert!(conns > 0, "forwarded {name} flows are remembered");
    }
}
