//! `lb-ctl maglev`: print the Maglev table this host would build for a set
//! of reals, so operators can check that LB hosts agree (equal digests mean
//! equal tables).
use std::{net::IpAddr, process::ExitCode, str::FromStr};

use anyhow::Context as _;
use lb_ctl::maglev::{self, Member, RingSize};

#[derive(Debug, clap::Args)]
pub struct MaglevArgs {
    /// Table size (a prime).
    #[arg(long, default_value_t = maglev::DEFAULT_RING_SIZE)]
    pub ring_size: u32,
    /// Print every slot's owner too.
    #[arg(long)]
    pub slots: bool,
    /// Reals as ADDRESS or ADDRESS=WEIGHT (weight 1 by default).
    #[arg(required = true)]
    pub reals: Vec<RealArg>,
}

#[derive(Debug, Clone)]
pub struct RealArg {
    pub addr: IpAddr,
    pub weight: u32,
}

impl FromStr for RealArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, weight) = match s.split_once('=') {
            Some((a, w)) => (a, w.parse().map_err(|e| format!("weight in `{s}`: {e}"))?),
            None => (s, 1),
        };
        let addr = addr.parse().map_err(|e| format!("address in `{s}`: {e}"))?;
        Ok(RealArg { addr, weight })
    }
}

pub fn run(args: &MaglevArgs) -> anyhow::Result<ExitCode> {
    let size = RingSize::new(args.ring_size)?;
    let ids: Vec<Vec<u8>> = args
        .reals
        .iter()
        .map(|r| maglev::identity(&r.addr))
        .collect();
    let members: Vec<Member<'_>> = ids
        .iter()
        .zip(&args.reals)
        .map(|(id, r)| Member {
            identity: id,
            weight: r.weight,
        })
        .collect();
    let table = maglev::build(size, &members).context("building the table")?;
    println!("ring_size {size}");
    println!("digest {:016x}", maglev::digest(&table, &members));
    for (real, share) in args.reals.iter().zip(table.shares(members.len())) {
        println!(
            "real {} weight {} slots {share} ({:.3}%)",
            real.addr,
            real.weight,
            f64::from(share) * 100.0 / f64::from(size.get())
        );
    }
    if args.slots {
        for (i, &s) in table.slots().iter().enumerate() {
            match args.reals.get(s as usize) {
                Some(r) => println!("slot {i} {}", r.addr),
                None => println!("slot {i} -"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
