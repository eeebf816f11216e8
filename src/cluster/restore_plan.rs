//! Creating a cluster from a backup (`spec.restoreFrom`): the backup is loaded into the first
//! member by a Job before the group's first start, and the group then starts from that member.
//!
//! Pure: where the backup is ([`locate`]), and what the restore needs next ([`plan`]) from what
//! was observed (the restore status, the Job, the first member's pod, whether the group ever
//! started). The reconcile does the reads and writes around it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::cluster::{RestorePhase, RestoreSource, RestoreStatus, S3Location};
use crate::api::conditions::{Desired, RESTORED};
use crate::api::{Backup, BackupPhase, MySQLCluster, S3Storage};
use crate::backup_controller::decide::{JobView, Outcome, outcome};
use crate::events::Reason;
use crate::topology::{Observed, PodPhase, RestoreGate};

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
    pub job_name: &'a str,
    pub job: Option<&'a JobView>,
    /// When the Job was created (the start time when the status lost it).
    pub job_created: Option<&'a Time>,
    /// Name of the first member's pod and whether it runs with mysqld up (Ready).
    pub first_member: &'a str,
    pub first_member_ready: bool,
    /// The cluster's data exists already ([`super::restore_step::nothing_to_restore`]: the
    /// status shows a group, a member is in one, or member 0 holds transactions): nothing to
    /// restore.
    pub group_started: bool,
    /// The name of the cluster (for the messages).
    pub cluster: &'a str,
    pub now: &'a Time,
}

/// A Normal Event to record about the restore (its warnings come from the topology, which
/// holds the group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreEvent {
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

