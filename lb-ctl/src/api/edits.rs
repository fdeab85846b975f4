//! Desired-state edits: what an API change does to the VIP set, as a pure
//! function (the controller checks the rules on the result, applies it and
//! writes the state file; a refused change leaves the set as it was).
use super::commands::{Change, RequestError};
use crate::{config::VipConfig, vocab::VipId};

fn vip_mut<'a>(vips: &'a mut [VipConfig], id: &VipId) -> Result<&'a mut VipConfig, RequestError> {
    vips.iter_mut()
        .find(|v| v.id() == *id)
        .ok_or_else(|| RequestError::NotFound(format!("no VIP {id}")))
}

/// Applies `change` to `vips`; returns what it did, in words.
pub fn apply_change(vips: &mut Vec<VipConfig>, change: Change) -> Result<String, RequestError> {
    Ok(match change {
        Change::AddVip(v) => {
            let id = v.id();
            if vips.iter().any(|x| x.id() == id) {
                return Err(RequestError::Exists(format!("VIP {id} exists already")));
            }
            let n = v.reals.len();
            vips.push(v);
            format!("added VIP {id} with {n} reals")
        }
        Change::DelVip(id) => {
            let before = vips.len();
            vips.retain(|v| v.id() != id);
            if vips.len() == before {
                return Err(RequestError::NotFound(format!("no VIP {id}")));
            }
            format!("removed VIP {id}")
        }
        Change::AddReal(id, r) => {
            let v = vip_mut(vips, &id)?;
            if v.reals.iter().any(|x| x.address == r.address) {
                return Err(RequestError::Exists(format!(
                    "VIP {id} has real {} already",
                    r.address
                )));
            }
            let msg = format!("added real {} (weight {}) to VIP {id}", r.address, r.weight);
            v.reals.push(r);
            msg
        }
        Change::DelReal(id, addr) => {
            let v = vip_mut(vips, &id)?;
            let before = v.reals.len();
            v.reals.retain(|r| r.address != addr);
            if v.reals.len() == before {
                return Err(RequestError::NotFound(format!(
                    "VIP {id} has no real {addr}"
                )));
            }
            format!("removed real {addr} from VIP {id}")
        }
        Change::SetWeight(id, addr, weight) => {
            let v = vip_mut(vips, &id)?;
            let r = v
                .reals
                .iter_mut()
                .find(|r| r.address == addr)
                .ok_or_else(|| RequestError::NotFound(format!("VIP {id} has no real {addr}")))?;
            let old = std::mem::replace(&mut r.weight, weight);
            if weight == 0 {
                format!("draining real {addr} of VIP {id} (weight {old} -> 0)")
            } else {
                format!("real {addr} of VIP {id}: weight {old} -> {weight}")
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::{real, vip};

    /// Whether an error is of the expected kind.
    type IsKind = fn(&RequestError) -> bool;

    fn id(s: &str) -> VipId {
        s.parse().unwrap()
    }

    #[test]
    fn each_change_does_what_it_says_or_refuses_and_changes_nothing() {
        let mut vips = vec![vip("203.0.113.10", 80)];
        let ok = |vips: &mut Vec<VipConfig>, c| apply_change(vips, c).expect("applied");
        assert!(ok(&mut vips, Change::AddVip(vip("203.0.113.11", 0))).contains("added VIP"));
        assert_eq!(vips.len(), 2);
        let a = "203.0.113.10:80/tcp";
        ok(&mut vips, Change::AddReal(id(a), real("192.0.2.18")));
        ok(&mut vips, Change::AddReal(id(a), real("192.0.2.22")));
        assert_eq!(vips[0].reals.len(), 2);
        let msg = ok(
            &mut vips,
            Change::SetWeight(id(a), "192.0.2.18".parse().unwrap(), 0),
        );
        assert!(msg.starts_with("draining"), "{msg}");
        assert_eq!(vips[0].reals[0].weight, 0);
        ok(
            &mut vips,
            Change::DelReal(id(a), "192.0.2.22".parse().unwrap()),
        );
        assert_eq!(vips[0].reals.len(), 1);

        // Refusals, each leaving the set as it was.
        let before = vips.clone();
        let refusals: Vec<(Change, IsKind)> = vec![
            (Change::AddVip(vip("203.0.113.10", 80)), |e| {
                matches!(e, RequestError::Exists(_))
            }),
            (Change::DelVip(id("203.0.113.99:80/tcp")), |e| {
                matches!(e, RequestError::NotFound(_))
            }),
            (Change::AddReal(id(a), real("192.0.2.18")), |e| {
                matches!(e, RequestError::Exists(_))
            }),
            (
                Change::AddReal(id("203.0.113.99:80/tcp"), real("192.0.2.30")),
                |e| matches!(e, RequestError::NotFound(_)),
            ),
            (Change::DelReal(id(a), "192.0.2.99".parse().unwrap()), |e| {
                matches!(e, RequestError::NotFound(_))
            }),
            (
                Change::SetWeight(id(a), "192.0.2.99".parse().unwrap(), 3),
                |e| matches!(e, RequestError::NotFound(_)),
            ),
        ];
        for (change, kind) in refusals {
            let what = format!("{change:?}");
            let e = apply_change(&mut vips, change).expect_err(&what);
            assert!(kind(&e), "{what}: {e:?}");
            assert_eq!(vips, before, "{what} changed the set");
        }
        assert!(ok(&mut vips, Change::DelVip(id(a))).contains("removed VIP"));
        assert_eq!(vips.len(), 1);
    }
}
