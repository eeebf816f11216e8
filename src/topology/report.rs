//! What a tick reports: conditions, Events, members, labels, replicas, requeue. Pure: built
//! from the observation, the diagnosis and the verdict `decide` reached.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use crate::api::cluster::ReportedState;
use crate::api::conditions::{AVAILABLE, DEGRADED, NO_PRIMARY, PROGRESSING, QUORUM_LOST, READY};

use super::diagnose::{Diagnosis, Health};
use super::event::Event;
use super::labels;
use super::observe::{ActionRecord, Observed, Reach, Role};
use super::ops::Operation;
use super::verdict::Verdict;

/// A status condition (`status` is "True"/"False" on the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// One member in the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    pub(crate) name: String,
    pub(crate) ordinal: u32,
    pub(crate) role: Option<Role>,
    /// MEMBER_STATE as the group (or the member) reports it, or UNREACHABLE / MISSING.
    pub(crate) state: ReportedState,
}

/// What the lead does with one tick's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Run this (through [`super::ops::execute`]); then re-tick after `requeue`.
    pub operation: Operation,
    /// Append to the status history once the operation was attempted (anti-flapping).
    pub record: Option<ActionRecord>,
    /// All five condition types, every tick.
    pub conditions: Vec<Condition>,
    pub(crate) members: Vec<MemberReport>,
    /// Pod name of the primary.
    pub(crate) primary: Option<String>,
    pub events: Vec<Event>,
    /// Desired role label per existing pod ordinal.
    pub labels: BTreeMap<u32, Option<Role>>,
    /// What the StatefulSet's replicas should be: members leave the group before their pod goes.
    pub statefulset_replicas: u32,
    /// Rolling update (StatefulSet `OnDelete`): the one pod the lead may delete now. Only while
    /// every member is ONLINE and nothing else runs, secondaries first; the primary's turn comes
    /// after `decide` has moved the primary away (it is then a secondary); a single-member
    /// cluster's only pod goes when its turn comes.
    pub update_next: Option<u32>,
    /// The requested switchover is done: clear the request.
    pub switchover_complete: bool,
    /// The force-quorum order is being carried out by this operation: clear the annotation once it
    /// succeeded (it must never fire twice).
    pub force_quorum_consumed: bool,
    pub requeue: Duration,
    /// Expel on proof (see `expel`): carried out before `operation`.
    pub expel_timeout: Option<super::expel::ExpelTimeout>,
    /// Members to set the membership settings on (see `membership`): carried out before
    /// `operation`.
    pub membership: Vec<u32>,
    /// Members to admit clients to (see `admit`): carried out before `operation`.
    pub admit: Vec<u32>,
    /// Members to reload their TLS files (see `tls_reload`): carried out before `operation`.
    pub reload_tls: Vec<u32>,
}

/// The `Decision` of one tick: every field from the observation, the diagnosis and the verdict,
/// each by a named step below.
pub(super) fn assemble(observed: &Observed, diagnosis: &Diagnosis, verdict: Verdict) -> Decision {
    let input = &observed.input;
    let labels = labels::desired(observed, diagnosis);
    let primary = diagnosis.group.as_ref().and_then(|g| g.primary);
    let labels_applied = input
        .pods
        .iter()
        .all(|p| labels.get(&p.ordinal).copied().flatten() == p.role_label);
    let online = diagnosis.health == Health::Online;
    let acting = verdict.operation != Operation::None;
    // The Services route only to pods whose readiness probe passed: until then a client that
    // waited for Ready would be refused (seen on the real node: `C-ro` refused connections for
    // up to a probe period after every member was ONLINE).
    let settled = online && labels_applied && !acting;
    let pods_ready = input.pods.iter().all(|p| p.ready);
    let ready = settled && pods_ready;
    Decision {
        switchover_complete: input.switchover_to.is_some() && input.switchover_to == primary,
        force_quorum_consumed: matches!(verdict.operation, Operation::ForceQuorum { .. }),
        requeue: if ready {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        },
        conditions: conditions(observed, diagnosis, &verdict, ready, settled && !pods_ready),
        members: members(observed, diagnosis, &labels),
        events: events(&verdict),
        statefulset_replicas: statefulset_replicas(observed, diagnosis),
        update_next: update_next(observed, diagnosis, online && !acting),
        record: record(&verdict, primary, input.now),
        primary: primary.map(|p| input.pod_name(p)),
        operation: verdict.operation,
        labels,
        expel_timeout: None,
        membership: Vec::new(),
        admit: Vec::new(),
        reload_tls: Vec::new(),
    }
}

/// Every member with the state the group (or, outside it, the member itself) reports and the
/// role its label is to carry.
fn members(
    observed: &Observed,
    diagnosis: &Diagnosis,
    labels: &BTreeMap<u32, Option<Role>>,
) -> Vec<MemberReport> {
    let group = diagnosis.group.as_ref();
    observed
        .members
        .iter()
        .map(|m| {
            let row = group.and_then(|g| g.row(m.ordinal));
            let state = match (row, &m.reach) {
                (Some(r), _) => r.state.into(),
                (None, Reach::Reachable(s)) => s.own_status().into(),
                (None, Reach::Unreachable { .. }) => ReportedState::Unreachable,
                (None, Reach::NoPod) => ReportedState::Missing,
            };
            MemberReport {
                name: observed.input.pod_name(m.ordinal),
                ordinal: m.ordinal,
                role: labels.get(&m.ordinal).copied().flatten(),
                state,
            }
        })
        .collect()
}

