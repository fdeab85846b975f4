//! `cargo xtask fuzz --packets N --seed S`: the data-plane fuzz test
//! (`tests/tests/dataplane_fuzz.rs`) with more packets or another seed than
//! CI's 200,000 from the fixed seed. Same program, same oracle.
use crate::{
    cmd::{self, step},
    setup,
};

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// Packets to generate and check.
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// The generator's seed (the same seed gives the same packets).
    #[arg(long, default_value_t = 0x1b_f022)]
    seed: u64,
}

pub fn run(args: &FuzzArgs) -> anyhow::Result<()> {
    setup::run()?;
    anyhow::ensure!(
        setup::is_root(),
        "the fuzz test runs the balancer in the kernel (BPF_PROG_TEST_RUN): run it as root"
    );
    step(&format!(
        "fuzzing the balancer: {} packets from seed {}",
        args.packets, args.seed
    ));
    cmd::run(
        cmd::cargo()
            .args([
                "test",
                "--workspace",
                "--test",
                "dataplane_fuzz",
                "--",
                "--nocapture",
            ])
            .env("LB_FUZZ_PACKETS", args.packets.to_string())
            .env("LB_FUZZ_SEED", args.seed.to_string()),
    )
}
