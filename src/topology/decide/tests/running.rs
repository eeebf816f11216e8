//! A running group: healing, switchovers, scaling, updates, quorum loss and what is reported.

use super::*;

#[test]
fn every_member_online_is_not_ready_until_the_pods_pass_their_readiness_probes() {
    // Found on the real node: the Services route only to Ready pods, so a client that waited
    // for Ready was refused by `C-ro` for up to a probe period.
    let d = healthy3()
        .with(|i| {
            i.pods[0].role_label = Some(Role::Primary);
            i.pods[1].role_label = Some(Role::Secondary);
            i.pods[2].role_label = Some(Role::Secondary);
            i.pods[2].ready = false;
        })
        .decide();
    assert_eq!(d.operation, Operation::None);
    let ready = condition(&d, "Ready");
    assert!(!ready.status);
    assert_eq!(ready.reason, "PodsNotReady");
    assert!(condition(&d, "Available").status);
    assert_eq!(d.requeue, Duration::from_secs(1));
}

#[test]
fn healthy_cluster_is_ready_once_labels_are_applied() {
    let d = healthy3().decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.labels[&0], Some(Role::Primary));
    assert_eq!(d.labels[&1], Some(Role::Secondary));
    assert!(
        !condition(&d, "Ready").status,
        "labels are not on the pods yet"
    );
    let d = healthy3()
        .with(|i| {
            i.pods[0].role_label = Some(Role::Primary);
            i.pods[1].role_label = Some(Role::Secondary);
            i.pods[2].role_label = Some(Role::Secondary);
        })
        .decide();
    assert!(condition(&d, "Ready").status);
    assert!(condition(&d, "Available").status);
    assert!(!condition(&d, "Degraded").status);
    assert_eq!(d.primary.as_deref(), Some("db-0"));
    assert_eq!(d.requeue, Duration::from_secs(10));
    assert_eq!(d.statefulset_replicas, 3);
}

#[test]
fn an_offline_member_with_data_joins() {
    let d = Fx::new(3)
        .gtids(0, &g("1-10"))
        .gtids(1, &g("1-10"))
        .gtids(2, &g("1-4"))
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .decide();
    assert_eq!(d.operation, join(2));
    assert_eq!(
        d.record.as_ref().map(|r| (r.ordinal, r.kind)),
        Some((2, ActionKind::Join))
    );
    assert_eq!(d.labels[&2], None);
}

#[test]
fn a_member_in_error_is_restarted_into_the_group() {
    let d = healthy3()
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .own(2, S::Error)
        .decide();
    assert_eq!(
        d.operation,
        Operation::Join {
            member: 2,
            restart: true
        }
    );
}

#[test]
fn an_empty_member_is_provisioned_by_clone_unless_the_policy_forbids() {
    let fx = || {
        Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online)], 0)
    };
    assert_eq!(fx().decide().operation, clone_from(2, 1));
    let d = fx().with(|i| i.clone_policy = ClonePolicy::Never).decide();
    assert_eq!(d.operation, join(2));
}

#[test]
fn clones_come_from_a_donor_of_the_recipients_series() {
    // An 8.4 -> 9.7 upgrade half way: 0 (primary) still 8.4, 1 upgraded, 2 empty on 9.7.
    let fx = || {
        Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .version(0, "8.4.7")
            .version(1, "9.7.4")
    };
    let d = fx().version(2, "9.7.4").decide();
    assert_eq!(d.operation, clone_from(2, 1));
    // An 8.4 recipient: the only secondary is 9.7, so the 8.4 primary donates.
    let d = fx().version(2, "8.4.7").decide();
    assert_eq!(d.operation, clone_from(2, 0));
    // A 9.7.3 recipient cannot clone from 9.7.4 nor from 8.4: wait, and say why.
    let d = fx().version(2, "9.7.3").decide();
    assert_eq!(d.operation, Operation::None);
    let ready = condition(&d, "Ready");
    assert!(
        ready.message.contains("can donate to MySQL 9.7.3"),
        "{}",
        ready.message
    );
}

