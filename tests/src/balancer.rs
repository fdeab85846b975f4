//! A balancer loaded into the kernel for tests: named test addresses, VIPs
//! and reals filled through lb-ctl's data-plane API with Maglev rings, and
//! packets run through the real program with BPF_PROG_TEST_RUN.
use std::net::IpAddr;

use aya::programs::{TestRun as _, TestRunOptions};
use lb_common::{
    config::{CONFIG_F_ICMP_ECHO, CONFIG_F_ICMP_TOO_BIG, Config, MAC_MODE_GATEWAY},
    hash::flow_hash,
    maps::{FlowKey, REAL_STATE_UP, Real, VipKey, VipMeta},
};
use lb_ctl::{
    dataplane::{Dataplane, DataplaneError, LoadOptions},
    maglev::{self, Member, RingSize},
};

use crate::packet::LB_MAC;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The router's MAC: where encapsulated packets go in gateway mode.
pub const ROUTER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0xfe];
/// The LB host's outer source addresses.
pub const LB_SRC_V4: &str = "192.0.2.254";
pub const LB_SRC_V6: &str = "2001:db8:ffff::254";
/// The MTU fixtures run with.
pub const TEST_MTU: u16 = 1500;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The config fixtures run with: gateway MACs, both source families,
/// MTU 1500, ICMP echo and too-big answers on.
pub fn test_config() -> Config {
    let mut cfg = Config {
        gateway_mac: ROUTER_MAC,
        iface_mac: LB_MAC,
        mtu: TEST_MTU,
        mac_mode: MAC_MODE_GATEWAY,
        flags: CONFIG_F_ICMP_ECHO | CONFIG_F_ICMP_TOO_BIG,
        gue_port: lb_common::config::DEFAULT_GUE_PORT,
        quic_cid_len: lb_common::config::DEFAULT_QUIC_CID_LEN,
        quic_id_offset: lb_common::config::DEFAULT_QUIC_ID_OFFSET,
        quic_id_len: lb_common::config::DEFAULT_QUIC_ID_LEN,
        ..Default::default()
    };
    if let IpAddr::V4(a) = ip(LB_SRC_V4) {
        cfg.src_v4 = a.octets();
    }
    if let IpAddr::V6(a) = ip(LB_SRC_V6) {
        cfg.src_v6 = a.octets();
    }
    cfg
}

/// Real `id` at `addr`, weight 1.
pub fn test_real(id: u32, addr: &str) -> TestReal {
    TestReal {
        id,
        addr: ip(addr),
        weight: 1,
    }
}

/// A real of a test VIP: its data-plane id, address and Maglev weight.
#[derive(Clone, Copy, Debug)]
pub struct TestReal {
    pub id: u32,
    pub addr: IpAddr,
    pub weight: u32,
}

/// The outcome of one run of the program.
#[derive(Debug)]
pub struct RunResult {
    pub verdict: u32,
    pub output: Vec<u8>,
}

/// The balancer in the kernel, with the ring of every VIP as built here.
pub struct TestBalancer {
    pub dp: Dataplane,
    next_vip_id: u32,
}

impl TestBalancer {
    /// Loads the balancer with connection tables of `conn_table_size`
    /// (each family) and [`test_config`].
    pub fn new(conn_table_size: u32) -> Self {
        Self::with_options(&LoadOptions {
            conn_table_size,
            conn_table_size_v6: conn_table_size,
            pin_dir: None,
            ..LoadOptions::default()
        })
    }

    /// Loads the balancer with `opts` and [`test_config`].
    pub fn with_options(opts: &LoadOptions) -> Self {
        Self::try_with_options(opts).expect("load the balancer")
    }

    /// As [`Self::with_options`], returning the load's error.
    pub fn try_with_options(opts: &LoadOptions) -> Result<Self, DataplaneError> {
        let mut dp = Dataplane::load(opts)?;
        dp.set_config(&test_config())?;
        Ok(TestBalancer { dp, next_vip_id: 0 })
    }

    /// Adds a VIP with `reals` (ids chosen by the caller, slots written
    /// here) and a Maglev ring of `ring_size`; returns its VIP id.
    pub fn add_vip(
        &mut self,
        addr: &str,
        port: u16,
        proto: u8,
        reals: &[TestReal],
        ring_size: u32,
    ) -> u32 {
        self.add_vip_with_flags(addr, port, proto, reals, ring_size, 0)
    }

    /// [`TestBalancer::add_vip`] with `VIP_F_*` flags.
    pub fn add_vip_with_flags(
        &mut self,
        addr: &str,
        port: u16,
        proto: u8,
        reals: &[TestReal],
        ring_size: u32,
        flags: u32,
    ) -> u32 {
        let vip_id = self.next_vip_id;
        self.next_vip_id += 1;
        for r in reals {
            // Each slot names its VIP, as lb-ctl's are (QUIC routing
            // checks it).
            let real = Real {
                vip_id,
                ..Real::new(r.addr, REAL_STATE_UP, 1)
            };
            self.dp.set_real(r.id, &real).expect("real");
        }
        self.set_ring(vip_id, reals, ring_size);
        self.dp
            .set_vip(
                VipKey::new(ip(addr), port, proto),
                VipMeta {
                    vip_id,
                    ring_size,
                    flags,
                    generation: 0,
                },
            )
            .expect("vip");
        vip_id
    }

