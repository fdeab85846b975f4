//! A pcapng writer (the format tcpdump and Wireshark read): one section,
//! one Ethernet interface, and enhanced packet blocks each carrying a
//! comment (`opt_comment`) with lb's annotation. Little-endian, as the
//! section header's byte-order magic says.
use std::io::{self, Write};

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Appends option `code` with `value`, padded to 32 bits.
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.extend(std::iter::repeat_n(0, pad4(value.len())));
}

/// A block of `kind` around `body`: type, total length, body, length.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let total = (12 + body.len()) as u32;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
    out
}

/// Writes a pcapng capture to `W`.
pub struct Writer<W: Write> {
    out: W,
}

impl<W: Write> Writer<W> {
    /// Starts the file: the section header and one Ethernet interface
    /// named `interface` with `snaplen`, timestamps in nanoseconds.
    pub fn new(mut out: W, interface: &str, snaplen: u32) -> io::Result<Self> {
        let mut shb = Vec::new();
        shb.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        shb.extend_from_slice(&1u16.to_le_bytes()); // major
        shb.extend_from_slice(&0u16.to_le_bytes()); // minor
        shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length: unknown
        option(&mut shb, OPT_ENDOFOPT, &[]);
        out.write_all(&block(SHB, &shb))?;
        let mut idb = Vec::new();
        idb.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&snaplen.to_le_bytes());
        option(&mut idb, IF_NAME, interface.as_bytes());
        option(&mut idb, IF_TSRESOL, &[9]); // 10^-9 s
        option(&mut idb, OPT_ENDOFOPT, &[]);
        out.write_all(&block(IDB, &idb))?;
        Ok(Self { out })
    }

    /// Writes one packet: `data` (captured bytes) of a frame of `len`
    /// bytes at `time_ns` (since the epoch), with `comment`.
    pub fn packet(&mut self, time_ns: u64, len: u32, data: &[u8], comment: &str) -> io::Result<()> {
        let mut epb = Vec::with_capacity(32 + data.len() + comment.len());
        epb.extend_from_slice(&0u32.to_le_bytes()); // interface 0
        epb.extend_from_slice(&((time_ns >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(time_ns as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&len.to_le_bytes());
        epb.extend_from_slice(data);
        epb.extend(std::iter::repeat_n(0, pad4(data.len())));
        option(&mut epb, OPT_COMMENT, comment.as_bytes());
        option(&mut epb, OPT_ENDOFOPT, &[]);
        self.out.write_all(&block(EPB, &epb))
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A packet read back from a pcapng made by [`Writer`]: (time_ns, len,
/// data, comment). The tests read captures back with it.
pub type ReadPacket = (u64, u32, Vec<u8>, String);

/// Reads every enhanced packet block of `bytes` (little-endian pcapng).
pub fn read(bytes: &[u8]) -> Result<Vec<ReadPacket>, String> {
    let u32_at = |at: usize| -> Result<u32, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| format!("cut at byte {at}"))
    };
    let mut packets = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let kind = u32_at(at)?;
        let total = u32_at(at + 4)? as usize;
        if total < 12 || !total.is_multiple_of(4) || u32_at(at + total - 4)? as usize != total {
            return Err(format!("a bad block length {total} at byte {at}"));
        }
        if kind == EPB {
            let body = &bytes[at + 8..at + total - 4];
            let word = |i: usize| u32::from_le_bytes(body[i..i + 4].try_into().unwrap());
            let time = (u64::from(word(4)) << 32) | u64::from(word(8));
            let caplen = word(12) as usize;
            let len = word(16);
            let data = body.get(20..20 + caplen).ok_or("a cut packet")?.to_vec();
            let mut opt = 20 + caplen + pad4(caplen);
            let mut comment = String::new();
            while opt + 4 <= body.len() {
                let code = u16::from_le_bytes([body[opt], body[opt + 1]]);
                let olen = u16::from_le_bytes([body[opt + 2], body[opt + 3]]) as usize;
                if code == OPT_ENDOFOPT {
                    break;
                }
                let value = body.get(opt + 4..opt + 4 + olen).ok_or("a cut option")?;
                if code == OPT_COMMENT {
                    comment = String::from_utf8_lossy(value).into_owned();
                }
                opt += 4 + olen + pad4(olen);
            }
            packets.push((time, len, data, comment));
        }
        at += total;
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_read_back() {
        let mut w = Writer::new(Vec::new(), "eth0", 2048).unwrap();
        w.packet(
            1_700_000_000_123_456_789,
            60,
            &[1, 2, 3, 4, 5],
            "verdict=tx reason=conn_miss",
        )
        .unwrap();
        w.packet(5, 3, &[9, 9, 9], "").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(&bytes[..4], &SHB.to_le_bytes());
        assert_eq!(&bytes[8..12], &BYTE_ORDER_MAGIC.to_le_bytes());
        let packets = read(&bytes).unwrap();
        assert_eq!(
            packets,
            vec![
                (
                    1_700_000_000_123_456_789,
                    60,
                    vec![1, 2, 3, 4, 5],
                    "verdict=tx reason=conn_miss".to_owned()
                ),
                (5, 3, vec![9, 9, 9], String::new()),
            ]
        );
        // A damaged length is refused, not misread.
        let mut bad = bytes.clone();
        bad[4] ^= 0x40;
        assert!(read(&bad).is_err());
    }
}
