//! Pinned maps: bpftool prints them with named fields (BTF), and a second
//! load adopts them (VIPs, rings, connections) instead of starting empty,
//! unless they have another layout (another lb-ctl version, another
//! connection table size): then they are created afresh.
use std::{path::PathBuf, process::Command};

use aya::maps::MapInfo;
use lb_common::{
    PROTO_TCP,
    maps::{FlowKey, names},
};
use lb_ctl::{
    dataplane::{Dataplane, LoadOptions},
    decap::Decapsulator,
};
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

/// A fresh pin directory (removed on drop) and options that pin there, with
/// a 1024-entry connection table.
fn pinned_options() -> (PinDir, LoadOptions) {
    let pins = PinDir(PathBuf::from(format!("/sys/fs/bpf/lbt-{}", unique_tag())));
    let opts = LoadOptions {
        conn_table_size: 1024,
        pin_dir: Some(pins.0.clone()),
        ..LoadOptions::default()
    };
    (pins, opts)
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
    let (pins, opts) = pinned_options();
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
    assert!(dp.replaced_pins().is_empty(), "{:?}", dp.replaced_pins());
}

/// Loads a balancer pinned under `pins` with one VIP (ring of 13 slots on
/// real 1) and one connection; returns that connection's flow.
fn pinned_with_a_connection(opts: &LoadOptions) -> FlowKey {
    let real = TestReal {
        id: 1,
        addr: ip("198.51.100.101"),
        weight: 1,
    };
    let mut lb = TestBalancer::with_options(opts);
    lb.add_vip("203.0.113.10", 80, PROTO_TCP, &[real], 13);
    let p = Packet::tcp(ip("198.51.100.7"), 40_000, ip("203.0.113.10"), 80, TCP_SYN);
    assert_eq!(lb.run(&p.bytes()).verdict, XDP_TX);
    let flow = FlowKey::new(
        ip("198.51.100.7"),
        40_000,
        ip("203.0.113.10"),
        80,
        PROTO_TCP,
    );
    assert!(lb.dp.conn(&flow).unwrap().is_some());
    flow
}

