//! Status conditions: names, and merging new ones into old so that `lastTransitionTime` moves
//! only when a condition's status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Every member is ONLINE, the router tier is up, and the spec is fully applied.
pub(crate) const READY: &str = "Ready";
/// The read-write Service has a primary to send writes to.
pub(crate) const AVAILABLE: &str = "Available";
/// The operator is changing something (creating, scaling, rolling, recovering).
pub(crate) const PROGRESSING: &str = "Progressing";
/// Something needs attention: a member is down, the spec is invalid, an operation failed.
pub(crate) const DEGRADED: &str = "Degraded";
/// The group has lost its majority and cannot accept writes.
pub(crate) const QUORUM_LOST: &str = "QuorumLost";
/// The spec runs with a caveat a user should act on: an end-of-life MySQL version, a
/// deprecated setting, a version change MySQL does not allow (which also degrades the cluster).
pub(crate) const SPEC_WARNING: &str = "SpecWarning";
/// The data of `spec.restoreFrom` is in the first member (only on clusters restored from a backup).
pub const RESTORED: &str = "Restored";

/// The reason of an `Available` condition that is false: no member is the primary.
pub(crate) const NO_PRIMARY: &str = "NoPrimary";

/// A condition as the reconcile decides it, before times and generations are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub(crate) type_: &'static str,
    pub(crate) status: bool,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl Desired {
    pub(crate) fn new(
        type_: &'static str,
        status: bool,
        reason: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// Merges `desired` conditions into `old`: a condition whose status is unchanged keeps its
/// `lastTransitionTime`; conditions of other types in `old` are kept as they are.
pub(crate) fn merge(
    old: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = old
        .iter()
        .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
        .cloned()
        .collect();
    for d in desired {
        let status = if d.status { "True" } else { "False" }.to_string();
        let previous = old.iter().find(|c| c.type_ == d.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        out.push(Condition {
            type_: d.type_.to_string(),
            status,
            reason: d.reason.clone(),
            message: d.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    out.sort_by(|a, b| {
        order(&a.type_)
            .cmp(&order(&b.type_))
            .then(a.type_.cmp(&b.type_))
    });
    out
}

fn order(type_: &str) -> usize {
    [
        READY,
        AVAILABLE,
        PROGRESSING,
        DEGRADED,
        QUORUM_LOST,
        RESTORED,
    ]
    .iter()
    .position(|t| *t == type_)
    .unwrap_or(usize::MAX)
}

/// Whether condition `type_` is True in `conditions`.
pub(crate) fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let t0 = time("2026-01-01T00:00:00Z");
        let t1 = time("2026-01-01T00:05:00Z");
        let first = merge(
            &[],
            &[Desired::new(READY, false, "Creating", "starting")],
            Some(1),
            &t0,
        );
        let same = merge(
            &first,
            &[Desired::new(READY, false, "Joining", "joining")],
            Some(2),
            &t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(same[0].reason, "Joining");
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[Desired::new(READY, true, "AllOnline", "ok")],
            Some(2),
            &t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
        assert!(is_true(&flipped, READY));
    }

    #[test]
    fn keeps_foreign_conditions_and_orders_known_ones_first() {
        let t0 = time("2026-01-01T00:00:00Z");
        let foreign = Condition {
            type_: "Custom".into(),
            status: "True".into(),
            reason: "X".into(),
            message: String::new(),
            observed_generation: None,
            last_transition_time: t0.clone(),
        };
        let out = merge(
            std::slice::from_ref(&foreign),
            &[
                Desired::new(DEGRADED, true, "A", ""),
                Desired::new(READY, false, "B", ""),
            ],
            None,
            &t0,
        );
        let types: Vec<_> = out.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, vec![READY, DEGRADED, "Custom"]);
        assert_eq!(out[2], foreign);
    }
}
