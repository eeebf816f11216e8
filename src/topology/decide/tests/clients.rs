//! Beside the operation: clients admitted to members back in the group (`admit`), and members
//! reloading a renewed certificate (`tls_reload`).

use super::*;

fn offline(s: &mut MemberState) {
    s.offline_mode = true;
}

#[test]
fn members_online_in_the_group_are_admitted() {
    let d = healthy3().member(1, offline).member(2, offline).decide();
    assert_eq!(d.admit, [1, 2]);
    let event = d
        .events
        .iter()
        .find(|e| e.reason == "ClientsAdmitted")
        .expect("an event");
    assert!(!event.warning);
    assert!(
        event.message.starts_with("db-1, db-2 ONLINE"),
        "{}",
        event.message
    );
}

#[test]
fn admitted_members_are_left_alone() {
    let d = healthy3().decide();
    assert!(d.admit.is_empty());
    assert!(!d.events.iter().any(|e| e.reason == "ClientsAdmitted"));
}

#[test]
fn a_recovering_member_stays_offline() {
    let d = healthy3()
        .group(&[(0, S::Online), (1, S::Online), (2, S::Recovering)], 0)
        .member(2, offline)
        .decide();
    assert!(d.admit.is_empty());
}

#[test]
fn a_member_out_of_the_group_stays_offline_though_the_group_still_lists_it() {
    // Restarted at once: the others still list the old process ONLINE.
    let d = healthy3().own(2, S::Offline).member(2, offline).decide();
    assert!(d.admit.is_empty());
    // Left by failure: the exit action turned offline_mode on.
    let d = healthy3()
        .group(&[(0, S::Online), (1, S::Online), (2, S::Unreachable)], 0)
        .own(2, S::Error)
        .member(2, offline)
        .decide();
    assert!(d.admit.is_empty());
}

#[test]
fn nobody_is_admitted_without_a_group_with_quorum() {
    let d = healthy3()
        .group(
            &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
            0,
        )
        .unreachable(1)
        .unreachable(2)
        .member(0, offline)
        .decide();
    assert!(d.admit.is_empty(), "{:?}", d.conditions);
}

pub(super) const OLD: &str = "2027-01-01T00:00:00Z";
pub(super) const NEW: &str = "2027-04-01T00:00:00Z";

pub(super) fn serving(end: &'static str) -> impl FnOnce(&mut MemberState) {
    move |s| s.certificate_end = Some(end.parse().unwrap())
}

pub(super) fn secret_holds(end: &'static str) -> impl FnOnce(&mut ClusterInput) {
    move |i| i.member_certificate_end = Some(end.parse().unwrap())
}

#[test]
fn members_serving_another_certificate_than_the_secrets_reload_it() {
    let d = healthy3()
        .with(secret_holds(NEW))
        .member(0, serving(NEW))
        .member(1, serving(OLD))
        .member(2, serving(OLD))
        .decide();
    assert_eq!(d.reload_tls, [1, 2]);
    assert!(d.requeue <= crate::topology::tls_reload::RETRY);
}

#[test]
fn the_same_second_is_the_same_certificate() {
    // The Secret's end may carry a fraction; OpenSSL prints whole seconds.
    let d = healthy3()
        .with(secret_holds("2027-04-01T00:00:00.25Z"))
        .member(0, serving(NEW))
        .member(1, serving(NEW))
        .member(2, serving(NEW))
        .decide();
    assert!(d.reload_tls.is_empty());
}

#[test]
fn nothing_is_reloaded_without_both_ends() {
    // The Secret's end unknown (no Secret yet, an unreadable certificate).
    let d = healthy3().member(1, serving(OLD)).decide();
    assert!(d.reload_tls.is_empty());
    // A member without TLS, and one that does not answer.
    let d = healthy3()
        .with(secret_holds(NEW))
        .member(2, serving(OLD))
        .unreachable(1)
        .decide();
    assert_eq!(d.reload_tls, [2]);
}

#[test]
fn the_first_certificate_in_use_to_end_is_reported_within_a_week() {
    use crate::topology::tls_reload::{Holder, expiring};
    let now: jiff::Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
    // The Secret's certificate was renewed; member 1 still serves the old one, ending in 3 days.
    let o = healthy3()
        .with(secret_holds("2027-12-01T00:00:00Z"))
        .member(0, serving("2027-12-01T00:00:00Z"))
        .member(1, serving("2026-12-10T00:00:00Z"))
        .observed();
    let e = expiring(&o, now).expect("member 1's ends in 3 days");
    assert_eq!(e.holder, Holder::Member(1));
    assert!(!e.ended(now));
    // Eight days ahead: nothing yet.
    let o = healthy3()
        .with(secret_holds("2027-12-01T00:00:00Z"))
        .member(2, serving("2026-12-15T00:00:00Z"))
        .observed();
    assert_eq!(expiring(&o, now), None);
    // Nobody renewed the Secret's, and it has ended.
    let o = healthy3()
        .with(secret_holds("2026-12-06T00:00:00Z"))
        .observed();
    let e = expiring(&o, now).expect("the Secret's has ended");
    assert_eq!(e.holder, Holder::Secret);
    assert!(e.ended(now));
}
