//! Pinned maps: bpftool prints them with named fields (BTF), and a second
//! load adopts them (VIPs, rings, connections) instead of starting empty,
//! unless they have another layout (another lb-ctl version, another
//! connection table size): then they are created afresh.
use std::{path::PathBuf, process::Command};

use aya::maps::{HashMap, Map, MapData, MapInfo};
use lb_common::{
    PROTO_TCP,
    maps::{Conn, FlowKey, names},
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
/// 1024-entry connection tables.
fn pinned_options() -> (PinDir, LoadOptions) {
    let pins = PinDir(PathBuf::from(format!("/sys/fs/bpf/lbt-{}", unique_tag())));
    let opts = LoadOptions {
        conn_table_size: 1024,
        conn_table_size_v6: 1024,
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

/// The flows [`pinned_with_connections`] leaves in the tables.
struct Flows {
    v4: FlowKey,
    v6: FlowKey,
}

/// Loads a balancer pinned under `pins` with an IPv4 and an IPv6 VIP (ids 0
/// and 1, rings of 13 slots on real 1 and 2) and one connection to each.
fn pinned_with_connections(opts: &LoadOptions) -> Flows {
    let reals = [
        TestReal {
            id: 1,
            addr: ip("198.51.100.101"),
            weight: 1,
        },
        TestReal {
            id: 2,
            addr: ip("2001:db8:1::101"),
            weight: 1,
        },
    ];
    let mut lb = TestBalancer::with_options(opts);
    lb.add_vip("203.0.113.10", 80, PROTO_TCP, &reals[..1], 13);
    lb.add_vip("2001:db8::10", 80, PROTO_TCP, &reals[1..], 13);
    let mut flows = Vec::new();
    for (client, vip) in [
        ("198.51.100.7", "203.0.113.10"),
        ("2001:db8:c::7", "2001:db8::10"),
    ] {
        let p = Packet::tcp(ip(client), 40_000, ip(vip), 80, TCP_SYN);
        assert_eq!(lb.run(&p.bytes()).verdict, XDP_TX, "{client} -> {vip}");
        let flow = FlowKey::new(ip(client), 40_000, ip(vip), 80, PROTO_TCP);
        assert!(lb.dp.conn(&flow).unwrap().is_some(), "{client} -> {vip}");
        flows.push(flow);
    }
    let counts = lb.dp.conn_counts();
    assert_eq!(
        (counts.v4, counts.v6),
        (1, 1),
        "one flow in each family's table"
    );
    Flows {
        v4: flows[0],
        v6: flows[1],
    }
}

/// Pins, at `path`, a map that lb never made: another value size.
fn pin_foreign_map(path: &std::path::Path, kind: &str, name: &str) {
    pin_map(path, kind, ["4", "8", "1"], name);
}

/// Pins, at `path`, a map of `kind` with [key size, value size, entries].
fn pin_map(path: &std::path::Path, kind: &str, sizes: [&str; 3], name: &str) {
    let _ = std::fs::remove_file(path);
    let [key, value, entries] = sizes;
    let out = Command::new("bpftool")
        .args(["map", "create"])
        .arg(path)
        .args([
            "type", kind, "key", key, "value", value, "entries", entries, "name", name,
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
fn a_new_conn_table_size_replaces_only_that_familys_connection_table() {
    if !require_root("a_new_conn_table_size_replaces_only_that_familys_connection_table") {
        return;
    }
    let (pins, mut opts) = pinned_options();
    let flows = pinned_with_connections(&opts);
    opts.conn_table_size = 2048;
    let dp = Dataplane::load(&opts).expect("reload with another IPv4 table size");
    assert_eq!(replaced_names(&dp), vec![names::CONNS_V4]);
    assert!(
        dp.replaced_pins()[0].why.contains("entries 1024, now 2048"),
        "{:?}",
        dp.replaced_pins()
    );
    let info = MapInfo::from_pin(pins.0.join(names::CONNS_V4)).unwrap();
    assert_eq!(info.max_entries(), 2048, "the new table is pinned");
    assert_eq!(dp.conn(&flows.v4).unwrap(), None, "a new, empty table");
    assert!(dp.conn(&flows.v6).unwrap().is_some(), "IPv6 table adopted");
    assert_eq!(dp.ring(0).unwrap(), vec![1; 13], "the VIP state adopted");
    drop(dp);

    opts.conn_table_size_v6 = 4096;
    let dp = Dataplane::load(&opts).expect("reload with another IPv6 table size");
    assert_eq!(replaced_names(&dp), vec![names::CONNS_V6]);
    let info = MapInfo::from_pin(pins.0.join(names::CONNS_V6)).unwrap();
    assert_eq!(info.max_entries(), 4096);
    assert_eq!(dp.conn(&flows.v6).unwrap(), None);
    assert_eq!(dp.ring(1).unwrap(), vec![2; 13], "the VIP state adopted");
}

/// Pins an earlier version's connection table (`LB_CONNS`: flow key of 40
/// bytes -> connection of 16, both families) under `pins` holding `flows`.
fn pin_retired_conns(pins: &std::path::Path, flows: &[(FlowKey, Conn)]) -> PathBuf {
    let path = pins.join(names::RETIRED_CONNS);
    pin_map(
        &path,
        "lru_hash",
        ["40", "16", "1024"],
        names::RETIRED_CONNS,
    );
    let map = Map::from_map_data(MapData::from_pin(&path).unwrap()).unwrap();
    let mut table: HashMap<_, FlowKey, Conn> = HashMap::try_from(map).unwrap();
    for (flow, conn) in flows {
        table.insert(flow, conn, 0).unwrap();
    }
    path
}

#[test]
fn an_upgrade_carries_the_earlier_connection_table_over_and_unpins_it() {
    if !require_root("an_upgrade_carries_the_earlier_connection_table_over_and_unpins_it") {
        return;
    }
    let (pins, opts) = pinned_options();
    let flows = pinned_with_connections(&opts);
    let dp = Dataplane::load(&opts).expect("reload");
    // Flows of either family, as the earlier version remembered them.
    let mut earlier = Vec::new();
    for flow in [flows.v4, flows.v6] {
        let conn = dp.conn(&flow).unwrap().expect("remembered");
        let other = FlowKey {
            sport: 50_000,
            ..flow
        };
        earlier.push((other, conn));
    }
    drop(dp);
    // And one of no known family, which is not carried.
    let (other, conn) = earlier[0];
    let unknown = FlowKey {
        family: 9,
        sport: 50_001,
        ..other
    };
    let retired = pin_retired_conns(&pins.0, &[earlier[0], earlier[1], (unknown, conn)]);
    let dp = Dataplane::load(&opts).expect("reload over an earlier version's pins");
    assert_eq!(replaced_names(&dp), vec![names::RETIRED_CONNS]);
    assert!(
        dp.replaced_pins()[0].why.contains("no longer used"),
        "{:?}",
        dp.replaced_pins()
    );
    assert!(!retired.exists(), "the retired table is unpinned");
    for (flow, conn) in &earlier {
        assert_eq!(dp.conn(flow).unwrap(), Some(*conn), "carried over");
    }
    assert!(dp.conn(&flows.v4).unwrap().is_some(), "the rest is adopted");
    assert!(dp.conn(&flows.v6).unwrap().is_some());
    let counts = dp.conn_counts();
    assert_eq!((counts.v4, counts.v6), (2, 2));
    drop(dp);
    let dp = Dataplane::load(&opts).expect("a load without it");
    assert!(dp.replaced_pins().is_empty(), "{:?}", dp.replaced_pins());
    drop(dp);

    // With VIP state of another layout, the ids the old flows name mean
    // nothing: none is carried.
    pin_retired_conns(&pins.0, &earlier);
    pin_foreign_map(&pins.0.join(names::REALS), "array", "LB_REALS");
    let dp = Dataplane::load(&opts).expect("reload");
    assert!(replaced_names(&dp).contains(&names::RETIRED_CONNS));
    assert_eq!(dp.conn_counts().total(), 0, "nothing carried");
}

#[test]
fn a_new_max_reals_replaces_the_real_table_with_the_vip_state() {
    if !require_root("a_new_max_reals_replaces_the_real_table_with_the_vip_state") {
        return;
    }
    let (pins, mut opts) = pinned_options();
    let flow = pinned_with_connections(&opts).v4;
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
    let flow = pinned_with_connections(&opts).v4;
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
    let flows = pinned_with_connections(&opts);
    pin_foreign_map(&pins.0.join(names::REALS), "array", "LB_REALS");
    let dp = Dataplane::load(&opts).expect("reload");
    let mut expected = vec![
        names::VIPS,
        names::VIP_ADDRS,
        names::VIP_FILTER,
        names::VIP_GENS,
        names::REALS,
        names::RINGS,
        names::CONNS_V4,
        names::CONNS_V6,
    ];
    expected.sort_unstable();
    assert_eq!(replaced_names(&dp), expected);
    assert!(dp.vips().unwrap().is_empty(), "the VIP state starts empty");
    assert_eq!(
        dp.conn(&flows.v4).unwrap(),
        None,
        "and so do the connections"
    );
    assert_eq!(dp.conn(&flows.v6).unwrap(), None);
    assert_eq!(dp.stats().unwrap().conn_miss, 2, "counters adopted");
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
