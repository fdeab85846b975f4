//! The messages the control API sends to the daemon's controller: the
//! API side owns them, so the daemon depends on the API and never the
//! other way round.
use std::net::IpAddr;

use tokio::sync::oneshot;

use super::pb;
use crate::{
    config::{RealConfig, VipConfig},
    vocab::VipId,
};

/// A change asked through the API.
#[derive(Debug, Clone)]
pub enum Change {
    AddVip(VipConfig),
    DelVip(VipId),
    AddReal(VipId, RealConfig),
    DelReal(VipId, IpAddr),
    SetWeight(VipId, IpAddr, u32),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

/// A message to the controller.
#[derive(Debug)]
pub enum Command {
    Status(oneshot::Sender<pb::StatusReply>),
    ListVips(oneshot::Sender<pb::ListVipsReply>),
    Change(Change, oneshot::Sender<Result<String, RequestError>>),
    Stats(oneshot::Sender<pb::StatsReply>),
    Health(oneshot::Sender<pb::HealthReply>),
    Reload(oneshot::Sender<Result<String, RequestError>>),
    BgpStatus(oneshot::Sender<pb::BgpStatusReply>),
    /// Everything the metrics endpoint reports, in one answer.
    Metrics(oneshot::Sender<MetricsSnapshot>),
}

/// The controller's state as the metrics endpoint renders it: taken in one
/// message, so that every family of a scrape describes the same moment.
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot {
    pub stats: pb::StatsReply,
    pub vips: pb::ListVipsReply,
    pub health: pb::HealthReply,
    pub bgp: pb::BgpStatusReply,
    pub uptime_s: u64,
}
