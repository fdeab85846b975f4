//! The GoBGP v3 client: what lb-ctl asks of gobgpd over gRPC. The API types
//! are generated at build time from the installed GoBGP's protos (package
//! `apipb`); path attributes travel as `Any` with explicit type URLs.
use std::{net::IpAddr, net::SocketAddr, time::Duration};

use tonic::{Status, transport::Channel};

use super::{Announcement, BgpSettings, NeighborSettings, Prefix};

/// The generated GoBGP API.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod apipb {
    tonic::include_proto!("apipb");
}

use apipb::{family::Afi, family::Safi, gobgp_api_client::GobgpApiClient};

/// `BGP_ORIGIN_ATTR_TYPE_IGP`.
const ORIGIN_IGP: u32 = 0;

/// A connected GoBGP client.
#[derive(Debug, Clone)]
pub struct Gobgp {
    client: GobgpApiClient<Channel>,
}

fn any<M: prost::Message>(name: &str, m: &M) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/apipb.{name}"),
        value: m.encode_to_vec(),
    }
}

/// The unicast family of `addr`.
pub fn family(addr: IpAddr) -> apipb::Family {
    apipb::Family {
        afi: if addr.is_ipv4() { Afi::Ip } else { Afi::Ip6 } as i32,
        safi: Safi::Unicast as i32,
    }
}

fn nlri(p: &Prefix) -> prost_types::Any {
    any(
        "IPAddressPrefix",
        &apipb::IpAddressPrefix {
            prefix_len: u32::from(p.len),
            prefix: p.addr.to_string(),
        },
    )
}

/// The GoBGP path of an announcement: the prefix with origin IGP, the next
/// hop (IPv6 in MP_REACH_NLRI), MED and communities.
pub fn path(a: &Announcement) -> apipb::Path {
    let mut pattrs = vec![any(
        "OriginAttribute",
        &apipb::OriginAttribute { origin: ORIGIN_IGP },
    )];
    if a.prefix.addr.is_ipv4() {
        pattrs.push(any(
            "NextHopAttribute",
            &apipb::NextHopAttribute {
                next_hop: a.next_hop.to_string(),
            },
        ));
    } else {
        pattrs.push(any(
            "MpReachNLRIAttribute",
            &apipb::MpReachNlriAttribute {
                family: Some(family(a.prefix.addr)),
                next_hops: vec![a.next_hop.to_string()],
                nlris: vec![nlri(&a.prefix)],
            },
        ));
    }
    pattrs.push(any(
        "MultiExitDiscAttribute",
        &apipb::MultiExitDiscAttribute { med: a.med },
    ));
    if !a.communities.is_empty() {
        pattrs.push(any(
            "CommunitiesAttribute",
            &apipb::CommunitiesAttribute {
                communities: a.communities.iter().map(|c| c.0).collect(),
            },
        ));
    }
    apipb::Path {
        nlri: Some(nlri(&a.prefix)),
        pattrs,
        family: Some(family(a.prefix.addr)),
        ..Default::default()
    }
}

