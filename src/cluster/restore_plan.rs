//! Creating a cluster from a backup (`spec.restoreFrom`): the backup is loaded into the first
//! member by a Job before the group's first start, and the group then starts from that member.
//!
//! Pure: where the backup is ([`locate`]), and what the restore needs next ([`plan`]) from what
//! was observed (the restore status, the Job, the first member's pod, whether the group ever
//! started). The reconcile does the reads and writes around it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::cluster::{
    MySQLClusterStatus, RestorePhase, RestoreSource, RestoreStatus, S3Location,
};
use crate::api::conditions::{Desired, RESTORED};
use crate::api::{Backup, BackupPhase, MySQLCluster, S3Storage};
use crate::backup_controller::decide::{JobView, Outcome, outcome};
use crate::events::Reason;
use crate::topology::observe::RESTORE_PENDING;
use crate::topology::{Observed, PodPhase, RestoreGate};

/// Why the group's first start waits: the restore Job runs.
const RESTORE_IN_PROGRESS: &str = "RestoreInProgress";
/// Why the group's first start is held until a person acts: the restore failed.
const RESTORE_FAILED: &str = "RestoreFailed";

/// Where the backup to restore is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreLocation {
    /// The bucket and its credentials.
    pub(crate) storage: S3Storage,
    /// The key prefix of the backup (the folder holding its manifest).
    pub(crate) prefix: String,
    /// For people: `s3://bucket/prefix/`, with the Backup's name when there is one.
    pub(crate) source: String,
}

/// Why the backup to restore cannot be used (yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// The source may still become usable by itself (a Backup that is still running).
    pub(crate) waiting: bool,
    /// What is wrong and what to do.
    pub(crate) message: String,
}

/// The restore location of `restoreFrom.s3`: its path is the backup's full key prefix in the
/// bucket (`storage.prefix` is not added to it).
pub fn from_s3(location: &S3Location) -> RestoreLocation {
    let prefix = format!("{}/", location.path.trim_matches('/'));
    RestoreLocation {
        source: location.storage.url(&prefix),
        storage: location.storage.clone(),
        prefix,
    }
}

/// The restore location of `restoreFrom.backup`: the Backup `name` (as read, `None` when it does
/// not exist) must have Succeeded; its location is taken from its status, the bucket's settings
/// from its own storage, else from its cluster's (`source_cluster`, as read), else from
/// `restoring`'s own backup storage when that is the same bucket.
pub(crate) fn locate(
    name: &str,
    backup: Option<&Backup>,
    source_cluster: Option<&MySQLCluster>,
    restoring: &MySQLCluster,
) -> Result<RestoreLocation, Unresolved> {
    let blocked = |message: String| Unresolved {
        waiting: false,
        message,
    };
    let Some(backup) = backup else {
        return Err(blocked(format!(
            "Backup {name} does not exist in this namespace: create it (or name an existing \
             Backup), or delete this MySQLCluster and create it with restoreFrom.s3"
        )));
    };
    let status = backup.status.clone().unwrap_or_default();
    match status.phase {
        Some(BackupPhase::Succeeded) => {}
        Some(BackupPhase::Failed) => {
            return Err(blocked(format!(
                "Backup {name} failed ({}); it cannot be restored: delete this MySQLCluster and \
                 create it from another backup",
                status.message.unwrap_or_default()
            )));
        }
        _ => {
            return Err(Unresolved {
                waiting: true,
                message: format!("waiting for Backup {name} to succeed"),
            });
        }
    }
    if let (Some(storage), Some(prefix)) = (&status.storage, &status.prefix) {
        // Recorded when the backup was taken: no parsing, no guessing.
        return Ok(RestoreLocation {
            storage: storage.clone(),
            prefix: prefix.clone(),
            source: format!("Backup {name} ({})", storage.url(prefix)),
        });
    }
    // A Backup from an older version recorded only its location: parsed back, the bucket's
    // settings from the specs.
    let Some(location) = status.location.as_deref() else {
        return Err(blocked(format!(
            "Backup {name} has no location in its status; use restoreFrom.s3 with its location"
        )));
    };
    let Some((bucket, prefix)) = location
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(b, p)| !b.is_empty() && !p.is_empty())
    else {
        return Err(blocked(format!(
            "Backup {name} has the location {location:?}, which is not s3://bucket/prefix/"
        )));
    };
    let storage = [
        backup.spec.storage.as_ref(),
        source_cluster.and_then(|c| c.spec.backup.as_ref().map(|b| &b.storage)),
        restoring.spec.backup.as_ref().map(|b| &b.storage),
    ]
    .into_iter()
    .flatten()
    .find(|s| s.bucket == bucket);
    let Some(storage) = storage else {
        return Err(blocked(format!(
            "the endpoint and credentials of bucket {bucket} (Backup {name}) are not known: its \
             MySQLCluster {} is gone and the Backup names no storage; use restoreFrom.s3",
            backup.spec.cluster_name
        )));
    };
    Ok(RestoreLocation {
        storage: storage.clone(),
        prefix: prefix.to_string(),
        source: format!("Backup {name} ({location})"),
    })
}