#[test]
fn the_primary_is_always_a_member_of_the_lowest_version() {
    // 1 and 2 upgraded to 9.7, the 8.4 primary's pod is next: MySQL refuses to make a 9.7
    // member the primary while an 8.4 one is ONLINE, so no switchover is tried; the pod is
    // replaced as it is and the group elects a 9.7 member when it leaves.
    let upgraded = || {
        healthy3()
            .version(0, "8.4.7")
            .version(1, "9.7.4")
            .version(2, "9.7.4")
            .with(|i| i.pods[0].update_pending = true)
    };
    let d = upgraded().decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.update_next, Some(0));
    // While a secondary still waits for its update, the primary's turn has not come.
    let d = upgraded()
        .with(|i| i.pods[2].update_pending = true)
        .decide();
    assert_eq!(d.update_next, Some(2));
    // A requested switchover to a newer member waits and says why.
    let d = healthy3()
        .version(0, "8.4.7")
        .version(1, "9.7.4")
        .with(|i| i.switchover_to = Some(1))
        .decide();
    assert_eq!(d.operation, Operation::None);
    let ready = condition(&d, "Ready");
    assert!(
        ready.message.contains("lowest version"),
        "{}",
        ready.message
    );
    // Among members of the same version the usual hand-over runs.
    let d = healthy3()
        .version(0, "9.7.3")
        .version(1, "9.7.4")
        .version(2, "9.7.3")
        .with(|i| i.pods[0].update_pending = true)
        .decide();
    assert!(
        matches!(d.operation, Operation::SetPrimary { target: 2, .. }),
        "{:?}",
        d.operation
    );
}

#[test]
fn a_member_with_errant_transactions_never_joins() {
    let errant = || {
        Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &format!("{},{}:1-2", g("1-3"), uuid(2)))
            .group(&[(0, S::Online), (1, S::Online)], 0)
    };
    let d = errant().decide();
    assert_eq!(d.operation, Operation::None);
    let degraded = condition(&d, "Degraded");
    assert_eq!(degraded.reason, "MemberNeedsAttention");
    assert!(
        degraded.message.contains("db-2 has 2 transactions"),
        "{}",
        degraded.message
    );
    let d = errant()
        .with(|i| i.clone_policy = ClonePolicy::ReplaceErrant)
        .decide();
    assert_eq!(d.operation, clone_from(2, 1));
}

#[test]
fn a_restarted_member_still_in_the_view_waits_for_its_expulsion() {
    let d = healthy3()
        .group(&[(0, S::Online), (1, S::Online), (2, S::Unreachable)], 0)
        .own(2, S::Offline)
        .decide();
    assert_eq!(d.operation, Operation::None);
    assert!(condition(&d, "Progressing").message.contains("UNREACHABLE"));
}

#[test]
fn no_errant_verdict_while_an_online_member_cannot_be_read() {
    let fx = Fx::new(3)
        .gtids(0, &g("1-12"))
        .gtids(1, &g("1-10"))
        .gtids(2, &g("1-12"))
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .unreachable(0);
    let d = fx
        .with(|i| i.clone_policy = ClonePolicy::ReplaceErrant)
        .decide();
    assert_eq!(d.operation, Operation::None, "db-2's 11-12 may be on db-0");
    assert!(
        condition(&d, "Progressing")
            .message
            .contains("waiting to read every ONLINE member")
    );
}

#[test]
fn anti_flapping_holds_a_second_join_within_the_window() {
    let now = jiff::Timestamp::from_second(1_000_000).unwrap();
    let fx = |ago: i64| {
        healthy3()
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .own(2, S::Offline)
            .with(move |i| {
                i.history.push(ActionRecord {
                    ordinal: 2,
                    kind: ActionKind::Join,
                    at: now - jiff::SignedDuration::from_secs(ago),
                })
            })
    };
    let d = fx(10).decide();
    assert_eq!(d.operation, Operation::None);
    assert!(
        condition(&d, "Progressing")
            .message
            .contains("anti-flapping")
    );
    assert_eq!(fx(31).decide().operation, join(2));
}

#[test]
fn quorum_loss_with_a_member_unreachable_waits_for_the_user() {
    let d = Fx::new(3)
        .gtids(0, &g("1-10"))
        .unreachable(1)
        .unreachable(2)
        .group(
            &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
            0,
        )
        .decide();
    assert_eq!(d.operation, Operation::None);
    let lost = condition(&d, "QuorumLost");
    assert!(lost.status);
    assert!(
        lost.message.contains("force-quorum-from=0"),
        "{}",
        lost.message
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.reason == "QuorumLost")
    );
    assert!(!condition(&d, "Available").status);
    assert_eq!(
        d.labels[&0], None,
        "a minority primary leaves the rw Service"
    );
}

#[test]
fn quorum_is_forced_only_on_the_users_order() {
    let fx = || {
        Fx::new(3)
            .gtids(0, &g("1-10"))
            .unreachable(1)
            .unreachable(2)
            .group(
                &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
                0,
            )
    };
    let d = fx().with(|i| i.force_quorum_from = Some(vec![0])).decide();
    assert_eq!(
        d.operation,
        Operation::ForceQuorum {
            via: 0,
            members: vec![0]
        }
    );
    assert!(d.force_quorum_consumed);
    let d = fx()
        .with(|i| i.force_quorum_from = Some(vec![0, 1]))
        .decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(condition(&d, "Degraded").reason, "ForceQuorumInvalid");
}

