//! Facts about local interfaces: their addresses and MAC, read with
//! getifaddrs(3) in the calling thread's network namespace.
use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

#[derive(Debug, thiserror::Error)]
pub enum IfaceError {
    #[error("getifaddrs failed")]
    Getifaddrs(#[source] std::io::Error),
    #[error("no interface `{0}`")]
    Missing(String),
}

/// What getifaddrs says about one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Iface {
    pub addresses: Vec<IpAddr>,
    pub mac: Option<[u8; 6]>,
}

/// The addresses and MAC of interface `name`.
pub fn lookup(name: &str) -> Result<Iface, IfaceError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(IfaceError::Getifaddrs(std::io::Error::last_os_error()));
    }
    let mut found = false;
    let mut iface = Iface::default();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_name is a NUL-terminated string.
        if ifa.ifa_name.is_null()
            || unsafe { CStr::from_ptr(ifa.ifa_name) }.to_bytes() != name.as_bytes()
        {
            continue;
        }
        found = true;
        if ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr of the family it names.
        unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*ifa.ifa_addr.cast::<libc::sockaddr_in>();
                    iface.addresses.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                }
                libc::AF_INET6 => {
                    let sin6 = &*ifa.ifa_addr.cast::<libc::sockaddr_in6>();
                    iface
                        .addresses
                        .push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                }
                libc::AF_PACKET => {
                    let sll = &*ifa.ifa_addr.cast::<libc::sockaddr_ll>();
                    if sll.sll_halen == 6 {
                        let mut mac = [0u8; 6];
                        mac.copy_from_slice(&sll.sll_addr[..6]);
                        iface.mac = Some(mac);
                    }
                }
                _ => {}
            }
        }
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    if found {
        Ok(iface)
    } else {
        Err(IfaceError::Missing(name.to_owned()))
    }
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).ok().filter(|_| b.len() == 2))
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_round_trip_and_bad_ones_are_refused() {
        let mac = parse_mac("02:00:5e:10:aa:ff").unwrap();
        assert_eq!(format_mac(&mac), "02:00:5e:10:aa:ff");
        assert_eq!(parse_mac("02:00:5e:10:aa"), None);
        assert_eq!(parse_mac("02:00:5e:10:aa:fff"), None);
        assert_eq!(parse_mac("zz:00:5e:10:aa:ff"), None);
    }

    #[test]
    fn loopback_has_its_addresses() {
        let lo = lookup("lo").unwrap();
        assert!(lo.addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(matches!(lookup("no-such-if0"), Err(IfaceError::Missing(_))));
    }
}
