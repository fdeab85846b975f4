//! What `lb-ctl top` shows, computed from the daemon's replies: rows of
//! VIPs and their reals with rates, health and BGP state, sorted and
//! filtered as the keys ask. Pure, so that sorting and filtering have unit
//! tests without a terminal.
use std::collections::BTreeMap;

use lb_ctl::{api::pb, vocab::VipId};

/// One refresh's replies.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub status: pb::StatusReply,
    pub vips: pb::ListVipsReply,
    pub stats: pb::StatsReply,
    pub health: pb::HealthReply,
    pub bgp: pb::BgpStatusReply,
}

/// The order of the VIPs (and of the reals inside each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Name,
    Packets,
    Bits,
}

impl SortBy {
    /// The next order (`s`).
    pub fn next(self) -> Self {
        match self {
            Self::Name => Self::Packets,
            Self::Packets => Self::Bits,
            Self::Bits => Self::Name,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Packets => "packets/s",
            Self::Bits => "bits/s",
        }
    }
}

/// What the keys chose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewState {
    pub sort: SortBy,
    /// Only this VIP (`f` cycles through them, then back to all).
    pub filter: Option<String>,
}

/// A real's line.
#[derive(Debug, Clone, PartialEq)]
pub struct RealRow {
    pub address: String,
    pub state: String,
    pub weight: u32,
    /// `up`, or `down: <last error>`.
    pub health: String,
    pub pps: f64,
    pub bps: f64,
}

/// A VIP's line and its reals.
#[derive(Debug, Clone, PartialEq)]
pub struct VipRow {
    pub vip: String,
    /// `announced`, `withheld: <why>`, or `-` without BGP.
    pub bgp: String,
    pub pps: f64,
    pub bps: f64,
    pub reals: Vec<RealRow>,
}

fn vip_name(v: Option<&pb::Vip>) -> String {
    v.and_then(|v| VipId::try_from(v).ok())
        .map_or_else(|| "?".to_owned(), |id| id.to_string())
}

/// The VIPs' names, in name order (what `f` cycles through).
pub fn vip_names(s: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = s
        .vips
        .vips
        .iter()
        .map(|v| vip_name(v.vip.as_ref()))
        .collect();
    names.sort();
    names
}

/// The filter after `current` (`f`): the next VIP, then all again.
pub fn next_filter(s: &Snapshot, current: Option<&str>) -> Option<String> {
    let names = vip_names(s);
    match current {
        None => names.first().cloned(),
        Some(c) => names
            .iter()
            .position(|n| n == c)
            .and_then(|i| names.get(i + 1))
            .cloned(),
    }
}