/// The source named by `restoreFrom`, as the dereference step resolved it.
pub(crate) fn source_name(from: &RestoreSource) -> String {
    match (&from.backup, &from.s3) {
        (Some(b), _) => format!("Backup {b}"),
        (None, Some(s)) => from_s3(s).source,
        (None, None) => String::new(),
    }
}

/// What was observed about a cluster's restore.
#[derive(Clone, Debug)]
pub struct RestoreInput<'a> {
    /// `spec.restoreFrom`.
    pub requested: Option<&'a RestoreSource>,
    /// Where its backup is, as resolved by the dereference step.
    pub location: Option<&'a Result<RestoreLocation, Unresolved>>,
    /// The restore block of the current status.
    pub old: Option<&'a RestoreStatus>,
    /// Name of the cluster's restore Job and the Job as observed.
    pub(crate) job_name: &'a str,
    pub job: Option<&'a JobView>,
    /// When the Job was created (the start time when the status lost it).
    pub job_created: Option<&'a Time>,
    /// Name of the first member's pod and whether it runs with mysqld up (Ready).
    pub(crate) first_member: &'a str,
    pub(crate) first_member_ready: bool,
    /// The cluster's data exists already ([`nothing_to_restore`]: the
    /// status shows a group, a member is in one, or member 0 holds transactions): nothing to
    /// restore.
    pub(crate) group_started: bool,
    /// The name of the cluster (for the messages).
    pub cluster: &'a str,
    pub now: &'a Time,
}

/// A Normal Event to record about the restore (its warnings come from the topology, which
/// holds the group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RestoreEvent {
    pub(crate) reason: Reason,
    pub(crate) message: String,
}

/// What the restore needs next.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The restore block of the status (`None` when no restore was asked for).
    pub status: Option<RestoreStatus>,
    /// Whether the group may start.
    pub gate: RestoreGate,
    /// Create the restore Job now.
    pub create_job: bool,
    /// What happened in this step, when it is news.
    pub(crate) event: Option<RestoreEvent>,
}

/// What to do after a failed restore.
fn after_failure(cluster: &str, job_name: &str, first_member: &str) -> String {
    format!(
        "the group is not started. Read the Job's log (kubectl logs job/{job_name}) and fix the \
         cause; then, if {first_member} holds none of the backup's databases yet, delete the Job \
         {job_name} to retry; otherwise delete the MySQLCluster {cluster} and its data volumes \
         (kubectl delete pvc -l app.kubernetes.io/instance={cluster}), and create the \
         MySQLCluster again"
    )
}

/// The plan of a cluster without `spec.restoreFrom`: nothing to restore, the group may start.
pub(crate) fn plan_nothing() -> Plan {
    Plan {
        status: None,
        gate: RestoreGate::Open,
        create_job: false,
        event: None,
    }
}

/// The next step of the restore. Level-triggered: the Job, not the status, says how far it got,
/// so a restarted operator resumes (and never runs a second Job next to the first). The order of
/// the steps is the rule: a recorded success stays, then the Job decides, then data that exists
/// (nothing is restored over it), then the source and the first member.
pub fn plan(i: &RestoreInput) -> Plan {
    let Some(requested) = i.requested else {
        return plan_nothing();
    };
    let old = i.old.cloned().unwrap_or_default();
    let source = match i.location {
        Some(Ok(l)) => l.source.clone(),
        _ => source_name(requested),
    };
    let carried = carried_over(&old, &source);
    let step = if old.phase == Some(RestorePhase::Succeeded) {
        succeeded_before(&old, carried)
    } else if let Some(job) = i
        .job
        // A failed Job next to data that exists (it refused a member that was restored or in a
        // group before) does not hold that data: see the next step.
        .filter(|j| !(i.group_started && matches!(outcome(j, "restore"), Outcome::Failed(_))))
    {
        from_job(i, job, old.phase, &source, carried)
    } else if i.group_started {
        data_exists_already(i, carried)
    } else {
        before_job(i, &source, carried)
    };
    finish(step, old.phase)
}

