//! What the NIC driver says about XDP: its name and its statistics, read
//! with the `SIOCETHTOOL` ioctl (what `ethtool -i` and `ethtool -S` print),
//! in the calling thread's network namespace.
//!
//! The case this exists for: on a veth in native mode, `XDP_TX` delivers a
//! frame only if the peer end also has an XDP program; otherwise the driver
//! drops it and counts it only in its own statistics
//! (`rx_queue_N_xdp_tx_errors`), while the balancer has counted an
//! `xdp_tx`. lb-ctl warns when it attaches natively to a veth, and watches
//! that counter.
use std::{io, os::fd::AsRawFd as _};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GSTRINGS: u32 = 0x1b;
const ETHTOOL_GSTATS: u32 = 0x1d;
const ETH_SS_STATS: u32 = 1;
const ETH_GSTRING_LEN: usize = 32;

#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut libc::c_void,
    _pad: [u8; 16],
}

/// Runs one ethtool command on interface `iface`; `buf` starts with the
/// command word.
fn ethtool(iface: &str, buf: *mut libc::c_void) -> io::Result<()> {
    if iface.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name too long",
        ));
    }
    let sock = std::net::UdpSocket::bind("127.0.0.1:0")
        .or_else(|_| std::net::UdpSocket::bind("[::1]:0"))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: buf,
        _pad: [0; 16],
    };
    req.name[..iface.len()].copy_from_slice(iface.as_bytes());
    // SAFETY: `req` is a valid ifreq whose data points at a buffer the
    // caller sized for the command.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The driver of `iface` and its number of statistics.
fn drvinfo(iface: &str) -> io::Result<(String, u32)> {
    // SAFETY: DrvInfo is plain data; all zeroes is valid.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    ethtool(iface, (&mut info as *mut DrvInfo).cast())?;
    Ok((c_string(&info.driver), info.n_stats))
}

/// The driver's name (`veth`, `mlx5_core`, ...).
pub fn driver(iface: &str) -> io::Result<String> {
    drvinfo(iface).map(|(d, _)| d)
}

/// Every statistic the driver of `iface` reports, by name.
pub fn stats(iface: &str) -> io::Result<Vec<(String, u64)>> {
    let (_, n) = drvinfo(iface)?;
    let n = n as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    // Names: a header of three u32, then n strings of 32 bytes.
    let mut names = vec![0u32; 3 + n * ETH_GSTRING_LEN / 4];
    names[0] = ETHTOOL_GSTRINGS;
    names[1] = ETH_SS_STATS;
    names[2] = n as u32;
    ethtool(iface, names.as_mut_ptr().cast())?;
    // Values: a header of two u32 (one u64), then n u64.
    let mut values = vec![0u64; 1 + n];
    values[0] = u64::from(ETHTOOL_GSTATS);
    ethtool(iface, values.as_mut_ptr().cast())?;
    let name_bytes: Vec<u8> = names[3..].iter().flat_map(|w| w.to_ne_bytes()).collect();
    Ok(name_bytes
        .chunks(ETH_GSTRING_LEN)
        .zip(&values[1..])
        .map(|(name, &v)| (c_string(name), v))
        .collect())
}

/// Frames the driver of `iface` failed to send after the XDP program
/// returned `XDP_TX` (veth: the sum of `rx_queue_N_xdp_tx_errors`); `None`
/// if the driver reports no such counter.
pub fn xdp_tx_errors(iface: &str) -> Option<u64> {
    let stats = stats(iface).ok()?;
    let mut found = false;
    let mut sum = 0;
    for (name, v) in stats {
        if name.ends_with("xdp_tx_errors") {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum)
}

/// The warning for native XDP on a veth, where `XDP_TX` needs an XDP
/// program on the peer end.
pub const VETH_NATIVE_WARNING: &str = "native XDP on a veth: frames the balancer sends back (XDP_TX) are delivered only if the veth's peer end also has an XDP program (any, e.g. `lb-ctl attach --program pass` there); otherwise the driver drops them, counted as its xdp_tx_errors (lb-ctl stats), not as drops. Use generic mode, or attach a program to the peer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_overlong_names_are_errors() {
        assert!(driver("no-such-if-x").is_err());
        assert!(driver("a-name-longer-than-ifnamsiz").is_err());
        assert_eq!(xdp_tx_errors("no-such-if-x"), None);
    }

    #[test]
    fn driver_strings_stop_at_the_nul() {
        assert_eq!(c_string(b"veth\0\0\0"), "veth");
        assert_eq!(c_string(b"abc"), "abc");
    }
}
