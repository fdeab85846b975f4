//! `lb-ctl check`: load every embedded program through the verifier.
use std::process::ExitCode;

use lb_ctl::programs::{self, Program};

pub fn run() -> anyhow::Result<ExitCode> {
    let mut ebpf = programs::open()?;
    for program in Program::ALL {
        programs::load(&mut ebpf, program)?;
        println!("{program}: loaded, verifier accepted it");
    }
    Ok(ExitCode::SUCCESS)
}
