//! Building map keys and values from addresses, and reading addresses
//! back: what lb-ctl and the tests write, and the IPv4 key the balancer
//! derives from a flow.
use super::{AddrKey, FlowKey, FlowKeyV4, Real, VipKey};

/// An address as stored in maps: 16 bytes in network order (IPv4 in the
/// first 4) and its family.
pub fn addr_bytes(addr: core::net::IpAddr) -> ([u8; 16], u8) {
    let mut bytes = [0u8; 16];
    match addr {
        core::net::IpAddr::V4(a) => {
            bytes[..4].copy_from_slice(&a.octets());
            (bytes, crate::FAMILY_V4)
        }
        core::net::IpAddr::V6(a) => (a.octets(), crate::FAMILY_V6),
    }
}

/// The address stored as `bytes` with `family`, if the family is known.
pub fn addr_from_bytes(bytes: &[u8; 16], family: u8) -> Option<core::net::IpAddr> {
    match family {
        crate::FAMILY_V4 => Some(core::net::IpAddr::V4(core::net::Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        crate::FAMILY_V6 => Some(core::net::IpAddr::V6(core::net::Ipv6Addr::from(*bytes))),
        _ => None,
    }
}

impl VipKey {
    /// The key of the VIP `addr:port/proto` (`port` 0: every port).
    pub fn new(addr: core::net::IpAddr, port: u16, proto: u8) -> Self {
        let (addr, family) = addr_bytes(addr);
        VipKey {
            addr,
            port,
            proto,
            family,
        }
    }

    pub fn ip(&self) -> Option<core::net::IpAddr> {
        addr_from_bytes(&self.addr, self.family)
    }
}

impl AddrKey {
    pub fn new(addr: core::net::IpAddr) -> Self {
        let (addr, family) = addr_bytes(addr);
        AddrKey {
            addr,
            family,
            _pad: [0; 3],
        }
    }
}

impl Real {
    pub fn new(addr: core::net::IpAddr, state: u8, generation: u32) -> Self {
        let (addr, family) = addr_bytes(addr);
        Real {
            addr,
            family,
            state,
            flags: 0,
            _pad: 0,
            generation,
            vip_id: 0,
        }
    }

    pub fn ip(&self) -> Option<core::net::IpAddr> {
        addr_from_bytes(&self.addr, self.family)
    }
}

impl FlowKey {
    /// The key of the flow `src:sport -> dst:dport` over `proto`.
    pub fn new(
        src: core::net::IpAddr,
        sport: u16,
        dst: core::net::IpAddr,
        dport: u16,
        proto: u8,
    ) -> Self {
        let (src, family) = addr_bytes(src);
        let (dst, _) = addr_bytes(dst);
        FlowKey {
            src,
            dst,
            sport,
            dport,
            proto,
            family,
            _pad: [0; 2],
        }
    }

    /// This IPv4 flow's key in `LB_CONNS_V4` (the first 4 bytes of each
    /// address; meaningless for an IPv6 flow). Each address is copied as
    /// one 32-bit word: byte by byte, the XDP program would spend 16 loads
    /// and stores where 4 do.
    #[inline(always)]
    pub fn v4(&self) -> FlowKeyV4 {
        // SAFETY: `FlowKey` is aligned to 8 and its addresses start at
        // offsets 0 and 16, so their first 4 bytes are aligned u32s.
        let (src, dst) = unsafe {
            (
                self.src.as_ptr().cast::<u32>().read(),
                self.dst.as_ptr().cast::<u32>().read(),
            )
        };
        FlowKeyV4 {
            src: src.to_ne_bytes(),
            dst: dst.to_ne_bytes(),
            sport: self.sport,
            dport: self.dport,
            proto: self.proto as u32,
        }
    }
}