/// The next step of the restore. Level-triggered: the Job, not the status, says how far it got,
/// so a restarted operator resumes (and never runs a second Job next to the first).
pub fn plan(i: &RestoreInput) -> Plan {
    let Some(requested) = i.requested else {
        return Plan {
            status: None,
            gate: RestoreGate::Open,
            create_job: false,
            event: None,
        };
    };
    let old = i.old.cloned().unwrap_or_default();
    let old_phase = old.phase;
    let source = match i.location {
        Some(Ok(l)) => l.source.clone(),
        _ => source_name(requested),
    };
    let mut status = RestoreStatus {
        source: Some(source.clone()),
        job_name: old.job_name.clone(),
        gtid_set: old.gtid_set.clone(),
        start_time: old.start_time.clone(),
        completion_time: old.completion_time.clone(),
        ..Default::default()
    };
    let mut create_job = false;
    let (phase, message, gate) = if old_phase == Some(RestorePhase::Succeeded) {
        status.source = old.source.clone().or(status.source);
        (
            RestorePhase::Succeeded,
            old.message.clone().unwrap_or_default(),
            RestoreGate::Open,
        )
    } else if let Some(job) = i
        .job
        // A failed Job next to data that exists (it refused a member that was restored or in a
        // group before) does not hold that data: see the next branch.
        .filter(|j| !(i.group_started && matches!(outcome(j, "restore"), Outcome::Failed(_))))
    {
        status.job_name = Some(i.job_name.to_string());
        status.start_time = status.start_time.or_else(|| i.job_created.cloned());
        match outcome(job, "restore") {
            Outcome::Running => (
                RestorePhase::Running,
                format!("restoring {source} into {}", i.first_member),
                RestoreGate::Waiting {
                    reason: "RestoreInProgress",
                    message: format!("the restore Job {} runs", i.job_name),
                },
            ),
            Outcome::Succeeded(result) => {
                status.gtid_set = Some(result.gtid_set.clone());
                status.completion_time = Some(i.now.clone());
                (
                    RestorePhase::Succeeded,
                    format!(
                        "{} holds {source} (GTID set {}); the group starts from it",
                        i.first_member, result.gtid_set
                    ),
                    RestoreGate::Open,
                )
            }
            Outcome::Failed(why) => {
                if old_phase != Some(RestorePhase::Failed) {
                    status.completion_time = Some(i.now.clone());
                }
                let message = format!(
                    "{why}; {}",
                    after_failure(i.cluster, i.job_name, i.first_member)
                );
                (
                    RestorePhase::Failed,
                    message.clone(),
                    RestoreGate::Blocked {
                        reason: "RestoreFailed",
                        message: format!("the restore from {source} failed: {message}"),
                    },
                )
            }
        }
    } else if i.group_started {
        // The status was lost (or the object recreated from a copy, its Job gone with the old
        // one): data that exists is never restored over, and the group starts from it.
        (
            RestorePhase::Succeeded,
            format!(
                "the members hold the cluster's data already (a group ran, or {} was restored \
                 before); nothing is restored",
                i.first_member
            ),
            RestoreGate::Open,
        )
    } else {
        match i.location {
            Some(Err(unresolved)) => (
                RestorePhase::Pending,
                unresolved.message.clone(),
                if unresolved.waiting {
                    RestoreGate::Waiting {
                        reason: "RestorePending",
                        message: unresolved.message.clone(),
                    }
                } else {
                    RestoreGate::Blocked {
                        reason: "RestoreSourceNotFound",
                        message: unresolved.message.clone(),
                    }
                },
            ),
            None => (
                RestorePhase::Pending,
                format!("the source {source} is not resolved yet"),
                RestoreGate::Waiting {
                    reason: "RestorePending",
                    message: format!("the source {source} is not resolved yet"),
                },
            ),
            Some(Ok(_)) if !i.first_member_ready => {
                let message = format!(
                    "waiting for {} to run with mysqld up before restoring {source} into it",
                    i.first_member
                );
                (
                    RestorePhase::Pending,
                    message.clone(),
                    RestoreGate::Waiting {
                        reason: "RestorePending",
                        message,
                    },
                )
            }
            Some(Ok(_)) => {
                create_job = true;
                status.job_name = Some(i.job_name.to_string());
                status.start_time = Some(i.now.clone());
                status.completion_time = None;
                status.gtid_set = None;
                (
                    RestorePhase::Running,
                    format!("restoring {source} into {}", i.first_member),
                    RestoreGate::Waiting {
                        reason: "RestoreInProgress",
                        message: format!("the restore Job {} was created", i.job_name),
                    },
                )
            }
        }
    };
    status.phase = Some(phase);
    status.message = Some(message.clone());
    // Starts and successes are told here; a failure or an unusable source holds the group, and
    // the topology's Warning Event (reason RestoreFailed / RestoreSourceNotFound) tells it.
    let event = match phase {
        RestorePhase::Running if create_job => Some(RestoreEvent {
            reason: Reason::RestoreStarted,
            message: message.clone(),
        }),
        RestorePhase::Succeeded if old_phase != Some(RestorePhase::Succeeded) => {
            Some(RestoreEvent {
                reason: Reason::Restored,
                message: message.clone(),
            })
        }
        _ => None,
    };
    Plan {
        status: Some(status),
        gate,
        create_job,
        event,
    }
}

