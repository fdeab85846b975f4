//! Writing and reading the balancer's entries: VIPs (with their address
//! count, filter slot and generation), reals, rings, and connections
//! written from user space.
use aya::maps::{ArrayOfMaps, MapData, MapError};
use lb_common::{
    MAX_VIPS,
    hash::vip_filter_slot,
    maps::{AddrKey, Conn, FlowKey, Real, VipKey, VipMeta, names},
};

use super::{Dataplane, DataplaneError, Result, Ring, map_err};

impl Dataplane {
    /// Remembers `flow` as the program would (in its family's table, the
    /// least recently used entry making room): the carry-over of an
    /// earlier version's table, and benchmarks filling a table.
    pub fn remember(&mut self, flow: &FlowKey, conn: Conn) -> Result<()> {
        self.conns
            .insert(flow, conn)
            .map_err(|(name, e)| map_err(name, "write")(e))
    }

    /// Adds or replaces a VIP (its ring should be set first, to avoid
    /// drops). `meta.generation` is assigned here: kept when the VIP keeps
    /// its id and flags (a new ring size keeps its connections), bumped
    /// otherwise, so that connections made under another VIP never apply.
    pub fn set_vip(&mut self, key: VipKey, mut meta: VipMeta) -> Result<()> {
        if meta.vip_id >= MAX_VIPS {
            return Err(DataplaneError::VipId(meta.vip_id));
        }
        let old = self.vips.get(&key, 0).ok();
        meta.generation = match old {
            Some(o) if o.vip_id == meta.vip_id && o.flags == meta.flags => o.generation,
            _ => self.bump_vip_generation(meta.vip_id)?,
        };
        self.vips
            .insert(key, meta, 0)
            .map_err(map_err(names::VIPS, "write"))?;
        match old {
            None => self.adjust_addr_count(&key, 1)?,
            // The VIP moved to another id: the old id's connections die.
            Some(o) if o.vip_id != meta.vip_id => {
                self.bump_vip_generation(o.vip_id)?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Removes a VIP and ends its connections (its ring stays until
    /// [`Self::remove_ring`]).
    pub fn remove_vip(&mut self, key: &VipKey) -> Result<()> {
        let Ok(old) = self.vips.get(key, 0) else {
            return Ok(());
        };
        self.bump_vip_generation(old.vip_id)?;
        match self.vips.remove(key) {
            Ok(()) => self.adjust_addr_count(key, -1),
            Err(MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(map_err(names::VIPS, "remove")(e)),
        }
    }

    /// Gives VIP id `vip_id` a new generation (never 0) and returns it.
    fn bump_vip_generation(&mut self, vip_id: u32) -> Result<u32> {
        let now = self
            .vip_gens
            .get(&vip_id, 0)
            .map_err(map_err(names::VIP_GENS, "read"))?;
        let next = now.wrapping_add(1).max(1);
        self.vip_gens
            .set(vip_id, next, 0)
            .map_err(map_err(names::VIP_GENS, "write"))?;
        Ok(next)
    }

    pub fn vips(&self) -> Result<Vec<(VipKey, VipMeta)>> {
        self.vips
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err(names::VIPS, "read"))
    }

    fn adjust_addr_count(&mut self, key: &VipKey, delta: i32) -> Result<()> {
        let addr = AddrKey {
            addr: key.addr,
            family: key.family,
            _pad: [0; 3],
        };
        let now = self.vip_addrs.get(&addr, 0).unwrap_or(0);
        let next = now.saturating_add_signed(delta);
        // The filter counts addresses: it changes when an address gets its
        // first VIP or loses its last.
        if (now == 0) != (next == 0) {
            let slot = vip_filter_slot(&key.addr);
            let in_slot = self
                .vip_filter
                .get(&slot, 0)
                .map_err(map_err(names::VIP_FILTER, "read"))?;
            let in_slot = if next == 0 {
                in_slot.saturating_sub(1)
            } else {
                in_slot + 1
            };
            self.vip_filter
                .set(slot, in_slot, 0)
                .map_err(map_err(names::VIP_FILTER, "write"))?;
        }
        if next == 0 {
            match self.vip_addrs.remove(&addr) {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(e) => Err(map_err(names::VIP_ADDRS, "remove")(e)),
            }
        } else {
            self.vip_addrs
                .insert(addr, next, 0)
                .map_err(map_err(names::VIP_ADDRS, "write"))
        }
    }

    /// Slots of the real table (`[dataplane] max_reals`); ids are
    /// 1..max_reals.
    pub fn max_reals(&self) -> u32 {
        self.reals.len()
    }

    /// Writes real slot `id` (1..max_reals).
    pub fn set_real(&mut self, id: u32, real: &Real) -> Result<()> {
        if id == 0 || id >= self.max_reals() {
            return Err(DataplaneError::RealId(id, self.max_reals()));
        }
        self.reals
            .set(id, real, 0)
            .map_err(map_err(names::REALS, "write"))
    }

    /// Every real slot that is or was used (non-zero family or generation).
    pub fn reals(&self) -> Result<Vec<(u32, Real)>> {
        let mut out = Vec::new();
        for (id, real) in self.reals.iter().enumerate() {
            let real = real.map_err(map_err(names::REALS, "read"))?;
            if real.family != 0 || real.generation != 0 {
                out.push((id as u32, real));
            }
        }
        Ok(out)
    }

    pub fn real(&self, id: u32) -> Result<Real> {
        self.reals
            .get(&id, 0)
            .map_err(map_err(names::REALS, "read"))
    }

    /// Replaces VIP `vip_id`'s ring with `slots` (real ids; 0 = none). If a
    /// ring of that size exists it is updated in place (only differing
    /// slots are written); otherwise a new ring is made, filled, and swapped
    /// in. Returns the number of slots written.
    pub fn set_ring(&mut self, vip_id: u32, slots: &[u32]) -> Result<usize> {
        if vip_id >= MAX_VIPS {
            return Err(DataplaneError::VipId(vip_id));
        }
        let size = slots.len() as u32;
        if let Some(ring) = self.rings.get(&vip_id)
            && ring.size() == size
        {
            return Ok(ring.write_all(slots));
        }
        let ring_err = |source| DataplaneError::Ring { vip_id, source };
        let ring = Ring::create(size).map_err(ring_err)?;
        let written = ring.write_all(slots);
        ArrayOfMaps::<_, MapData>::try_from(&mut self.rings_outer)
            .map_err(map_err(names::RINGS, "type"))?
            .set(vip_id, ring.map(), 0)
            .map_err(map_err(names::RINGS, "write"))?;
        self.rings.insert(vip_id, ring);
        Ok(written)
    }

    /// Writes single slots of VIP `vip_id`'s ring: `(slot, real id)`.
    pub fn update_ring(&mut self, vip_id: u32, changes: &[(u32, u32)]) -> Result<()> {
        let ring = self
            .rings
            .get(&vip_id)
            .ok_or(DataplaneError::NoRing(vip_id))?;
        for &(slot, real) in changes {
            ring.set(slot, real);
        }
        Ok(())
    }

    /// Reads VIP `vip_id`'s ring.
    pub fn ring(&self, vip_id: u32) -> Result<Vec<u32>> {
        self.rings
            .get(&vip_id)
            .map(Ring::read)
            .ok_or(DataplaneError::NoRing(vip_id))
    }

    /// Drops VIP `vip_id`'s ring: `LB_RINGS` forgets it and its memory is
    /// freed once nothing refers to it.
    pub fn remove_ring(&mut self, vip_id: u32) -> Result<()> {
        self.rings.remove(&vip_id);
        // aya 0.14 has no delete for arrays of maps; the kernel has.
        match delete_elem(self.rings_outer_fd(), &vip_id) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            Err(io_error) => Err(map_err(names::RINGS, "remove")(MapError::SyscallError(
                aya::sys::SyscallError {
                    call: "bpf_map_delete_elem",
                    io_error,
                },
            ))),
        }
    }

    fn rings_outer_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        match &self.rings_outer {
            aya::maps::Map::ArrayOfMaps(data) => data.fd().as_fd(),
            _ => unreachable!("LB_RINGS was checked to be an array of maps at load"),
        }
    }
}

/// `BPF_MAP_DELETE_ELEM` on `fd` for `key`.
fn delete_elem(fd: std::os::fd::BorrowedFd<'_>, key: &u32) -> std::io::Result<()> {
    use std::os::fd::AsRawFd as _;
    /// The `bpf_attr` of the map element commands.
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
    let attr = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: a bpf(2) call with a valid attr of the size given.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_DELETE_ELEM,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<ElemAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
