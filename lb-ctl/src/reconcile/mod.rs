//! Desired state -> the balancer's maps. Given the VIPs and reals that
//! should be (from the config, the API and health checks), diff against what
//! the kernel holds and apply in place: VIP and real ids are allocated and
//! kept, rings are rebuilt with Maglev and only changed slots are written.
//!
//! Order of writes, so that no packet meets a half-made VIP: reals first,
//! then the ring, then the VIP entry; a removed real leaves the ring before
//! its slot is cleared. A restarted lb-ctl adopts the ids, reals and rings
//! it finds in the (pinned) maps.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use lb_common::{
    MAX_VIPS, NO_REAL,
    maps::{REAL_F_GUE, Real, VIP_F_NO_CONN_TABLE, VIP_F_QUIC, VipMeta},
};

mod adopt;

use crate::vocab::{RealState, VipId};
use crate::{
    dataplane::DataplaneError,
    maglev::{self, MaglevError, Member, RingSize},
};
pub use crate::{
    desired::{RealSpec, VipSpec},
    map_writer::MapWriter,
};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("VIP {vip}: {source}")]
    Maglev {
        vip: VipId,
        #[source]
        source: MaglevError,
    },
    #[error("VIP {0} appears twice")]
    DuplicateVip(VipId),
    #[error("VIP {vip}: real {real} appears twice")]
    DuplicateReal { vip: VipId, real: IpAddr },
    #[error("more than {MAX_VIPS} VIPs")]
    TooManyVips,
    #[error("more than {} reals in all (the real table has {slots} slots: [dataplane] max_reals)", slots - 1)]
    TooManyReals { slots: u32 },
}

/// What one [`Reconciler::apply`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub vips_added: usize,
    pub vips_removed: usize,
    pub vips_changed: usize,
    pub reals_added: usize,
    pub reals_removed: usize,
    pub reals_changed: usize,
    /// Ring slots written (0 when nothing moved).
    pub slots_written: usize,
}

impl ApplyReport {
    pub fn is_empty(&self) -> bool {
        *self == ApplyReport::default()
    }
}

#[derive(Debug, Clone)]
struct RealEntry {
    id: u32,
    generation: u32,
    spec: RealSpec,
}

#[derive(Debug, Clone)]
struct VipEntry {
    vip_id: u32,
    ring_size: RingSize,
    flags: u32,
    reals: BTreeMap<IpAddr, RealEntry>,
    /// The ring as written (real ids by slot).
    ring: Vec<u32>,
}

/// The controller's view of the maps, and what it takes to change them.
#[derive(Debug, Default)]
pub struct Reconciler {
    vips: BTreeMap<VipId, VipEntry>,
    /// The last generation given to each real id (ids never reuse one).
    real_generations: BTreeMap<u32, u32>,
}

/// The ids in `from..below` that `used` does not hold.
fn free_ids(used: impl Iterator<Item = u32>, from: u32, below: u32) -> BTreeSet<u32> {
    let used: BTreeSet<u32> = used.collect();
    (from..below).filter(|i| !used.contains(i)).collect()
}

impl Reconciler {
    /// An empty view: for a fresh data plane.
    pub fn new() -> Self {
        Self::default()
    }

    /// The VIPs held, with their data-plane ids.
    pub fn vip_ids(&self) -> impl Iterator<Item = (&VipId, u32)> {
        self.vips.iter().map(|(k, v)| (k, v.vip_id))
    }

    /// The data-plane id of real `addr` of VIP `vip`.
    pub fn real_id(&self, vip: &VipId, addr: &IpAddr) -> Option<u32> {
        self.vips.get(vip)?.reals.get(addr).map(|r| r.id)
    }

    /// Whether each real held is healthy (its state is not down); for a
    /// restarted controller, what the health checks start from.
    pub fn real_health(&self) -> BTreeMap<IpAddr, bool> {
        self.vips
            .values()
            .flat_map(|v| v.reals.values())
            .map(|r| (r.spec.addr, r.spec.healthy))
            .collect()
    }

    /// The ring of VIP `vip` as written (real ids by slot).
    pub fn ring(&self, vip: &VipId) -> Option<&[u32]> {
        self.vips.get(vip).map(|v| v.ring.as_slice())
    }

    fn check(desired: &[VipSpec], max_reals: u32) -> Result<(), ReconcileError> {
        let mut seen = BTreeSet::new();
        for v in desired {
            if !seen.insert(v.id) {
                return Err(ReconcileError::DuplicateVip(v.id));
            }
            let mut reals = BTreeSet::new();
            for r in &v.reals {
                if !reals.insert(r.addr) {
                    return Err(ReconcileError::DuplicateReal {
                        vip: v.id,
                        real: r.addr,
                    });
                }
            }
        }
        if desired.len() > MAX_VIPS as usize {
            return Err(ReconcileError::TooManyVips);
        }
        let total: usize = desired.iter().map(|v| v.reals.len()).sum();
        if total >= max_reals as usize {
            return Err(ReconcileError::TooManyReals { slots: max_reals });
        }
        Ok(())
    }