/// Whether the members hold the cluster's data as observed: a member is in a group, or the first
/// member holds transactions (a new member holds none: its accounts are created without binary
/// logging; a restore sets the backup's GTID set last, so a half-loaded member holds none either).
pub fn data_exists(observed: &Observed) -> bool {
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
pub fn first_member_ready(observed: &Observed, old: Option<&RestoreStatus>) -> bool {
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
        Some(RestorePhase::Succeeded) => Desired::new(RESTORED, true, "Restored", message),
        Some(RestorePhase::Running) => Desired::new(RESTORED, false, "RestoreRunning", message),
        Some(RestorePhase::Failed) => Desired::new(RESTORED, false, "RestoreFailed", message),
        Some(RestorePhase::Pending) | None => {
            Desired::new(RESTORED, false, "RestorePending", message)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BackupStatus;
    use crate::api::storage::S3CredentialsSecret;

    fn now() -> Time {
        Time("2026-11-23T10:00:00Z".parse().unwrap())
    }

    fn storage(bucket: &str) -> S3Storage {
        S3Storage {
            bucket: bucket.into(),
            endpoint: Some("http://minio:9000".into()),
            force_path_style: true,
            credentials_secret: Some(S3CredentialsSecret {
                name: "s3".into(),
                access_key_id_key: "id".into(),
                secret_access_key_key: "key".into(),
            }),
            ..Default::default()
        }
    }

    fn cluster(yaml_spec: &str) -> MySQLCluster {
        serde_yaml::from_str(&format!(
            "apiVersion: innodb-operator.io/v1alpha1\nkind: MySQLCluster\n\
             metadata: {{name: orders, namespace: shop}}\nspec: {yaml_spec}\n"
        ))
        .unwrap()
    }

    fn backup(
        phase: Option<BackupPhase>,
        location: Option<&str>,
        own: Option<S3Storage>,
    ) -> Backup {
        let mut b: Backup = serde_yaml::from_str(
            "apiVersion: innodb-operator.io/v1alpha1\nkind: Backup\n\
             metadata: {name: nightly, namespace: shop}\nspec: {clusterName: old}\n",
        )
        .unwrap();
        b.spec.storage = own;
        b.status = Some(BackupStatus {
            phase,
            location: location.map(Into::into),
            message: Some("S3 refused the upload".into()),
            ..Default::default()
        });
        b
    }

    fn with_backup_storage(mut c: MySQLCluster, s: S3Storage) -> MySQLCluster {
        c.spec.backup = Some(crate::api::cluster::BackupConfig {
            storage: s,
            schedules: vec![],
        });
        c
    }

    const LOCATION: &str = "s3://b/prod/shop/old/nightly/";

    #[test]
    fn a_succeeded_backup_is_found_with_its_storage() {
        let target = cluster("{}");
        let b = backup(
            Some(BackupPhase::Succeeded),
            Some(LOCATION),
            Some(storage("b")),
        );
        let l = locate("nightly", Some(&b), None, &target).unwrap();
        assert_eq!(l.prefix, "prod/shop/old/nightly/");
        assert_eq!(l.storage, storage("b"));
        assert_eq!(l.source, format!("Backup nightly ({LOCATION})"));
        // Without its own storage: the source cluster's, then this cluster's (same bucket only).
        let b = backup(Some(BackupPhase::Succeeded), Some(LOCATION), None);
        let old = with_backup_storage(cluster("{}"), storage("b"));
        assert_eq!(
            locate("nightly", Some(&b), Some(&old), &target)
                .unwrap()
                .storage,
            storage("b")
        );
        let own = with_backup_storage(cluster("{}"), storage("b"));
        assert_eq!(
            locate("nightly", Some(&b), None, &own).unwrap().storage,
            storage("b")
        );
        let other = with_backup_storage(cluster("{}"), storage("elsewhere"));
        let e = locate("nightly", Some(&b), None, &other).unwrap_err();
        assert!(!e.waiting);
        assert!(e.message.contains("restoreFrom.s3"), "{}", e.message);
    }

    #[test]
    fn a_missing_failed_or_unfinished_backup_says_what_to_do() {
        let target = cluster("{}");
        let e = locate("nightly", None, None, &target).unwrap_err();
        assert!(!e.waiting);
        assert!(
            e.message.contains("Backup nightly does not exist"),
            "{}",
            e.message
        );
        let failed = backup(Some(BackupPhase::Failed), None, Some(storage("b")));
        let e = locate("nightly", Some(&failed), None, &target).unwrap_err();
        assert!(!e.waiting);
        assert!(
            e.message.contains("S3 refused the upload") && e.message.contains("another backup")
        );
        for phase in [None, Some(BackupPhase::Pending), Some(BackupPhase::Running)] {
            let running = backup(phase, None, Some(storage("b")));
            let e = locate("nightly", Some(&running), None, &target).unwrap_err();
            assert!(e.waiting, "{phase:?}");
        }
        let odd = backup(
            Some(BackupPhase::Succeeded),
            Some("b/x"),
            Some(storage("b")),
        );
        assert!(locate("nightly", Some(&odd), None, &target).is_err());
    }

    #[test]
    fn an_s3_source_is_its_path_in_the_bucket() {
        let l = from_s3(&S3Location {
            storage: storage("b"),
            path: "/prod/shop/orders/nightly".into(),
        });
        assert_eq!(l.prefix, "prod/shop/orders/nightly/");
        assert_eq!(l.source, "s3://b/prod/shop/orders/nightly/");
    }

    struct Case {
        requested: Option<RestoreSource>,
        location: Option<Result<RestoreLocation, Unresolved>>,
        old: Option<RestoreStatus>,
        job: Option<JobView>,
        ready: bool,
        started: bool,
        created: Time,
    }

    impl Case {
        fn new() -> Case {
            let s3 = S3Location {
                storage: storage("b"),
                path: "prod/x/".into(),
            };
            Case {
                location: Some(Ok(from_s3(&s3))),
                requested: Some(RestoreSource {
                    backup: None,
                    s3: Some(s3),
                }),
                old: None,
                job: None,
                ready: true,
                started: false,
                created: Time("2026-11-23T09:00:00Z".parse().unwrap()),
            }
        }

        fn plan(&self) -> Plan {
            plan(&RestoreInput {
                requested: self.requested.as_ref(),
                location: self.location.as_ref(),
                old: self.old.as_ref(),
                job_name: "restore-orders",
                job: self.job.as_ref(),
                job_created: Some(&self.created),
                first_member: "orders-0",
                first_member_ready: self.ready,
                group_started: self.started,
                cluster: "orders",
                now: &now(),
            })
        }
    }

    fn job(succeeded: bool, failed: bool, result: Option<&str>) -> JobView {
        JobView {
            succeeded,
            failed,
            condition_message: None,
            result: result.map(Into::into),
        }
    }

    fn held(p: &Plan) -> bool {
        p.gate != RestoreGate::Open
    }

    #[test]
    fn no_restore_asked_for_leaves_everything_open() {
        let p = Case {
            requested: None,
            location: None,
            ..Case::new()
        }
        .plan();
        assert_eq!(p.status, None);
        assert_eq!(p.gate, RestoreGate::Open);
        assert!(!p.create_job);
        assert_eq!(condition(None), None);
    }

    #[test]
    fn the_job_is_created_once_the_first_member_is_up_and_bootstrap_is_held() {
        let waiting = Case {
            ready: false,
            ..Case::new()
        }
        .plan();
        assert!(!waiting.create_job);
        assert!(held(&waiting));
        let s = waiting.status.clone().unwrap();
        assert_eq!(s.phase, Some(RestorePhase::Pending));
        assert!(s.message.unwrap().contains("waiting for orders-0"));
        assert_eq!(waiting.event, None);

        let start = Case::new().plan();
        assert!(start.create_job);
        assert!(held(&start));
        let s = start.status.clone().unwrap();
        assert_eq!(s.phase, Some(RestorePhase::Running));
        assert_eq!(s.job_name.as_deref(), Some("restore-orders"));
        assert_eq!(s.source.as_deref(), Some("s3://b/prod/x/"));
        assert_eq!(s.start_time, Some(now()));
        let e = start.event.unwrap();
        assert_eq!(e.reason, Reason::RestoreStarted);
        let c = condition(start.status.as_ref()).unwrap();
        assert_eq!((c.status, c.reason.as_str()), (false, "RestoreRunning"));
    }

    #[test]
    fn an_existing_job_is_followed_never_doubled() {
        // After an operator restart, even with the status lost: the Job says where it is.
        for old in [None, Case::new().plan().status] {
            let p = Case {
                old: old.clone(),
                job: Some(job(false, false, None)),
                ..Case::new()
            }
            .plan();
            assert!(!p.create_job);
            assert!(held(&p));
            let s = p.status.clone().unwrap();
            assert_eq!(s.phase, Some(RestorePhase::Running));
            let expected_start = if old.is_some() {
                now()
            } else {
                Case::new().created
            };
            assert_eq!(s.start_time, Some(expected_start));
            assert_eq!(p.event, None, "the start was told when the Job was created");
        }
    }

    #[test]
    fn success_opens_the_gate_and_records_the_gtid_set() {
        let running = Case::new().plan().status;
        let ok = r#"{"status":"Succeeded","tables":3,"rows":10,"gtid_set":"u:1-42"}"#;
        let p = Case {
            old: running,
            job: Some(job(true, false, Some(ok))),
            ..Case::new()
        }
        .plan();
        assert_eq!(p.gate, RestoreGate::Open);
        let s = p.status.clone().unwrap();
        assert_eq!(s.phase, Some(RestorePhase::Succeeded));
        assert_eq!(s.gtid_set.as_deref(), Some("u:1-42"));
        assert_eq!(s.completion_time, Some(now()));
        assert_eq!(p.event.as_ref().unwrap().reason, Reason::Restored);
        let c = condition(p.status.as_ref()).unwrap();
        assert!(c.status);
        // Later reconciles: settled, without the Job (it may be deleted) and without news.
        let later = Case {
            old: p.status.clone(),
            location: None,
            job: None,
            ready: false,
            ..Case::new()
        }
        .plan();
        assert_eq!(later.status, p.status);
        assert_eq!(later.gate, RestoreGate::Open);
        assert!(!later.create_job);
        assert_eq!(later.event, None);
    }

    #[test]
    fn a_job_without_a_complete_result_is_a_failure_that_blocks_the_group() {
        for (succeeded, failed, result) in [
            (true, false, None),
            (true, false, Some("garbage")),
            (
                false,
                true,
                Some(r#"{"status":"Failed","error":"the target already has database(s)"}"#),
            ),
            (false, true, None),
        ] {
            let p = Case {
                old: Case::new().plan().status,
                job: Some(job(succeeded, failed, result)),
                ..Case::new()
            }
            .plan();
            assert!(!p.create_job);
            let RestoreGate::Blocked { reason, message } = &p.gate else {
                panic!("{result:?}: {:?}", p.gate);
            };
            assert_eq!(*reason, "RestoreFailed");
            assert!(
                message.contains("delete the Job restore-orders"),
                "{message}"
            );
            assert!(
                message.contains("delete pvc -l app.kubernetes.io/instance=orders"),
                "{message}"
            );
            let s = p.status.unwrap();
            assert_eq!(s.phase, Some(RestorePhase::Failed));
            assert_eq!(s.completion_time, Some(now()));
            assert_eq!(
                p.event, None,
                "the topology's Warning Event tells the failure"
            );
        }
    }

    #[test]
    fn deleting_a_failed_job_retries() {
        let failed = Case {
            old: Case::new().plan().status,
            job: Some(job(false, true, None)),
            ..Case::new()
        }
        .plan();
        let retry = Case {
            old: failed.status,
            ..Case::new()
        }
        .plan();
        assert!(retry.create_job);
        assert_eq!(retry.status.unwrap().phase, Some(RestorePhase::Running));
    }

    #[test]
    fn an_unusable_source_holds_the_group_and_says_why() {
        let missing = Unresolved {
            waiting: false,
            message: "Backup nightly does not exist in this namespace".into(),
        };
        let p = Case {
            location: Some(Err(missing)),
            ..Case::new()
        }
        .plan();
        assert!(!p.create_job);
        assert!(matches!(
            &p.gate,
            RestoreGate::Blocked {
                reason: "RestoreSourceNotFound",
                ..
            }
        ));
        assert_eq!(p.event, None, "the topology's Warning Event tells it");
        let c = condition(p.status.as_ref()).unwrap();
        assert_eq!((c.status, c.reason.as_str()), (false, "RestorePending"));
        assert!(c.message.contains("does not exist"));
        let running = Case {
            location: Some(Err(Unresolved {
                waiting: true,
                message: "waiting for Backup nightly to succeed".into(),
            })),
            ..Case::new()
        }
        .plan();
        assert!(matches!(&running.gate, RestoreGate::Waiting { .. }));
        assert_eq!(running.event, None);
    }

    /// Three members as observed: member 0 holds `gtids`; member `in_group` (if any) is ONLINE.
    fn members(gtids: &str, in_group: Option<u32>) -> Observed {
        use crate::topology::gtid::GtidSet;
        use crate::topology::observe::{
            ClusterInput, GroupMemberRow, Member, MemberState, MemberStatus, Reach,
        };
        use crate::topology::sql::Capabilities;
        use crate::version::ServerVersion;
        let input = ClusterInput {
            name: "orders".into(),
            namespace: "shop".into(),
            clone_policy: Default::default(),
            now: jiff::Timestamp::UNIX_EPOCH,
            ..ClusterInput::for_test(3)
        };
        let state = |o: u32| {
            let uuid = format!("00000000-0000-0000-0000-00000000000{o}");
            MemberState {
                server_uuid: uuid.clone(),
                capabilities: Capabilities {
                    version: ServerVersion::new(8, 4, 2),
                    group_replication: true,
                    clone: true,
                    communication_stack: true,
                },
                gtid_executed: if o == 0 {
                    GtidSet::parse(gtids).unwrap()
                } else {
                    GtidSet::new()
                },
                gtid_received: GtidSet::new(),
                super_read_only: true,
                group: vec![GroupMemberRow {
                    member_id: uuid,
                    host: input.host(o),
                    port: 3306,
                    state: if in_group == Some(o) {
                        MemberStatus::Online
                    } else {
                        MemberStatus::Offline
                    },
                    role: None,
                    version: "8.4.2".into(),
                }],
                applier_queue: 0,
                cloning: false,
                clone_failed: None,
                expel_timeout: Some(5),
            }
        };
        Observed {
            members: (0..3)
                .map(|o| Member {
                    ordinal: o,
                    reach: Reach::Reachable(Box::new(state(o))),
                })
                .collect(),
            input,
        }
    }

    #[test]
    fn the_members_say_whether_the_data_exists() {
        let gtids = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb:1-42";
        // New members (or member 0 half-loaded: its GTID set comes last): nothing yet.
        assert!(!data_exists(&members("", None)));
        // Member 0 restored (gtid_purged), or a group ran: the data exists.
        assert!(data_exists(&members(gtids, None)));
        assert!(data_exists(&members("", Some(2))));
        // Unreachable members say nothing; an unreachable member 0 is restored into only when
        // the status has the restore's record (so no earlier restore or group is forgotten).
        let pending = Case {
            ready: false,
            ..Case::new()
        }
        .plan()
        .status;
        let mut m = members("", None);
        assert!(first_member_ready(&m, None));
        m.members[0].reach = crate::topology::observe::Reach::Unreachable {
            silence: crate::topology::observe::Silence::NoAnswer,
            reason: "timeout".into(),
        };
        assert!(!data_exists(&m));
        assert!(!first_member_ready(&m, None));
        assert!(first_member_ready(&m, pending.as_ref()));
        let mut m = members("", None);
        m.input.pods[0].deleting = true;
        assert!(!first_member_ready(&m, pending.as_ref()));
        m.input.pods.remove(0);
        assert!(!first_member_ready(&m, pending.as_ref()));
    }

    #[test]
    fn a_group_that_already_ran_is_never_restored_over() {
        let p = Case {
            started: true,
            ..Case::new()
        }
        .plan();
        assert!(!p.create_job);
        assert_eq!(p.gate, RestoreGate::Open);
        let s = p.status.unwrap();
        assert!(
            s.message.unwrap().contains("nothing is restored"),
            "says why nothing is restored"
        );
        // A Job created before the data was seen refuses the member; that does not hold it.
        let refused = r#"{"status":"Failed","error":"the target already has database(s)"}"#;
        let p = Case {
            started: true,
            old: Case::new().plan().status,
            job: Some(job(false, true, Some(refused))),
            ..Case::new()
        }
        .plan();
        assert_eq!(p.gate, RestoreGate::Open);
        assert_eq!(p.status.unwrap().phase, Some(RestorePhase::Succeeded));
        // A running or succeeded Job is followed as before.
        let p = Case {
            started: true,
            old: Case::new().plan().status,
            job: Some(job(false, false, None)),
            ..Case::new()
        }
        .plan();
        assert!(held(&p));
    }
}
