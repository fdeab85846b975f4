//! Reading what the balancer counted and remembered: global counters,
//! traffic per VIP and real, the connection table.
use aya::maps::{MapData, PerCpuArray};
use lb_common::{
    maps::{Conn, FlowKey, Traffic, names},
    stats::Stats,
};

use super::{ConnCounts, Dataplane, Result, map_err};

impl Dataplane {
    /// The connection of `flow`, if its family's table has it.
    pub fn conn(&self, flow: &FlowKey) -> Result<Option<Conn>> {
        self.conns
            .get(flow)
            .map_err(|(name, e)| map_err(name, "read")(e))
    }

    /// How many connections each table holds (walks them).
    pub fn conn_counts(&self) -> ConnCounts {
        self.conns.counts()
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