/// Pins, at `path`, a map that lb never made: another value size.
fn pin_foreign_map(path: &std::path::Path, kind: &str, name: &str) {
    let _ = std::fs::remove_file(path);
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args([
            "type", kind, "key", "4", "value", "8", "entries", "1", "name", name,
        ])
        .output()
        .expect("run bpftool");
    assert!(
        out.status.success(),
        "bpftool map create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn replaced_names(dp: &Dataplane) -> Vec<&'static str> {
    let mut n: Vec<_> = dp.replaced_pins().iter().map(|r| r.name).collect();
    n.sort_unstable();
    n
}

#[test]
fn a_new_conn_table_size_replaces_only_the_connection_table() {
    if !require_root("a_new_conn_table_size_replaces_only_the_connection_table") {
        return;
    }
    let (pins, mut opts) = pinned_options();
    let flow = pinned_with_a_connection(&opts);
    opts.conn_table_size = 2048;
    let dp = Dataplane::load(&opts).expect("reload with another table size");
    assert_eq!(replaced_names(&dp), vec![names::CONNS]);
    assert!(
        dp.replaced_pins()[0].why.contains("entries 1024, now 2048"),
        "{:?}",
        dp.replaced_pins()
    );
    let info = MapInfo::from_pin(pins.0.join(names::CONNS)).unwrap();
    assert_eq!(info.max_entries(), 2048, "the new table is pinned");
    assert_eq!(dp.conn(&flow).unwrap(), None, "a new, empty table");
    assert_eq!(dp.ring(0).unwrap(), vec![1; 13], "the VIP state adopted");
}

#[test]
fn a_new_max_reals_replaces_the_real_table_with_the_vip_state() {
    if !require_root("a_new_max_reals_replaces_the_real_table_with_the_vip_state") {
        return;
    }
    let (pins, mut opts) = pinned_options();
    let flow = pinned_with_a_connection(&opts);
    opts.max_reals = 131_072;
    let mut dp = Dataplane::load(&opts).expect("reload with a larger real table");
    let replaced = replaced_names(&dp);
    assert!(
        replaced.contains(&names::REALS) && replaced.contains(&names::REAL_STATS),
        "{replaced:?}"
    );
    // Real ids index the real table: its VIP state goes with it.
    assert!(replaced.contains(&names::VIPS), "{replaced:?}");
    assert_eq!(dp.conn(&flow).unwrap(), None);
    for name in [names::REALS, names::REAL_STATS] {
        let info = MapInfo::from_pin(pins.0.join(name)).unwrap();
        assert_eq!(info.max_entries(), 131_072, "{name} pinned at its new size");
    }
    // Ids up to the new size are written; the next is refused.
    let real = lb_common::maps::Real {
        family: lb_common::FAMILY_V4,
        ..Default::default()
    };
    assert_eq!(dp.max_reals(), 131_072);
    dp.set_real(100_000, &real)
        .expect("an id above the default table");
    let e = dp.set_real(131_072, &real).unwrap_err().to_string();
    assert!(e.contains("outside 1..131072"), "{e}");
}

#[test]
fn a_counter_map_of_another_layout_is_replaced_and_the_program_loads() {
    if !require_root("a_counter_map_of_another_layout_is_replaced_and_the_program_loads") {
        return;
    }
    let (pins, opts) = pinned_options();
    let flow = pinned_with_a_connection(&opts);
    // As an older lb-ctl with fewer counters would have left it.
    pin_foreign_map(&pins.0.join(names::STATS), "percpu_array", "LB_STATS");
    let mut lb = TestBalancer::with_options(&opts);
    assert_eq!(replaced_names(&lb.dp), vec![names::STATS]);
    assert!(
        lb.dp.replaced_pins()[0].why.contains("value size 8, now"),
        "{:?}",
        lb.dp.replaced_pins()
    );
    assert_eq!(
        lb.dp.conn(&flow).unwrap().map(|c| c.real_id),
        Some(1),
        "the connection table adopted"
    );
    let p = Packet::tcp(ip("198.51.100.7"), 40_000, ip("203.0.113.10"), 80, TCP_SYN);
    assert_eq!(lb.run(&p.bytes()).verdict, XDP_TX);
    assert_eq!(lb.dp.stats().unwrap().conn_hit, 1, "counting afresh");
}

#[test]
fn a_vip_map_of_another_layout_replaces_all_the_vip_state() {
    if !require_root("a_vip_map_of_another_layout_replaces_all_the_vip_state") {
        return;
    }
    let (pins, opts) = pinned_options();
    let flow = pinned_with_a_connection(&opts);
    pin_foreign_map(&pins.0.join(names::REALS), "array", "LB_REALS");
    let dp = Dataplane::load(&opts).expect("reload");
    let mut expected = vec![
        names::VIPS,
        names::VIP_ADDRS,
        names::VIP_FILTER,
        names::VIP_GENS,
        names::REALS,
        names::RINGS,
        names::CONNS,
    ];
    expected.sort_unstable();
    assert_eq!(replaced_names(&dp), expected);
    assert!(dp.vips().unwrap().is_empty(), "the VIP state starts empty");
    assert_eq!(dp.conn(&flow).unwrap(), None, "and so do the connections");
    assert_eq!(dp.stats().unwrap().conn_miss, 1, "counters adopted");
}

#[test]
fn the_decapsulator_replaces_a_pinned_map_of_another_layout_too() {
    if !require_root("the_decapsulator_replaces_a_pinned_map_of_another_layout_too") {
        return;
    }
    let (pins, _) = pinned_options();
    std::fs::create_dir_all(&pins.0).unwrap();
    let stats = pins.0.join(lb_common::decap::names::STATS);
    pin_foreign_map(&stats, "percpu_array", "LB_DECAP_STATS");
    let d = Decapsulator::load(Some(&pins.0)).expect("load over a foreign pin");
    assert_eq!(
        MapInfo::from_pin(&stats).unwrap().value_size() as usize,
        std::mem::size_of::<lb_common::decap::DecapStats>(),
        "the decapsulator's own counters are pinned now"
    );
    assert_eq!(d.stats().unwrap(), Default::default());
}
