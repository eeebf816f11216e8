use jiff::SignedDuration;
use rand::SeedableRng;

use super::*;
use crate::certs::inspect;
use crate::certs::issue::LEAF_LIFETIME;
use crate::cluster::testing::valid_cluster;

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(9)
}

fn found(s: &Secret) -> FoundSecret {
    FoundSecret::from_secret(s.clone())
}

fn data<'a>(s: &'a Secret, key: &str) -> &'a [u8] {
    &s.data.as_ref().unwrap()[key].0
}

/// A new cluster's CA and member certificate, as the first reconcile makes them.
fn first(c: &ValidCluster) -> (Secret, Secret) {
    let w = tls_writes(c, &FoundTls::default(), now(), &mut rng()).unwrap();
    assert!(w.renew.is_empty());
    let [member] = <[Secret; 1]>::try_from(w.create).unwrap();
    (w.new_ca.expect("a new CA"), member)
}

#[test]
fn a_new_cluster_gets_a_ca_and_a_member_certificate_signed_by_it() {
    let c = valid_cluster("spec: {}");
    let (ca, member) = first(&c);
    assert_eq!(ca.metadata.name.as_deref(), Some("orders-ca"));
    assert_eq!(member.metadata.name.as_deref(), Some("orders-tls"));
    assert_eq!(member.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(data(&member, "ca.crt"), data(&ca, "ca.crt"));
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        assert!(!data(&member, key).is_empty(), "{key}");
    }
    assert!(String::from_utf8_lossy(data(&ca, "ca.key")).contains("PRIVATE KEY"));
    let annotations = member.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations[NOT_AFTER_ANNOTATION], "2027-06-01T12:00:00Z");
    assert_eq!(
        ca.metadata.owner_references.as_ref().unwrap()[0].kind,
        "MySQLCluster"
    );
}

#[test]
fn the_member_names_cover_every_pod_and_service() {
    let names = member_request(&valid_cluster("spec: {}")).dns_names;
    for expected in [
        "*.orders-instances.db.svc.cluster.local",
        "orders.db.svc.cluster.local",
        "orders-ro",
        "orders-router-lb.db.svc",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
}

#[test]
fn a_stored_ca_signs_a_missing_member_certificate() {
    let c = valid_cluster("spec: {}");
    let (ca, _) = first(&c);
    let w = tls_writes(
        &c,
        &FoundTls {
            ca: Some(found(&ca)),
            member: None,
        },
        now(),
        &mut rng(),
    )
    .unwrap();
    assert_eq!(w.new_ca, None);
    assert_eq!(data(&w.create[0], "ca.crt"), data(&ca, "ca.crt"));
}

#[test]
fn a_current_certificate_is_left_alone_until_two_thirds_of_its_lifetime() {
    let c = valid_cluster("spec: {}");
    let (ca, member) = first(&c);
    let stored = FoundTls {
        ca: Some(found(&ca)),
        member: Some(found(&member)),
    };
    let before = now() + LEAF_LIFETIME * 2 / 3 - SignedDuration::from_hours(1);
    let w = tls_writes(&c, &stored, before, &mut rng()).unwrap();
    assert_eq!(w, TlsWrites::default());
    let due = now() + LEAF_LIFETIME * 2 / 3;
    let w = tls_writes(&c, &stored, due, &mut rng()).unwrap();
    assert!(w.new_ca.is_none() && w.create.is_empty());
    assert_eq!(w.renew[0].metadata.name.as_deref(), Some("orders-tls"));
    assert_ne!(data(&w.renew[0], "tls.crt"), data(&member, "tls.crt"));
    // The renewed certificate's end is what the Routers' pod template carries next.
    assert_eq!(w.member_certificate_end(), Some(due + LEAF_LIFETIME));
}

#[test]
fn the_member_certificate_written_says_when_it_ends() {
    let c = valid_cluster("spec: {}");
    let w = tls_writes(&c, &FoundTls::default(), now(), &mut rng()).unwrap();
    assert_eq!(
        w.member_certificate_end(),
        Some("2027-06-01T12:00:00Z".parse().unwrap())
    );
    assert_eq!(TlsWrites::default().member_certificate_end(), None);
}

fn text(s: &Secret, key: &str) -> String {
    String::from_utf8(data(s, key).to_vec()).unwrap()
}

fn annotation<'a>(s: &'a Secret, key: &str) -> Option<&'a str> {
    s.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

