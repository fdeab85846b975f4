//! Where each part of a `[[vip]]` table was written in the file, so that a
//! rule broken by the parsed VIP set ([`super::rules`]) is reported at its
//! `file:line:column`.
use std::ops::Range;

use toml::Spanned;

use super::{
    raw::RawHealth,
    rules::{Field, Where},
};

/// Where each part of a VIP was written, to place a broken rule.
pub(super) struct VipSpans {
    pub(super) table: Range<usize>,
    pub(super) address: Range<usize>,
    pub(super) ring_size: Option<Range<usize>>,
    pub(super) min_healthy: Option<Range<usize>>,
    pub(super) health: Option<CheckSpans>,
    pub(super) reals: Vec<RealSpans>,
}

pub(super) struct RealSpans {
    pub(super) table: Range<usize>,
    pub(super) address: Range<usize>,
    pub(super) weight: Option<Range<usize>>,
    pub(super) health: Option<CheckSpans>,
}

pub(super) struct CheckSpans {
    pub(super) table: Range<usize>,
    pub(super) port: Option<Range<usize>>,
    pub(super) path: Option<Range<usize>>,
    pub(super) status: Option<Range<usize>>,
    pub(super) command: Option<Range<usize>>,
    pub(super) interval: Option<Range<usize>>,
    pub(super) timeout: Option<Range<usize>>,
    pub(super) rise: Option<Range<usize>>,
    pub(super) fall: Option<Range<usize>>,
}

impl CheckSpans {
    pub(super) fn of(h: &Spanned<RawHealth>) -> Self {
        let r = h.get_ref();
        CheckSpans {
            table: h.span(),
            port: r.port.as_ref().map(Spanned::span),
            path: r.path.as_ref().map(Spanned::span),
            status: r.expect_status.as_ref().map(Spanned::span),
            command: r.command.as_ref().map(Spanned::span),
            interval: r.interval.as_ref().map(Spanned::span),
            timeout: r.timeout.as_ref().map(Spanned::span),
            rise: r.rise.as_ref().map(Spanned::span),
            fall: r.fall.as_ref().map(Spanned::span),
        }
    }

    fn get(&self, field: Field) -> Range<usize> {
        let f = match field {
            Field::HealthPort => &self.port,
            Field::HealthPath => &self.path,
            Field::HealthStatus => &self.status,
            Field::HealthCommand => &self.command,
            Field::HealthInterval => &self.interval,
            Field::HealthTimeout => &self.timeout,
            Field::HealthRise => &self.rise,
            Field::HealthFall => &self.fall,
            _ => &None,
        };
        f.clone().unwrap_or_else(|| self.table.clone())
    }
}

fn is_health(field: Field) -> bool {
    matches!(
        field,
        Field::Health
            | Field::HealthPort
            | Field::HealthPath
            | Field::HealthStatus
            | Field::HealthCommand
            | Field::HealthInterval
            | Field::HealthTimeout
            | Field::HealthRise
            | Field::HealthFall
    )
}

impl VipSpans {
    /// The span a broken rule points at: the field if it was written, else
    /// the table it belongs to.
    pub(super) fn get(&self, at: &Where) -> Range<usize> {
        if let Some(j) = at.real {
            let Some(r) = self.reals.get(j) else {
                return self.table.clone();
            };
            return match at.field {
                Field::Address => r.address.clone(),
                Field::Weight => r.weight.clone().unwrap_or_else(|| r.table.clone()),
                f if is_health(f) => r
                    .health
                    .as_ref()
                    .map_or_else(|| r.table.clone(), |h| h.get(f)),
                _ => r.table.clone(),
            };
        }
        match at.field {
            Field::Address => self.address.clone(),
            Field::RingSize => self.ring_size.clone().unwrap_or_else(|| self.table.clone()),
            Field::MinHealthy => self
                .min_healthy
                .clone()
                .unwrap_or_else(|| self.table.clone()),
            f if is_health(f) => self
                .health
                .as_ref()
                .map_or_else(|| self.table.clone(), |h| h.get(f)),
            _ => self.table.clone(),
        }
    }
}
