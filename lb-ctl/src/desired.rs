//! The desired state as the reconciler takes it: VIPs with their ring size
//! and reals, each real with its weight and health.
use std::net::IpAddr;

use crate::{
    maglev::RingSize,
    vocab::{RealState, VipId},
};

/// A real as the desired state has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealSpec {
    pub addr: IpAddr,
    /// Maglev weight; 0 = drain (established flows stay, no new ones).
    pub weight: u32,
    /// What health checks say; a real that is not healthy gets no flows and
    /// its established flows move.
    pub healthy: bool,
    /// Packets reach it in GUE (else IP-in-IP).
    pub gue: bool,
}

impl RealSpec {
    /// The data plane's state for this real.
    pub fn state(&self) -> RealState {
        RealState::of(self.weight, self.healthy)
    }
}

/// A VIP as the desired state has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipSpec {
    pub id: VipId,
    pub ring_size: RingSize,
    /// Hash every packet (no connection table) for this VIP.
    pub no_conn_table: bool,
    /// Route QUIC short headers by connection id.
    pub quic: bool,
    pub reals: Vec<RealSpec>,
}
