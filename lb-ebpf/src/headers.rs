//! Wire headers the programs read and write, and bounds-checked access to
//! packet bytes. Multi-byte fields are in network order, as on the wire.
use aya_ebpf::programs::XdpContext;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_ICMPV6: u8 = 58;

pub const ETH_LEN: usize = 14;
pub const VLAN_LEN: usize = 4;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// Network order.
    pub proto: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct VlanHdr {
    /// Network order.
    pub tci: u16,
    /// Network order: the encapsulated ethertype.
    pub proto: u16,
}

/// Aligned to 4 (as the kernel's `struct iphdr` is, through its `__be32`
/// addresses): fields are then read and written in words, not byte by
/// byte (see [`Ipv6Hdr`]).
#[repr(C, align(4))]
#[derive(Clone, Copy)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub tot_len: u16,
    pub id: u16,
    pub frag_off: u16,
    pub ttl: u8,
    pub proto: u8,
    pub check: u16,
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

/// Aligned to 4, as the kernel's `struct ipv6hdr` (its `in6_addr`
/// addresses): rustc gives each field the alignment its offset has in an
/// aligned struct, so a 16-byte address is copied in four 4-byte loads
/// instead of sixteen single-byte ones. A packet's headers need not be
/// aligned in memory: the verifier checks packet accesses for alignment
/// only where unaligned access is slow (not on x86-64 or arm64).
#[repr(C, align(4))]
#[derive(Clone, Copy)]
pub struct Ipv6Hdr {
    /// Version, traffic class, flow label; network order.
    pub vtc_flow: u32,
    pub payload_len: u16,
    pub next_hdr: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

/// The first 4 bytes of TCP and UDP: the ports.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Ports {
    pub src: u16,
    pub dst: u16,
}

/// A UDP header.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct UdpHdr {
    pub src: u16,
    pub dst: u16,
    pub len: u16,
    pub check: u16,
}

/// Bytes of a UDP header.
pub const UDP_LEN: usize = 8;

/// The first 4 bytes of ICMP and ICMPv6.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IcmpHdr {
    pub kind: u8,
    pub code: u8,
    pub check: u16,
}

/// An IPv4 address as the maps' 16-byte addresses hold it: in the first 4
/// bytes, the rest zero. Built as words (a byte-slice copy is byte by
/// byte in BPF).
#[inline(always)]
pub fn v4_in_16(addr: [u8; 4]) -> [u8; 16] {
    let words = [u32::from_ne_bytes(addr), 0, 0, 0];
    // SAFETY: 16 bytes of plain integers either way.
    unsafe { core::mem::transmute::<[u32; 4], [u8; 16]>(words) }
}

/// The IPv4 address in the first 4 bytes of a 16-byte map address.
#[inline(always)]
pub fn v4_of_16(addr: &[u8; 16]) -> [u8; 4] {
    // SAFETY: 16 bytes of plain integers either way.
    let words = unsafe { core::mem::transmute::<[u8; 16], [u32; 4]>(*addr) };
    words[0].to_ne_bytes()
}

/// A pointer to a `T` at `offset` in the packet, if the whole `T` is inside.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

// The alignment adds no padding: the headers keep their wire sizes.
const _: () = assert!(core::mem::size_of::<Ipv4Hdr>() == IPV4_LEN);
const _: () = assert!(core::mem::size_of::<Ipv6Hdr>() == IPV6_LEN);
