//! The XDP programs embedded in this binary: loading them into the kernel,
//! attaching them to an interface, pinning and removing the attachment.
//!
//! `build.rs` compiles `lb-ebpf` for the BPF target; the object is carried in
//! the binary, so a deployed `lb-ctl` needs no other file.
use std::{
    fmt,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfError,
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
    },
};

/// The balancer's compiled object (ELF for `bpfel-unknown-none`, with BTF):
/// `lb_balance`, `lb_icmp_too_big`, `lb_pass` and the benchmark harness.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb"));

/// The backends' compiled object: `lb_decap` and its maps only.
pub static DECAP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-decap"));

/// The XDP programs the object holds, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Program {
    /// The balancer: VIP traffic to reals, IP-in-IP.
    Balance,
    /// The backends' decapsulator.
    Decap,
    /// Passes every packet: for veth peers that must run an XDP program so
    /// that `XDP_TX` frames are delivered, and as a smoke test.
    Pass,
    /// ICMP too-big about a real's reply, to that real: tail-called by the
    /// balancer through `LB_JUMP`, never attached on its own.
    #[value(skip)]
    IcmpTooBig,
}

impl Program {
    /// Every program in the object.
    pub const ALL: [Program; 4] = [
        Program::Balance,
        Program::Decap,
        Program::Pass,
        Program::IcmpTooBig,
    ];

    /// The program's symbol name in the object.
    pub const fn symbol(self) -> &'static str {
        match self {
            Program::Balance => "lb_balance",
            Program::Decap => "lb_decap",
            Program::Pass => "lb_pass",
            Program::IcmpTooBig => "lb_icmp_too_big",
        }
    }
}

impl Program {
    /// The object that holds the program.
    pub const fn object(self) -> &'static [u8] {
        match self {
            Program::Balance | Program::Pass | Program::IcmpTooBig => OBJECT,
            Program::Decap => DECAP_OBJECT,
        }
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// How the program is attached to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Native (driver) mode when the driver has it, generic otherwise: the
    /// kernel decides.
    #[default]
    Auto,
    /// Native (driver) mode; fails where the driver lacks XDP.
    Native,
    /// Generic (skb) mode: works everywhere, slower.
    Generic,
}

impl From<AttachMode> for XdpMode {
    fn from(mode: AttachMode) -> Self {
        match mode {
            AttachMode::Auto => XdpMode::Default,
            AttachMode::Native => XdpMode::Driver,
            AttachMode::Generic => XdpMode::Skb,
        }
    }
}

/// Errors of loading, attaching and detaching the programs.
#[derive(Debug, thiserror::Error)]
pub enum ProgramsError {
    #[error("failed to parse or load the embedded XDP object")]
    Object(#[source] EbpfError),
    #[error("the embedded XDP object has no program `{name}`")]
    Missing { name: &'static str },
    #[error("program `{name}` is not an XDP program")]
    NotXdp {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("the kernel rejected program `{name}`")]
    Load {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("failed to attach `{name}` to interface `{iface}`")]
    Attach {
        name: &'static str,
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("failed to pin the link of `{name}` at {}", path.display())]
    Pin {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no `{name}` attachment pinned at {}", path.display())]
    NotAttached {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: aya::programs::links::LinkError,
    },
    #[error("failed to remove the pinned link at {}", path.display())]
    Unpin {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Parses the balancer's object and creates its maps.
pub fn open() -> Result<Ebpf, ProgramsError> {
    open_for(Program::Balance)
}

/// Parses the object that holds `program` and creates its maps.
pub fn open_for(program: Program) -> Result<Ebpf, ProgramsError> {
    Ebpf::load(program.object()).map_err(ProgramsError::Object)
}

/// Looks up `program` in `ebpf` and loads it into the kernel (the verifier
/// runs here).
pub fn load(ebpf: &mut Ebpf, program: Program) -> Result<&mut Xdp, ProgramsError> {
    let name = program.symbol();
    let xdp: &mut Xdp = ebpf
        .program_mut(name)
        .ok_or(ProgramsError::Missing { name })?
        .try_into()
        .map_err(|source| ProgramsError::NotXdp { name, source })?;
    // The verifier gives up with EAGAIN when a signal arrives for this
    // thread while it runs (a child's SIGCHLD, a timer): signals are held
    // back for the load (they are delivered right after it), and a load
    // interrupted all the same is tried again, as libbpf does. Anything
    // else is final.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let held = SignalsHeld::new();
        let loaded = xdp.load();
        drop(held);
        match loaded {
            Ok(()) => return Ok(xdp),
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempts < LOAD_ATTEMPTS =>
            {
                tracing::debug!(
                    program = name,
                    attempts,
                    "the verifier was interrupted; loading again"
                );
            }
            Err(source) => return Err(ProgramsError::Load { name, source }),
        }
    }
}

/// How many times a program load interrupted by a signal (EAGAIN) is tried.
const LOAD_ATTEMPTS: u32 = 10;

/// Blocks every signal on this thread until dropped (the previous mask is
/// restored; what arrived meanwhile is delivered then).
struct SignalsHeld(libc::sigset_t);

impl SignalsHeld {
    fn new() -> Self {
        // SAFETY: sigfillset and pthread_sigmask only write the sets given.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            SignalsHeld(old)
        }
    }
}

impl Drop for SignalsHeld {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in new().
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut()) };
    }
}