/// The rows to show.
pub fn rows(s: &Snapshot, view: &ViewState) -> Vec<VipRow> {
    let traffic: BTreeMap<String, &pb::VipStats> = s
        .stats
        .vips
        .iter()
        .map(|v| (vip_name(v.vip.as_ref()), v))
        .collect();
    let health: BTreeMap<(String, String), &pb::RealHealth> = s
        .health
        .reals
        .iter()
        .flat_map(|h| {
            h.vips
                .iter()
                .map(move |v| ((vip_name(Some(v)), h.address.clone()), h))
        })
        .collect();
    let bgp = |vip: &pb::Vip| -> String {
        if !s.bgp.enabled {
            return "-".to_owned();
        }
        let host = if vip.address.contains(':') { 128 } else { 32 };
        let prefix = format!("{}/{host}", vip.address);
        if s.bgp.announced.iter().any(|a| a.prefix == prefix) {
            "announced".to_owned()
        } else if let Some(w) = s.bgp.withheld.iter().find(|w| w.prefix == prefix) {
            format!("withheld: {}", w.reason)
        } else {
            "not announced".to_owned()
        }
    };
    let key = |pps: f64, bps: f64, name: &str| match view.sort {
        SortBy::Name => (0.0, name.to_owned()),
        SortBy::Packets => (-pps, name.to_owned()),
        SortBy::Bits => (-bps, name.to_owned()),
    };
    let mut out: Vec<VipRow> = s
        .vips
        .vips
        .iter()
        .filter_map(|v| {
            let name = vip_name(v.vip.as_ref());
            if view.filter.as_ref().is_some_and(|f| *f != name) {
                return None;
            }
            let stats = traffic.get(&name);
            let t = stats.and_then(|s| s.traffic).unwrap_or_default();
            let mut reals: Vec<RealRow> = v
                .reals
                .iter()
                .map(|r| {
                    let rt = stats
                        .and_then(|s| s.reals.iter().find(|x| x.address == r.address))
                        .and_then(|x| x.traffic)
                        .unwrap_or_default();
                    let h = health.get(&(name.clone(), r.address.clone()));
                    RealRow {
                        address: r.address.clone(),
                        state: r.state.clone(),
                        weight: r.weight,
                        health: match h {
                            Some(h) if h.healthy => "up".to_owned(),
                            Some(h) if h.last_error.is_empty() => "down".to_owned(),
                            Some(h) => format!("down: {}", h.last_error),
                            None => if r.healthy { "up" } else { "down" }.to_owned(),
                        },
                        pps: rt.packets_per_s,
                        bps: rt.bits_per_s,
                    }
                })
                .collect();
            reals.sort_by(|a, b| {
                key(a.pps, a.bps, &a.address)
                    .partial_cmp(&key(b.pps, b.bps, &b.address))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            Some(VipRow {
                bgp: v.vip.as_ref().map_or_else(|| "-".to_owned(), bgp),
                vip: name,
                pps: t.packets_per_s,
                bps: t.bits_per_s,
                reals,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        key(a.pps, a.bps, &a.vip)
            .partial_cmp(&key(b.pps, b.bps, &b.vip))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

/// Drop reasons with a rate above zero, the largest first.
pub fn drop_rates(s: &Snapshot) -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = s
        .stats
        .counters
        .iter()
        .filter_map(|c| Some((c.name.strip_prefix("drop_")?.to_owned(), c.rate)))
        .filter(|(_, r)| *r > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(a: &str, port: u32) -> pb::Vip {
        pb::Vip {
            address: a.into(),
            port,
            protocol: "tcp".into(),
        }
    }

    fn snapshot() -> Snapshot {
        let info = |v: pb::Vip, reals: &[(&str, u32)]| pb::VipInfo {
            vip: Some(v),
            reals: reals
                .iter()
                .map(|(a, w)| pb::RealInfo {
                    address: (*a).into(),
                    weight: *w,
                    state: "up".into(),
                    healthy: true,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let traffic = |pps: f64, bps: f64| pb::Traffic {
            packets_per_s: pps,
            bits_per_s: bps,
            ..Default::default()
        };
        Snapshot {
            vips: pb::ListVipsReply {
                vips: vec![
                    info(
                        vip("203.0.113.10", 80),
                        &[("192.0.2.18", 1), ("192.0.2.22", 2)],
                    ),
                    info(vip("203.0.113.20", 443), &[("192.0.2.26", 1)]),
                ],
            },
            stats: pb::StatsReply {
                counters: vec![
                    pb::Counter {
                        name: "drop_mtu".into(),
                        value: 9,
                        rate: 3.0,
                    },
                    pb::Counter {
                        name: "drop_truncated".into(),
                        value: 1,
                        rate: 0.0,
                    },
                    pb::Counter {
                        name: "drop_fragment".into(),
                        value: 4,
                        rate: 5.0,
                    },
                    pb::Counter {
                        name: "xdp_tx".into(),
                        value: 4,
                        rate: 50.0,
                    },
                ],
                vips: vec![
                    pb::VipStats {
                        vip: Some(vip("203.0.113.10", 80)),
                        traffic: Some(traffic(10.0, 9000.0)),
                        reals: vec![
                            pb::RealStats {
                                address: "192.0.2.18".into(),
                                traffic: Some(traffic(2.0, 1000.0)),
                            },
                            pb::RealStats {
                                address: "192.0.2.22".into(),
                                traffic: Some(traffic(8.0, 8000.0)),
                            },
                        ],
                    },
                    pb::VipStats {
                        vip: Some(vip("203.0.113.20", 443)),
                        traffic: Some(traffic(20.0, 1000.0)),
                        reals: vec![],
                    },
                ],
                nic: None,
            },
            health: pb::HealthReply {
                reals: vec![pb::RealHealth {
                    address: "192.0.2.18".into(),
                    healthy: false,
                    last_error: "status 503, expected 200".into(),
                    vips: vec![vip("203.0.113.10", 80)],
                    ..Default::default()
                }],
            },
            bgp: pb::BgpStatusReply {
                enabled: true,
                announced: vec![pb::BgpRoute {
                    prefix: "203.0.113.10/32".into(),
                    ..Default::default()
                }],
                withheld: vec![pb::BgpWithheld {
                    prefix: "203.0.113.20/32".into(),
                    reason: "0 of 1 reals healthy, 1 needed".into(),
                }],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn rows_sort_by_the_chosen_column_and_filter_by_vip() {
        let s = snapshot();
        let by = |sort| {
            rows(&s, &ViewState { sort, filter: None })
                .iter()
                .map(|r| r.vip.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            by(SortBy::Name),
            ["203.0.113.10:80/tcp", "203.0.113.20:443/tcp"]
        );
        assert_eq!(
            by(SortBy::Packets),
            ["203.0.113.20:443/tcp", "203.0.113.10:80/tcp"]
        );
        assert_eq!(
            by(SortBy::Bits),
            ["203.0.113.10:80/tcp", "203.0.113.20:443/tcp"]
        );
        let packets = rows(
            &s,
            &ViewState {
                sort: SortBy::Packets,
                filter: None,
            },
        );
        let reals: Vec<&str> = packets[1]
            .reals
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(reals, ["192.0.2.22", "192.0.2.18"], "reals sorted too");

        let first = next_filter(&s, None);
        assert_eq!(first.as_deref(), Some("203.0.113.10:80/tcp"));
        let only = rows(
            &s,
            &ViewState {
                filter: first.clone(),
                ..Default::default()
            },
        );
        assert_eq!(only.len(), 1);
        let second = next_filter(&s, first.as_deref());
        assert_eq!(second.as_deref(), Some("203.0.113.20:443/tcp"));
        assert_eq!(next_filter(&s, second.as_deref()), None, "then all again");
    }

    #[test]
    fn rows_carry_health_bgp_and_rates() {
        let s = snapshot();
        let r = rows(&s, &ViewState::default());
        assert_eq!(r[0].bgp, "announced");
        assert_eq!(r[1].bgp, "withheld: 0 of 1 reals healthy, 1 needed");
        assert_eq!(r[0].reals[0].health, "down: status 503, expected 200");
        assert_eq!(r[0].reals[1].health, "up");
        assert_eq!((r[0].pps, r[0].bps), (10.0, 9000.0));
        assert_eq!(r[0].reals[1].pps, 8.0);
        assert_eq!(
            drop_rates(&s),
            [("fragment".to_owned(), 5.0), ("mtu".to_owned(), 3.0)]
        );
    }
}
