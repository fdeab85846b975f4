//! docs/DATAPLANE.md stays in line with lb-common: every map has its row,
//! every shared struct is listed there with exactly its fields, and every
//! counter is named. The field lists below are checked against the structs
//! themselves (a field added, removed or renamed fails to compile or fails
//! the size check), so a change to a struct fails here until the document
//! follows.
use lb_common::{
    capture::CaptureMeta,
    config::Config,
    maps::{AddrKey, Conn, ConnRate, FlowKey, FlowKeyV4, Real, Traffic, VipKey, VipMeta, names},
    stats::Counter,
};

fn dataplane_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/DATAPLANE.md");
    std::fs::read_to_string(path).expect("docs/DATAPLANE.md")
}

/// The struct's name and its fields (padding left out), after checking
/// that the fields named are all of them.
macro_rules! fields {
    ($t:ident { $($f:ident),* $(,)? }) => {{
        let v = <$t>::default();
        let sum = 0 $(+ core::mem::size_of_val(&v.$f))*;
        assert_eq!(
            sum,
            core::mem::size_of::<$t>(),
            "the list of {}'s fields in this test is not complete",
            stringify!($t)
        );
        let names: Vec<&str> = vec![$(stringify!($f)),*];
        (
            stringify!($t),
            names.into_iter().filter(|n| !n.starts_with('_')).collect::<Vec<_>>(),
        )
    }};
}

#[test]
fn every_map_struct_and_counter_is_documented_as_it_is() {
    let doc = dataplane_md();
    for map in names::ALL {
        assert!(
            doc.contains(&format!("| `{map}` |")),
            "docs/DATAPLANE.md has no row for {map}"
        );
    }
    let structs = [
        fields!(VipKey {
            addr,
            port,
            proto,
            family
        }),
        fields!(VipMeta {
            vip_id,
            ring_size,
            flags,
            generation
        }),
        fields!(AddrKey { addr, family, _pad }),
        fields!(Real {
            addr,
            family,
            state,
            flags,
            _pad,
            generation,
            vip_id
        }),
        fields!(FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
            family,
            _pad
        }),
        fields!(FlowKeyV4 {
            src,
            dst,
            sport,
            dport,
            proto
        }),
        fields!(Conn {
            real_id,
            real_generation,
            vip_id,
            vip_generation
        }),
        fields!(ConnRate {
            window_start_ns,
            remembered,
            _pad
        }),
        fields!(Traffic { packets, bytes }),
        fields!(CaptureMeta {
            time_ns,
            action,
            reason,
            vip,
            real,
            len,
            caplen
        }),
        fields!(Config {
            src_v4,
            src_v6,
            gateway_mac,
            iface_mac,
            mtu,
            mac_mode,
            _pad,
            flags,
            max_conn_rate,
            src_v4_flow_bits,
            src_v6_flow_bits,
            gue_port,
            capture_sample,
            capture_verdicts,
            capture_vip,
            capture_real,
            capture_snaplen,
            quic_cid_len,
            quic_id_offset,
            quic_id_len,
            _pad3,
        }),
    ];
    for (name, fields) in structs {
        let want = format!("`{name} {{{}}}", fields.join(", "));
        assert!(
            doc.contains(&want),
            "docs/DATAPLANE.md should describe {name} as {want}`"
        );
    }
    for c in Counter::ALL {
        assert!(
            doc.contains(&format!("`{}`", c.name())),
            "docs/DATAPLANE.md does not name the counter {}",
            c.name()
        );
    }
}
