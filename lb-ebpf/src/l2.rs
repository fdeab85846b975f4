//! The link layer: Ethernet with one optional 802.1Q tag, read before the
//! IP header and written back after the packet's front moved.
use aya_ebpf::programs::XdpContext;

use crate::headers::*;

/// Where the IP header is and what is in front of it.
#[derive(Clone, Copy)]
pub struct L2 {
    /// Offset of the IP header: 14, or 18 with an 802.1Q tag.
    pub l3_off: usize,
    pub vlan: bool,
}

/// The ethertype (host order) after the Ethernet header and the optional
/// tag, and where the IP header starts; `None` if cut short.
#[inline(always)]
pub fn parse_l2(ctx: &XdpContext) -> Option<(u16, L2)> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: ptr_at checked that the header is inside the packet.
    let proto = u16::from_be(unsafe { (*eth).proto });
    if proto != ETH_P_8021Q {
        return Some((
            proto,
            L2 {
                l3_off: ETH_LEN,
                vlan: false,
            },
        ));
    }
    let vlan = ptr_at::<VlanHdr>(ctx, ETH_LEN)?;
    // SAFETY: checked by ptr_at.
    let proto = u16::from_be(unsafe { (*vlan).proto });
    Some((
        proto,
        L2 {
            l3_off: ETH_LEN + VLAN_LEN,
            vlan: true,
        },
    ))
}

/// The saved link-layer header of the packet.
#[derive(Clone, Copy)]
pub struct SavedL2 {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    /// The 802.1Q TCI (network order), if the packet had a tag.
    pub vlan_tci: Option<u16>,
}

/// Reads the link-layer header before the packet is moved.
#[inline(always)]
pub fn save_l2(ctx: &XdpContext, l2: L2) -> Option<SavedL2> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    // SAFETY: checked by ptr_at.
    let eth = unsafe { *eth };
    let vlan_tci = if l2.vlan {
        let v = ptr_at::<VlanHdr>(ctx, ETH_LEN)?;
        // SAFETY: checked by ptr_at.
        Some(unsafe { (*v).tci })
    } else {
        None
    };
    Some(SavedL2 {
        dst: eth.dst,
        src: eth.src,
        vlan_tci,
    })
}

/// Writes the link-layer header at the (new) start of the packet with
/// `ethertype`, `dst` and `src` MACs, keeping the VLAN tag if there was one.
#[inline(always)]
pub fn write_l2(
    ctx: &XdpContext,
    saved: &SavedL2,
    dst: [u8; 6],
    src: [u8; 6],
    ethertype: u16,
) -> Option<()> {
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    match saved.vlan_tci {
        None => {
            // SAFETY: checked by ptr_at.
            unsafe {
                *eth = EthHdr {
                    dst,
                    src,
                    proto: ethertype.to_be(),
                }
            };
        }
        Some(tci) => {
            let vlan = ptr_at::<VlanHdr>(ctx, ETH_LEN)?;
            // SAFETY: both checked by ptr_at.
            unsafe {
                *eth = EthHdr {
                    dst,
                    src,
                    proto: ETH_P_8021Q.to_be(),
                };
                *vlan = VlanHdr {
                    tci,
                    proto: ethertype.to_be(),
                };
            }
        }
    }
    Some(())
}
