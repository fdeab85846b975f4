//! The balancer's counters as metric families. They are split by what they
//! count, so that a `sum()` over one family never counts a packet twice:
//! every packet has exactly one verdict (`lb_xdp_verdicts_total`), a
//! dropped one also has one reason (`lb_drops_total`), a passed one at most
//! one (`lb_passes_total`).
use prometheus_client::{encoding::EncodeLabelSet, registry::Registry};

use super::families::{counters, single_counter};
use crate::api::pb;

/// The family one of the balancer's counters (lb-common's `Counter`)
/// belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterFamily {
    /// `lb_xdp_verdicts_total{verdict}`: what the program returned.
    Verdict,
    /// `lb_drops_total{reason}`: why a packet was dropped.
    Drop,
    /// `lb_passes_total{reason}`: why a packet went to the stack.
    Pass,
    /// `lb_conn_table_total{event}`: connection-table lookups and inserts.
    ConnTable,
    /// `lb_icmp_total{event}`: ICMP answered or forwarded.
    Icmp,
    /// `lb_quic_total{event}`: QUIC VIPs' connection-id routing.
    Quic,
    /// `lb_vlan_tagged_packets_total`: packets that carried an 802.1Q tag.
    Vlan,
}

/// The family of the counter named `name` and its label value there;
/// `None` for a name no family takes (a unit test keeps that set empty).
pub fn classify(name: &str) -> Option<(CounterFamily, &str)> {
    const PREFIXES: [(&str, CounterFamily); 6] = [
        ("xdp_", CounterFamily::Verdict),
        ("drop_", CounterFamily::Drop),
        ("pass_", CounterFamily::Pass),
        ("conn_", CounterFamily::ConnTable),
        ("icmp_", CounterFamily::Icmp),
        ("quic_", CounterFamily::Quic),
    ];
    PREFIXES
        .iter()
        .find_map(|(prefix, family)| name.strip_prefix(prefix).map(|label| (*family, label)))
        .or_else(|| (name == "vlan").then_some((CounterFamily::Vlan, "")))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NicLabels {
    interface: String,
    driver: String,
}

/// Registers the balancer's counter families (and the NIC's transmit
/// errors) from `stats`.
pub fn families(r: &mut Registry, stats: &pb::StatsReply) {
    let of = |wanted: CounterFamily| {
        stats.counters.iter().filter_map(move |c| {
            let (family, label) = classify(&c.name)?;
            (family == wanted).then(|| (label.to_owned(), c.value))
        })
    };
    counters(
        r,
        "xdp_verdicts",
        "Packets by the balancer's verdict (pass, tx, drop, aborted, redirect); every packet has one",
        of(CounterFamily::Verdict).map(|(verdict, v)| (VerdictLabel { verdict }, v)),
    );
    counters(
        r,
        "drops",
        "Packets dropped, by reason (docs/DATAPLANE.md); each dropped packet has one",
        of(CounterFamily::Drop).map(|(reason, v)| (ReasonLabel { reason }, v)),
    );
    counters(
        r,
        "passes",
        "Packets passed to the stack, by reason (docs/DATAPLANE.md)",
        of(CounterFamily::Pass).map(|(reason, v)| (ReasonLabel { reason }, v)),
    );
    counters(
        r,
        "conn_table",
        "Connection-table events: hit, miss, rehash, insert_failed, rate_limited",
        of(CounterFamily::ConnTable).map(|(event, v)| (EventLabel { event }, v)),
    );
    counters(
        r,
        "icmp",
        "ICMP messages the balancer answered or forwarded: echo_reply, too_big_sent, too_big_forwarded",
        of(CounterFamily::Icmp).map(|(event, v)| (EventLabel { event }, v)),
    );
    counters(
        r,
        "quic",
        "QUIC VIPs' packets by how their real was found: routed (by connection id), fallback (no id: long header or short), unknown_id",
        of(CounterFamily::Quic).map(|(event, v)| (EventLabel { event }, v)),
    );
    single_counter(
        r,
        "vlan_tagged_packets",
        "Packets that carried an 802.1Q tag",
        of(CounterFamily::Vlan).map(|(_, v)| v).sum(),
    );
    if let Some(nic) = &stats.nic
        && let Some(errors) = nic.xdp_tx_errors
    {
        counters(
            r,
            "nic_xdp_tx_errors",
            "Frames the interface's driver failed to send after XDP_TX (veth: the peer end has no XDP program)",
            [(
                NicLabels {
                    interface: nic.interface.clone(),
                    driver: nic.driver.clone(),
                },
                errors,
            )],
        );
    }
}
