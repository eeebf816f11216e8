//! A change of the cluster's CA on a real group, both ways:
//!
//! - **Swapped at once** (a user's or cert-manager's Secret now holds only a new CA while the
//!   members still serve the old CA's certificate, as they do until they reload): the
//!   operator's sessions refuse every member. It must then do nothing and say what to do — not
//!   read the refusals as members gone (no expel, no "quorum lost, force it") — while the group
//!   serves on its established connections.
//! - **The operator's own CA made anew** (its Secret deleted): the members' Secret is written
//!   with a certificate of the new CA and a `ca.crt` holding the new and the previous CA
//!   (`tls_secrets::tls_writes`, the product's code); the operator reloads the members while a
//!   writer commits through sessions that trust that bundle (no write lost, no session
//!   refused), and a member rejoins (the group's new connections verify the new certificate
//!   against the bundle). When the transition is over the Secret holds the new CA alone with a
//!   certificate issued again: the members reload, forget the previous CA, and a member
//!   rejoins trusting the new CA only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use innodb_operator::certs::{inspect, issue};
use innodb_operator::cluster::build::tls_secrets::{
    self, CA_TRANSITION, FoundSecret, FoundTls, PREVIOUS_CA_UNTIL_ANNOTATION,
};
use innodb_operator::objects::tls::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use innodb_operator::topology::mysql::SessionTls;
use innodb_operator::topology::observe::{Reach, Silence};
use innodb_operator::topology::ops::Operation;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;

use crate::group::Group;
use crate::verified::{Written, app_sessions, on_every_member, spawn_writer};
use crate::{STEP, Timings, join};

/// `key` of `secret` as text.
fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// The members' Secret as the kubelet puts it into every member's volume, and as the operator
/// then reads it (the CA its sessions trust, the certificate's end).
fn members_get(g: &mut Group, secret: &Secret) {
    let (ca, cert) = (text(secret, CA_CERT_KEY), text(secret, TLS_CERT_KEY));
    for m in g.members.members() {
        let dir = g.members.volume_path(m.ordinal, "tls");
        for key in [CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY] {
            std::fs::write(dir.join(key), text(secret, key)).expect("write a TLS file");
        }
    }
    operator_reads(g, &ca, &cert);
}

fn operator_reads(g: &mut Group, ca: &str, cert: &str) {
    g.ops.tls = SessionTls::Verify {
        ca_pem: ca.as_bytes().to_vec(),
    };
    *g.certificate_end.lock().unwrap() = Some(inspect::not_after(cert.as_bytes()).unwrap());
}

/// Every member sees `size` ONLINE members, as root sees it over its socket.
async fn group_serves(g: &Group, size: usize) {
    for m in g.members.members() {
        let rows = g
            .root_query(
                m.ordinal,
                "SELECT COUNT(*) FROM performance_schema.replication_group_members \
                 WHERE MEMBER_STATE = 'ONLINE'",
            )
            .await;
        assert_eq!(
            rows,
            vec![Some(size.to_string())],
            "member {} sees {size} ONLINE members",
            m.ordinal
        );
    }
}

