//! Fleet health as a host uses it: the active checker's verdicts
//! (`health/<vip>/<real>`) and heartbeat (`checkers/round`), and the rule
//! that says whether the host believes them or checks its reals itself.
//!
//! A real changes state only on an explicit verdict; a verdict that
//! vanishes (the checker's lease expired) changes nothing. The host checks
//! locally while no checker is elected, while the heartbeat is older than
//! `stale_after`, or while the checker finds more than `max_down_share` of
//! all reals down (a checker cut off from the backends must not take a
//! whole fleet down).
use std::{collections::BTreeMap, fmt, net::IpAddr, time::Duration};

use super::schema::{HealthDoc, Keys, Round};
use crate::{config::FleetSettings, vocab::VipId};

/// The checker's results as a host last read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetHealth {
    pub round: Option<Round>,
    pub verdicts: BTreeMap<(VipId, IpAddr), bool>,
}

impl FleetHealth {
    /// Reads `health/` and `checkers/round` out of `kvs` (other keys are
    /// skipped). A value that cannot be read is left out (its real stays
    /// as it was) and named in the second list.
    pub fn from_kvs<'a>(
        keys: &Keys,
        kvs: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> (FleetHealth, Vec<String>) {
        let mut h = FleetHealth::default();
        let mut unreadable = Vec::new();
        let health = keys.health_all();
        let round = keys.round();
        for (key, value) in kvs {
            if key == round {
                match serde_json::from_slice::<Round>(value) {
                    Ok(r) => h.round = Some(r),
                    Err(e) => unreadable.push(format!("{key}: {e}")),
                }
                continue;
            }
            let Some(rest) = key.strip_prefix(&health) else {
                continue;
            };
            let parsed = rest
                .rsplit_once('/')
                .ok_or_else(|| "not health/<vip>/<real>".to_owned())
                .and_then(|(vip, real)| {
                    let vip: VipId = vip.parse().map_err(|e: crate::vocab::VipIdError| e.0)?;
                    let real: IpAddr = real
                        .parse()
                        .map_err(|_| format!("`{real}` is not an address"))?;
                    let doc: HealthDoc =
                        serde_json::from_slice(value).map_err(|e| e.to_string())?;
                    Ok(((vip, real), doc.up))
                });
            match parsed {
                Ok((k, up)) => {
                    h.verdicts.insert(k, up);
                }
                Err(e) => unreadable.push(format!("{key}: {e}")),
            }
        }
        (h, unreadable)
    }
}

/// When a host believes the checker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trust {
    /// Heartbeats older than this are stale.
    pub stale_after: Duration,
    /// A checker finding more than this share of all reals down is not
    /// believed.
    pub max_down_share: f64,
}

impl Trust {
    /// The trust of a host with fleet settings `f`.
    pub fn of(f: &FleetSettings) -> Trust {
        Trust {
            stale_after: f.stale_after,
            max_down_share: f64::from(f.max_down_permille) / 1000.0,
        }
    }
}

/// Where a host's verdicts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The active checker's.
    Fleet { checker: String },
    /// Its own probers, and why.
    Local(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Fleet { checker } => write!(f, "fleet (checker {checker})"),
            Source::Local(why) => write!(f, "local ({why})"),
        }
    }
}

impl Source {
    /// The checker believed, if any: two sources of the same kind differ
    /// only in their words (a stale age that grew).
    pub fn checker(&self) -> Option<&str> {
        match self {
            Source::Fleet { checker } => Some(checker),
            Source::Local(_) => None,
        }
    }
}

