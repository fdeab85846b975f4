//! The foundation: the embedded XDP object loads into the real kernel, runs
//! under BPF_PROG_TEST_RUN, and passes traffic when attached to a veth in a
//! namespace.
use std::net::IpAddr;

use aya::{
    maps::PerCpuArray,
    programs::{TestRun as _, TestRunOptions},
};
use lb_ctl::programs::{self, AttachMode, Program};
use lb_tests::{
    netns::{self, Netns},
    packet::{Packet, TCP_SYN},
    require_root,
};

const XDP_PASS: u32 = 2;

fn pass_count(ebpf: &aya::Ebpf) -> u64 {
    let map = ebpf.map("PASS_PACKETS").expect("PASS_PACKETS map");
    let counts = PerCpuArray::<_, u64>::try_from(map).expect("per-CPU array");
    counts.get(&0, 0).expect("read counter").iter().sum()
}

#[test]
fn every_program_passes_the_verifier() {
    if !require_root("every_program_passes_the_verifier") {
        return;
    }
    for program in Program::ALL {
        let mut ebpf = programs::open_for(program).expect("open object");
        programs::load(&mut ebpf, program).unwrap_or_else(|e| panic!("{program}: {e:?}"));
    }
    let mut ebpf = programs::open().expect("open object");
    // And every other program in the object (the benchmark harness's).
    let mut loaded = 0;
    for (name, program) in ebpf.programs_mut() {
        let xdp: &mut aya::programs::Xdp = program.try_into().expect("only XDP programs");
        if xdp.fd().is_err() {
            xdp.load().unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
        loaded += 1;
    }
    assert!(
        loaded >= 6,
        "balancer, pass and the benchmark programs: {loaded}"
    );
}

#[test]
fn pass_program_returns_pass_and_leaves_bytes_alone() {
    if !require_root("pass_program_returns_pass_and_leaves_bytes_alone") {
        return;
    }
    let mut ebpf = programs::open().expect("open object");
    let xdp = programs::load(&mut ebpf, Program::Pass).expect("load");
    let src: IpAddr = "198.51.100.7".parse().unwrap();
    let dst: IpAddr = "203.0.113.10".parse().unwrap();
    let input = Packet::tcp(src, 40000, dst, 80, TCP_SYN).bytes();
    let mut output = vec![0u8; input.len() + 256];
    let result = xdp
        .test_run(TestRunOptions {
            data_in: Some(&input),
            data_out: Some(&mut output),
            ..Default::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    assert_eq!(result.return_value, XDP_PASS);
    assert_eq!(&output[..result.data_size_out as usize], &input[..]);
    assert_eq!(pass_count(&ebpf), 1, "the program counted the one packet");
}

#[test]
fn pass_program_attached_to_veth_lets_traffic_through() {
    if !require_root("pass_program_attached_to_veth_lets_traffic_through") {
        return;
    }
    ping_through_pass_program(AttachMode::Native);
}

#[test]
fn generic_and_auto_xdp_modes_attach_too() {
    if !require_root("generic_and_auto_xdp_modes_attach_too") {
        return;
    }
    ping_through_pass_program(AttachMode::Generic);
    ping_through_pass_program(AttachMode::Auto);
}

/// Attaches the pass program to a veth end in `mode` and pings through it.
fn ping_through_pass_program(mode: AttachMode) {
    let client = Netns::new("cli");
    let server = Netns::new("srv");
    let tag = netns::unique_tag();
    let (c_if, s_if) = (format!("c{tag}"), format!("s{tag}"));
    netns::veth(&client, &c_if, &server, &s_if);
    client.ip(&["addr", "add", "192.0.2.1/24", "dev", &c_if]);
    server.ip(&["addr", "add", "192.0.2.2/24", "dev", &s_if]);

    // Attach inside the server namespace; the Ebpf object keeps the link.
    let ebpf = server.run(|| {
        let mut ebpf = programs::open().expect("open object");
        let xdp = programs::load(&mut ebpf, Program::Pass).expect("load");
        xdp.attach(&s_if, mode.into()).expect("attach XDP to veth");
        ebpf
    });
    let link = String::from_utf8(server.ip(&["link", "show", &s_if]).stdout).unwrap();
    assert!(
        link.contains("xdp"),
        "interface shows an XDP program: {link}"
    );

    let ping = client
        .command("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "1", "192.0.2.2"])
        .output()
        .expect("run ping");
    assert!(
        ping.status.success(),
        "ping through XDP: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    // Each echo request (and the ARP exchange) crossed the program.
    assert!(
        pass_count(&ebpf) >= 3,
        "program saw the pings: {}",
        pass_count(&ebpf)
    );
    drop(ebpf);
}
