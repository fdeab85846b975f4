//! VIPs and reals for unit tests: a TCP VIP with a ring of 13 and no
//! check, a real of weight 1; tests change what they need with struct
//! update syntax.
use super::{Check, RealConfig, VipConfig};
use crate::vocab::Proto;

/// TCP VIP `addr:port`, ring 13, no check, min_healthy 1, no reals.
pub fn vip(addr: &str, port: u16) -> VipConfig {
    VipConfig {
        address: addr.parse().unwrap(),
        port,
        protocol: Proto::Tcp,
        ring_size: 13,
        no_conn_table: false,
        quic: false,
        encap: Default::default(),
        health: Check::none(),
        min_healthy: 1,
        communities: None,
        med: None,
        reals: Vec::new(),
    }
}

/// Real `addr`, weight 1, the VIP's check.
pub fn real(addr: &str) -> RealConfig {
    RealConfig {
        address: addr.parse().unwrap(),
        weight: 1,
        health: None,
        encap: None,
    }
}