/// One step of the restore: the status it writes (phase and message set), the gate, and whether
/// the Job is created now.
struct Step {
    status: RestoreStatus,
    gate: RestoreGate,
    create_job: bool,
}

impl Step {
    fn new(
        mut status: RestoreStatus,
        phase: RestorePhase,
        message: String,
        gate: RestoreGate,
    ) -> Step {
        status.phase = Some(phase);
        status.message = Some(message);
        Step {
            status,
            gate,
            create_job: false,
        }
    }

    /// Waiting for something, with `message` in the status and the gate.
    fn waiting(
        status: RestoreStatus,
        phase: RestorePhase,
        reason: &'static str,
        message: String,
    ) -> Step {
        let gate = RestoreGate::Waiting {
            reason,
            message: message.clone(),
        };
        Step::new(status, phase, message, gate)
    }
}

/// What the status keeps from its last restore block (the phase and message are set anew).
fn carried_over(old: &RestoreStatus, source: &str) -> RestoreStatus {
    RestoreStatus {
        source: Some(source.to_string()),
        job_name: old.job_name.clone(),
        gtid_set: old.gtid_set.clone(),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        ..Default::default()
    }
}

/// A restore recorded as done stays done, with the source it was recorded with.
fn succeeded_before(old: &RestoreStatus, mut status: RestoreStatus) -> Step {
    status.source = old.source.clone().or(status.source);
    let message = old.message.clone().unwrap_or_default();
    Step::new(status, RestorePhase::Succeeded, message, RestoreGate::Open)
}

/// The restore Job exists: its outcome is the restore's.
fn from_job(
    i: &RestoreInput,
    job: &JobView,
    old_phase: Option<RestorePhase>,
    source: &str,
    mut status: RestoreStatus,
) -> Step {
    status.job_name = Some(i.job_name.to_string());
    status.start_time = status.start_time.or_else(|| i.job_created.cloned());
    match outcome(job, "restore") {
        Outcome::Running => Step::new(
            status,
            RestorePhase::Running,
            format!("restoring {source} into {}", i.first_member),
            RestoreGate::Waiting {
                reason: RESTORE_IN_PROGRESS,
                message: format!("the restore Job {} runs", i.job_name),
            },
        ),
        Outcome::Succeeded(result) => {
            status.gtid_set = Some(result.gtid_set.clone());
            status.completion_time = Some(i.now.clone());
            let message = format!(
                "{} holds {source} (GTID set {}); the group starts from it",
                i.first_member, result.gtid_set
            );
            Step::new(status, RestorePhase::Succeeded, message, RestoreGate::Open)
        }
        Outcome::Failed(why) => {
            if old_phase != Some(RestorePhase::Failed) {
                status.completion_time = Some(i.now.clone());
            }
            let message = format!(
                "{why}; {}",
                after_failure(i.cluster, i.job_name, i.first_member)
            );
            let gate = RestoreGate::Blocked {
                reason: RESTORE_FAILED,
                message: format!("the restore from {source} failed: {message}"),
            };
            Step::new(status, RestorePhase::Failed, message, gate)
        }
    }
}

/// The status was lost (or the object recreated from a copy, its Job gone with the old one):
/// data that exists is never restored over, and the group starts from it.
fn data_exists_already(i: &RestoreInput, status: RestoreStatus) -> Step {
    let message = format!(
        "the members hold the cluster's data already (a group ran, or {} was restored before); \
         nothing is restored",
        i.first_member
    );
    Step::new(status, RestorePhase::Succeeded, message, RestoreGate::Open)
}