#[test]
fn a_member_left_behind_in_an_old_view_without_quorum_is_stopped_so_it_can_rejoin() {
    // After a forced quorum member 2 still shows itself ONLINE in the old view, where the
    // others are UNREACHABLE; the group with quorum no longer lists it.
    let left_behind = |group_view: &[(u32, S)]| {
        Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-10"))
            .group(
                &[(2, S::Online), (0, S::Unreachable), (1, S::Unreachable)],
                1,
            )
            .group(group_view, 1)
            .decide()
    };
    let d = left_behind(&[(0, S::Online), (1, S::Online)]);
    assert_eq!(d.operation, Operation::Leave { member: 2 });
    // While the group still lists it (UNREACHABLE, not yet expelled), the operator waits.
    let d = left_behind(&[(0, S::Online), (1, S::Online), (2, S::Unreachable)]);
    assert_eq!(d.operation, Operation::None);
}

#[test]
fn a_stranded_minority_is_stopped_when_every_member_answers_and_the_rest_are_out() {
    let d = Fx::new(3)
        .gtids(0, &g("1-10"))
        .gtids(1, &g("1-10"))
        .gtids(2, &g("1-10"))
        .group(
            &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
            0,
        )
        .own(1, S::Offline)
        .own(2, S::Offline)
        .decide();
    assert_eq!(d.operation, Operation::Leave { member: 0 });
    assert!(condition(&d, "QuorumLost").status);
}

#[test]
fn requested_switchover_promotes_the_target_and_reports_completion() {
    // Asked of the target itself, never of the primary that is going away.
    let d = healthy3().with(|i| i.switchover_to = Some(2)).decide();
    assert_eq!(
        d.operation,
        Operation::SetPrimary {
            via: 2,
            target: 2,
            target_uuid: uuid(2)
        }
    );
    assert!(!d.switchover_complete);
    let done = Fx::new(3)
        .gtids(0, &g("1-10"))
        .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 2)
        .with(|i| i.switchover_to = Some(2))
        .decide();
    assert!(done.switchover_complete);
    assert_eq!(done.operation, Operation::None);
}

#[test]
fn the_primary_hands_over_before_its_pod_is_deleted_or_updated() {
    for update in [false, true] {
        let d = healthy3()
            .with(|i| {
                i.pods[0].deleting = !update;
                i.pods[0].update_pending = update;
            })
            .decide();
        assert!(
            matches!(d.operation, Operation::SetPrimary { target: 1, .. }),
            "{:?}",
            d.operation
        );
    }
}

#[test]
fn a_rolling_update_replaces_secondaries_first_and_the_primary_after_handing_over() {
    let pending = |i: &mut ClusterInput| {
        for p in &mut i.pods {
            p.update_pending = true;
        }
    };
    let d = healthy3().with(pending).decide();
    assert_eq!(
        d.operation,
        Operation::None,
        "no hand-over to a member still to update"
    );
    assert_eq!(d.update_next, Some(1), "secondaries first");
    // Progressing until the last pod is replaced (Ready stays as the members say).
    let progressing = condition(&d, "Progressing");
    assert!(progressing.status);
    assert_eq!(progressing.reason, "RollingUpdate");
    assert_eq!(
        progressing.message,
        "db-0, db-1, db-2 to be replaced with the current pod template, one at a time, \
         secondaries first and the primary after a switchover"
    );
    assert!(!condition(&healthy3().decide(), "Progressing").status);
    let d = healthy3()
        .with(|i| i.pods[0].update_pending = true)
        .decide();
    assert!(
        matches!(d.operation, Operation::SetPrimary { target: 1, .. }),
        "then hand over"
    );
    assert_eq!(
        d.update_next, None,
        "nothing is deleted while an operation runs"
    );
    let d = healthy3()
        .with(|i| {
            i.pods[1].update_pending = true;
            i.pods[2].update_pending = true;
        })
        .decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.update_next, Some(1));
    let d = healthy3()
        .with(|i| {
            i.pods[2].update_pending = true;
            i.pods[1].deleting = true;
        })
        .decide();
    assert_eq!(d.update_next, None, "one pod at a time");
    let d = Fx::new(3)
        .gtids(0, &g("1-10"))
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .with(|i| i.pods[1].update_pending = true)
        .decide();
    assert_eq!(d.update_next, None, "not while a member is missing");
    let d = Fx::new(1)
        .gtids(0, &g("1-10"))
        .group(&[(0, S::Online)], 0)
        .with(|i| {
            i.pods[0].update_pending = true;
            i.pods[0].role_label = Some(Role::Primary);
        })
        .decide();
    assert_eq!(
        d.update_next,
        Some(0),
        "a single member is updated in place"
    );
}