    /// Makes the data plane hold `desired`, changing only what differs.
    pub fn apply(
        &mut self,
        dp: &mut impl MapWriter,
        desired: &[VipSpec],
    ) -> Result<ApplyReport, ReconcileError> {
        Self::check(desired, dp.max_reals())?;
        // Rings first, computed before any write: a Maglev error leaves the
        // data plane as it was.
        let mut rings = Vec::with_capacity(desired.len());
        for v in desired {
            let ids: Vec<Vec<u8>> = v.reals.iter().map(|r| maglev::identity(&r.addr)).collect();
            let members: Vec<Member<'_>> = ids
                .iter()
                .zip(&v.reals)
                .map(|(id, r)| Member {
                    identity: id,
                    weight: if r.state() == RealState::Up {
                        r.weight
                    } else {
                        0
                    },
                })
                .collect();
            let table = maglev::build(v.ring_size, &members)
                .map_err(|source| ReconcileError::Maglev { vip: v.id, source })?;
            rings.push(table);
        }

        let mut report = ApplyReport::default();
        let wanted: BTreeSet<VipId> = desired.iter().map(|v| v.id).collect();
        let gone: Vec<VipId> = self
            .vips
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for id in gone {
            let entry = self.vips.remove(&id).expect("listed above");
            dp.remove_vip(&id.key())?;
            dp.remove_ring(entry.vip_id)?;
            for real in entry.reals.values() {
                self.clear_real(dp, real)?;
                report.reals_removed += 1;
            }
            report.vips_removed += 1;
        }

        // Ids are taken lowest first: the free ones, kept up to date as
        // VIPs and reals come and go in this loop (computed once: with
        // thousands of VIPs, recomputing them per VIP was quadratic).
        let mut free_vip_ids = free_ids(self.vips.values().map(|v| v.vip_id), 0, MAX_VIPS);
        let mut free_real_ids = free_ids(
            self.vips
                .values()
                .flat_map(|v| v.reals.values().map(|r| r.id)),
            1,
            dp.max_reals(),
        );
        for (spec, table) in desired.iter().zip(rings) {
            let flags = if spec.no_conn_table {
                VIP_F_NO_CONN_TABLE
            } else {
                0
            } | if spec.quic { VIP_F_QUIC } else { 0 };
            let is_new = !self.vips.contains_key(&spec.id);
            if is_new {
                let vip_id = free_vip_ids
                    .pop_first()
                    .ok_or(ReconcileError::TooManyVips)?;
                self.vips.insert(
                    spec.id,
                    VipEntry {
                        vip_id,
                        ring_size: spec.ring_size,
                        flags,
                        reals: BTreeMap::new(),
                        ring: Vec::new(),
                    },
                );
                report.vips_added += 1;
            }
            // Reals: new ones get ids, changed ones are rewritten.
            let vip_id = self.vips[&spec.id].vip_id;
            for r in &spec.reals {
                let existing = self.vips[&spec.id].reals.get(&r.addr).cloned();
                let entry = match existing {
                    Some(mut e) => {
                        if e.spec.state() != r.state() || e.spec.gue != r.gue {
                            report.reals_changed += 1;
                            e.spec = *r;
                            write_real(dp, &e, vip_id)?;
                        }
                        e.spec = *r;
                        e
                    }
                    None => {
                        let id = free_real_ids
                            .pop_first()
                            .ok_or(ReconcileError::TooManyReals {
                                slots: dp.max_reals(),
                            })?;
                        let generation = self
                            .real_generations
                            .get(&id)
                            .copied()
                            .unwrap_or(0)
                            .wrapping_add(1)
                            .max(1);
                        self.real_generations.insert(id, generation);
                        let e = RealEntry {
                            id,
                            generation,
                            spec: *r,
                        };
                        write_real(dp, &e, vip_id)?;
                        report.reals_added += 1;
                        e
                    }
                };
                self.vips
                    .get_mut(&spec.id)
                    .expect("inserted")
                    .reals
                    .insert(r.addr, entry);
            }
            // The ring: in place when the size is unchanged.
            let entry = self.vips.get_mut(&spec.id).expect("inserted");
            let ids: Vec<u32> = spec.reals.iter().map(|r| entry.reals[&r.addr].id).collect();
            let slots = table.map_ids(&ids, NO_REAL);
            if slots != entry.ring || entry.ring_size != spec.ring_size {
                report.slots_written += dp.set_ring(entry.vip_id, &slots)?;
                entry.ring = slots;
            }
            // Reals no longer wanted leave after the ring stopped naming them.
            let keep: BTreeSet<IpAddr> = spec.reals.iter().map(|r| r.addr).collect();
            let removed: Vec<RealEntry> = entry
                .reals
                .iter()
                .filter(|(a, _)| !keep.contains(a))
                .map(|(_, r)| r.clone())
                .collect();
            for r in &removed {
                entry.reals.remove(&r.spec.addr);
                free_real_ids.insert(r.id);
            }
            let meta_changed =
                !is_new && (entry.ring_size != spec.ring_size || entry.flags != flags);
            entry.ring_size = spec.ring_size;
            entry.flags = flags;
            let meta = VipMeta {
                vip_id: entry.vip_id,
                ring_size: spec.ring_size.get(),
                flags,
                generation: 0,
            };
            for r in &removed {
                self.clear_real(dp, r)?;
                report.reals_removed += 1;
            }
            if is_new || meta_changed {
                dp.set_vip(spec.id.key(), meta)?;
                if meta_changed {
                    report.vips_changed += 1;
                }
            }
        }
        Ok(report)
    }

    /// Empties a real slot, keeping its generation for the next owner.
    fn clear_real(
        &mut self,
        dp: &mut impl MapWriter,
        real: &RealEntry,
    ) -> Result<(), ReconcileError> {
        let cleared = Real {
            generation: real.generation,
            ..Real::default()
        };
        dp.set_real(real.id, &cleared)?;
        Ok(())
    }
}

fn write_real(dp: &mut impl MapWriter, e: &RealEntry, vip_id: u32) -> Result<(), ReconcileError> {
    let real = Real {
        vip_id,
        flags: if e.spec.gue { REAL_F_GUE } else { 0 },
        ..Real::new(e.spec.addr, e.spec.state().to_map(), e.generation)
    };
    dp.set_real(e.id, &real)?;
    Ok(())
}

#[cfg(test)]
mod write_order_tests;