impl Gobgp {
    /// Connects to gobgpd's API at `addr` (within `timeout`).
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("a valid URI")
            .connect_timeout(timeout)
            .timeout(Duration::from_secs(5))
            .connect()
            .await?;
        Ok(Gobgp {
            client: GobgpApiClient::new(channel),
        })
    }

    /// The global settings; `asn` 0 means BGP is not started.
    pub async fn global(&mut self) -> Result<apipb::Global, Status> {
        Ok(self
            .client
            .get_bgp(apipb::GetBgpRequest {})
            .await?
            .into_inner()
            .global
            .unwrap_or_default())
    }

    /// Starts BGP with our AS and router id.
    pub async fn start(&mut self, s: &BgpSettings) -> Result<(), Status> {
        self.client
            .start_bgp(apipb::StartBgpRequest {
                global: Some(apipb::Global {
                    asn: s.asn,
                    router_id: s.router_id.to_string(),
                    listen_port: s.listen_port,
                    ..Default::default()
                }),
            })
            .await?;
        Ok(())
    }

    /// Stops BGP (every session closes, every path goes).
    pub async fn stop(&mut self) -> Result<(), Status> {
        self.client.stop_bgp(apipb::StopBgpRequest {}).await?;
        Ok(())
    }

    /// Every peer with its state.
    pub async fn peers(&mut self) -> Result<Vec<apipb::Peer>, Status> {
        let mut stream = self
            .client
            .list_peer(apipb::ListPeerRequest::default())
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(r) = stream.message().await? {
            if let Some(p) = r.peer {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// Adds a neighbor for IPv4 and IPv6 unicast, with its timers.
    pub async fn add_peer(&mut self, n: &NeighborSettings) -> Result<(), Status> {
        let afi_safi = |afi: Afi| apipb::AfiSafi {
            config: Some(apipb::AfiSafiConfig {
                family: Some(apipb::Family {
                    afi: afi as i32,
                    safi: Safi::Unicast as i32,
                }),
                enabled: true,
            }),
            ..Default::default()
        };
        self.client
            .add_peer(apipb::AddPeerRequest {
                peer: Some(apipb::Peer {
                    conf: Some(apipb::PeerConf {
                        neighbor_address: n.address.to_string(),
                        peer_asn: n.asn,
                        ..Default::default()
                    }),
                    timers: Some(apipb::Timers {
                        config: Some(apipb::TimersConfig {
                            hold_time: n.hold.as_secs(),
                            keepalive_interval: n.keepalive.as_secs(),
                            connect_retry: 1,
                            ..Default::default()
                        }),
                        state: None,
                    }),
                    afi_safis: vec![afi_safi(Afi::Ip), afi_safi(Afi::Ip6)],
                    ..Default::default()
                }),
            })
            .await?;
        Ok(())
    }

    /// Announces (or replaces) a path.
    pub async fn announce(&mut self, a: &Announcement) -> Result<(), Status> {
        self.client
            .add_path(apipb::AddPathRequest {
                table_type: apipb::TableType::Global as i32,
                path: Some(path(a)),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// Withdraws our path for `a`'s prefix.
    pub async fn withdraw(&mut self, a: &Announcement) -> Result<(), Status> {
        self.client
            .delete_path(apipb::DeletePathRequest {
                table_type: apipb::TableType::Global as i32,
                family: Some(family(a.prefix.addr)),
                path: Some(path(a)),
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// The prefixes of `family` in a table: the global RIB, or what is
    /// advertised to `neighbor` (adj-rib-out).
    pub async fn prefixes(
        &mut self,
        neighbor: Option<IpAddr>,
        family: apipb::Family,
    ) -> Result<Vec<String>, Status> {
        let (table_type, name) = match neighbor {
            Some(n) => (apipb::TableType::AdjOut, n.to_string()),
            None => (apipb::TableType::Global, String::new()),
        };
        let mut stream = self
            .client
            .list_path(apipb::ListPathRequest {
                table_type: table_type as i32,
                name,
                family: Some(family),
                ..Default::default()
            })
            .await?
            .into_inner();
        let mut out = Vec::new();
        while let Some(r) = stream.message().await? {
            if let Some(d) = r.destination {
                out.push(d.prefix);
            }
        }
        Ok(out)
    }
}

/// The session state of a peer, in words.
pub fn session_state(p: &apipb::Peer) -> &'static str {
    use apipb::peer_state::SessionState;
    match p
        .state
        .as_ref()
        .and_then(|s| SessionState::try_from(s.session_state).ok())
    {
        Some(SessionState::Established) => "established",
        Some(SessionState::Idle) => "idle",
        Some(SessionState::Connect) => "connect",
        Some(SessionState::Active) => "active",
        Some(SessionState::Opensent) => "opensent",
        Some(SessionState::Openconfirm) => "openconfirm",
        _ => "unknown",
    }
}