#[test]
fn scaling_down_makes_extra_members_leave_before_their_pods_go() {
    let d = healthy3().with(|i| i.instances = 2).decide();
    assert_eq!(d.operation, Operation::Leave { member: 2 });
    assert_eq!(d.statefulset_replicas, 3);
    let d = healthy3()
        .own(2, S::Offline)
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .with(|i| i.instances = 2)
        .decide();
    assert_eq!(d.statefulset_replicas, 2);
    let d = Fx::new(3)
        .gtids(0, &g("1-10"))
        .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 2)
        .with(|i| i.instances = 2)
        .decide();
    assert!(matches!(
        d.operation,
        Operation::SetPrimary { target: 0, .. }
    ));
}

#[test]
fn scaling_up_adds_members() {
    let d = Fx::new(5)
        .gtids(0, &g("1-10"))
        .gtids(1, &g("1-10"))
        .gtids(2, &g("1-10"))
        .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 0)
        .decide();
    assert!(matches!(d.operation, Operation::Clone { member: 3, .. }));
}

#[test]
fn a_recovering_member_is_not_in_the_ro_service() {
    let d = healthy3()
        .group(&[(0, S::Online), (1, S::Online), (2, S::Recovering)], 0)
        .decide();
    assert_eq!(d.labels[&2], None);
    assert_eq!(d.operation, Operation::None);
    assert!(condition(&d, "Progressing").status);
}

#[test]
fn two_groups_with_quorum_are_split_brain() {
    let mut fx = Fx::new(5);
    for o in 0..5 {
        fx = fx.gtids(o, &g("1-3"));
    }
    let fx = fx
        .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 0)
        .group(&[(3, S::Online), (4, S::Online)], 3);
    let d = fx.decide();
    // 3 and 4 alone have quorum in a view of two.
    assert_eq!(d.operation, Operation::None);
    assert_eq!(condition(&d, "Degraded").reason, "SplitBrain");
}

#[test]
fn unreachable_pods_keep_their_label_while_nothing_is_certain() {
    let d = Fx::new(3)
        .unreachable(0)
        .unreachable(1)
        .unreachable(2)
        .with(|i| i.pods[0].role_label = Some(Role::Primary))
        .decide();
    assert_eq!(d.labels[&0], Some(Role::Primary));
    assert_eq!(d.operation, Operation::None);
}

#[test]
fn history_is_pruned_and_extended() {
    let now = jiff::Timestamp::from_second(1_000_000).unwrap();
    let fx = healthy3().with(|i| {
        i.history.push(ActionRecord {
            ordinal: 1,
            kind: ActionKind::Join,
            at: now - jiff::SignedDuration::from_secs(300),
        });
    });
    let observed = Observed {
        input: fx.input,
        members: fx.members,
    };
    let record = ActionRecord {
        ordinal: 2,
        kind: ActionKind::Clone,
        at: now,
    };
    assert_eq!(
        updated_history(&observed, Some(record.clone())),
        vec![record]
    );
}

#[test]
fn a_member_that_refuses_the_operators_account_needs_the_user() {
    let deny = |mut fx: Fx| {
        fx.members[2].reach = Reach::Unreachable {
            silence: Silence::Denied,
            reason: "db-2 refuses the operator's account (ERROR 1045: Access denied)".into(),
        };
        fx.decide()
    };
    // Before the first start: nothing is bootstrapped, the condition says who and why.
    let d = deny(Fx::new(3));
    assert_eq!(d.operation, Operation::None);
    let c = condition(&d, "Degraded");
    assert_eq!(c.reason, "MemberNeedsAttention");
    assert!(c.message.contains("ERROR 1045"), "{}", c.message);
    // In a running group: the others are served, the condition says so.
    let d = deny(
        Fx::new(3)
            .gtids(0, &g("1-3"))
            .gtids(1, &g("1-3"))
            .group(&[(0, S::Online), (1, S::Online)], 0),
    );
    assert_eq!(d.operation, Operation::None);
    assert_eq!(condition(&d, "Degraded").reason, "MemberNeedsAttention");
}