/// No Job yet: it is created once the source is resolved and the first member runs.
fn before_job(i: &RestoreInput, source: &str, mut status: RestoreStatus) -> Step {
    match i.location {
        Some(Err(unresolved)) if unresolved.waiting => Step::waiting(
            status,
            RestorePhase::Pending,
            RESTORE_PENDING,
            unresolved.message.clone(),
        ),
        Some(Err(unresolved)) => {
            let gate = RestoreGate::Blocked {
                reason: "RestoreSourceNotFound",
                message: unresolved.message.clone(),
            };
            Step::new(
                status,
                RestorePhase::Pending,
                unresolved.message.clone(),
                gate,
            )
        }
        None => Step::waiting(
            status,
            RestorePhase::Pending,
            RESTORE_PENDING,
            format!("the source {source} is not resolved yet"),
        ),
        Some(Ok(_)) if !i.first_member_ready => Step::waiting(
            status,
            RestorePhase::Pending,
            RESTORE_PENDING,
            format!(
                "waiting for {} to run with mysqld up before restoring {source} into it",
                i.first_member
            ),
        ),
        Some(Ok(_)) => {
            status.job_name = Some(i.job_name.to_string());
            status.start_time = Some(i.now.clone());
            status.completion_time = None;
            status.gtid_set = None;
            let gate = RestoreGate::Waiting {
                reason: RESTORE_IN_PROGRESS,
                message: format!("the restore Job {} was created", i.job_name),
            };
            let message = format!("restoring {source} into {}", i.first_member);
            Step {
                create_job: true,
                ..Step::new(status, RestorePhase::Running, message, gate)
            }
        }
    }
}

/// The plan of a step, with its Event. Starts and successes are told here; a failure or an
/// unusable source holds the group, and the topology's Warning Event (reason RestoreFailed /
/// RestoreSourceNotFound) tells it.
fn finish(step: Step, old_phase: Option<RestorePhase>) -> Plan {
    let reason = match step.status.phase {
        Some(RestorePhase::Running) if step.create_job => Some(Reason::RestoreStarted),
        Some(RestorePhase::Succeeded) if old_phase != Some(RestorePhase::Succeeded) => {
            Some(Reason::Restored)
        }
        _ => None,
    };
    let event = reason.map(|reason| RestoreEvent {
        reason,
        message: step.status.message.clone().unwrap_or_default(),
    });
    Plan {
        status: Some(step.status),
        gate: step.gate,
        create_job: step.create_job,
        event,
    }
}

/// Whether the members hold the cluster's data as observed: a member is in a group, or the first
/// member holds transactions (a new member holds none: its accounts are created without binary
/// logging; a restore sets the backup's GTID set last, so a half-loaded member holds none either).
pub(crate) fn data_exists(observed: &Observed) -> bool {
    observed
        .state(0)
        .is_some_and(|s| !s.transactions().is_empty())
        || observed
            .members
            .iter()
            .filter_map(|m| m.state())
            .any(|s| s.own_status().in_group())
}

/// Whether the first member is ready to be restored into: its pod runs Ready and is not being
/// deleted. Without a restore record in the status (`old`), its mysqld must also have answered
/// in this reconcile, so that [`data_exists`] saw what it holds: a new cluster's first status
/// (written before its pods exist) has the record, so a Ready pod without one belongs to a
/// cluster whose status was lost or that was recreated over existing data volumes.
pub(crate) fn first_member_ready(observed: &Observed, old: Option<&RestoreStatus>) -> bool {
    observed
        .input
        .pod(0)
        .is_some_and(|p| p.phase == PodPhase::Running && p.ready && !p.deleting)
        && (old.is_some() || observed.state(0).is_some())
}

/// The `Restored` condition for a restore status (none when no restore was asked for).
pub(crate) fn condition(status: Option<&RestoreStatus>) -> Option<Desired> {
    let status = status?;
    let message = status.message.clone().unwrap_or_default();
    Some(match status.phase {
        Some(RestorePhase::Succeeded) => {
            Desired::new(RESTORED, true, Reason::Restored.as_str(), message)
        }
        Some(RestorePhase::Running) => Desired::new(RESTORED, false, "RestoreRunning", message),
        Some(RestorePhase::Failed) => Desired::new(RESTORED, false, RESTORE_FAILED, message),
        Some(RestorePhase::Pending) | None => {
            Desired::new(RESTORED, false, RESTORE_PENDING, message)
        }
    })
}

/// Whether the status shows a member that was in a group: the group was started before.
pub(crate) fn group_started(status: Option<&MySQLClusterStatus>) -> bool {
    status.is_some_and(|s| s.primary.is_some() || s.members.iter().any(|m| m.state.in_group()))
}

/// Whether there is nothing to restore because the cluster's data exists: the status says a
/// group ran, or the members say so ([`data_exists`]) when the status was lost.
pub(crate) fn nothing_to_restore(status: Option<&MySQLClusterStatus>, members: &Observed) -> bool {
    group_started(status) || data_exists(members)
}

#[cfg(test)]
mod tests;