#[test]
fn a_new_ca_is_trusted_beside_the_previous_one_for_a_while_then_alone() {
    let c = valid_cluster("spec: {}");
    let (previous_ca, member) = first(&c);
    // The CA Secret was deleted: the next reconcile made another CA.
    let (new_ca, _) = first(&c);
    let stored_ca = Some(found(&new_ca));
    let w = tls_writes(
        &c,
        &FoundTls {
            ca: stored_ca.clone(),
            member: Some(found(&member)),
        },
        now(),
        &mut rng(),
    )
    .unwrap();
    let [renewed] = <[Secret; 1]>::try_from(w.renew).unwrap();
    // The new CA first (it signed the new certificate), the previous one after it: members
    // still serving the previous CA's certificate stay trusted until they reload.
    let bundle = text(&renewed, "ca.crt");
    assert_eq!(
        inspect::certificates(&bundle),
        vec![
            text(&new_ca, "ca.crt").trim(),
            text(&previous_ca, "ca.crt").trim()
        ]
    );
    let until = now() + CA_TRANSITION;
    assert_eq!(
        annotation(&renewed, PREVIOUS_CA_UNTIL_ANNOTATION),
        Some(until.to_string().as_str())
    );
    // During the transition the Secret stays as it is.
    let during = FoundTls {
        ca: stored_ca.clone(),
        member: Some(found(&renewed)),
    };
    let before_end = until - SignedDuration::from_secs(1);
    assert_eq!(
        tls_writes(&c, &during, before_end, &mut rng()).unwrap(),
        TlsWrites::default()
    );
    // Then the new CA alone, with a certificate issued again so every member reloads.
    let w = tls_writes(&c, &during, until, &mut rng()).unwrap();
    let [alone] = <[Secret; 1]>::try_from(w.renew).unwrap();
    assert_eq!(text(&alone, "ca.crt"), text(&new_ca, "ca.crt"));
    assert_eq!(annotation(&alone, PREVIOUS_CA_UNTIL_ANNOTATION), None);
    assert_ne!(data(&alone, "tls.crt"), data(&renewed, "tls.crt"));
    // And then nothing more to do.
    let after = FoundTls {
        ca: stored_ca,
        member: Some(found(&alone)),
    };
    assert_eq!(
        tls_writes(&c, &after, until, &mut rng()).unwrap(),
        TlsWrites::default()
    );
}

#[test]
fn a_certificate_due_during_a_ca_change_keeps_the_previous_ca_until_the_transition_ends() {
    let c = valid_cluster("spec: {}");
    let (_, member) = first(&c);
    let (new_ca, _) = first(&c);
    let stored_ca = Some(found(&new_ca));
    let changed = tls_writes(
        &c,
        &FoundTls {
            ca: stored_ca.clone(),
            member: Some(found(&member)),
        },
        now(),
        &mut rng(),
    )
    .unwrap()
    .renew
    .remove(0);
    // Its validity says it is due (as if the clock jumped): renewed, the bundle kept.
    let mut due = found(&changed);
    due.annotations
        .insert(NOT_AFTER_ANNOTATION.into(), now().to_string());
    let w = tls_writes(
        &c,
        &FoundTls {
            ca: stored_ca,
            member: Some(due),
        },
        now() + SignedDuration::from_mins(5),
        &mut rng(),
    )
    .unwrap();
    assert_eq!(text(&w.renew[0], "ca.crt"), text(&changed, "ca.crt"));
    assert_eq!(
        annotation(&w.renew[0], PREVIOUS_CA_UNTIL_ANNOTATION),
        annotation(&changed, PREVIOUS_CA_UNTIL_ANNOTATION)
    );
}

#[test]
fn a_ca_secret_without_its_key_says_which_and_what_to_do() {
    let c = valid_cluster("spec: {}");
    let (ca, _) = first(&c);
    let mut broken = found(&ca);
    broken.data.remove("ca.key");
    let e = tls_writes(
        &c,
        &FoundTls {
            ca: Some(broken),
            member: None,
        },
        now(),
        &mut rng(),
    )
    .unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.contains("\"orders-ca\"") && shown.contains("\"ca.key\"") && shown.contains("delete"),
        "{shown}"
    );
}

#[test]
fn a_user_secret_means_nothing_to_write() {
    let c = valid_cluster("spec: {tls: {secretName: mine}}");
    let w = tls_writes(&c, &FoundTls::default(), now(), &mut rng()).unwrap();
    assert_eq!(w, TlsWrites::default());
    assert_eq!(c.member_tls_secret(), "mine");
}

#[test]
fn debug_of_a_found_secret_shows_no_key() {
    let c = valid_cluster("spec: {}");
    let (ca, _) = first(&c);
    let shown = format!("{:?}", found(&ca));
    assert!(
        shown.contains("ca.key") && !shown.contains("PRIVATE"),
        "{shown}"
    );
}