#[test]
fn one_clone_at_a_time() {
    let mut fx = Fx::new(4).gtids(0, &g("1-10")).group(&[(0, S::Online)], 0);
    fx.state(1).cloning = true;
    let d = fx.decide();
    assert_eq!(d.operation, Operation::None);
    assert!(
        condition(&d, "Ready")
            .message
            .contains("db-2 waits for the clone into db-1 to finish"),
        "{:?}",
        condition(&d, "Ready")
    );
}

#[test]
fn a_failed_clone_is_said_when_the_member_is_cloned_again() {
    let mut fx = Fx::new(3)
        .gtids(0, &g("1-10"))
        .gtids(1, &g("1-10"))
        .group(&[(0, S::Online), (1, S::Online)], 0);
    fx.state(2).clone_failed = Some(crate::topology::sql::CloneFailure {
        error_no: 3862,
        message: "Clone Donor Error: 2013".into(),
    });
    let d = fx.decide();
    assert!(matches!(d.operation, Operation::Clone { member: 2, .. }));
    let event = d
        .events
        .iter()
        .find(|e| e.reason == "CloneFailed")
        .expect("event");
    assert!(event.warning);
    assert!(
        event
            .message
            .contains("ERROR 3862: Clone Donor Error: 2013"),
        "{}",
        event.message
    );
    assert!(
        condition(&d, "Ready")
            .message
            .contains("the last clone failed: ERROR 3862")
    );
}

#[test]
fn a_member_configured_for_another_group_is_neither_started_nor_joined() {
    const OURS: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const OTHER: &str = "bbbbbbbb-0000-4000-8000-000000000002";
    let named = |mut fx: Fx| {
        fx.input.group_name = OURS.into();
        for o in 0..3 {
            fx.state(o).group_name = Some(if o == 2 { OTHER } else { OURS }.into());
        }
        fx.decide()
    };
    // Before the first start: no bootstrap, the condition names the member and both groups.
    let d = named(Fx::new(3).gtids(2, &g("1-5")));
    assert_eq!(d.operation, Operation::None);
    let c = condition(&d, "Degraded");
    assert_eq!(c.reason, "MemberNeedsAttention");
    assert!(
        c.message.contains("db-2") && c.message.contains(OTHER) && c.message.contains(OURS),
        "{}",
        c.message
    );
    // In a running group: it is not joined (nor cloned), the others are served.
    let d = named(
        Fx::new(3)
            .gtids(0, &g("1-3"))
            .gtids(1, &g("1-3"))
            .gtids(2, &g("1-3"))
            .group(&[(0, S::Online), (1, S::Online)], 0),
    );
    assert_eq!(d.operation, Operation::None);
    assert_eq!(condition(&d, "Degraded").reason, "MemberNeedsAttention");
    assert!(condition(&d, "Available").status);
}

#[test]
fn a_switchover_waits_while_a_member_is_unreachable_or_joining() {
    // MySQL 9.7.4 refuses group_replication_set_as_primary then (ERROR 1123): asking anyway
    // only fails, every tick, until the group has expelled or recovered the member.
    for state in [S::Unreachable, S::Recovering] {
        let d = healthy3()
            .group(&[(0, S::Online), (1, S::Online), (2, state)], 0)
            .with(|i| i.switchover_to = Some(1))
            .decide();
        assert_eq!(d.operation, Operation::None, "{state:?}");
        let c = condition(&d, "Progressing");
        assert!(
            c.message.contains("cannot switch the primary to db-1")
                && c.message.contains("every member of the group is reachable"),
            "{state:?}: {}",
            c.message
        );
    }
}

#[test]
fn members_serving_a_certificate_the_operator_does_not_trust_need_the_user() {
    // A CA swapped without a bundle: every member runs, in its group, and answers with a
    // certificate of the previous CA.
    let mut fx = Fx::new(3)
        .gtids(0, &g("1-3"))
        .gtids(1, &g("1-3"))
        .gtids(2, &g("1-3"))
        .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 0);
    for m in &mut fx.members {
        m.reach = Reach::Unreachable {
            silence: Silence::Untrusted,
            reason: crate::topology::ops::OpsError::Untrusted {
                endpoint: "db-0".into(),
                reason: "UnknownIssuer".into(),
            }
            .to_string(),
        };
    }
    let d = fx.decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.expel_timeout, None, "no proof that any member is gone");
    let c = condition(&d, "Degraded");
    assert_eq!(c.reason, "MemberNeedsAttention");
    assert!(
        c.message.contains("UnknownIssuer") && c.message.contains("put the previous CA back"),
        "{}",
        c.message
    );
    assert!(!c.message.contains("force-quorum"), "{}", c.message);
}
