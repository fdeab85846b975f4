//! Packet capture of the balancer's decisions, as `lb-ctl capture` runs
//! it: the `capture_*` fields of the pinned `LB_CONFIG` are set (nothing
//! else in it is touched), `LB_CAPTURE`'s per-CPU perf buffers are read,
//! and capture is turned off again when the [`Session`] ends, also on an
//! error or a panic (its drop). Records become pcapng ([`pcapng`]).
pub mod pcapng;

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
    time::Duration,
};

use aya::maps::{
    Array, Map, MapData, MapError,
    perf::{PerfEvent, PerfEventArray, PerfEventArrayBuffer},
};
use lb_common::{
    capture::{CaptureMeta, MAX_SNAPLEN},
    config::Config,
    maps::names,
};

/// Perf buffer pages per CPU (with 4 KiB pages: 256 KiB each).
const PAGES_PER_CPU: usize = 64;

/// What to capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// One packet in this many (1: every one).
    pub sample: u32,
    /// Bit `1 << action` per verdict wanted; 0: every verdict.
    pub verdicts: u32,
    /// Only this VIP id.
    pub vip_id: Option<u32>,
    /// Only this real id.
    pub real_id: Option<u32>,
    /// Bytes of each frame.
    pub snaplen: u32,
}

impl Filter {
    /// The config with this filter's capture fields (capture on).
    pub fn apply(&self, mut cfg: Config) -> Config {
        cfg.capture_sample = self.sample.max(1);
        cfg.capture_verdicts = self.verdicts;
        cfg.capture_vip = self.vip_id.map_or(0, |id| id + 1);
        cfg.capture_real = self.real_id.unwrap_or(0);
        cfg.capture_snaplen = self.snaplen.clamp(1, MAX_SNAPLEN);
        cfg
    }
}

/// The config with capture off.
pub fn off(mut cfg: Config) -> Config {
    cfg.capture_sample = 0;
    cfg.capture_verdicts = 0;
    cfg.capture_vip = 0;
    cfg.capture_real = 0;
    cfg.capture_snaplen = 0;
    cfg
}

