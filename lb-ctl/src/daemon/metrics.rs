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
    v.and_then(|v| crate::reconcile::VipId::try_from(v).ok())
        .map_or_else(String::new, |id| id.to_string())
}

/// Renders the text exposition format.
pub fn render(s: &Snapshot<'_>) -> String {
    let push = |o: &mut String, line: String| {
        o.push_str(&line);
        o.push('\n');
    };
    let mut out = String::new();
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    header(&mut out, "lb_up", "gauge", "1 while lb-ctl runs.");
    push(&mut out, "lb_up 1".into());
    header(
        &mut out,
        "lb_uptime_seconds",
        "gauge",
        "Seconds since lb-ctl started.",
    );
    push(&mut out, format!("lb_uptime_seconds {}", s.uptime_s));
    header(
        &mut out,
        "lb_dataplane_total",
        "counter",
        "The balancer's counters: verdicts and reasons (docs/DATAPLANE.md).",
    );
    for c in &s.stats.counters {
        push(
            &mut out,
            format!("lb_dataplane_total{{counter=\"{}\"}} {}", c.name, c.value),
        );
    }
    header(
        &mut out,
        "lb_vip_packets_total",
        "counter",
        "Packets sent to a VIP's reals.",
    );
    for v in &s.stats.vips {
        let t = v.traffic.unwrap_or_default();
        push(
            &mut out,
            format!(
                "lb_vip_packets_total{{vip=\"{}\"}} {}",
                vip_label(v.vip.as_ref()),
                t.packets
            ),
        );
    }
    header(
        &mut out,
        "lb_vip_bytes_total",
        "counter",
        "Bytes sent to a VIP's reals (as the clients sent them).",
    );
    for v in &s.stats.vips {
        let t = v.traffic.unwrap_or_default();
        push(
            &mut out,
            format!(
                "lb_vip_bytes_total{{vip=\"{}\"}} {}",
                vip_label(v.vip.as_ref()),
                t.bytes
            ),
        );
    }
    header(
        &mut out,
        "lb_real_packets_total",
        "counter",
        "Packets sent to a real of a VIP.",
    );
    for v in &s.stats.vips {
        for r in &v.reals {
            let t = r.traffic.unwrap_or_default();
            push(
                &mut out,
                format!(
                    "lb_real_packets_total{{vip=\"{}\",real=\"{}\"}} {}",
                    vip_label(v.vip.as_ref()),
                    r.address,
                    t.packets
                ),
            );
        }
    }
    header(
        &mut out,
        "lb_real_bytes_total",
        "counter",
        "Bytes sent to a real of a VIP.",
    );
    for v in &s.stats.vips {
        for r in &v.reals {
            let t = r.traffic.unwrap_or_default();
            push(
                &mut out,
                format!(
                    "lb_real_bytes_total{{vip=\"{}\",real=\"{}\"}} {}",
                    vip_label(v.vip.as_ref()),
                    r.address,
                    t.bytes
                ),
            );
        }
    }
    header(
        &mut out,
        "lb_real_up",
        "gauge",
        "1 when a real of a VIP is in the ring (healthy, weight > 0).",
    );
    header(
        &mut out,
        "lb_real_weight",
        "gauge",
        "A real's configured weight.",
    );
    for v in &s.vips.vips {
        for r in &v.reals {
            let labels = format!(
                "vip=\"{}\",real=\"{}\"",
                vip_label(v.vip.as_ref()),
                r.address
            );
            push(
                &mut out,
                format!("lb_real_up{{{labels}}} {}", u8::from(r.state == "up")),
            );
            push(&mut out, format!("lb_real_weight{{{labels}}} {}", r.weight));
        }
    }
    header(
        &mut out,
        "lb_health_checks_total",
        "counter",
        "Probes run, per real and check.",
    );
    header(
        &mut out,
        "lb_health_transitions_total",
        "counter",
        "Up/down transitions, per real and check.",
    );
    header(
        &mut out,
        "lb_health_healthy",
        "gauge",
        "1 when the prober says healthy.",
    );
    for h in &s.health.reals {
        let labels = format!(
            "real=\"{}\",check=\"{}\"",
            h.address,
            h.check.replace('"', "'")
        );
        push(
            &mut out,
            format!("lb_health_checks_total{{{labels}}} {}", h.checks),
        );
        push(
            &mut out,
            format!("lb_health_transitions_total{{{labels}}} {}", h.transitions),
        );
        push(
            &mut out,
            format!("lb_health_healthy{{{labels}}} {}", u8::from(h.healthy)),
        );
    }
    if s.bgp.enabled {
        header(
            &mut out,
            "lb_bgp_peer_established",
            "gauge",
            "1 while the BGP session is established.",
        );
        for p in &s.bgp.peers {
            push(
                &mut out,
                format!(
                    "lb_bgp_peer_established{{neighbor=\"{}\"}} {}",
                    p.address,
                    u8::from(p.state == "established")
                ),
            );
        }
        header(
            &mut out,
            "lb_bgp_announced",
            "gauge",
            "1 for each announced VIP prefix, 0 for each withheld one.",
        );
        for r in &s.bgp.announced {
            push(
                &mut out,
                format!("lb_bgp_announced{{prefix=\"{}\"}} 1", r.prefix),
            );
        }
        for w in &s.bgp.withheld {
            push(
                &mut out,
                format!("lb_bgp_announced{{prefix=\"{}\"}} 0", w.prefix),
            );
        }
        header(
            &mut out,
            "lb_bgp_gobgpd_restarts_total",
            "counter",
            "Times lb-ctl started gobgpd again.",
        );
        push(
            &mut out,
            format!("lb_bgp_gobgpd_restarts_total {}", s.bgp.gobgpd_restarts),
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
        assert!(text.contains("lb_health_healthy{real=\"192.0.2.18\",check=\"http/ -> 200\"} 1\n"));
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
