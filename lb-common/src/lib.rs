//! Types shared by the kernel side (`lb-ebpf`) and user space (`lb-ctl`).
//!
//! One definition of every map key and value, constant, counter and hash,
//! used by both sides: never two hand-synced copies. Every type is
//! `#[repr(C)]` with its padding spelled out, so that the kernel and user
//! space agree on the layout byte for byte and BTF describes each field by
//! name (`bpftool map dump pinned /sys/fs/bpf/lb/<MAP>` prints them).
//!
//! Byte order: addresses are in network order (as on the wire); ports,
//! identifiers, counters and sizes are in host order, so that `bpftool`
//! shows port 80 as 80.
#![no_std]

pub mod capture;
pub mod config;
pub mod decap;
pub mod encap;
pub mod hash;
pub mod maps;
pub mod stats;

/// Where the maps and programs are pinned in bpffs unless configured otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lb";

/// How many VIPs the data plane holds (VIP ids are 0..MAX_VIPS).
pub const MAX_VIPS: u32 = 1024;
/// How many reals the data plane holds; real id 0 means "no real", so ids
/// are 1..MAX_REALS.
pub const MAX_REALS: u32 = 16_384;
/// The real id that means "none" (an empty ring slot).
pub const NO_REAL: u32 = 0;
/// The IPv4 connection table's size unless configured otherwise.
pub const DEFAULT_CONN_TABLE_SIZE: u32 = 1 << 20;
/// The IPv6 connection table's size unless configured otherwise: a quarter
/// of the IPv4 table's (so that the two take about the memory one table of
/// [`DEFAULT_CONN_TABLE_SIZE`] 40-byte keys took).
pub const DEFAULT_CONN_TABLE_SIZE_V6: u32 = DEFAULT_CONN_TABLE_SIZE / 4;
/// The ring size the inner-map template is declared with; rings of any
/// prime size are created by user space (the template has `BPF_F_INNER_MAP`).
pub const RING_TEMPLATE_SIZE: u32 = 65_537;

/// `bpf_map_create` flags of ring maps: any size (inner map), and
/// mmap-able so that user space writes slots without a syscall each.
pub const RING_MAP_FLAGS: u32 = BPF_F_MMAPABLE | BPF_F_INNER_MAP;
/// `BPF_F_MMAPABLE` from the kernel's uapi.
pub const BPF_F_MMAPABLE: u32 = 1 << 10;
/// `BPF_F_INNER_MAP` from the kernel's uapi.
pub const BPF_F_INNER_MAP: u32 = 1 << 12;
/// `BPF_F_NO_COMMON_LRU` from the kernel's uapi: per-CPU LRU free lists.
pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;

/// TTL / hop limit of the outer header the balancer adds.
pub const ENCAP_TTL: u8 = 64;
/// Bytes an IPv4 outer header adds.
pub const IPV4_ENCAP_LEN: u16 = 20;
/// Bytes an IPv6 outer header adds.
pub const IPV6_ENCAP_LEN: u16 = 40;

/// Address family of a key or real, as stored in maps.
pub const FAMILY_V4: u8 = 4;
/// Address family of a key or real, as stored in maps.
pub const FAMILY_V6: u8 = 6;
/// IP protocol numbers used in keys.
pub const PROTO_TCP: u8 = 6;
/// IP protocol numbers used in keys.
pub const PROTO_UDP: u8 = 17;

pub mod bench;
