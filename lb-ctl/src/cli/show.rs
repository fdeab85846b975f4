//! `lb-ctl status`, `lb-ctl stats`, `lb-ctl health`, `lb-ctl reload`.
use std::{path::Path, process::ExitCode};

use lb_ctl::api::pb;

use super::{
    client::{print_json, status_error, with_client},
    vip::vip_text,
};

pub fn status(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    with_client(socket, |mut c| async move {
        let s = c
            .status(pb::StatusRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        if json {
            return print_json(&s);
        }
        println!(
            "lb-ctl {} on {} ({} XDP), up {} s",
            s.version, s.interface, s.xdp_mode, s.uptime_s
        );
        println!(
            "config {}; state {}; pins {}{}",
            s.config,
            s.state_file,
            s.pin_dir,
            if s.adopted { " (adopted at start)" } else { "" }
        );
        println!(
            "{} VIPs, {} reals, {} healthy; health checked: {}",
            s.vips, s.reals, s.reals_healthy, s.health_source
        );
        if s.fleet_revision > 0 {
            println!("fleet: VIPs of store revision {}", s.fleet_revision);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn rate(pps: f64, bps: f64) -> String {
    format!("{pps:.0} pps {:.1} Mbit/s", bps / 1e6)
}

pub fn stats(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    with_client(socket, |mut c| async move {
        let s = c
            .stats(pb::StatsRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        if json {
            return print_json(&s);
        }
        for v in &s.vips {
            let t = v.traffic.unwrap_or_default();
            println!(
                "{:<32} {:>12} packets {:>14} bytes  {}",
                vip_text(v.vip.as_ref()),
                t.packets,
                t.bytes,
                rate(t.packets_per_s, t.bits_per_s)
            );
            for r in &v.reals {
                let t = r.traffic.unwrap_or_default();
                println!(
                    "    {:<28} {:>12} packets {:>14} bytes  {}",
                    r.address,
                    t.packets,
                    t.bytes,
                    rate(t.packets_per_s, t.bits_per_s)
                );
            }
        }
        println!("counters:");
        for c in s.counters.iter().filter(|c| c.value != 0) {
            println!("    {:<24} {:>14}  {:.0}/s", c.name, c.value, c.rate);
        }
        if let Some(nic) = &s.nic {
            let errors = nic
                .xdp_tx_errors
                .map_or_else(|| "not reported".to_owned(), |e| e.to_string());
            println!(
                "driver {} on {}: xdp_tx_errors {errors}",
                if nic.driver.is_empty() {
                    "?"
                } else {
                    &nic.driver
                },
                nic.interface
            );
            if nic.xdp_tx_errors.is_some_and(|e| e > 0) {
                println!(
                    "    WARNING: frames sent with XDP_TX were dropped by the driver (veth: give the peer end an XDP program, or use generic mode)"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn health(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    with_client(socket, |mut c| async move {
        let h = c
            .health(pb::HealthRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        if json {
            return print_json(&h);
        }
        for r in &h.reals {
            let vips: Vec<String> = r.vips.iter().map(|v| vip_text(Some(v))).collect();
            println!(
                "{:<28} {:<5} {}  (successes {}, failures {}, checks {}, transitions {})  VIPs {}",
                r.address,
                if r.healthy { "up" } else { "DOWN" },
                r.check,
                r.successes,
                r.failures,
                r.checks,
                r.transitions,
                vips.join(" ")
            );
            if !r.healthy && !r.last_error.is_empty() {
                println!("    last error: {}", r.last_error);
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn reload(socket: &Path) -> anyhow::Result<ExitCode> {
    with_client(socket, |mut c| async move {
        let r = c
            .reload(pb::ReloadRequest {})
            .await
            .map_err(status_error)?
            .into_inner();
        println!("{}", r.summary);
        Ok(ExitCode::SUCCESS)
    })
}
