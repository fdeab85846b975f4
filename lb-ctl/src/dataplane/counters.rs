//! Reading what the balancer counted and remembered: global counters,
//! traffic per VIP and real, the connection table.
use aya::maps::{MapData, MapError, PerCpuArray};
use lb_common::{
    maps::{Conn, FlowKey, Traffic, names},
    stats::Stats,
};

use super::{Dataplane, Result, map_err};

impl Dataplane {
    /// The connection of `flow`, if the table has it.
    pub fn conn(&self, flow: &FlowKey) -> Result<Option<Conn>> {
        match self.conns.get(flow, 0) {
            Ok(c) => Ok(Some(c)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(map_err(names::CONNS, "read")(e)),
        }
    }

    /// How many connections the table holds (walks it).
    pub fn conn_count(&self) -> usize {
        self.conns.keys().filter(Result::is_ok).count()
    }

    /// The global counters, summed over CPUs.
    pub fn stats(&self) -> Result<Stats> {
        let per_cpu = self
            .stats
            .get(&0, 0)
            .map_err(map_err(names::STATS, "read"))?;
        let mut total = Stats::default();
        per_cpu.iter().for_each(|s| total.add(s));
        Ok(total)
    }

    /// VIP `vip_id`'s traffic, summed over CPUs.
    pub fn vip_traffic(&self, vip_id: u32) -> Result<Traffic> {
        sum_traffic(&self.vip_stats, vip_id, names::VIP_STATS)
    }

    /// Real `real_id`'s traffic, summed over CPUs.
    pub fn real_traffic(&self, real_id: u32) -> Result<Traffic> {
        sum_traffic(&self.real_stats, real_id, names::REAL_STATS)
    }
}

fn sum_traffic(
    map: &PerCpuArray<MapData, Traffic>,
    index: u32,
    name: &'static str,
) -> Result<Traffic> {
    let per_cpu = map.get(&index, 0).map_err(map_err(name, "read"))?;
    let mut total = Traffic::default();
    per_cpu.iter().for_each(|t| total += *t);
    Ok(total)
}
