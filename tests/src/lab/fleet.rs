//! The lab's fleet store: etcd members (Debian `etcd-server`) in the
//! router's namespace, each on its own address of the router (documentation
//! range), which the LB hosts reach through their default route. The lab
//! kills them with everything else in its namespaces.
use std::{
    collections::BTreeMap,
    future::Future,
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use lb_ctl::{
    config::{DEFAULT_FLEET_PREFIX, FleetSettings},
    fleet::{status::FleetStatus, store::Store},
};

use super::{Lab, ROUTER, ip};
use crate::netns::run_in;

/// The members' addresses on the router (its loopback).
pub const ETCD_ADDRS: [&str; 3] = ["198.51.100.100", "198.51.100.101", "198.51.100.102"];
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// Where the lab runs fleet checkers: client c2's namespace.
pub const CHECKER_NS: &str = "c2";
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
        for (i, addr) in addrs.iter().enumerate() {
            ip(&["-n", &r, "addr", "add", &format!("{addr}/32"), "dev", "lo"])?;
            let pid = self.spawn_etcd(i, addrs.len())?;
            self.etcd.push(EtcdMember {
                name: format!("e{i}"),
                addr,
                pid,
            });
        }
        self.wait_etcd(Duration::from_secs(15))?;
        Ok(self.etcd_endpoints())
    }

    /// Starts member `i` of a cluster of `members` again, on its data
    /// directory (after a kill), and waits until the cluster answers.
    pub fn restart_etcd(&mut self, i: usize) -> anyhow::Result<()> {
        self.etcd[i].pid = self.spawn_etcd(i, self.etcd.len())?;
        self.wait_etcd(Duration::from_secs(15))
    }

    /// Starts etcd member `i` of `members`; its pid.
    fn spawn_etcd(&self, i: usize, members: usize) -> anyhow::Result<i32> {
        let r = self.ns(ROUTER);
        let cluster: Vec<String> = ETCD_ADDRS[..members]
            .iter()
            .enumerate()
            .map(|(i, a)| format!("e{i}=http://{a}:{ETCD_PEER_PORT}"))
            .collect();
        let addr = ETCD_ADDRS[i];
        let name = format!("e{i}");
        let dir: PathBuf = self.run_dir().join("etcd").join(&name);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))?;
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
        self.spawn_detached(cmd)
            .context("start etcd (apt-get install etcd-server)")
    }

    /// Waits until the store answers a linearizable read (a quorum).
    fn wait_etcd(&self, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        loop {
            match self.with_store(|mut s| async move { Ok(s.client.get("health", None).await?) }) {
                Ok(_) => return Ok(()),
                Err(e) if start.elapsed() > limit => bail!("etcd did not come up: {e:#}"),
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
            stale_after: lb_ctl::config::DEFAULT_STALE_AFTER,
            max_down_permille: lb_ctl::config::DEFAULT_MAX_DOWN_PERMILLE,
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

    /// Starts a fleet checker `id` (lease `ttl`, e.g. "5s") in client c2's
    /// namespace, which reaches the backends and etcd through the router;
    /// its pid. Its log is `checker-<id>.log` in the lab's directory.
    pub fn start_checker(&self, id: &str, ttl: &str) -> anyhow::Result<i32> {
        self.start_checker_on(id, ttl, None)
    }

    /// [`Lab::start_checker`], on CPU `cpu` only if given (`taskset`), for
    /// a figure of what one core does.
    pub fn start_checker_on(&self, id: &str, ttl: &str, cpu: Option<usize>) -> anyhow::Result<i32> {
        let log = std::fs::File::create(self.checker_log(id))?;
        let mut cmd = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()]).arg(&self.bins.lb_ctl);
                c
            }
            None => Command::new(&self.bins.lb_ctl),
        };
        cmd.args(["--netns", &self.ns(CHECKER_NS), "checker", "--endpoints"])
            .arg(self.etcd_endpoints().join(","))
            .args(["--id", id, "--lease-ttl", ttl])
            .env("LB_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.spawn_detached(cmd).context("start lb-ctl checker")
    }

    pub fn checker_log(&self, id: &str) -> PathBuf {
        self.run_dir().join(format!("checker-{id}.log"))
    }

    /// Replays every revision of the active checker's keys (`health/`,
    /// `checkers/round`) from the first: the revisions at which results of
    /// more than one checker stood side by side (with who), and every
    /// checker that wrote any.
    pub fn health_writers_history(
        &self,
    ) -> anyhow::Result<(Vec<String>, std::collections::BTreeSet<String>)> {
        self.with_store(|mut st| async move {
            let (start, end) = (st.keys.round(), st.keys.health_all());
            let now = st.client.get("x", None).await?.header().unwrap().revision();
            let mut replay = st
                .client
                .watch(
                    "",
                    Some(
                        etcd_client::WatchOptions::new()
                            .with_all_keys()
                            .with_start_revision(1),
                    ),
                )
                .await?;
            let mut live: BTreeMap<String, String> = BTreeMap::new();
            let mut mixed = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            'replay: while let Some(resp) = replay.message().await? {
                for ev in resp.events() {
                    let kv = ev.kv().unwrap();
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    if kv.mod_revision() > now {
                        break 'replay;
                    }
                    if !(key.starts_with(&end) || key == start) {
                        continue;
                    }
                    match ev.event_type() {
                        etcd_client::EventType::Delete => {
                            live.remove(&key);
                        }
                        etcd_client::EventType::Put => {
                            let v: serde_json::Value = serde_json::from_slice(kv.value())?;
                            let by = v["checker"].as_str().unwrap_or("?").to_owned();
                            seen.insert(by.clone());
                            live.insert(key, by);
                        }
                    }
                    let writers: std::collections::BTreeSet<&String> = live.values().collect();
                    if writers.len() > 1 {
                        mixed.push(format!("revision {}: {writers:?}", kv.mod_revision()));
                    }
                }
                if resp
                    .events()
                    .last()
                    .is_some_and(|e| e.kv().unwrap().mod_revision() >= now)
                {
                    break;
                }
            }
            Ok((mixed, seen))
        })
    }

    /// `lb-ctl fleet status --json`, decoded.
    pub fn fleet_status(&self) -> anyhow::Result<FleetStatus> {
        let out = self.fleet_cli(&[&"status".into(), &"--json".into()])?;
        serde_json::from_str(&out).with_context(|| format!("fleet status: {out}"))
    }

    /// The index (in `etcd`) of the member that leads the Raft group.
    pub fn etcd_leader(&self) -> anyhow::Result<usize> {
        let name = self.with_store(|mut st| async move {
            let leader = st.client.status().await?.leader();
            let members = st.client.member_list().await?;
            Ok(members
                .members()
                .iter()
                .find(|m| m.id() == leader)
                .map(|m| m.name().to_owned()))
        })?;
        self.etcd
            .iter()
            .position(|m| Some(&m.name) == name.as_ref())
            .context("no etcd member leads")
    }

    /// Sends `signal` to etcd member `i`.
    pub fn signal_etcd(&self, i: usize, signal: i32) {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.etcd[i].pid, signal) };
    }
}