/// Why a capture cannot run.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "cannot open the pinned map {name} in {dir} (is the balancer attached with this pin directory, by this lb-ctl version?)"
    )]
    Open {
        dir: String,
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("cannot read or write LB_CONFIG")]
    Config(#[source] MapError),
    #[error(
        "a capture is already on (another `lb-ctl capture` runs, or one was killed: `lb-ctl capture --stop` turns it off)"
    )]
    AlreadyOn,
    #[error("cannot open the perf buffer of CPU {cpu}")]
    Buffer {
        cpu: u32,
        #[source]
        source: aya::maps::perf::PerfBufferError,
    },
    #[error("cannot list the online CPUs")]
    Cpus(#[source] std::io::Error),
    #[error("waiting for captured packets")]
    Poll(#[source] std::io::Error),
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub meta: CaptureMeta,
    pub data: Vec<u8>,
}

/// Parses one perf sample: the annotation, then `caplen` bytes.
pub fn parse_record(raw: &[u8]) -> Option<Record> {
    let size = std::mem::size_of::<CaptureMeta>();
    let head = raw.get(..size)?;
    // SAFETY: CaptureMeta is #[repr(C)] plain integers; read unaligned.
    let meta: CaptureMeta = unsafe { std::ptr::read_unaligned(head.as_ptr().cast()) };
    let data = raw.get(size..size + meta.caplen as usize)?.to_vec();
    Some(Record { meta, data })
}

fn open_pinned(dir: &Path, name: &'static str) -> Result<Map, CaptureError> {
    MapData::from_pin(dir.join(name))
        .and_then(Map::from_map_data)
        .map_err(|source| CaptureError::Open {
            dir: dir.display().to_string(),
            name,
            source,
        })
}

/// A running capture; dropping it turns capture off.
pub struct Session {
    config: Array<MapData, Config>,
    buffers: Vec<PerfEventArrayBuffer<MapData>>,
    _events: PerfEventArray<MapData>,
    /// Records the kernel dropped because a buffer was full.
    pub lost: u64,
}

impl Session {
    /// Opens the perf buffers, then turns capture on with `filter`.
    pub fn start(pin_dir: &Path, filter: &Filter) -> Result<Self, CaptureError> {
        let mut events =
            PerfEventArray::try_from(open_pinned(pin_dir, names::CAPTURE)?).map_err(|source| {
                CaptureError::Open {
                    dir: pin_dir.display().to_string(),
                    name: names::CAPTURE,
                    source,
                }
            })?;
        let cpus = aya::util::online_cpus().map_err(|(_, e)| CaptureError::Cpus(e))?;
        let mut buffers = Vec::new();
        for cpu in cpus {
            buffers.push(
                events
                    .open(cpu, Some(PAGES_PER_CPU))
                    .map_err(|source| CaptureError::Buffer { cpu, source })?,
            );
        }
        let mut config: Array<MapData, Config> =
            Array::try_from(open_pinned(pin_dir, names::CONFIG)?).map_err(CaptureError::Config)?;
        let cfg = config.get(&0, 0).map_err(CaptureError::Config)?;
        if cfg.capture_sample != 0 {
            return Err(CaptureError::AlreadyOn);
        }
        config
            .set(0, filter.apply(cfg), 0)
            .map_err(CaptureError::Config)?;
        Ok(Self {
            config,
            buffers,
            _events: events,
            lost: 0,
        })
    }

    /// Whether capture is still on in the pinned config (a daemon reload
    /// writes the whole configuration, and `lb-ctl capture --stop` clears
    /// it: either ends this capture).
    pub fn still_on(&self) -> Result<bool, CaptureError> {
        let cfg = self.config.get(&0, 0).map_err(CaptureError::Config)?;
        Ok(cfg.capture_sample != 0)
    }

    /// Waits up to `timeout` for records; returns those that came.
    pub fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>, CaptureError> {
        let mut fds: Vec<libc::pollfd> = self
            .buffers
            .iter()
            .map(|b| libc::pollfd {
                fd: b.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: `fds` is a valid array of pollfd of the length given.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(Vec::new());
            }
            return Err(CaptureError::Poll(e));
        }
        let mut out = Vec::new();
        let mut lost = 0;
        for b in &mut self.buffers {
            if !b.readable() {
                continue;
            }
            b.for_each(|event| match event {
                PerfEvent::Sample { head, tail } => {
                    let mut raw = head.to_vec();
                    raw.extend_from_slice(tail);
                    if let Some(r) = parse_record(&raw) {
                        out.push(r);
                    }
                }
                PerfEvent::Lost { count } => lost += count,
            });
        }
        self.lost += lost;
        Ok(out)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        match self.config.get(&0, 0) {
            Ok(cfg) => {
                if let Err(e) = self.config.set(0, off(cfg), 0) {
                    tracing::error!(error = %e, "could not turn the capture off: `lb-ctl capture --stop`");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not turn the capture off: `lb-ctl capture --stop`")
            }
        }
    }
}

/// Turns capture off (after a capture that was killed).
pub fn stop(pin_dir: &Path) -> Result<(), CaptureError> {
    let mut config: Array<MapData, Config> =
        Array::try_from(open_pinned(pin_dir, names::CONFIG)?).map_err(CaptureError::Config)?;
    let cfg = config.get(&0, 0).map_err(CaptureError::Config)?;
    config.set(0, off(cfg), 0).map_err(CaptureError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_sets_only_the_capture_fields_and_off_clears_them() {
        let base = Config {
            mtu: 1500,
            flags: 3,
            src_v4: [192, 0, 2, 1],
            ..Config::default()
        };
        let on = Filter {
            sample: 0,
            verdicts: 1 << 1,
            vip_id: Some(0),
            real_id: Some(7),
            snaplen: 100_000,
        }
        .apply(base);
        assert_eq!(on.capture_sample, 1, "0 means every packet, not off");
        assert_eq!(on.capture_vip, 1, "VIP id + 1");
        assert_eq!(on.capture_real, 7);
        assert_eq!(on.capture_snaplen, MAX_SNAPLEN);
        assert_eq!((on.mtu, on.flags, on.src_v4), (1500, 3, [192, 0, 2, 1]));
        assert_eq!(off(on), base);
    }

    #[test]
    fn records_are_the_annotation_then_the_bytes() {
        let meta = CaptureMeta {
            time_ns: 7,
            action: 3,
            reason: 2,
            vip: 1,
            real: 4,
            len: 60,
            caplen: 3,
        };
        // SAFETY: viewing a #[repr(C)] struct of integers as bytes.
        let head = unsafe {
            std::slice::from_raw_parts(
                std::ptr::from_ref(&meta).cast::<u8>(),
                std::mem::size_of::<CaptureMeta>(),
            )
        };
        let mut raw = head.to_vec();
        raw.extend_from_slice(&[0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0]); // and padding
        let r = parse_record(&raw).unwrap();
        assert_eq!(r.meta, meta);
        assert_eq!(r.data, [0xaa, 0xbb, 0xcc]);
        assert_eq!(parse_record(&raw[..10]), None, "a cut record");
        assert_eq!(parse_record(&raw[..33]), None, "fewer bytes than caplen");
    }
}