/// Where the link of `program` on `iface` is pinned under `pin_dir`.
pub fn link_pin_path(pin_dir: &Path, program: Program, iface: &str) -> PathBuf {
    pin_dir.join(format!("link_{}_{iface}", program.symbol()))
}

/// Attaches a loaded `program` to `iface` and pins the link under `pin_dir`,
/// so that the program stays attached after this process exits.
pub fn attach_pinned(
    xdp: &mut Xdp,
    program: Program,
    iface: &str,
    mode: AttachMode,
    pin_dir: &Path,
) -> Result<PathBuf, ProgramsError> {
    let name = program.symbol();
    let link_id = xdp
        .attach(iface, mode.into())
        .map_err(|source| ProgramsError::Attach {
            name,
            iface: iface.to_owned(),
            source,
        })?;
    let path = link_pin_path(pin_dir, program, iface);
    let pin_err = |source: Box<dyn std::error::Error + Send + Sync>| ProgramsError::Pin {
        name,
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(pin_dir).map_err(|e| pin_err(e.into()))?;
    let link = xdp.take_link(link_id).map_err(|e| pin_err(e.into()))?;
    let link = FdLink::try_from(link).map_err(|e| pin_err(e.into()))?;
    link.pin(&path).map_err(|e| pin_err(e.into()))?;
    Ok(path)
}

/// How [`attach_or_update_pinned`] attached the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// A new attachment, pinned at this path.
    New(PathBuf),
    /// The attachment pinned at this path (an earlier run's) now runs this
    /// program: swapped atomically, no packet missed.
    Updated(PathBuf),
}

/// Attaches `program` to `iface` with a pinned link; if a link is pinned
/// already (an earlier lb-ctl), it is switched to this program in place.
pub fn attach_or_update_pinned(
    xdp: &mut Xdp,
    program: Program,
    iface: &str,
    mode: AttachMode,
    pin_dir: &Path,
) -> Result<Attached, ProgramsError> {
    let path = link_pin_path(pin_dir, program, iface);
    if let Ok(pinned) = PinnedLink::from_pin(&path) {
        let fd_link: FdLink = pinned.into();
        let updated = aya::programs::xdp::XdpLink::try_from(fd_link)
            .map_err(|e| e.to_string())
            .and_then(|link| xdp.attach_to_link(link).map_err(|e| e.to_string()));
        match updated {
            Ok(id) => {
                // The pin keeps the link; this process need not.
                drop(xdp.take_link(id));
                return Ok(Attached::Updated(path));
            }
            Err(source) => {
                // A link whose interface is gone: start afresh.
                tracing::warn!(path = %path.display(), error = %source, "the pinned link cannot be updated; attaching anew");
                std::fs::remove_file(&path).map_err(|source| ProgramsError::Unpin {
                    path: path.clone(),
                    source,
                })?;
            }
        }
    }
    attach_pinned(xdp, program, iface, mode, pin_dir).map(Attached::New)
}

/// Removes the pinned attachment of `program` on `iface`: the program is
/// detached once no process holds the link any more.
pub fn detach_pinned(program: Program, iface: &str, pin_dir: &Path) -> Result<(), ProgramsError> {
    let path = link_pin_path(pin_dir, program, iface);
    let link = PinnedLink::from_pin(&path).map_err(|source| ProgramsError::NotAttached {
        name: program.symbol(),
        path: path.clone(),
        source,
    })?;
    link.unpin()
        .map(drop)
        .map_err(|source| ProgramsError::Unpin { path, source })
}
