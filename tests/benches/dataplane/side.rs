//! One balancer under measurement: this tree's object, or a baseline
//! revision's (`cargo xtask bench dataplane --baseline REV`), with its own
//! maps and its own copy of the benchmark programs (`lb_bench_restore`
//! tail-calls into the same object). One run = one sample.
use std::{any::Any, sync::Arc};

use aya::{
    maps::{Array, ProgramArray},
    programs::{ProgramFd, TestRun as _, TestRunOptions, Xdp},
};
use lb_common::{
    bench::{BENCH_FRAME_LEN, BenchFrame},
    stats::{Counter, Stats},
};
use lb_ctl::dataplane::LoadOptions;
use lb_tests::balancer::{TestBalancer, live_frames};

/// Frames per live-frames batch (a NAPI budget).
const BATCH: u32 = 64;

/// The VIPs' ring size (slots), as Katran's.
pub const RING: u32 = 65_537;

/// See [`How::Flood`].
const FLOOD_REMEMBERED: u64 = 64;

/// How a path is driven.
pub enum How<'a> {
    /// Live frames through `lb_bench_restore` (see the bench's method);
    /// every packet must move each of the counters by one.
    Live(&'a [Counter]),
    /// Live frames of new flows past `max_conn_rate`, checked as `Live`
    /// except that up to [`FLOOD_REMEMBERED`] packets may count as
    /// `conn_hit` instead of `conn_miss`: the flows the limit still let in
    /// (one a second per CPU), met again once the frames' 24-bit sequence
    /// wraps (a row of 20 runs sends 40,000,000).
    Flood(&'a [Counter]),
    /// As `Live`, on every CPU of [`Side::cpus`] at once (one thread
    /// pinned to each, the frame's flows disjoint per CPU: the frame must
    /// be set with `VARY_PER_CPU`); every packet of every CPU must move
    /// each counter by one. The sample is the CPUs' mean ns per packet.
    AllCpus(&'a [Counter]),
    /// Plain `repeat` of `program` on `data` (nothing is transmitted).
    Plain {
        program: &'a str,
        data: &'a [u8],
        counters: &'a [Counter],
    },
}

pub struct Side {
    pub lb: TestBalancer,
    ifindex: u32,
    /// What this side is, in the tables.
    pub label: String,
    /// Its connection tables' sizes, IPv4 and IPv6 (the bench fills each
    /// with an eighth more flows than it holds).
    pub tables: [u32; 2],
    /// Its VIPs' ring size (slots).
    pub ring: u32,
    /// Kept alive while the side runs (e.g. a capture reader's buffers).
    held: Vec<Box<dyn Any>>,
    /// The CPUs of [`How::AllCpus`]: the online ones, at most 4 (the
    /// per-CPU flows' limit, `VARY_PER_CPU`).
    pub cpus: Vec<u32>,
}

impl Side {
    /// Loads `object` (None: this tree's) with connection tables of
    /// `[IPv4, IPv6]` entries.
    pub fn load(object: Option<Arc<[u8]>>, tables: [u32; 2], ifindex: u32, label: String) -> Self {
        let baseline = object.is_some();
        let lb = TestBalancer::try_with_options(&LoadOptions {
            conn_table_size: tables[0],
            conn_table_size_v6: tables[1],
            pin_dir: None,
            object,
            ..LoadOptions::default()
        });
        let lb = match lb {
            Ok(lb) => lb,
            Err(e) if baseline => panic!(
                "{label}: its object does not load with this tree's lb-ctl, which fills both \
                 sides' maps (a baseline must have this tree's map layouts): {e:#?}"
            ),
            Err(e) => panic!("{label}: load the balancer: {e:#?}"),
        };
        let mut cpus = aya::util::online_cpus().expect("online CPUs");
        cpus.truncate(4);
        Side {
            lb,
            ifindex,
            label,
            tables,
            ring: RING,
            held: Vec::new(),
            cpus,
        }
    }

    pub fn hold(&mut self, thing: impl Any) {
        self.held.push(Box::new(thing));
    }

    pub fn prog_fd(&mut self, name: &str) -> ProgramFd {
        let xdp = self.xdp(name);
        if xdp.fd().is_err() {
            xdp.load().unwrap_or_else(|e| panic!("load {name}: {e}"));
        }
        xdp.fd().unwrap().try_clone().unwrap()
    }

    /// The program `name` of this side's object (the balancer as loaded).
    pub fn xdp(&mut self, name: &str) -> &mut Xdp {
        if name == "lb_balance" {
            return self.lb.dp.program();
        }
        self.lb
            .dp
            .ebpf_mut()
            .program_mut(name)
            .unwrap_or_else(|| panic!("{}: no program {name}", self.label))
            .try_into()
            .unwrap()
    }

    /// The program `lb_bench_restore` tail-calls.
    pub fn set_target(&mut self, name: &str) {
        let fd = self.prog_fd(name);
        let map = self.lb.dp.ebpf_mut().map_mut("LB_BENCH_JUMP").unwrap();
        let mut jump = ProgramArray::try_from(map).unwrap();
        jump.set(0, &fd, 0).unwrap();
    }

    /// The frame `lb_bench_restore` writes; `vary`: 0 or `VARY_FLOWS`
    /// (a new flow every packet), with `VARY_PER_CPU` or not.
    pub fn set_frame(&mut self, bytes: [u8; BENCH_FRAME_LEN], vary: u32) {
        let map = self.lb.dp.ebpf_mut().map_mut("LB_BENCH_FRAME").unwrap();
        let mut arr = Array::<_, BenchFrame>::try_from(map).unwrap();
        // All 24 bits of the sequence (mask 0), as objects from before the
        // mask (a --baseline) do.
        let f = BenchFrame::varying(&bytes, vary, 0);
        arr.set(0, f, 0).unwrap();
    }

    /// Whether this side's wrapper knows `VARY_PER_CPU` (a baseline
    /// older than it does not).
    pub fn has_per_cpu_flows(&mut self) -> bool {
        self.lb.dp.ebpf_mut().map("LB_BENCH_SEQ_CPU").is_some()
    }

    /// The frame set by [`Side::set_frame`].
    fn frame(&mut self) -> [u8; BENCH_FRAME_LEN] {
        let map = self.lb.dp.ebpf_mut().map_mut("LB_BENCH_FRAME").unwrap();
        Array::<_, BenchFrame>::try_from(map)
            .unwrap()
            .get(&0, 0)
            .unwrap()
            .bytes()
    }

    /// One live-frames run of `packets` through the wrapper; its duration
    /// per packet in ns.
    pub fn live_run(&mut self, packets: u32) -> f64 {
        let _ = self.prog_fd("lb_bench_restore");
        let data = self.frame();
        let ifindex = self.ifindex;
        live_frames(self.xdp("lb_bench_restore"), &data, ifindex, packets, BATCH).as_nanos() as f64
    }

    /// A live-frames run of `packets` on each of [`Side::cpus`] at once,
    /// one thread pinned to each, started together; each one's ns per
    /// packet. (The runs overlap as far as the CPUs keep pace: one that
    /// finishes first leaves the others' last packets alone.)
    pub fn live_run_all_cpus(&mut self, packets: u32) -> Vec<f64> {
        let _ = self.prog_fd("lb_bench_restore");
        let data = self.frame();
        let (ifindex, cpus) = (self.ifindex, self.cpus.clone());
        let prog: &Xdp = self.xdp("lb_bench_restore");
        let start = std::sync::Barrier::new(cpus.len());
        std::thread::scope(|scope| {
            let runs: Vec<_> = cpus
                .iter()
                .map(|&cpu| {
                    let start = &start;
                    scope.spawn(move || {
                        lb_tests::pin_to_cpu(cpu);
                        start.wait();
                        live_frames(prog, &data, ifindex, packets, BATCH).as_nanos() as f64
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        })
    }

    /// What the verifier made of the balancer: `bpftool prog dump xlated`
    /// of `lb_balance`, its instructions and memory loads by width.
    pub fn xlated(&mut self) -> Result<Xlated, String> {
        let id = self
            .xdp("lb_balance")
            .info()
            .map_err(|e| format!("program info: {e}"))?
            .id();
        let out = std::process::Command::new("bpftool")
            .args(["prog", "dump", "xlated", "id", &id.to_string()])
            .output()
            .map_err(|e| format!("bpftool: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "bpftool prog dump xlated: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Xlated::count(&String::from_utf8_lossy(&out.stdout)))
    }

    pub fn stats(&self) -> Stats {
        self.lb.dp.stats().unwrap()
    }

    /// One run of `packets` driven as `how`: ns per packet, after checking
    /// that every packet moved each expected counter by one.
    pub fn sample(&mut self, how: &How, packets: u32) -> f64 {
        let before = self.stats();
        let mut per_packet = u64::from(packets);
        let (ns, counters) = match how {
            How::Live(counters) | How::Flood(counters) => (self.live_run(packets), *counters),
            How::AllCpus(counters) => {
                let each = self.live_run_all_cpus(packets);
                per_packet *= each.len() as u64;
                (each.iter().sum::<f64>() / each.len() as f64, *counters)
            }
            How::Plain {
                program,
                data,
                counters,
            } => {
                let _ = self.prog_fd(program);
                let r = self
                    .xdp(program)
                    .test_run(TestRunOptions {
                        data_in: Some(data),
                        repeat: packets,
                        ..Default::default()
                    })
                    .expect("test run");
                (r.duration.as_nanos() as f64, *counters)
            }
        };
        let after = self.stats();
        let met_again = match how {
            How::Flood(_) => after.get(Counter::ConnHit) - before.get(Counter::ConnHit),
            _ => 0,
        };
        assert!(
            met_again <= FLOOD_REMEMBERED,
            "{}: {met_again} packets of a flood of new flows hit the table",
            self.label
        );
        for &c in counters {
            let mut delta = after.get(c) - before.get(c);
            if c == Counter::ConnMiss {
                delta += met_again;
            }
            assert_eq!(
                delta,
                per_packet,
                "{}: counter {} moved {delta} for {per_packet} packets",
                self.label,
                c.name()
            );
        }
        ns
    }
}

/// Instruction counts of a verified program (see [`Side::xlated`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct Xlated {
    pub insns: usize,
    /// Loads from memory of 1, 2, 4 and 8 bytes.
    pub loads: [usize; 4],
    pub calls: usize,
}

impl Xlated {
    /// Counts in bpftool's text: one instruction per numbered line (a
    /// 16-byte `ld_imm64` is one line), a load is `= *(uN *)`.
    fn count(text: &str) -> Self {
        let mut x = Xlated::default();
        for line in text.lines() {
            let Some((num, rest)) = line.trim_start().split_once(": (") else {
                continue;
            };
            if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            x.insns += 1;
            for (i, width) in ["u8", "u16", "u32", "u64"].iter().enumerate() {
                if rest.contains(&format!("= *({width} *)")) {
                    x.loads[i] += 1;
                }
            }
            if rest.contains(") call ") {
                x.calls += 1;
            }
        }
        x
    }
}
