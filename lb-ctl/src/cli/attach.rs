//! `lb-ctl attach` and `lb-ctl detach`: pinned XDP attachments.
use std::process::ExitCode;

use lb_ctl::programs;

use super::{AttachArgs, DetachArgs};

pub fn attach(args: &AttachArgs) -> anyhow::Result<ExitCode> {
    let mut ebpf = programs::open_for(args.program)?;
    let xdp = programs::load(&mut ebpf, args.program)?;
    let path = programs::attach_pinned(xdp, args.program, &args.iface, args.mode, &args.pin_dir)?;
    tracing::info!(program = %args.program, iface = %args.iface, pin = %path.display(), "attached");
    Ok(ExitCode::SUCCESS)
}

pub fn detach(args: &DetachArgs) -> anyhow::Result<ExitCode> {
    programs::detach_pinned(args.program, &args.iface, &args.pin_dir)?;
    tracing::info!(program = %args.program, iface = %args.iface, "detached");
    Ok(ExitCode::SUCCESS)
}
