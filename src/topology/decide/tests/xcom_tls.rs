//! A renewed certificate on the XCOM stack: members in the group restart their Group
//! Replication one at a time (XCom reads certificates only when it starts), the primary last.

use super::clients::{NEW, OLD, secret_holds, serving};
use super::*;
use crate::api::cluster::CommunicationStack;

fn xcom(i: &mut ClusterInput) {
    i.stack = CommunicationStack::XCOM;
}

fn renew(member: u32) -> Operation {
    Operation::RenewXcomTls {
        member,
        certificate_end: NEW.parse().unwrap(),
    }
}

/// Three ONLINE members on XCOM, the Secret renewed, each member serving `ends[o]`.
fn renewed(ends: [&'static str; 3]) -> Fx {
    healthy3()
        .with(xcom)
        .with(secret_holds(NEW))
        .member(0, serving(ends[0]))
        .member(1, serving(ends[1]))
        .member(2, serving(ends[2]))
}

#[test]
fn a_stale_secondary_restarts_its_group_replication_and_is_not_reloaded_beside() {
    let d = renewed([OLD, OLD, OLD]).decide();
    assert_eq!(d.operation, renew(1));
    assert!(
        d.reload_tls.is_empty(),
        "members in the group are renewed by the restart, not by a reload beside it"
    );
    assert_eq!(condition(&d, "Progressing").reason, "RenewingXcomTls");
    let d = renewed([OLD, NEW, OLD]).decide();
    assert_eq!(d.operation, renew(2));
}

#[test]
fn the_primary_hands_over_when_it_is_the_last_stale_member() {
    let d = renewed([OLD, NEW, NEW]).decide();
    let Operation::SetPrimary { target, .. } = d.operation else {
        panic!("expected a switchover, got {:?}", d.operation);
    };
    assert_ne!(target, 0);
    // Once it is a secondary, it restarts.
    let d = renewed([OLD, NEW, NEW])
        .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 1)
        .decide();
    assert_eq!(d.operation, renew(0));
}

#[test]
fn a_switchover_that_just_ran_is_not_repeated() {
    let now = jiff::Timestamp::from_second(1_000_000).unwrap();
    let d = renewed([OLD, NEW, NEW])
        .with(move |i| {
            i.history.push(ActionRecord {
                ordinal: 0,
                kind: ActionKind::Switchover,
                at: now - jiff::SignedDuration::from_secs(5),
            })
        })
        .decide();
    assert_eq!(d.operation, Operation::None);
}

#[test]
fn nothing_restarts_while_the_group_is_busy() {
    // A member recovering, a member out of the group, a pod being updated: healing and the
    // update come first; the member out of the group is reloaded (its next start reads the
    // files).
    let d = renewed([OLD, OLD, OLD])
        .group(&[(0, S::Online), (1, S::Online), (2, S::Recovering)], 0)
        .decide();
    assert_eq!(d.operation, Operation::None);
    let d = renewed([OLD, OLD, OLD])
        .group(&[(0, S::Online), (1, S::Online)], 0)
        .own(2, S::Offline)
        .decide();
    assert_eq!(d.operation, join(2));
    assert_eq!(d.reload_tls, [2]);
    let d = renewed([OLD, OLD, OLD])
        .with(|i| i.pods[2].update_pending = true)
        .decide();
    assert!(!matches!(d.operation, Operation::RenewXcomTls { .. }));
}

#[test]
fn the_mysql_stack_and_a_lone_xcom_member_reload_beside() {
    let d = renewed([OLD, OLD, OLD])
        .with(|i| i.stack = CommunicationStack::MYSQL)
        .decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.reload_tls, [0, 1, 2]);
    // Alone in its group: no peer connects to its XCom.
    let d = Fx::new(1)
        .gtids(0, &g("1-10"))
        .group(&[(0, S::Online)], 0)
        .with(xcom)
        .with(secret_holds(NEW))
        .member(0, serving(OLD))
        .decide();
    assert_eq!(d.operation, Operation::None);
    assert_eq!(d.reload_tls, [0]);
}

#[test]
fn nothing_restarts_when_every_member_serves_the_secrets_certificate() {
    let d = renewed([NEW, NEW, NEW]).decide();
    assert_eq!(d.operation, Operation::None);
    assert!(d.reload_tls.is_empty());
}

#[test]
fn after_the_operators_ca_was_made_anew_nothing_restarts_and_the_user_is_told() {
    let d = renewed([OLD, OLD, OLD])
        .with(|i| i.previous_ca_trusted = true)
        .decide();
    assert_eq!(d.operation, Operation::None);
    assert!(d.reload_tls.is_empty());
    let c = condition(&d, "Progressing");
    assert_eq!(c.reason, "XcomCaChanged");
    assert!(
        c.message.contains("stop Group Replication on every member"),
        "{}",
        c.message
    );
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.reason == "XcomCaChanged"),
        "the user is told by a Warning Event"
    );
    // The MYSQL stack reloads through such a change.
    let d = renewed([OLD, OLD, OLD])
        .with(|i| {
            i.previous_ca_trusted = true;
            i.stack = CommunicationStack::MYSQL;
        })
        .decide();
    assert_eq!(d.reload_tls, [0, 1, 2]);
}