    /// Sends real `id`'s packets in GUE (as lb-ctl does for a VIP or real
    /// with `encap = "gue"`).
    pub fn set_gue(&mut self, id: u32) {
        let mut real = self.dp.real(id).expect("real");
        real.flags |= lb_common::maps::REAL_F_GUE;
        self.dp.set_real(id, &real).expect("real");
    }

    /// Rebuilds VIP `vip_id`'s ring from `reals` and writes it.
    pub fn set_ring(&mut self, vip_id: u32, reals: &[TestReal], ring_size: u32) -> Vec<u32> {
        let slots = maglev_ring(reals, ring_size);
        self.dp.set_ring(vip_id, &slots).expect("ring");
        slots
    }

    /// Runs `input` through the balancer once.
    pub fn run(&mut self, input: &[u8]) -> RunResult {
        self.run_from(input, None)
    }

    /// Runs `input` through the balancer once as if it arrived on interface
    /// `ifindex` (of the calling thread's namespace), if given.
    pub fn run_from(&mut self, input: &[u8], ifindex: Option<u32>) -> RunResult {
        let mut output = vec![0u8; input.len() + 512];
        let md = ifindex.map(|i| xdp_md(input.len(), i));
        let result = self
            .dp
            .program()
            .test_run(TestRunOptions {
                data_in: Some(input),
                data_out: Some(&mut output),
                ctx_in: md.as_ref().map(|m| &m[..]),
                ..Default::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        output.truncate(result.data_size_out as usize);
        RunResult {
            verdict: result.return_value,
            output,
        }
    }
}

/// An `xdp_md` for BPF_PROG_TEST_RUN: a packet of `len` bytes arriving on
/// `ifindex`, queue 0.
pub fn xdp_md(len: usize, ifindex: u32) -> [u8; 24] {
    let mut md = [0u8; 24];
    md[4..8].copy_from_slice(&(len as u32).to_ne_bytes()); // data_end
    md[12..16].copy_from_slice(&ifindex.to_ne_bytes()); // ingress_ifindex
    md
}

/// One BPF_PROG_TEST_RUN of `prog` with live frames: `frame` run `repeat`
/// times in batches of `batch`, as if it arrived on `ifindex` (in the
/// calling thread's namespace; what the program transmits goes out there).
/// The kernel's measured duration.
pub fn live_frames(
    prog: &aya::programs::Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
    batch: u32,
) -> std::time::Duration {
    use aya::programs::{TestRun as _, TestRunAttrs, TestRunOptions};
    let md = xdp_md(frame.len(), ifindex);
    prog.test_run(TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&md),
        repeat,
        attrs: TestRunAttrs::new().xdp_live_frames(batch),
        ..Default::default()
    })
    .expect("live-frames test run")
    .duration
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).expect("interface name");
    // SAFETY: a valid C string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert!(i != 0, "no interface {name}");
    i
}

/// The ring (real ids by slot) Maglev builds for `reals`.
pub fn maglev_ring(reals: &[TestReal], ring_size: u32) -> Vec<u32> {
    let ids: Vec<Vec<u8>> = reals.iter().map(|r| maglev::identity(&r.addr)).collect();
    let members: Vec<Member<'_>> = ids
        .iter()
        .zip(reals)
        .map(|(id, r)| Member {
            identity: id,
            weight: r.weight,
        })
        .collect();
    let table = maglev::build(RingSize::new(ring_size).expect("prime"), &members).expect("maglev");
    let real_ids: Vec<u32> = reals.iter().map(|r| r.id).collect();
    table.map_ids(&real_ids, lb_common::NO_REAL)
}

/// The real id user space predicts the kernel picks for a new flow.
pub fn predict(ring: &[u32], flow: &FlowKey) -> u32 {
    ring[(flow_hash(flow) % ring.len() as u32) as usize]
}

/// A small deterministic PRNG (xorshift64*) for random flows.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A random client address in 198.51.100.0/24 or 2001:db8:c::/48 and a
    /// random port.
    pub fn client(&mut self, v6: bool) -> (IpAddr, u16) {
        let r = self.next_u64();
        let port = 1024 + (r >> 48) as u16 % 60000;
        let addr = if v6 {
            IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001,
                0xdb8,
                0xc,
                0,
                (r >> 32) as u16,
                (r >> 16) as u16,
                r as u16,
                (r >> 40) as u16,
            ))
        } else {
            IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, (r % 254) as u8 + 1))
        };
        (addr, port)
    }
}

/// The outer source of an encapsulated frame (no VLAN tag).
pub fn outer_src(frame: &[u8]) -> Option<IpAddr> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    match ethertype {
        0x0800 => {
            let b: [u8; 4] = frame.get(26..30)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        0x86dd => {
            let b: [u8; 16] = frame.get(22..38)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

/// The outer destination of an encapsulated frame (no VLAN tag).
pub fn outer_dst(frame: &[u8]) -> Option<IpAddr> {
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    match ethertype {
        0x0800 => {
            let b: [u8; 4] = frame.get(30..34)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        0x86dd => {
            let b: [u8; 16] = frame.get(38..54)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}
