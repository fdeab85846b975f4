//! Entering a named network namespace (`ip netns` style, under
//! `/run/netns`) from inside the process.
//!
//! `ip netns exec` also remounts `/sys`, which hides the bpffs at
//! `/sys/fs/bpf`; `lb-ctl --netns NAME` switches only the network namespace,
//! so pins keep working. Call it before starting any thread: threads created
//! afterwards inherit the namespace.
use std::{fs::File, os::fd::AsRawFd as _, path::PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("no network namespace {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to enter network namespace {}", path.display())]
    Setns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Moves the calling thread into the network namespace `name`.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    let path = PathBuf::from("/run/netns").join(name);
    let file = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    // SAFETY: setns with a namespace fd changes only this thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::Setns {
            path,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}
