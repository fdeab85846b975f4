//! What `lb-lab` does: bring the lab up or report on it, and the demo.
use std::{collections::BTreeMap, net::IpAddr};

use std::time::{Duration, Instant};

use super::router::{kernel_nexthops, wait_nexthops};

use lb_ctl::{
    api::pb,
    vocab::{Proto, VipId},
};

use super::{
    HTTP_PORT, Lab, LabBins, LabOptions, UDP_PORT, VIP4, VIP6,
    client::{http_get, udp_echo},
    topology::{Role, backend_by_name, leaves},
};

/// Builds the lab and leaves it running.
pub fn up(prefix: &str, bins: LabBins) -> anyhow::Result<()> {
    let mut opts = LabOptions::new(prefix, bins);
    opts.keep = true;
    opts.bgp = true;
    let lab = Lab::up(opts)?;
    println!(
        "lab up: namespaces {}-* (`ip netns`); VIPs {VIP4} and {VIP6}",
        lab.prefix
    );
    println!("try: ip netns exec {}-c1 ping -c 2 {VIP4}", lab.prefix);
    Ok(())
}

/// Prints what is up.
pub fn status(prefix: &str, bins: LabBins) -> anyhow::Result<()> {
    let lab = Lab::attach(prefix, bins)?;
    for (site, lb) in &lab.lbs {
        let s = lb.stats()?;
        println!(
            "site {site} ({}): forwarded {} packets ({} connection-table hits, {} misses), passed {}, dropped {}",
            lb.ns, s.xdp_tx, s.conn_hit, s.conn_miss, s.xdp_pass, s.xdp_drop
        );
        let health =
            lb.api(|mut c| async move { Ok(c.health(pb::HealthRequest {}).await?.into_inner()) })?;
        for r in health.reals {
            println!(
                "    real {:<18} {}",
                r.address,
                if r.healthy { "up" } else { "DOWN" }
            );
        }
        println!(
            "    lb-ctl --socket {} status|vip list|stats|health",
            lb.socket.display()
        );
    }
    for b in leaves(Role::Backend, None) {
        let d = lab.decap_stats(b.name)?;
        println!(
            "backend {}: decapsulated {} packets",
            b.name,
            d.decap_ipip + d.decap_ip6ip6 + d.decap_ipip6 + d.decap_ip6ip
        );
    }
    Ok(())
}

const CLIENTS: [&str; 2] = ["c1", "c2"];

fn vips() -> [VipId; 4] {
    let a = |s: &str| -> IpAddr { s.parse().expect("VIP") };
    [
        VipId {
            addr: a(VIP4),
            port: HTTP_PORT,
            proto: Proto::Tcp,
        },
        VipId {
            addr: a(VIP6),
            port: HTTP_PORT,
            proto: Proto::Tcp,
        },
        VipId {
            addr: a(VIP4),
            port: UDP_PORT,
            proto: Proto::Udp,
        },
        VipId {
            addr: a(VIP6),
            port: UDP_PORT,
            proto: Proto::Udp,
        },
    ]
}

/// Outcome of a round of requests.
#[derive(Default)]
struct Round {
    /// (backend, VIP index) -> answers.
    answers: BTreeMap<(String, usize), usize>,
    failed: usize,
    predicted: usize,
    total: usize,
}

fn round(lab: &Lab, per_client: usize, vip_filter: &[usize]) -> Round {
    let mut r = Round::default();
    for client in CLIENTS {
        let ns = lab.ns(client);
        for (i, v) in vips()
            .iter()
            .enumerate()
            .filter(|(i, _)| vip_filter.contains(i))
        {
            for _ in 0..per_client {
                r.total += 1;
                let reply = match v.proto {
                    Proto::Tcp => http_get(&ns, v.addr, v.port),
                    Proto::Udp => udp_echo(&ns, v.addr, v.port),
                };
                match reply {
                    Ok(reply) => {
                        if let Some(b) = backend_by_name(&reply.backend)
                            && lab.predict(b.site.expect("site"), v, reply.local) == Some(b.name)
                        {
                            r.predicted += 1;
                        }
                        *r.answers.entry((reply.backend, i)).or_insert(0) += 1;
                    }
                    Err(_) => r.failed += 1,
                }
            }
        }
    }
    r
}

fn print_round(r: &Round) {
    let names: Vec<String> = vips().iter().map(ToString::to_string).collect();
    println!(
        "    {:<8} {}",
        "backend",
        names.iter().map(|n| format!("{n:>26}")).collect::<String>()
    );
    for b in leaves(Role::Backend, None) {
        let row: String = (0..4)
            .map(|i| {
                format!(
                    "{:>26}",
                    r.answers.get(&(b.name.to_owned(), i)).copied().unwrap_or(0)
                )
            })
            .collect();
        println!(
            "    {:<8} {row}",
            format!("{} ({})", b.name, b.site.expect("site"))
        );
    }
    println!(
        "    {} of {} requests answered; {} of the answers came from exactly the backend user space predicts from the flow hash and the site's ring",
        r.total - r.failed,
        r.total,
        r.predicted
    );
}

