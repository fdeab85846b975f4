//! The lab's fleet store: etcd members (Debian `etcd-server`) in the
//! router's namespace, each on its own address of the router (documentation
//! range), which the LB hosts reach through their default route. The lab
//! kills them with everything else in its namespaces.
use std::{
    future::Future,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lb_ctl::{
    config::{DEFAULT_FLEET_PREFIX, FleetSettings},
    fleet::store::Store,
};

use super::{Lab, ROUTER, ip};
use crate::netns::run_in;

/// The members' addresses on the router (its loopback).
pub const ETCD_ADDRS: [&str; 3] = ["198.51.100.100", "198.51.100.101", "198.51.100.102"];
pub const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;

/// One etcd member the lab started.
#[derive(Debug)]
pub struct EtcdMember {
    pub name: String,
    pub addr: &'static str,
    pub pid: i32,
}

impl Lab {
    /// The fleet's endpoints (`http://ADDR:2379` of every member).
    pub fn etcd_endpoints(&self) -> Vec<String> {
        self.etcd
            .iter()
            .map(|m| format!("http://{}:{ETCD_CLIENT_PORT}", m.addr))
            .collect()
    }

    /// Starts a cluster of `members` (1 to 3) and waits until it answers.
    pub fn start_etcd(&mut self, members: usize) -> anyhow::Result<Vec<String>> {
        let r = self.ns(ROUTER);
        let addrs = &ETCD_ADDRS[..members.clamp(1, 3)];
        let cluster: Vec<String> = addrs
            .iter()
            .enumerate()
            .map(|(i, a)| format!("e{i}=http://{a}:{ETCD_PEER_PORT}"))
            .collect();
        for (i, addr) in addrs.iter().enumerate() {
            ip(&["-n", &r, "addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
            let name = format!("e{i}");
            let dir: PathBuf = self.run_dir().join("etcd").join(&name);
            std::fs::create_dir_all(&dir)?;
            let log = std::fs::File::create(dir.with_extension("log"))?;
            let client = format!("http://{addr}:{ETCD_CLIENT_PORT}");
            let peer = format!("http://{addr}:{ETCD_PEER_PORT}");
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &r, "etcd", "--name", &name, "--data-dir"])
                .arg(dir.join("data"))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &cluster.join(",")])
                .args(["--initial-cluster-state", "new", "--initial-cluster-token"])
                .arg(&self.prefix)
                // Fast elections on loopback; room for large applies.
                .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
                .args(["--max-txn-ops", "100000", "--max-request-bytes", "67108864"])
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log);
            let child = self
                .spawn_detached(cmd)
                .context("start etcd (apt-get install etcd-server)")?;
            self.etcd.push(EtcdMember {
                name,
                addr,
                pid: child,
            });
        }
        let start = Instant::now();
        loop {
            match self.with_store(|mut s| async move { Ok(s.client.status().await?) }) {
                Ok(_) => return Ok(self.etcd_endpoints()),
                Err(e) if start.elapsed() > Duration::from_secs(15) => {
                    bail!("etcd did not come up: {e:#}")
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Runs `f` with a connection to the fleet's store, from the router's
    /// namespace.
    pub fn with_store<T, F, Fut>(&self, f: F) -> anyhow::Result<T>
    where
        T: Send,
        F: FnOnce(Store) -> Fut + Send,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let settings = FleetSettings {
            endpoints: self.etcd_endpoints(),
            prefix: DEFAULT_FLEET_PREFIX.to_owned(),
            host: "lab".to_owned(),
            lkg: PathBuf::new(),
            dial_timeout: Duration::from_secs(1),
        };
        run_in(&self.ns(ROUTER), move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move { f(Store::connect(&settings).await?).await })
        })
    }

    /// `lb-ctl fleet apply` of `text` (a fleet file); its output.
    pub fn fleet_apply(&self, text: &str) -> anyhow::Result<String> {
        let file = self.run_dir().join("fleet.toml");
        std::fs::write(&file, text)?;
        self.fleet_cli(&[&"apply".into(), &file.display().to_string()])
    }

    /// `lb-ctl fleet ARGS` from the router's namespace; its output, or
    /// its error.
    pub fn fleet_cli(&self, args: &[&String]) -> anyhow::Result<String> {
        let out = Command::new(&self.bins.lb_ctl)
            .args(["--netns", &self.ns(ROUTER), "fleet", "--endpoints"])
            .arg(self.etcd_endpoints().join(","))
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sends `signal` to etcd member `i`.
    pub fn signal_etcd(&self, i: usize, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.etcd[i].pid, signal) };
    }
}
