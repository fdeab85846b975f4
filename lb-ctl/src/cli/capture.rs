//! `lb-ctl capture`: a sampled capture of the balancer's decisions into a
//! pcapng file, each packet annotated with its verdict, reason, VIP and
//! real; bounded by a count and a duration; capture is turned off at the
//! end, on Ctrl-C, and on an error.
use std::{
    collections::HashMap,
    net::IpAddr,
    path::PathBuf,
    process::ExitCode,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lb_common::stats::Counter;
use lb_ctl::{
    capture::{self, Filter, Session, pcapng},
    explain::{MapsView as _, pinned::PinnedMaps},
    vocab::VipId,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VerdictArg {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
}

impl VerdictArg {
    fn action(self) -> u32 {
        match self {
            Self::Aborted => 0,
            Self::Drop => 1,
            Self::Pass => 2,
            Self::Tx => 3,
            Self::Redirect => 4,
        }
    }
}

fn verdict_word(action: u32) -> &'static str {
    match action {
        0 => "aborted",
        1 => "drop",
        2 => "pass",
        3 => "tx",
        4 => "redirect",
        _ => "?",
    }
}

#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// The pcapng file to write (tcpdump -r and Wireshark read it).
    #[arg(
        short = 'w',
        long = "write",
        value_name = "FILE",
        required_unless_present = "stop"
    )]
    pub file: Option<PathBuf>,
    /// Only packets of this VIP.
    #[arg(long)]
    pub vip: Option<VipId>,
    /// Only packets sent to this real (of `--vip`, if given).
    #[arg(long)]
    pub real: Option<IpAddr>,
    /// Only these verdicts (repeatable).
    #[arg(long, value_enum)]
    pub verdict: Vec<VerdictArg>,
    /// Capture one in N of the packets that pass the filters.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub sample: u32,
    /// Stop after this many packets.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,
    /// Stop after this long at most.
    #[arg(long, default_value = "10s", value_parser = super::health_args::duration)]
    pub duration: Duration,
    /// Bytes of each packet kept (from the Ethernet header; at most 2048).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(64..=2048))]
    pub snaplen: u32,
    /// Only turn off a capture left on by a killed `lb-ctl capture`.
    #[arg(long, conflicts_with_all = ["file", "vip", "real", "verdict"])]
    pub stop: bool,
    /// The balancer's pin directory.
    #[arg(long, default_value = lb_common::DEFAULT_PIN_DIR)]
    pub pin_dir: PathBuf,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns: turns the program's
/// `bpf_ktime_get_ns` into wall-clock time.
fn monotonic_to_realtime() -> u64 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    now(libc::CLOCK_REALTIME).saturating_sub(now(libc::CLOCK_MONOTONIC))
}

pub fn run(args: &CaptureArgs) -> anyhow::Result<ExitCode> {
    if args.stop {
        capture::stop(&args.pin_dir).map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
        println!("capture off");
        return Ok(ExitCode::SUCCESS);
    }
    let file = args.file.as_ref().expect("clap requires it");
    let maps =
        PinnedMaps::open(&args.pin_dir).map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
    // Names for the annotations.
    let vips: HashMap<u32, VipId> = maps.vips().into_iter().map(|(id, n)| (n, id)).collect();
    let vip_id = match &args.vip {
        Some(v) => Some(
            vips.iter()
                .find(|(_, id)| *id == v)
                .map(|(n, _)| *n)
                .with_context(|| format!("the balancer has no VIP {v}"))?,
        ),
        None => None,
    };
    let real_id = match args.real {
        Some(addr) => {
            let ids = maps.real_ids(addr, vip_id);
            match ids.as_slice() {
                [id] => Some(*id),
                [] => bail!(
                    "the balancer has no real {addr}{}",
                    args.vip.map_or_else(String::new, |v| format!(" for {v}"))
                ),
                _ => bail!("{addr} is a real of several VIPs: name one with --vip"),
            }
        }
        None => None,
    };
    let filter = Filter {
        sample: args.sample,
        verdicts: args.verdict.iter().fold(0, |m, v| m | (1 << v.action())),
        vip_id,
        real_id,
        snaplen: args.snaplen,
    };
    let out =
        std::fs::File::create(file).with_context(|| format!("cannot create {}", file.display()))?;
    let mut writer = pcapng::Writer::new(
        std::io::BufWriter::new(out),
        &format!("lb {}", args.pin_dir.display()),
        args.snaplen,
    )?;
    // SAFETY: installing a handler that only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let offset = monotonic_to_realtime();
    let mut session = Session::start(&args.pin_dir, &filter)
        .map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
    eprintln!(
        "capturing to {} (at most {} packets, {:?}; Ctrl-C stops)",
        file.display(),
        args.count,
        args.duration
    );
    let start = Instant::now();
    let mut written = 0u64;
    let mut turned_off = false;
    'capture: while !INTERRUPTED.load(Ordering::Relaxed) && start.elapsed() < args.duration {
        // Checked before the wait, and the buffers read once more after
        // it was seen off: what was captured before is kept.
        let on = session
            .still_on()
            .map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
        let wait = if on {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        let records = session
            .poll(wait)
            .map_err(|e| anyhow::anyhow!(lb_ctl::errors::chain(&e)))?;
        for r in records {
            let m = r.meta;
            let reason = m
                .reason
                .checked_sub(1)
                .and_then(|i| Counter::ALL.get(i as usize))
                .map_or("-", |c| c.name());
            let vip = m
                .vip
                .checked_sub(1)
                .and_then(|id| vips.get(&id))
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            let real = (m.real != 0)
                .then(|| maps.real(m.real).and_then(|r| r.ip()))
                .flatten()
                .map_or_else(|| "-".to_owned(), |a| a.to_string());
            let comment = format!(
                "lb: verdict={} reason={reason} vip={vip} real={real}",
                verdict_word(m.action)
            );
            writer.packet(m.time_ns + offset, m.len, &r.data, &comment)?;
            written += 1;
            if written >= args.count {
                break 'capture;
            }
        }
        if !on {
            turned_off = true;
            break;
        }
    }
    let lost = session.lost;
    drop(session);
    writer.finish()?;
    if turned_off {
        eprintln!(
            "the capture was turned off from outside (a daemon reload rewrites the configuration, or `lb-ctl capture --stop`)"
        );
    }
    eprintln!(
        "{written} packets written to {}{}",
        file.display(),
        if lost > 0 {
            format!(" ({lost} lost: the perf buffers were full; sample less with --sample)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
