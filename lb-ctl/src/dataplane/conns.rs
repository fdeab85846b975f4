//! The connection tables, one per family (`LB_CONNS_V4` keyed by 16 bytes,
//! `LB_CONNS_V6` by [`FlowKey`]'s 40), read as one: a flow is looked up in
//! its family's table. Used by the loaded balancer and by `explain` on the
//! pinned maps. An upgrade from the single table of earlier versions
//! carries its flows over ([`read_retired`]).
use std::path::Path;

use aya::maps::{HashMap, Map, MapData, MapError};
use lb_common::{
    FAMILY_V4, FAMILY_V6,
    maps::{Conn, FlowKey, FlowKeyV4, names},
};

/// Both connection tables.
pub struct ConnTables {
    v4: HashMap<MapData, FlowKeyV4, Conn>,
    v6: HashMap<MapData, FlowKey, Conn>,
}

/// How many flows each table holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    pub v4: usize,
    pub v6: usize,
}

impl ConnCounts {
    pub fn total(&self) -> usize {
        self.v4 + self.v6
    }
}

impl ConnTables {
    /// The tables from their maps; the error names the one of the wrong
    /// type.
    pub fn new(v4: Map, v6: Map) -> Result<Self, (&'static str, MapError)> {
        Ok(ConnTables {
            v4: HashMap::try_from(v4).map_err(|e| (names::CONNS_V4, e))?,
            v6: HashMap::try_from(v6).map_err(|e| (names::CONNS_V6, e))?,
        })
    }

    /// The connection of `flow`, if its family's table has it; the error
    /// names the table that could not be read.
    pub fn get(&self, flow: &FlowKey) -> Result<Option<Conn>, (&'static str, MapError)> {
        let (found, name) = if flow.family == FAMILY_V4 {
            (self.v4.get(&flow.v4(), 0), names::CONNS_V4)
        } else {
            (self.v6.get(flow, 0), names::CONNS_V6)
        };
        match found {
            Ok(c) => Ok(Some(c)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err((name, e)),
        }
    }

    /// Remembers `flow` in its family's table.
    pub fn insert(&mut self, flow: &FlowKey, conn: Conn) -> Result<(), (&'static str, MapError)> {
        if flow.family == FAMILY_V4 {
            self.v4
                .insert(flow.v4(), conn, 0)
                .map_err(|e| (names::CONNS_V4, e))
        } else {
            self.v6
                .insert(flow, conn, 0)
                .map_err(|e| (names::CONNS_V6, e))
        }
    }

    /// How many flows each table holds (walks them).
    pub fn counts(&self) -> ConnCounts {
        ConnCounts {
            v4: self.v4.keys().filter(Result::is_ok).count(),
            v6: self.v6.keys().filter(Result::is_ok).count(),
        }
    }
}

/// Up to `limit` flows of the connection table an earlier version pinned
/// under `dir` (`LB_CONNS`, both families), read before that pin is removed
/// so that an upgrade keeps established flows on their reals. Nothing if
/// there is no such pin or it has another layout; an entry of no known
/// family is left out.
pub(super) fn read_retired(dir: &Path, limit: usize) -> Vec<(FlowKey, Conn)> {
    let Ok(data) = MapData::from_pin(dir.join(names::RETIRED_CONNS)) else {
        return Vec::new();
    };
    let Ok(table) = Map::from_map_data(data).and_then(HashMap::<_, FlowKey, Conn>::try_from) else {
        return Vec::new();
    };
    table
        .iter()
        .filter_map(Result::ok)
        .filter(|(flow, _)| flow.family == FAMILY_V4 || flow.family == FAMILY_V6)
        .take(limit)
        .collect()
}
