//! The seam between the reconciler and the kernel: the map writes it makes.
use lb_common::maps::{Real, VipKey, VipMeta};

use crate::dataplane::{Dataplane, DataplaneError};

/// The writes the reconciler makes to the balancer's maps: the kernel's
/// [`Dataplane`], or an in-memory recorder in unit tests, which check the
/// order of writes promised above.
pub trait MapWriter {
    fn set_vip(&mut self, key: VipKey, meta: VipMeta) -> Result<(), DataplaneError>;
    fn remove_vip(&mut self, key: &VipKey) -> Result<(), DataplaneError>;
    fn set_real(&mut self, id: u32, real: &Real) -> Result<(), DataplaneError>;
    /// Writes the ring; returns how many slots were written.
    fn set_ring(&mut self, vip_id: u32, slots: &[u32]) -> Result<usize, DataplaneError>;
    fn remove_ring(&mut self, vip_id: u32) -> Result<(), DataplaneError>;
    /// Slots of the real table: real ids are 1..max_reals.
    fn max_reals(&self) -> u32 {
        lb_common::MAX_REALS
    }
}

impl MapWriter for Dataplane {
    fn set_vip(&mut self, key: VipKey, meta: VipMeta) -> Result<(), DataplaneError> {
        Dataplane::set_vip(self, key, meta)
    }
    fn remove_vip(&mut self, key: &VipKey) -> Result<(), DataplaneError> {
        Dataplane::remove_vip(self, key)
    }
    fn set_real(&mut self, id: u32, real: &Real) -> Result<(), DataplaneError> {
        Dataplane::set_real(self, id, real)
    }
    fn set_ring(&mut self, vip_id: u32, slots: &[u32]) -> Result<usize, DataplaneError> {
        Dataplane::set_ring(self, vip_id, slots)
    }
    fn remove_ring(&mut self, vip_id: u32) -> Result<(), DataplaneError> {
        Dataplane::remove_ring(self, vip_id)
    }
    fn max_reals(&self) -> u32 {
        Dataplane::max_reals(self)
    }
}