/// The operator's ticks until every member serves `secret`'s certificate, while a writer
/// trusting the Secret's `ca.crt` commits (ids after `after`): no session refused, no
/// acknowledged write lost; then member 1 rejoins.
async fn rolled_in(g: &mut Group, t: &mut Timings, secret: &Secret, after: u32, label: &str) {
    let size = g.members.members().len();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(
        app_sessions(g, text(secret, CA_CERT_KEY).into_bytes()),
        stop.clone(),
        after,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    members_get(g, secret);
    let end = inspect::not_after(text(secret, TLS_CERT_KEY).as_bytes()).unwrap();
    let started = Instant::now();
    g.converge(
        &format!("{label}: every member serves the new certificate"),
        STEP,
        |o| {
            (0..size as u32).all(|m| {
                o.state(m)
                    .and_then(|s| s.certificate_end)
                    .is_some_and(|t| t.as_second() == end.as_second())
            })
        },
    )
    .await;
    t.add(
        &format!("{label}: every member reloaded"),
        started.elapsed(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let Written {
        acknowledged,
        failures,
        moved,
    } = writer.await.unwrap();
    eprintln!(
        "{label}: {} writes acknowledged, {} failed, {} taken by another member after a \
         switchover ({moved:?})",
        acknowledged.len(),
        failures.len(),
        moved.len()
    );
    assert!(
        failures.is_empty(),
        "{label}: no session refused: {failures:?}"
    );
    assert!(acknowledged.len() > 5, "{label}: the writer ran");
    on_every_member(g, &acknowledged, after).await;
    g.root_exec(1, "STOP GROUP_REPLICATION").await;
    join(g, t, 1, size, &format!("{label}: member 1 rejoins")).await;
}

pub async fn ca_change(g: &mut Group, t: &mut Timings) {
    let size = g.members.members().len();
    let now = Timestamp::now();
    let rng = &mut rand::rng();

    // 1. Swapped at once: the operator trusts another CA only; the members serve the old one's.
    let other = issue::new_ca("another CA", now, rng).expect("a CA");
    let trusted = g.ops.tls.clone();
    g.ops.tls = SessionTls::Verify {
        ca_pem: other.cert_pem.into_bytes(),
    };
    let observed = g.observe().await;
    for m in &observed.members {
        assert!(
            matches!(
                &m.reach,
                Reach::Unreachable { silence: Silence::Untrusted, reason } if reason.contains("UnknownIssuer")
            ),
            "member {} is refused for its certificate: {:?}",
            m.ordinal,
            m.reach
        );
    }
    let decision = innodb_operator::topology::decide(&observed);
    assert_eq!(decision.operation, Operation::None, "nothing is done");
    assert_eq!(decision.expel_timeout, None, "no member is taken for gone");
    let degraded = decision
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("a Degraded condition");
    assert_eq!(degraded.reason, "MemberNeedsAttention", "{degraded:?}");
    assert!(
        degraded.message.contains("put the previous CA back"),
        "{}",
        degraded.message
    );
    eprintln!("CA swapped at once: {}", degraded.message);
    group_serves(g, size).await;
    g.ops.tls = trusted;

    // 2. The operator's CA made anew (its Secret deleted): the members' Secret as the operator
    // writes it then, the previous CA kept beside the new one.
    let found = |s: &Secret| Some(FoundSecret::from_secret(s.clone()));
    let member_secret = g
        .built
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(&g.built.cluster.member_tls_secret()))
        .cloned()
        .expect("the members' Secret");
    let writes = tls_secrets::tls_writes(
        &g.built.cluster,
        &FoundTls {
            ca: None,
            member: found(&member_secret),
        },
        now,
        rng,
    )
    .expect("the operator's writes");
    let new_ca = writes.new_ca.expect("a new CA");
    let bundled = writes
        .renew
        .first()
        .cloned()
        .expect("the members' Secret renewed");
    assert_eq!(
        inspect::certificates(&text(&bundled, CA_CERT_KEY)).len(),
        2,
        "ca.crt holds the new and the previous CA"
    );
    rolled_in(g, t, &bundled, 100_000, "CA made anew").await;

    // 3. The transition over (its end as the Secret records it, moved to now: a certificate
    // issued at a later clock is not valid yet, and mysqld refuses to reload one, ERROR 3888):
    // the new CA alone, with a certificate issued again.
    let mut over = FoundSecret::from_secret(bundled.clone());
    let until = over
        .annotations
        .insert(PREVIOUS_CA_UNTIL_ANNOTATION.into(), now.to_string())
        .expect("the transition's end is recorded");
    assert_eq!(until, (now + CA_TRANSITION).to_string());
    let writes = tls_secrets::tls_writes(
        &g.built.cluster,
        &FoundTls {
            ca: found(&new_ca),
            member: Some(over),
        },
        Timestamp::now(),
        rng,
    )
    .expect("the operator's writes");
    let alone = writes
        .renew
        .first()
        .cloned()
        .expect("the previous CA dropped");
    assert_eq!(text(&alone, CA_CERT_KEY), text(&new_ca, CA_CERT_KEY));
    rolled_in(g, t, &alone, 200_000, "previous CA dropped").await;
    group_serves(g, size).await;
}
