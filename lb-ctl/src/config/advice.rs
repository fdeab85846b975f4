//! Advice on a VIP set that follows the rules (`config::rules`) but may not
//! do what its operator expects. Nothing here refuses anything: it is
//! printed by `lb-ctl daemon --check-config`, logged at start and added to
//! a reload's answer and to an API change's answer (the notes it brought).
use super::VipConfig;

/// Ring slots each real should hold at least (weighed: the lightest real's
/// share): the Maglev paper's rule. At that ratio shares stay within 1% of
/// even at every ring size (measured in lb-ctl/tests/maglev.rs); below it a
/// real's share drifts further, and a change of reals moves more flows.
pub const SLOTS_PER_REAL: u64 = 100;

/// One line of advice per VIP whose ring is small for its reals (reals of
/// weight 0 hold no slots and are not counted).
pub fn ring_advice(vips: &[VipConfig]) -> Vec<String> {
    vips.iter()
        .filter_map(|v| {
            let weights: Vec<u64> = v
                .reals
                .iter()
                .map(|r| u64::from(r.weight))
                .filter(|&w| w > 0)
                .collect();
            let lightest = *weights.iter().min()?;
            let total: u64 = weights.iter().sum();
            // The lightest real's slots: ring * lightest / total.
            let ring = u64::from(v.ring_size);
            let slots = ring * lightest / total;
            let id = v.id();
            if slots == 0 {
                Some(format!(
                    "VIP {id}: its ring of {ring} slots leaves its lightest real no slot \
                     (weights {lightest} of {total}): raise ring_size to at least {} \
                     (docs/DATAPLANE.md)",
                    total.div_ceil(lightest) * SLOTS_PER_REAL
                ))
            } else if slots < SLOTS_PER_REAL {
                Some(format!(
                    "VIP {id}: its ring of {ring} slots gives its lightest real {slots} \
                     (under {SLOTS_PER_REAL}): shares may be uneven by more than 1% and a change \
                     of reals moves more flows; a ring_size of at least {} avoids it \
                     (docs/DATAPLANE.md)",
                    total.div_ceil(lightest) * SLOTS_PER_REAL
                ))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RealConfig, fixtures};

    #[test]
    fn rings_under_100_slots_a_real_get_advice() {
        // (ring, weights, what the advice says: None, Some("no slot"),
        // Some("uneven")).
        let cases: [(u32, &[u32], Option<&str>); 10] = [
            (65_537, &[1; 10], None),
            (4_093, &[1; 40], None),
            (4_093, &[1; 41], Some("gives its lightest real 99")),
            (1_021, &[1; 10], None),
            (1_021, &[1; 11], Some("gives its lightest real 92")),
            (65_537, &[1, 1000], Some("gives its lightest real 65")),
            (13, &[1, 1], Some("gives its lightest real 6")),
            (7, &[1; 10], Some("leaves its lightest real no slot")),
            (13, &[], None),
            (13, &[0, 0], None),
        ];
        for (ring, weights, want) in cases {
            let vip = VipConfig {
                ring_size: ring,
                reals: weights
                    .iter()
                    .enumerate()
                    .map(|(i, &weight)| RealConfig {
                        weight,
                        ..fixtures::real(&format!("198.51.100.{}", i + 1))
                    })
                    .collect(),
                ..fixtures::vip("203.0.113.10", 80)
            };
            let advice = ring_advice(std::slice::from_ref(&vip));
            match want {
                None => assert!(advice.is_empty(), "ring {ring} {weights:?}: {advice:?}"),
                Some(text) => {
                    assert_eq!(advice.len(), 1, "ring {ring} {weights:?}");
                    assert!(
                        advice[0].contains(text) && advice[0].contains("203.0.113.10:80/tcp"),
                        "ring {ring} {weights:?}: {}",
                        advice[0]
                    );
                }
            }
        }
    }
}
