//! Pinned maps: bpftool prints them with named fields (BTF), and a second
//! load adopts them (VIPs, rings, connections) instead of starting empty.
use std::{path::PathBuf, process::Command};

use lb_common::{PROTO_TCP, maps::FlowKey};
use lb_ctl::dataplane::{Dataplane, LoadOptions};
use lb_tests::{
    balancer::{TestBalancer, TestReal, XDP_TX, ip},
    netns::unique_tag,
    packet::{Packet, TCP_SYN},
    require_root,
};

/// A bpffs directory removed on drop.
struct PinDir(PathBuf);

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn bpftool_dump(path: &std::path::Path) -> String {
    let out = Command::new("bpftool")
        .args(["map", "dump", "pinned"])
        .arg(path)
        .output()
        .expect("run bpftool (cargo xtask setup installs it)");
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn pinned_maps_show_named_fields_and_are_adopted_on_reload() {
    if !require_root("pinned_maps_show_named_fields_and_are_adopted_on_reload") {
        return;
    }
    let pins = PinDir(PathBuf::from(format!("/sys/fs/bpf/lbt-{}", unique_tag())));
    let opts = LoadOptions {
        conn_table_size: 1024,
        pin_dir: Some(pins.0.clone()),
    };
    let real = TestReal {
        id: 1,
        addr: ip("198.51.100.101"),
        weight: 1,
    };
    let flow = FlowKey::new(
        ip("198.51.100.7"),
        40_000,
        ip("203.0.113.10"),
        80,
        PROTO_TCP,
    );
    {
        let mut lb = TestBalancer::with_options(&opts);
        lb.add_vip("203.0.113.10", 80, PROTO_TCP, &[real], 13);
        let p = Packet::tcp(ip("198.51.100.7"), 40_000, ip("203.0.113.10"), 80, TCP_SYN);
        assert_eq!(lb.run(&p.bytes()).verdict, XDP_TX);
    }
    // bpftool prints the VIP with field names (BTF), not hex.
    let vips = bpftool_dump(&pins.0.join("LB_VIPS"));
    for field in [
        "\"port\": 80",
        "\"proto\": 6",
        "\"vip_id\": 0",
        "\"ring_size\": 13",
    ] {
        assert!(vips.contains(field), "bpftool shows {field}: {vips}");
    }
    let stats = bpftool_dump(&pins.0.join("LB_STATS"));
    assert!(stats.contains("\"conn_miss\""), "counters by name: {stats}");

    // A second load adopts the pinned maps: the VIP, its ring and the
    // connection are still there.
    let dp = Dataplane::load(&opts).expect("reload pinned");
    assert_eq!(dp.vips().unwrap().len(), 1);
    assert_eq!(dp.ring(0).unwrap(), vec![1; 13], "ring adopted");
    assert_eq!(
        dp.conn(&flow).unwrap().map(|c| c.real_id),
        Some(1),
        "connection kept"
    );
    assert_eq!(dp.stats().unwrap().conn_miss, 1, "counters kept");
}
