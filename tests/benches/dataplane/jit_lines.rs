//! For `--profile`: where the balancer's machine code came from. The
//! kernel keeps, per source line record of a program (BTF line info), the
//! address its JIT code starts at (`jited_line_info`); with those and
//! `bpftool prog dump xlated linum` (each instruction under its source
//! line), xtask turns perf's samples inside `lb_balance` into source
//! lines. Written beside the profile: `jit-lines` (address, instruction)
//! and `xlated.txt`.
use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

/// `struct bpf_prog_info` (include/uapi/linux/bpf.h) up to the fields
/// read here; the kernel fills no more than the length it is given.
#[repr(C, align(8))]
#[derive(Default)]
struct ProgInfo {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
    ifindex: u32,
    gpl_compatible: u32,
    netns_dev: u64,
    netns_ino: u64,
    nr_jited_ksyms: u32,
    nr_jited_func_lens: u32,
    jited_ksyms: u64,
    jited_func_lens: u64,
    btf_id: u32,
    func_info_rec_size: u32,
    func_info: u64,
    nr_func_info: u32,
    nr_line_info: u32,
    line_info: u64,
    jited_line_info: u64,
    nr_jited_line_info: u32,
    line_info_rec_size: u32,
    jited_line_info_rec_size: u32,
    /// Named so that it is zero, not padding: the kernel reads it.
    nr_prog_tags: u32,
}

/// `struct bpf_line_info`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct LineInfo {
    insn_off: u32,
    file_name_off: u32,
    line_off: u32,
    line_col: u32,
}

const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `bpf_attr` for BPF_OBJ_GET_INFO_BY_FD.
#[repr(C, align(8))]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

fn get_info(fd: &impl AsFd, info: &mut ProgInfo) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_fd().as_raw_fd() as u32,
        info_len: size_of::<ProgInfo>() as u32,
        info: info as *mut ProgInfo as u64,
    };
    // SAFETY: attr and info are valid for the sizes given; the kernel
    // writes at most info_len bytes of info and the buffers it points to
    // at most the counts set in it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            &mut attr as *mut InfoAttr,
            size_of::<InfoAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `jit-lines` and `xlated.txt` for the program `fd` (id `id`)
/// into `dir`.
pub fn write(fd: &impl AsFd, id: u32, dir: &Path) -> io::Result<()> {
    let mut counts = ProgInfo::default();
    get_info(fd, &mut counts)?;
    let n = counts.nr_line_info as usize;
    if n == 0 || counts.nr_jited_line_info as usize != n {
        return Err(io::Error::other(format!(
            "the program has {n} line records and {} JIT addresses",
            counts.nr_jited_line_info
        )));
    }
    if counts.line_info_rec_size as usize != size_of::<LineInfo>() {
        return Err(io::Error::other("unexpected line record size"));
    }
    let mut lines = vec![LineInfo::default(); n];
    let mut addrs = vec![0u64; n];
    let mut info = ProgInfo {
        nr_line_info: n as u32,
        line_info_rec_size: size_of::<LineInfo>() as u32,
        line_info: lines.as_mut_ptr() as u64,
        nr_jited_line_info: n as u32,
        jited_line_info_rec_size: 8,
        jited_line_info: addrs.as_mut_ptr() as u64,
        ..ProgInfo::default()
    };
    get_info(fd, &mut info)?;
    let text: String = addrs
        .iter()
        .zip(&lines)
        .map(|(addr, line)| format!("{addr:x}\t{}\n", line.insn_off))
        .collect();
    std::fs::write(dir.join("jit-lines"), text)?;
    let out = std::process::Command::new("bpftool")
        .args(["prog", "dump", "xlated", "id", &id.to_string(), "linum"])
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "bpftool prog dump xlated linum: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::write(dir.join("xlated.txt"), out.stdout)
}
