//! Prometheus metrics: `GET /metrics` on the configured address, in the
//! text exposition format. The controller renders them (every counter,
//! traffic per VIP and real, health, BGP); this module serves them.
use std::{fmt::Write as _, net::SocketAddr};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
    sync::{mpsc, oneshot},
};

use super::Command;
use crate::api::pb;

/// Everything the controller reports, for rendering.
pub struct Snapshot<'a> {
    pub stats: &'a pb::StatsReply,
    pub vips: &'a pb::ListVipsReply,
    pub health: &'a pb::HealthReply,
    pub bgp: &'a pb::BgpStatusReply,
    pub uptime_s: u64,
}

fn vip_label(v: Option<&pb::Vip>) -> String {
    v.and_then(|v| crate::vocab::VipId::try_from(v).ok())
        .map_or_else(String::new, |id| id.to_string())
}

/// Writes one metric family: its HELP and TYPE lines, then every sample
/// (labels inside the braces, or none), all together as the format asks.
fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    samples: impl IntoIterator<Item = (String, V)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Renders the text exposition format.
pub fn render(s: &Snapshot<'_>) -> String {
    let mut out = String::new();
    let o = &mut out;
    family(
        o,
        "lb_up",
        "gauge",
        "1 while lb-ctl runs.",
        [(String::new(), 1)],
    );
    family(
        o,
        "lb_uptime_seconds",
        "gauge",
        "Seconds since lb-ctl started.",
        [(String::new(), s.uptime_s)],
    );
    if let Some(nic) = &s.stats.nic
        && let Some(errors) = nic.xdp_tx_errors
    {
        family(
            o,
            "lb_nic_xdp_tx_errors_total",
            "counter",
            "Frames the interface's driver failed to send after XDP_TX (veth: the peer end has no XDP program).",
            [(
                format!("interface=\"{}\",driver=\"{}\"", nic.interface, nic.driver),
                errors,
            )],
        );
    }
    family(
        o,
        "lb_dataplane_total",
        "counter",
        "The balancer's counters: verdicts and reasons (docs/DATAPLANE.md).",
        s.stats
            .counters
            .iter()
            .map(|c| (format!("counter=\"{}\"", c.name), c.value)),
    );
    let vips = || {
        s.stats.vips.iter().map(|v| {
            (
                format!("vip=\"{}\"", vip_label(v.vip.as_ref())),
                v.traffic.unwrap_or_default(),
            )
        })
    };
    family(
        o,
        "lb_vip_packets_total",
        "counter",
        "Packets sent to a VIP's reals.",
        vips().map(|(l, t)| (l, t.packets)),
    );
    family(
        o,
        "lb_vip_bytes_total",
        "counter",
        "Bytes sent to a VIP's reals (as the clients sent them).",
        vips().map(|(l, t)| (l, t.bytes)),
    );
    let reals = || {
        s.stats.vips.iter().flat_map(|v| {
            v.reals.iter().map(|r| {
                (
                    format!(
                        "vip=\"{}\",real=\"{}\"",
                        vip_label(v.vip.as_ref()),
                        r.address
                    ),
                    r.traffic.unwrap_or_default(),
                )
            })
        })
    };
    family(
        o,
        "lb_real_packets_total",
        "counter",
        "Packets sent to a real of a VIP.",
        reals().map(|(l, t)| (l, t.packets)),
    );
    family(
        o,
        "lb_real_bytes_total",
        "counter",
        "Bytes sent to a real of a VIP.",
        reals().map(|(l, t)| (l, t.bytes)),
    );
    let configured = || {
        s.vips.vips.iter().flat_map(|v| {
            v.reals.iter().map(|r| {
                (
                    format!(
                        "vip=\"{}\",real=\"{}\"",
                        vip_label(v.vip.as_ref()),
                        r.address
                    ),
                    r,
                )
            })
        })
    };
    family(
        o,
        "lb_real_up",
        "gauge",
        "1 when a real of a VIP is in the ring (healthy, weight > 0).",
        configured().map(|(l, r)| (l, u8::from(r.state == "up"))),
    );
    family(
        o,
        "lb_real_weight",
        "gauge",
        "A real's configured weight.",
        configured().map(|(l, r)| (l, r.weight)),
    );
    let probes = || {
        s.health.reals.iter().map(|h| {
            (
                format!(
                    "real=\"{}\",check=\"{}\"",
                    h.address,
                    h.check.replace('"', "'")
                ),
                h,
            )
        })
    };
    family(
        o,
        "lb_health_checks_total",
        "counter",
        "Probes run, per real and check.",
        probes().map(|(l, h)| (l, h.checks)),
    );
    family(
        o,
        "lb_health_transitions_total",
        "counter",
        "Up/down transitions, per real and check.",
        probes().map(|(l, h)| (l, h.transitions)),
    );
    family(
        o,
        "lb_health_healthy",
        "gauge",
        "1 when the prober says healthy.",
        probes().map(|(l, h)| (l, u8::from(h.healthy))),
    );
    if s.bgp.enabled {
        family(
            o,
            "lb_bgp_peer_established",
            "gauge",
            "1 while the BGP session is established.",
            s.bgp.peers.iter().map(|p| {
                (
                    format!("neighbor=\"{}\"", p.address),
                    u8::from(p.state == "established"),
                )
            }),
        );
        let announced = s.bgp.announced.iter().map(|r| (&r.prefix, 1u8));
        let withheld = s.bgp.withheld.iter().map(|w| (&w.prefix, 0u8));
        family(
            o,
            "lb_bgp_announced",
            "gauge",
            "1 for each announced VIP prefix, 0 for each withheld one.",
            announced
                .chain(withheld)
                .map(|(p, v)| (format!("prefix=\"{p}\""), v)),
        );
        family(
            o,
            "lb_bgp_gobgpd_restarts_total",
            "counter",
            "Times lb-ctl started gobgpd again.",
            [(String::new(), s.bgp.gobgpd_restarts)],
        );
    }
    out
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, commands: mpsc::Sender<Command>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    loop {
        let (mut conn, _) = listener.accept().await?;
        let commands = commands.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n =
                match tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics ") {
                let (tx, rx) = oneshot::channel();
                if commands.send(Command::Metrics(tx)).await.is_err() {
                    return;
                }
                match rx.await {
                    Ok(body) => ("200 OK", body),
                    Err(_) => return,
                }
            } else {
                (
                    "404 Not Found",
                    "only GET /metrics is served here\n".to_owned(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let stats = pb::StatsReply {
            counters: vec![pb::Counter {
                name: "xdp_tx".into(),
                value: 7,
                rate: 1.0,
            }],
            vips: vec![pb::VipStats {
                vip: Some(pb::Vip {
                    address: "203.0.113.10".into(),
                    port: 80,
                    protocol: "tcp".into(),
                }),
                traffic: Some(pb::Traffic {
                    packets: 3,
                    bytes: 300,
                    ..Default::default()
                }),
                reals: vec![],
            }],
            nic: Some(pb::NicStats {
                interface: "eth0".into(),
                driver: "veth".into(),
                xdp_tx_errors: Some(4),
            }),
        };
        let health = pb::HealthReply {
            reals: vec![pb::RealHealth {
                address: "192.0.2.18".into(),
                check: "http/ -> 200".into(),
                healthy: true,
                ..Default::default()
            }],
        };
        let text = render(&Snapshot {
            stats: &stats,
            vips: &pb::ListVipsReply::default(),
            health: &health,
            bgp: &pb::BgpStatusReply::default(),
            uptime_s: 5,
        });
        assert!(
            text.contains("lb_dataplane_total{counter=\"xdp_tx\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("lb_vip_packets_total{vip=\"203.0.113.10:80/tcp\"} 3\n"));
        assert!(
            text.contains("lb_nic_xdp_tx_errors_total{interface=\"eth0\",driver=\"veth\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("lb_health_healthy{real=\"192.0.2.18\",check=\"http/ -> 200\"} 1\n"));
        // Each family's samples follow its own TYPE line, all together.
        let mut family = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap();
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, family, "{line} is outside its family");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name_labels, value) = line.rsplit_once(' ').expect("a value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = name_labels.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has a TYPE line"
            );
        }
    }
}