/// The five conditions; `ready`: every member ONLINE, labelled, its pod Ready, and nothing to do.
fn conditions(
    observed: &Observed,
    diagnosis: &Diagnosis,
    verdict: &Verdict,
    ready: bool,
    waiting_for_pods: bool,
) -> Vec<Condition> {
    let primary = diagnosis.group.as_ref().and_then(|g| g.primary);
    let online = diagnosis.health == Health::Online;
    let acting = verdict.operation != Operation::None;
    let quorum_lost = diagnosis.health == Health::NoQuorum;
    let cond = |type_: &'static str, status: bool, reason: &str, message: &str| Condition {
        type_,
        status,
        reason: reason.to_string(),
        message: message.to_string(),
    };
    let (reason, message) = if waiting_for_pods {
        (
            "PodsNotReady",
            "every member is ONLINE; waiting for their pods' readiness probes (the Services route \
             only to Ready pods)",
        )
    } else {
        (verdict.reason, verdict.message.as_str())
    };
    // Members ONLINE, nothing to do, but pods of an older template still to replace: the rollout
    // is in progress (one pod at a time, see `update_next`), though Ready stays true.
    let rollout = rollout_pending(observed).filter(|_| online && !acting);
    let available = match primary {
        Some(p) => format!(
            "{} is the ONLINE primary of a group with quorum",
            observed.input.pod_name(p)
        ),
        None => "no ONLINE primary in a group with quorum".to_string(),
    };
    vec![
        cond(
            READY,
            ready,
            if ready { "Online" } else { reason },
            if ready {
                "every member is ONLINE and the Services select them"
            } else {
                message
            },
        ),
        cond(
            AVAILABLE,
            primary.is_some(),
            if primary.is_some() {
                "PrimaryOnline"
            } else {
                NO_PRIMARY
            },
            &available,
        ),
        match &rollout {
            Some(pending) => cond(PROGRESSING, true, ROLLING_UPDATE, pending),
            None => cond(
                PROGRESSING,
                acting || (!online && !verdict.needs_user),
                reason,
                message,
            ),
        },
        cond(
            DEGRADED,
            !online,
            if online { "Online" } else { reason },
            message,
        ),
        cond(
            QUORUM_LOST,
            quorum_lost,
            if quorum_lost { QUORUM_LOST } else { "Quorum" },
            if quorum_lost {
                message
            } else {
                "a group with quorum exists or none is running"
            },
        ),
    ]
}

/// Progressing's reason while pods of an older template are still to be replaced.
pub(crate) const ROLLING_UPDATE: &str = "RollingUpdate";

/// What a rollout still has to replace, when pods run an older template than the StatefulSet's.
fn rollout_pending(observed: &Observed) -> Option<String> {
    let pending: Vec<u32> = observed
        .input
        .pods
        .iter()
        .filter(|p| p.update_pending)
        .map(|p| p.ordinal)
        .collect();
    (!pending.is_empty()).then(|| {
        format!(
            "{} to be replaced with the current pod template, one at a time, secondaries \
             first and the primary after a switchover",
            super::pick::names(observed, &pending)
        )
    })
}

/// The verdict's Event: the operation about to run, or what the user must do.
fn events(verdict: &Verdict) -> Vec<Event> {
    let acting = verdict.operation != Operation::None;
    if !acting && !verdict.needs_user {
        return Vec::new();
    }
    vec![Event {
        warning: !acting || matches!(verdict.operation, Operation::ForceQuorum { .. }),
        reason: verdict.reason,
        message: verdict.message.clone(),
    }]
}

/// What the StatefulSet's replicas should be: the spec's, or more while members above it are
/// still in the group (members leave the group before their pod goes).
fn statefulset_replicas(observed: &Observed, diagnosis: &Diagnosis) -> u32 {
    let input = &observed.input;
    let in_group_max = diagnosis
        .group
        .iter()
        .flat_map(|g| g.participants())
        .chain(diagnosis.stranded.iter().copied())
        .max();
    let existing_max = input.pods.iter().map(|p| p.ordinal).max();
    let keep = if diagnosis.group.is_some() {
        in_group_max
    } else {
        existing_max.max(in_group_max)
    };
    input.instances.max(keep.map_or(0, |o| o + 1))
}

/// The one pod of a rolling update to delete now (see [`Decision::update_next`]); `settled`:
/// every member ONLINE and no operation runs.
fn update_next(observed: &Observed, diagnosis: &Diagnosis, settled: bool) -> Option<u32> {
    let input = &observed.input;
    let group = diagnosis.group.as_ref();
    let primary = group.and_then(|g| g.primary);
    // A single member cannot hand over: its update is the (unavoidable) outage.
    let alone = input.instances == 1;
    // The primary's turn comes once it is a secondary, or when no member can take its role over
    // (an upgrade: MySQL makes only a member of the lowest version the primary).
    let last = group.is_some_and(|g| super::pick::primary_updates_last(observed, g));
    input
        .pods
        .iter()
        .filter(|p| {
            p.update_pending && !p.deleting && (alone || last || Some(p.ordinal) != primary)
        })
        .map(|p| p.ordinal)
        .min()
        .filter(|_| settled && input.pods.iter().all(|p| !p.deleting))
}

/// The history entry of the verdict's operation, for anti-flapping (a switchover is recorded
/// on the primary it leaves).
fn record(verdict: &Verdict, primary: Option<u32>, now: Timestamp) -> Option<ActionRecord> {
    let kind = verdict.record?;
    let ordinal = match &verdict.operation {
        Operation::Join { member, .. }
        | Operation::Clone { member, .. }
        | Operation::Leave { member } => *member,
        Operation::SetPrimary { .. } => primary?,
        _ => return None,
    };
    Some(ActionRecord {
        ordinal,
        kind,
        at: now,
    })
}
