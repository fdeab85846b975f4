//! `lb-ctl check`: load every embedded program through the verifier.
use std::process::ExitCode;

use lb_ctl::programs::{self, Program};

pub fn run() -> anyhow::Result<ExitCode> {
    for program in Program::ALL {
        let mut ebpf = programs::open_for(program)?;
        programs::load(&mut ebpf, program)?;
        println!("{program}: loaded, verifier accepted it");
    }
    Ok(ExitCode::SUCCESS)
}
