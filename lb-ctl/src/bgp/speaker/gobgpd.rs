//! The speaker's gobgpd: reaching the one at the API address (an adopted
//! one, or the operator's), else starting and recording a managed one; and
//! the paths an adopted one already holds.
use std::{
    collections::BTreeMap,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::Command;

use super::{START_TIMEOUT, Speaker, SpeakerError};
use crate::bgp::{
    Announcement, Prefix,
    gobgp::{self, Gobgp},
    running::recorded_gobgpd,
};

impl Speaker {
    pub(super) async fn connect_or_start(&mut self) -> Result<(), SpeakerError> {
        let api = self.settings.api;
        if let Ok(c) = Gobgp::connect(api, Duration::from_millis(300)).await {
            self.client = Some(c);
            if self.settings.manage && self.child.is_none() {
                self.adopted_pid = recorded_gobgpd(&self.pid_file, &self.settings.gobgpd);
                tracing::info!(pid = ?self.adopted_pid, "adopted the gobgpd a previous lb-ctl started");
            }
            let mut v = self.view.lock().expect("view");
            if !self.settings.manage {
                v.gobgpd = format!("the operator's, at {api}");
            } else if v.gobgpd.is_empty() {
                v.gobgpd = format!("adopted at {api}");
            }
            return Ok(());
        }
        if !self.settings.manage {
            return Err(SpeakerError::NotRunning { api });
        }
        let mut cmd = Command::new(&self.settings.gobgpd);
        cmd.args([
            "--api-hosts",
            &api.to_string(),
            "--pprof-disable",
            "-l",
            "warn",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
        // SAFETY: setsid in the child before exec has no memory effects.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|source| SpeakerError::Spawn {
            path: self.settings.gobgpd.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        self.child = Some(child);
        self.adopted_pid = None;
        if let Err(e) = std::fs::write(&self.pid_file, format!("{pid}\n")) {
            tracing::warn!(file = %self.pid_file.display(), error = %e, "cannot record gobgpd's pid");
        }
        let start = Instant::now();
        loop {
            if let Ok(c) = Gobgp::connect(api, Duration::from_millis(200)).await {
                self.client = Some(c);
                break;
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(SpeakerError::StartTimeout { pid, api });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut v = self.view.lock().expect("view");
        v.restarts += u32::from(!v.gobgpd.is_empty());
        v.gobgpd = format!("managed (pid {pid}) at {api}");
        tracing::info!(pid, %api, "gobgpd started");
        Ok(())
    }

    /// Our paths in an adopted gobgpd's global RIB, so that stale ones are
    /// withdrawn; their attributes are unknown, so they are re-announced.
    pub(super) async fn adopt_paths(&mut self) -> BTreeMap<Prefix, Announcement> {
        let mut out = BTreeMap::new();
        let Some(c) = &mut self.client else {
            return out;
        };
        for probe in ["0.0.0.0", "::"] {
            let fam = gobgp::family(probe.parse().expect("address"));
            for p in c.prefixes(None, fam).await.unwrap_or_default() {
                if let Ok(prefix) = p.parse::<Prefix>() {
                    out.insert(
                        prefix,
                        Announcement {
                            prefix,
                            next_hop: prefix.addr,
                            communities: Vec::new(),
                            med: u32::MAX,
                        },
                    );
                }
            }
        }
        out
    }
}
