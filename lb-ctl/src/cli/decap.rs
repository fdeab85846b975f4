//! `lb-ctl decap`: the backends' side. Attach the decapsulator to an
//! interface for the host's addresses, read its counters, detach it.
use std::{net::IpAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use lb_common::decap::DecapCounter;
use lb_ctl::{
    decap::{self, DEFAULT_DECAP_PIN_DIR, Decapsulator},
    iface,
    programs::{self, AttachMode, Program},
};

#[derive(Debug, clap::Args)]
pub struct DecapArgs {
    #[command(subcommand)]
    pub command: DecapCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum DecapCommand {
    /// Attach the decapsulator to an interface: tunnels (IP-in-IP or GUE
    /// from the balancer) to this host's addresses are opened and passed to the
    /// stack, for the VIPs on `lo`. The attachment is pinned and stays
    /// after lb-ctl exits.
    ///
    /// Example: `lb-ctl decap attach --iface eth0`
    Attach {
        /// The interface tunnels arrive on.
        #[arg(long)]
        iface: String,
        /// Open tunnels to these addresses (repeatable); default: every
        /// address of the interface.
        #[arg(long = "address")]
        addresses: Vec<IpAddr>,
        /// Open GUE tunnels to this UDP port too (the balancer's
        /// `[dataplane] gue_port`); 0 = IP-in-IP only.
        #[arg(long, default_value_t = lb_common::config::DEFAULT_GUE_PORT)]
        gue_port: u16,
        /// XDP mode.
        #[arg(long, value_enum, default_value_t)]
        mode: AttachMode,
        /// The bpffs directory for the maps and the link.
        #[arg(long, default_value = DEFAULT_DECAP_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Detach from an interface and drop the pinned maps.
    ///
    /// Example: `lb-ctl decap detach --iface eth0`
    Detach {
        #[arg(long)]
        iface: String,
        #[arg(long, default_value = DEFAULT_DECAP_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Print the decapsulator's counters (summed over CPUs).
    ///
    /// Example: `lb-ctl decap stats --json`
    Stats {
        #[arg(long, default_value = DEFAULT_DECAP_PIN_DIR)]
        pin_dir: PathBuf,
        /// One JSON object: counter name -> value.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &DecapArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        DecapCommand::Attach {
            iface,
            addresses,
            gue_port,
            mode,
            pin_dir,
        } => {
            let addresses = if addresses.is_empty() {
                iface::lookup(iface)?.addresses
            } else {
                addresses.clone()
            };
            anyhow::ensure!(
                !addresses.is_empty(),
                "interface {iface} has no address: give --address"
            );
            let mut d = Decapsulator::load(Some(pin_dir))?;
            for a in &addresses {
                d.add_address(*a)?;
            }
            d.set_gue_port(*gue_port)?;
            let link = programs::attach_pinned(d.program(), Program::Decap, iface, *mode, pin_dir)?;
            tracing::info!(%iface, ?addresses, gue_port, pin = %link.display(), "decapsulator attached");
        }
        DecapCommand::Detach { iface, pin_dir } => {
            programs::detach_pinned(Program::Decap, iface, pin_dir)?;
            decap::unpin_maps(pin_dir);
            tracing::info!(%iface, "decapsulator detached");
        }
        DecapCommand::Stats { pin_dir, json } => {
            let stats = decap::pinned_stats(pin_dir)
                .with_context(|| format!("no decapsulator pinned under {}", pin_dir.display()))?;
            if *json {
                let obj: serde_json::Map<String, serde_json::Value> = DecapCounter::ALL
                    .iter()
                    .map(|&c| (c.name().to_owned(), stats.get(c).into()))
                    .collect();
                println!("{}", serde_json::Value::Object(obj));
            } else {
                for &c in DecapCounter::ALL {
                    println!("{:<16} {}", c.name(), stats.get(c));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
