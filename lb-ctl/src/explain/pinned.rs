//! The balancer's maps as pinned by `lb-ctl daemon` (or `attach`), opened
//! for reading: [`explain`](super::explain) reads them, nothing here writes.
//! A map pinned with another layout (another lb-ctl version) is refused by
//! aya's key and value size checks rather than misread.
use std::{net::IpAddr, path::Path};

use aya::maps::{Array, ArrayOfMaps, HashMap, Map, MapData, MapError};
use lb_common::{
    config::Config,
    maps::{AddrKey, Conn, FlowKey, Real, VipKey, VipMeta, names},
};

use super::MapsView;
use crate::{
    dataplane::ConnTables,
    vocab::{Proto, VipId},
};

/// Why the pinned maps cannot be read.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read the pinned map {name} in {dir} (is the balancer attached with this pin directory, by this lb-ctl version?)"
)]
pub struct PinnedError {
    pub dir: String,
    pub name: &'static str,
    #[source]
    pub source: MapError,
}

/// Read handles on the pinned maps.
pub struct PinnedMaps {
    vips: HashMap<MapData, VipKey, VipMeta>,
    vip_addrs: HashMap<MapData, AddrKey, u32>,
    vip_gens: Array<MapData, u32>,
    reals: Array<MapData, Real>,
    rings: ArrayOfMaps<MapData, MapData>,
    conns: ConnTables,
    config: Array<MapData, Config>,
}

impl PinnedMaps {
    /// Opens the maps pinned under `dir`.
    pub fn open(dir: &Path) -> Result<Self, PinnedError> {
        let err = |name| {
            let dir = dir.display().to_string();
            move |source| PinnedError { dir, name, source }
        };
        let map = |name: &'static str| {
            MapData::from_pin(dir.join(name))
                .and_then(Map::from_map_data)
                .map_err(err(name))
        };
        Ok(Self {
            vips: HashMap::try_from(map(names::VIPS)?).map_err(err(names::VIPS))?,
            vip_addrs: HashMap::try_from(map(names::VIP_ADDRS)?).map_err(err(names::VIP_ADDRS))?,
            vip_gens: Array::try_from(map(names::VIP_GENS)?).map_err(err(names::VIP_GENS))?,
            reals: Array::try_from(map(names::REALS)?).map_err(err(names::REALS))?,
            rings: ArrayOfMaps::try_from(map(names::RINGS)?).map_err(err(names::RINGS))?,
            conns: ConnTables::new(map(names::CONNS_V4)?, map(names::CONNS_V6)?)
                .map_err(|(name, e)| err(name)(e))?,
            config: Array::try_from(map(names::CONFIG)?).map_err(err(names::CONFIG))?,
        })
    }
}

impl PinnedMaps {
    /// Every VIP with its id.
    pub fn vips(&self) -> Vec<(VipId, u32)> {
        self.vips
            .iter()
            .filter_map(Result::ok)
            .filter_map(|(k, meta)| {
                Some((
                    VipId {
                        addr: k.ip()?,
                        port: k.port,
                        proto: Proto::from_number(k.proto)?,
                    },
                    meta.vip_id,
                ))
            })
            .collect()
    }

    /// The ids of the reals at `addr` (of VIP `vip_id`, if given).
    pub fn real_ids(&self, addr: IpAddr, vip_id: Option<u32>) -> Vec<u32> {
        self.reals
            .iter()
            .enumerate()
            .filter_map(|(id, r)| r.ok().map(|r| (id, r)))
            .filter(|(_, r)| r.ip() == Some(addr) && vip_id.is_none_or(|v| r.vip_id == v))
            .map(|(id, _)| id as u32)
            .collect()
    }
}

impl MapsView for PinnedMaps {
    fn vip(&self, key: &VipKey) -> Option<VipMeta> {
        self.vips.get(key, 0).ok()
    }

    fn is_vip_addr(&self, key: &AddrKey) -> bool {
        self.vip_addrs.get(key, 0).is_ok()
    }

    fn vips_on(&self, addr: IpAddr) -> Vec<VipId> {
        let mut out: Vec<VipId> = self
            .vips
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ip() == Some(addr))
            .filter_map(|k| {
                Some(VipId {
                    addr,
                    port: k.port,
                    proto: Proto::from_number(k.proto)?,
                })
            })
            .collect();
        out.sort();
        out
    }

    fn vip_generation(&self, vip_id: u32) -> Option<u32> {
        self.vip_gens.get(&vip_id, 0).ok()
    }

    fn real(&self, real_id: u32) -> Option<Real> {
        self.reals.get(&real_id, 0).ok()
    }

    fn ring_slot(&self, vip_id: u32, slot: u32) -> Option<u32> {
        let inner = self.rings.get(&vip_id, 0).ok()?;
        let ring: Array<MapData, u32> = Array::try_from(Map::from_map_data(inner).ok()?).ok()?;
        ring.get(&slot, 0).ok()
    }

    fn conn(&self, flow: &FlowKey) -> Option<Conn> {
        self.conns.get(flow).ok().flatten()
    }

    fn config(&self) -> Option<Config> {
        self.config.get(&0, 0).ok()
    }
}
