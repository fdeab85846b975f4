//! The UDP generator: BPF_PROG_TEST_RUN with live frames on the
//! generator's veth (`lb_bench_restore` writes the frame, `lb_bench_tx`
//! transmits it), from a thread pinned to the generator's core.
//!
//! Why not trafgen (Debian `netsniff-ng`): it sends socket buffers. A veth
//! with XDP copies such a buffer into an XDP buffer (`veth_xdp_rcv_skb`,
//! `skb_copy_header`, `sock_wfree`: what led the forwarding core's profile
//! in a first version of this bench), which a NIC never does; and with its
//! default qdisc bypass trafgen exits at once on this kernel's veth, which
//! pushes back (EAGAIN). Live frames arrive at the forwarder's veth as XDP
//! frames, as from a NIC's ring, and a full ring drops them: the
//! generator's work stays on its own core.
use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::{
    Ebpf,
    maps::{Array, ProgramArray},
    programs::Xdp,
};
use lb_common::bench::{BENCH_FRAME_LEN, BenchFrame, VARY_FIX_IPV4_CHECKSUM, VARY_FLOWS};
use lb_tests::{
    balancer::{ifindex, live_frames},
    packet::{Packet, bench_frame},
};

use crate::net::GEN_IFACE;

/// Frames per test run call, and per batch.
const PER_CALL: u32 = 200_000;
const BATCH: u32 = 64;
/// The generator's bound: it stops at this age even if not told to.
const MAX_AGE: Duration = Duration::from_secs(60);

/// The frame: Ethernet to `dst_mac`, IPv4 `src` to `dst`, UDP `sport` to
/// `dport`, padded to the template's size, with UDP checksum 0 ("none":
/// the generator varies the ports; it recomputes the IPv4 checksum).
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> [u8; BENCH_FRAME_LEN] {
    let mut p = Packet::udp(src.into(), sport, dst.into(), dport);
    p.eth_dst = dst_mac;
    p.eth_src = src_mac;
    let mut f = bench_frame(&p);
    // Ethernet 14 + IPv4 20, then the UDP header's checksum at 6.
    f[14 + 20 + 6..14 + 20 + 8].fill(0);
    f
}

pub struct Generator {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    handle: JoinHandle<()>,
}

impl Generator {
    /// Starts sending `frame` from [`GEN_IFACE`] of namespace `ns`, on `cpu`;
    /// `flows`: 0 for a new flow every frame (24-bit sequence), else that
    /// many (a power of two), repeated.
    pub fn start(ns: &str, cpu: u32, frame: [u8; BENCH_FRAME_LEN], flows: u32) -> Generator {
        assert!(
            flows == 0 || flows.is_power_of_two(),
            "flows: a power of two"
        );
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (ns, s, n) = (ns.to_string(), stop.clone(), sent.clone());
        let handle = std::thread::spawn(move || {
            lb_tests::netns::run_in(&ns, || send(cpu, frame, flows, &s, &n));
        });
        Generator { stop, sent, handle }
    }

    /// Frames sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Stops and waits; panics if the generator failed.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Err(e) = self.handle.join() {
            std::panic::resume_unwind(e);
        }
    }
}

fn send(cpu: u32, frame: [u8; BENCH_FRAME_LEN], flows: u32, stop: &AtomicBool, sent: &AtomicU64) {
    lb_tests::pin_to_cpu(cpu);
    let mut ebpf = Ebpf::load(lb_ctl::programs::OBJECT).expect("load the bench object");
    let tx: &mut Xdp = ebpf.program_mut("lb_bench_tx").unwrap().try_into().unwrap();
    tx.load().expect("load lb_bench_tx");
    let tx_fd = tx.fd().unwrap().try_clone().unwrap();
    ProgramArray::try_from(ebpf.map_mut("LB_BENCH_JUMP").unwrap())
        .unwrap()
        .set(0, &tx_fd, 0)
        .expect("jump to lb_bench_tx");
    let template = BenchFrame::varying(&frame, VARY_FLOWS | VARY_FIX_IPV4_CHECKSUM, flows);
    Array::<_, BenchFrame>::try_from(ebpf.map_mut("LB_BENCH_FRAME").unwrap())
        .unwrap()
        .set(0, template, 0)
        .unwrap();
    let restore: &mut Xdp = ebpf
        .program_mut("lb_bench_restore")
        .unwrap()
        .try_into()
        .unwrap();
    restore.load().expect("load lb_bench_restore");
    let ifindex = ifindex(GEN_IFACE);
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) && start.elapsed() < MAX_AGE {
        live_frames(restore, &frame, ifindex, PER_CALL, BATCH);
        sent.fetch_add(u64::from(PER_CALL), Ordering::Relaxed);
    }
}