/// Whether to believe the checker of `health`, whose heartbeat last moved
/// on `age` ago. The share of reals down is the share of all the fleet's
/// verdicts (the checker publishes a round's verdicts in one transaction).
pub fn source(health: &FleetHealth, age: Duration, trust: &Trust) -> Source {
    let Some(r) = &health.round else {
        return Source::Local("no checker is elected".into());
    };
    if age > trust.stale_after {
        return Source::Local(format!(
            "checker {}'s results are {} ms old, more than stale_after {} ms",
            r.checker,
            age.as_millis(),
            trust.stale_after.as_millis()
        ));
    }
    let judged = health.verdicts.len();
    let down = health.verdicts.values().filter(|up| !**up).count();
    if judged > 0 && down as f64 > trust.max_down_share * judged as f64 {
        return Source::Local(format!(
            "checker {} finds {down} of {judged} reals down, more than max_down_share {}: not believed",
            r.checker, trust.max_down_share
        ));
    }
    Source::Fleet {
        checker: r.checker.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(up: usize, down: usize) -> Round {
        Round {
            checker: "c1".into(),
            round: 7,
            up,
            down,
            unknown: 0,
            at_ms: 0,
        }
    }

    /// Fleet health with a heartbeat and `up` reals up, `down` down.
    fn health(up: usize, down: usize) -> FleetHealth {
        let vip: VipId = "203.0.113.10:80/tcp".parse().unwrap();
        let verdicts = (0..up + down)
            .map(|i| ((vip, IpAddr::from([192, 0, 2, i as u8])), i < up))
            .collect();
        FleetHealth {
            round: Some(round(up, down)),
            verdicts,
        }
    }

    #[test]
    fn a_host_believes_a_fresh_checker_that_finds_most_reals_up() {
        let trust = Trust {
            stale_after: Duration::from_secs(10),
            max_down_share: 0.5,
        };
        let ms = Duration::from_millis;
        let cases: [(FleetHealth, Duration, Option<&str>); 8] = [
            (health(10, 0), ms(0), None),
            (health(10, 0), ms(10_000), None),
            (health(5, 5), ms(100), None),
            (health(0, 0), ms(100), None),
            (FleetHealth::default(), ms(0), Some("no checker is elected")),
            (health(10, 0), ms(10_001), Some("10001 ms old")),
            (health(4, 6), ms(100), Some("finds 6 of 10 reals down")),
            (health(0, 1), ms(100), Some("not believed")),
        ];
        for (h, age, local) in cases {
            let s = source(&h, age, &trust);
            match (local, &s) {
                (None, Source::Fleet { checker }) => assert_eq!(checker, "c1"),
                (Some(why), Source::Local(got)) => assert!(got.contains(why), "{got}"),
                _ => panic!("{h:?} {age:?}: {s}"),
            }
        }
    }

    #[test]
    fn verdicts_are_read_and_unreadable_ones_left_out() {
        let keys = Keys::new("/lb/v1/");
        let up = br#"{"up":true,"checker":"c1"}"#.as_slice();
        let down = br#"{"up":false,"checker":"c1","error":"refused"}"#.as_slice();
        let round_json = serde_json::to_vec(&round(1, 1)).unwrap();
        let kvs: Vec<(&str, &[u8])> = vec![
            ("/lb/v1/health/203.0.113.10:80/tcp/192.0.2.18", up),
            ("/lb/v1/health/[2001:db8:f::10]:53/udp/2001:db8:a1::2", down),
            ("/lb/v1/checkers/round", &round_json),
            ("/lb/v1/config/vips/203.0.113.10:80/tcp", b"{}"),
            ("/lb/v1/health/203.0.113.10:80/tcp/not-an-ip", up),
            ("/lb/v1/health/nonsense", up),
            (
                "/lb/v1/health/203.0.113.10:80/tcp/192.0.2.22",
                b"{\"up\":1}",
            ),
        ];
        let (h, bad) = FleetHealth::from_kvs(&keys, kvs);
        assert_eq!(h.round, Some(round(1, 1)));
        let vip: VipId = "203.0.113.10:80/tcp".parse().unwrap();
        let vip6: VipId = "[2001:db8:f::10]:53/udp".parse().unwrap();
        assert_eq!(
            h.verdicts,
            BTreeMap::from([
                ((vip, "192.0.2.18".parse().unwrap()), true),
                ((vip6, "2001:db8:a1::2".parse().unwrap()), false),
            ])
        );
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(
            bad[0].contains("not-an-ip") && bad[1].contains("nonsense"),
            "{bad:?}"
        );
    }
}
