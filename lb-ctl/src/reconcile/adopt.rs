//! A restarted lb-ctl's reconciler: learnt from the maps an earlier run
//! pinned, so that VIPs and reals keep their ids and rings their slots.
use std::collections::BTreeMap;

use super::{RealEntry, RealSpec, ReconcileError, Reconciler, VipEntry};
use crate::{
    dataplane::Dataplane,
    maglev::RingSize,
    vocab::{Proto, RealState, VipId},
};

impl Reconciler {
    /// Learns what the data plane holds (pinned maps of an earlier run):
    /// VIPs with their ids, reals with their ids and generations, rings.
    pub fn adopt(dp: &Dataplane) -> Result<Self, ReconcileError> {
        let mut r = Reconciler::default();
        let mut by_vip_id: BTreeMap<u32, VipId> = BTreeMap::new();
        for (key, meta) in dp.vips()? {
            let (Some(addr), Some(proto)) = (key.ip(), Proto::from_number(key.proto)) else {
                continue;
            };
            let id = VipId {
                addr,
                port: key.port,
                proto,
            };
            let ring = dp.ring(meta.vip_id).unwrap_or_default();
            let Ok(ring_size) = RingSize::new(meta.ring_size) else {
                continue;
            };
            by_vip_id.insert(meta.vip_id, id);
            r.vips.insert(
                id,
                VipEntry {
                    vip_id: meta.vip_id,
                    ring_size,
                    flags: meta.flags,
                    reals: BTreeMap::new(),
                    ring,
                },
            );
        }
        for (real_id, real) in dp.reals()? {
            r.real_generations.insert(real_id, real.generation);
            let Some(addr) = real.ip() else { continue };
            let Some(vip) = by_vip_id.get(&real.vip_id) else {
                continue;
            };
            let entry = r.vips.get_mut(vip).expect("indexed above");
            let in_ring = entry.ring.contains(&real_id);
            let spec = RealSpec {
                addr,
                // The weight is not in the maps; the next apply restores it
                // from the desired state (ring slots only move if it differs).
                weight: u32::from(
                    RealState::from_map(real.state) == Some(RealState::Up) && in_ring,
                ),
                healthy: RealState::from_map(real.state) != Some(RealState::Down),
                gue: real.flags & lb_common::maps::REAL_F_GUE != 0,
            };
            entry.reals.insert(
                addr,
                RealEntry {
                    id: real_id,
                    generation: real.generation,
                    spec,
                },
            );
        }
        Ok(r)
    }
}
