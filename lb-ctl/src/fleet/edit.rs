//! One change made to the fleet's desired state (`lb-ctl vip ...`/`real
//! ...` on a fleet): read `config/` at revision R, apply the change with
//! the same pure function as a host's API edits, check the result with the
//! fleet file's rules, write it guarded by R. When another writer came in
//! between, read again and apply the change to what is there now: a stale
//! copy is never written over someone else's change.
use super::{
    schema::Desired,
    store::{Store, StoreError},
};
use crate::{
    api::{
        commands::{Change, RequestError},
        edits::apply_change,
    },
    config::{VipConfig, validate_fleet_vips},
};

/// Reads and writes before giving up on a store that keeps changing.
const ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The change does not fit the desired state (unknown VIP, real exists).
    #[error("{kind}: {0}", kind = refusal_kind(.0))]
    Refused(RequestError),
    /// The desired state after the change breaks a rule.
    #[error("refused: {0}")]
    Rule(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store's desired state kept changing: {ATTEMPTS} writes in a row were overtaken")]
    Contended,
}

fn refusal_kind(e: &RequestError) -> &'static str {
    match e {
        RequestError::NotFound(_) => "not found",
        RequestError::Exists(_) => "already exists",
        RequestError::Invalid(_) => "refused",
        RequestError::Internal(_) => "failed",
    }
}

/// What a change did, and the store revision that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub summary: String,
    pub revision: i64,
}

/// Applies `change` to `desired`, or refuses it and changes nothing. A
/// removed VIP also leaves the VIP lists of the hosts that named it (a
/// list naming a VIP the store lacks would make every host refuse the
/// revision).
pub fn edit_desired(desired: &mut Desired, change: Change) -> Result<String, EditError> {
    let removed = match &change {
        Change::DelVip(id) => Some(*id),
        _ => None,
    };
    let mut vips: Vec<VipConfig> = desired.vips.values().cloned().collect();
    let mut summary = apply_change(&mut vips, change).map_err(EditError::Refused)?;
    validate_fleet_vips(&vips).map_err(EditError::Rule)?;
    desired.vips = vips.into_iter().map(|v| (v.id(), v)).collect();
    if let Some(id) = removed {
        let listed: Vec<&str> = desired
            .hosts
            .iter_mut()
            .filter_map(|(host, served)| served.remove(&id).then_some(host.as_str()))
            .collect();
        if !listed.is_empty() {
            summary += &format!(" (and from the VIP list of host {})", listed.join(", "));
        }
    }
    Ok(summary)
}

/// Makes `change` in the store: read, edit, write guarded by the revision
/// read; overtaken writes are retried from a fresh read.
pub async fn edit(store: &mut Store, change: Change) -> Result<Edited, EditError> {
    for _ in 0..ATTEMPTS {
        let (mut desired, listing) = store.desired().await?;
        let summary = edit_desired(&mut desired, change.clone())?;
        match store.apply(&desired, Some(listing.revision)).await {
            Ok(done) => {
                return Ok(Edited {
                    summary,
                    revision: done.revision,
                });
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(EditError::Contended)
}

#[cfg(test)]
mod tests;
