//! Types shared by the kernel side (`lb-ebpf`) and user space (`lb-ctl`).
//!
//! One definition of every map key and value, constant and hash, used by both
//! sides: never two hand-synced copies. Every type is `#[repr(C)]` with its
//! padding spelled out, so that the kernel and user space agree on the layout
//! byte for byte and BTF describes each field by name.
#![no_std]

/// Where the maps and programs are pinned in bpffs unless configured otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/lb";
