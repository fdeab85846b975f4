//! The order of writes, checked on an in-memory recorder: reals before
//! the ring before the VIP; a removed real leaves the ring before its
//! slot is cleared; a removed VIP is unreachable before its ring and
//! reals go.
use lb_common::maps::VipKey;

use super::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Write {
    SetVip(u32),
    RemoveVip,
    SetReal(u32, bool),
    SetRing(u32, Vec<u32>),
    RemoveRing(u32),
}

#[derive(Default)]
struct Recorder(Vec<Write>);

impl MapWriter for Recorder {
    fn set_vip(&mut self, _: VipKey, meta: VipMeta) -> Result<(), DataplaneError> {
        self.0.push(Write::SetVip(meta.vip_id));
        Ok(())
    }
    fn remove_vip(&mut self, _: &VipKey) -> Result<(), DataplaneError> {
        self.0.push(Write::RemoveVip);
        Ok(())
    }
    fn set_real(&mut self, id: u32, real: &Real) -> Result<(), DataplaneError> {
        self.0.push(Write::SetReal(id, real.family != 0));
        Ok(())
    }
    fn set_ring(&mut self, vip_id: u32, slots: &[u32]) -> Result<usize, DataplaneError> {
        self.0.push(Write::SetRing(vip_id, slots.to_vec()));
        Ok(slots.len())
    }
    fn remove_ring(&mut self, vip_id: u32) -> Result<(), DataplaneError> {
        self.0.push(Write::RemoveRing(vip_id));
        Ok(())
    }
}

fn spec(reals: &[&str]) -> VipSpec {
    VipSpec {
        id: "203.0.113.10:80/tcp".parse().unwrap(),
        ring_size: RingSize::new(13).unwrap(),
        no_conn_table: false,
        quic: false,
        reals: reals
            .iter()
            .map(|a| RealSpec {
                addr: a.parse().unwrap(),
                weight: 1,
                healthy: true,
                gue: false,
            })
            .collect(),
    }
}

fn position(writes: &[Write], f: impl Fn(&Write) -> bool) -> usize {
    writes.iter().position(f).expect("the write happened")
}

#[test]
fn a_new_vip_is_written_reals_then_ring_then_vip() {
    let mut rec = Recorder::default();
    let mut r = Reconciler::new();
    r.apply(&mut rec, &[spec(&["192.0.2.18", "192.0.2.22"])])
        .unwrap();
    let w = &rec.0;
    let last_real = w
        .iter()
        .rposition(|x| matches!(x, Write::SetReal(_, true)))
        .unwrap();
    let ring = position(w, |x| matches!(x, Write::SetRing(..)));
    let vip = position(w, |x| matches!(x, Write::SetVip(_)));
    assert_eq!(w.len(), 4, "{w:?}");
    assert!(last_real < ring && ring < vip, "{w:?}");
}

#[test]
fn a_removed_real_leaves_the_ring_before_its_slot_is_cleared() {
    let mut rec = Recorder::default();
    let mut r = Reconciler::new();
    r.apply(&mut rec, &[spec(&["192.0.2.18", "192.0.2.22"])])
        .unwrap();
    let gone_id = r
        .real_id(
            &"203.0.113.10:80/tcp".parse().unwrap(),
            &"192.0.2.22".parse().unwrap(),
        )
        .unwrap();
    rec.0.clear();
    r.apply(&mut rec, &[spec(&["192.0.2.18"])]).unwrap();
    let w = &rec.0;
    let ring = position(w, |x| matches!(x, Write::SetRing(..)));
    let cleared = position(w, |x| *x == Write::SetReal(gone_id, false));
    assert!(ring < cleared, "{w:?}");
    let Write::SetRing(_, slots) = &w[ring] else {
        unreachable!()
    };
    assert!(!slots.contains(&gone_id), "the new ring no longer names it");
    assert!(
        !w.iter().any(|x| matches!(x, Write::SetVip(_))),
        "the VIP entry is unchanged: {w:?}"
    );
}

#[test]
fn a_removed_vip_is_unreachable_before_its_ring_and_reals_go() {
    let mut rec = Recorder::default();
    let mut r = Reconciler::new();
    r.apply(&mut rec, &[spec(&["192.0.2.18"])]).unwrap();
    rec.0.clear();
    r.apply(&mut rec, &[]).unwrap();
    let w = &rec.0;
    assert_eq!(w[0], Write::RemoveVip, "{w:?}");
    assert!(matches!(w[1], Write::RemoveRing(_)), "{w:?}");
    assert!(matches!(w[2], Write::SetReal(_, false)), "{w:?}");
}

#[test]
fn an_unchanged_desired_state_writes_nothing() {
    let mut rec = Recorder::default();
    let mut r = Reconciler::new();
    let desired = [spec(&["192.0.2.18", "192.0.2.22"])];
    r.apply(&mut rec, &desired).unwrap();
    rec.0.clear();
    let report = r.apply(&mut rec, &desired).unwrap();
    assert!(rec.0.is_empty(), "{:?}", rec.0);
    assert!(report.is_empty());
}
