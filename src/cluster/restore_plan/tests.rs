//! The restore plan's rules, one test each.

use super::*;
use crate::api::BackupStatus;
use crate::api::cluster::{MemberStatus, ReportedState};

fn now() -> Time {
    Time("2026-11-23T10:00:00Z".parse().unwrap())
}

fn storage(bucket: &str) -> S3Storage {
    crate::cluster::testing::minio_storage(bucket)
}

fn cluster(yaml_spec: &str) -> MySQLCluster {
    serde_yaml::from_str(&format!(
        "apiVersion: innodb-operator.io/v1alpha1\nkind: MySQLCluster\n\
         metadata: {{name: orders, namespace: shop}}\nspec: {yaml_spec}\n"
    ))
    .unwrap()
}

fn backup(phase: Option<BackupPhase>, location: Option<&str>, own: Option<S3Storage>) -> Backup {
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
fn a_backup_that_recorded_its_storage_is_restored_from_it_whatever_the_specs_say_now() {
    let mut b = backup(Some(BackupPhase::Succeeded), Some(LOCATION), None);
    let status = b.status.as_mut().unwrap();
    status.storage = Some(storage("recorded"));
    status.prefix = Some("prod/shop/old/nightly/".into());
    // Neither the Backup's spec nor any cluster names that bucket any more.
    let elsewhere = with_backup_storage(cluster("{}"), storage("elsewhere"));
    let l = locate("nightly", Some(&b), Some(&elsewhere), &elsewhere).unwrap();
    assert_eq!(l.storage, storage("recorded"));
    assert_eq!(l.prefix, "prod/shop/old/nightly/");
    assert_eq!(
        l.source,
        "Backup nightly (s3://recorded/prod/shop/old/nightly/)"
    );
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
    assert!(e.message.contains("S3 refused the upload") && e.message.contains("another backup"));
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
        let row = GroupMemberRow {
            member_id: uuid.clone(),
            host: input.host(o),
            port: 3306,
            state: if in_group == Some(o) {
                MemberStatus::Online
            } else {
                MemberStatus::Offline
            },
            role: None,
            version: "8.4.2".into(),
        };
        MemberState {
            gtid_executed: if o == 0 {
                GtidSet::parse(gtids).unwrap()
            } else {
                GtidSet::new()
            },
            ..MemberState::for_test(uuid, ServerVersion::new(8, 4, 2), vec![row])
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
        reason: "timeout".into(),
        silence: crate::topology::observe::Silence::NoAnswer,
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

fn member(state: ReportedState) -> MemberStatus {
    MemberStatus {
        name: "orders-1".into(),
        ordinal: Some(1),
        role: None,
        state,
    }
}

#[test]
fn only_a_status_with_a_primary_or_a_member_in_a_group_says_the_group_ran() {
    assert!(!group_started(None));
    let mut s = MySQLClusterStatus {
        members: vec![
            member(ReportedState::Offline),
            member(ReportedState::PodReady),
            member(ReportedState::Unreachable),
        ],
        ..Default::default()
    };
    assert!(!group_started(Some(&s)));
    for state in [ReportedState::Online, ReportedState::Recovering] {
        s.members = vec![member(ReportedState::Offline), member(state)];
        assert!(group_started(Some(&s)), "{state:?}");
    }
    s.members.clear();
    s.primary = Some("orders-0".into());
    assert!(group_started(Some(&s)));
}
