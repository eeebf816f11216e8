//! A group's first start and its reboot: bootstrap, the restore gate, the seed.

use super::*;

#[test]
fn new_cluster_bootstraps_from_the_first_member_when_all_answer() {
    let d = Fx::new(3).decide();
    assert_eq!(d.operation, Operation::Bootstrap { seed: 0 });
    assert!(condition(&d, "Progressing").status);
    assert!(!condition(&d, "Ready").status);
}

#[test]
fn no_member_starts_the_group_while_the_restore_into_the_first_has_not_succeeded() {
    let pending = || RestoreGate::Waiting {
        reason: "RestoreInProgress",
        message: "the restore Job runs".into(),
    };
    // Member 0 is loading (empty so far); another member holding data must not seed.
    let d = Fx::new(3)
        .gtids(1, &g("1-5"))
        .with(|i| i.restore = pending())
        .decide();
    assert_eq!(d.operation, Operation::None);
    let progressing = condition(&d, "Progressing");
    assert!(progressing.status);
    assert_eq!(progressing.reason, "RestoreInProgress");
    assert!(
        progressing.message.contains("restored into db-0")
            && progressing.message.contains("Job runs"),
        "{}",
        progressing.message
    );
    assert!(!condition(&d, "Ready").status);
    assert!(d.events.is_empty(), "waiting is not an Event every tick");
    // Every member empty and answering (what bootstraps a new cluster) is held as well.
    let d = Fx::new(3).with(|i| i.restore = pending()).decide();
    assert_eq!(d.operation, Operation::None);
    // Member 0 answering mid-load with part of the data: still held.
    let d = Fx::new(3)
        .gtids(0, &g("1-3"))
        .with(|i| i.restore = pending())
        .decide();
    assert_eq!(d.operation, Operation::None);
}

#[test]
fn a_failed_restore_blocks_the_first_start_and_says_what_to_do() {
    let d = Fx::new(3)
        .with(|i| {
            i.restore = RestoreGate::Blocked {
                reason: "RestoreFailed",
                message: "delete the Job restore-db to retry".into(),
            }
        })
        .decide();
    assert_eq!(d.operation, Operation::None);
    let degraded = condition(&d, "Degraded");
    assert_eq!(degraded.reason, "RestoreFailed");
    assert!(degraded.message.contains("delete the Job"));
    assert!(
        !condition(&d, "Progressing").status,
        "it waits for a person"
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.reason == "RestoreFailed")
    );
}

#[test]
fn after_the_restore_the_group_starts_from_the_restored_first_member() {
    // The restored member holds the backup's GTID set; the others are new and empty.
    let d = Fx::new(3)
        .gtids(0, &g("1-1000"))
        .with(|i| i.restore = RestoreGate::Open)
        .decide();
    assert_eq!(d.operation, Operation::Bootstrap { seed: 0 });
    // Then the empty members are provisioned from it by clone.
    let d = Fx::new(3)
        .gtids(0, &g("1-1000"))
        .group(&[(0, S::Online)], 0)
        .decide();
    assert_eq!(d.operation, clone_from(1, 0));
}

#[test]
fn the_gate_does_not_touch_a_running_group() {
    let d = Fx::new(3)
        .gtids(0, &g("1-10"))
        .gtids(1, &g("1-10"))
        .gtids(2, &g("1-4"))
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .with(|i| {
            i.restore = RestoreGate::Waiting {
                reason: "RestorePending",
                message: "status was lost".into(),
            }
        })
        .decide();
    assert_eq!(d.operation, join(2));
}

#[test]
fn never_bootstraps_while_a_member_does_not_answer() {
    let d = Fx::new(3).gtids(0, &g("1-5")).unreachable(2).decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(condition(&d, "Degraded").reason, "WaitingForAllMembers");
    let mut missing = Fx::new(3);
    missing.members[1].reach = Reach::NoPod;
    assert_eq!(missing.decide().operation, Operation::None);
}

#[test]
fn reboots_from_the_member_holding_every_transaction() {
    let d = Fx::new(3)
        .gtids(0, &g("1-7"))
        .gtids(1, &g("1-9"))
        .gtids(2, &g("1-8"))
        .decide();
    assert_eq!(d.operation, Operation::Bootstrap { seed: 1 });
}

#[test]
fn an_equal_seed_whose_pod_is_not_terminating_is_preferred() {
    let d = Fx::new(3)
        .gtids(0, &g("1-9"))
        .gtids(1, &g("1-9"))
        .gtids(2, &g("1-8"))
        .with(|i| i.pods[0].deleting = true)
        .decide();
    assert_eq!(d.operation, Operation::Bootstrap { seed: 1 });
}

#[test]
fn received_but_unapplied_transactions_count_for_the_seed() {
    let mut fx = Fx::new(2).gtids(0, &g("1-7")).gtids(1, &g("1-5"));
    fx.state(1).gtid_received = GtidSet::parse(&g("6-9")).unwrap();
    assert_eq!(fx.decide().operation, Operation::Bootstrap { seed: 1 });
}

#[test]
fn diverged_sets_stop_with_a_condition_and_an_event() {
    let d = Fx::new(3)
        .gtids(0, &g("1-7"))
        .gtids(1, &format!("{},{}:1", g("1-7"), uuid(1)))
        .gtids(2, &g("1-8"))
        .decide();
    assert_eq!(d.operation, Operation::None);
    let degraded = condition(&d, "Degraded");
    assert_eq!(degraded.reason, "DivergedGtidSets");
    assert!(
        degraded.message.contains("db-2 lacks"),
        "{}",
        degraded.message
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.reason == "DivergedGtidSets")
    );
    assert!(!condition(&d, "Progressing").status);
}