/// Waits until site `lb`'s health checks say `addr` is `healthy`; returns
/// how long it took.
fn wait_health(lb: &mut super::LbHost, addr: &str, healthy: bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let h =
            lb.api(|mut c| async move { Ok(c.health(pb::HealthRequest {}).await?.into_inner()) })?;
        if h.reals
            .iter()
            .filter(|r| r.address == addr)
            .all(|r| r.healthy == healthy)
        {
            let took = start.elapsed();
            lb.refresh_view()?;
            return Ok(took);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!(
        "{addr} did not turn {} within 10 s",
        if healthy { "up" } else { "down" }
    )
}

/// The demo: the lab up, traffic, where it went, a backend failure, down.
pub fn demo(prefix: &str, bins: LabBins, keep: bool) -> anyhow::Result<()> {
    println!(
        "==> lab: clients c1 c2 -> router r (FRR) -> LB hosts lba (site A), lbb (site B), each lb-ctl + gobgpd -> backends a1 a2 | b1 b2"
    );
    println!(
        "    VIPs {VIP4} and {VIP6}: HTTP on TCP {HTTP_PORT}, UDP echo on {UDP_PORT}; backends run `lb-ctl decap` and have the VIPs on lo; a3 is a spare, in no ring"
    );
    let mut opts = LabOptions::new(prefix, bins);
    opts.keep = keep;
    opts.bgp = true;
    let started = Instant::now();
    let mut lab = Lab::up(opts)?;
    let r = lab.ns("r");
    println!(
        "    up in {:.1} s; both LB hosts announce both VIPs by BGP; the router's kernel table:",
        started.elapsed().as_secs_f64()
    );
    for v in [VIP4, VIP6] {
        let hops = kernel_nexthops(&r, v.parse()?);
        println!(
            "    {v} via {}",
            hops.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" and ")
        );
    }

    println!(
        "\n==> traffic: every client sends 25 requests to each VIP (new connection / socket each time)"
    );
    let round1 = round(&lab, 25, &[0, 1, 2, 3]);
    print_round(&round1);

    println!("\n==> direct server return: replies do not pass through the LB hosts");
    let mut replies_seen = 0;
    for site in ['A', 'B'] {
        let s = lab.lb_stats(site)?;
        replies_seen += s.pass_from_vip;
        println!(
            "    LB host site {site}: sent {} client->VIP packets to backends; saw {} packets from a VIP, and {} others (health checks, BGP, neighbour discovery)",
            s.xdp_tx,
            s.pass_from_vip,
            s.pass_not_vip + s.pass_not_ip
        );
    }
    let mut opened = 0;
    for b in leaves(Role::Backend, None) {
        let d = lab.decap_stats(b.name)?;
        opened += d.decap_ipip + d.decap_ip6ip6 + d.decap_ipip6 + d.decap_ip6ip;
    }
    println!(
        "    backends decapsulated {opened} packets; the {} answers went straight to the clients: the LB hosts saw {replies_seen} of them",
        round1.total - round1.failed
    );

    println!(
        "\n==> backend a1 fails (its server is stopped): site A's health checks take it out of the rings"
    );
    lab.stop_server("a1")?;
    let took = wait_health(lab.lbs.get_mut(&'A').expect("site A"), "192.0.2.18", false)?;
    println!(
        "    a1 left site A's rings {:.2} s after it stopped (HTTP check every 250 ms, down after 2 failures)",
        took.as_secs_f64()
    );
    let r2 = round(&lab, 25, &[0, 1]);
    print_round(&r2);

    println!(
        "\n==> a2 fails too: site A has no healthy backend and withdraws its routes; clients go to site B"
    );
    lab.stop_server("a2")?;
    let v4: std::net::IpAddr = VIP4.parse()?;
    let only_b = vec![
        leaves(Role::LbHost, Some('B'))
            .next()
            .expect("lbb")
            .addr_for(v4),
    ];
    let took = wait_nexthops(&r, v4, &only_b, Duration::from_secs(10))?;
    println!(
        "    the router's kernel table dropped site A {:.2} s after a2 stopped (paper: health-check interval + < 1 s)",
        took.as_secs_f64()
    );
    lab.lbs.get_mut(&'A').expect("site A").refresh_view()?;
    let r3 = round(&lab, 25, &[0, 1, 2, 3]);
    print_round(&r3);

    println!("\n==> site A's backends come back: site A is announced again and takes its share");
    let t0 = Instant::now();
    lab.start_server("a1")?;
    lab.start_server("a2")?;
    let both = leaves(Role::LbHost, None)
        .map(|l| l.addr_for(v4))
        .collect::<Vec<_>>();
    wait_nexthops(&r, v4, &both, Duration::from_secs(15))?;
    println!(
        "    announced again {:.2} s after the backends started (2 healthy checks, then a 2 s hold-down against flapping)",
        t0.elapsed().as_secs_f64()
    );
    lab.lbs.get_mut(&'A').expect("site A").refresh_view()?;
    let r4 = round(&lab, 25, &[0, 1, 2, 3]);
    print_round(&r4);

    if keep {
        println!(
            "\n==> the lab stays up (--keep): `cargo xtask lab status`, `cargo xtask lab down`"
        );
    } else {
        println!("\n==> lab down");
    }
    Ok(())
}
