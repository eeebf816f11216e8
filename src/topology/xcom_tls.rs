//! A renewed certificate on the XCOM stack: XCom reads the certificate, its key and the CA when
//! Group Replication starts and never again. `ALTER INSTANCE RELOAD TLS` renews what mysqld
//! serves to clients (and to the MYSQL stack's group connections), not what XCom presents to its
//! peers. Measured on 9.7.4: after a reload, a member whose XCom still held the previous CA's
//! context refused a peer's new certificate (ERROR 3092 on `START GROUP_REPLICATION`), and XCom
//! kept presenting the certificate it started with, which would break the group's next
//! connections once that certificate ends.
//!
//! So on XCOM a member in a group with others that serves another certificate than its Secret's
//! is renewed by [`Operation::RenewXcomTls`]: reload, check that mysqld now serves the Secret's
//! certificate (the kubelet has written the files), then stop and start Group Replication. One
//! member at a time, secondaries first, when every member is ONLINE; the primary hands over
//! first.
//!
//! Not while the operator's CA was made anew (the members' `ca.crt` trusts the previous CA
//! beside it): the peers' XCom trusts only the previous CA, so a member restarting with the new
//! CA's certificate would be refused (ERROR 3092 on 9.7.4) and stay out of the group. The group
//! serves on its established connections meanwhile; the user restarts it as a whole. Pure.

use super::diagnose::QuorumGroup;
use super::observe::{ActionKind, Observed};
use super::ops::Operation;
use super::pick::{best_successor, flapping, name, names, set_primary};
use super::tls_reload::{renewed_by_restart, stale};
use super::verdict::Verdict;

/// The operator's CA was made anew on XCOM: Group Replication must restart on every member.
const XCOM_CA_CHANGED: &str = "XcomCaChanged";

/// The reason of the conditions and Events while certificates are rolled into XCom.
const RENEWING_TLS: &str = "RenewingXcomTls";

/// The next step of renewing the members' XCom certificates, when the group is settled (every
/// desired member ONLINE): a secondary restarts its Group Replication, or the primary hands over
/// when it is the only one left. `None` when nothing is stale or the group is busy.
pub(super) fn renewal(observed: &Observed, group: &QuorumGroup) -> Option<Verdict> {
    let want = observed.input.member_certificate_end?;
    let input = &observed.input;
    let settled = (0..input.instances).all(|o| group.is_online(o))
        && input.pods.iter().all(|p| !p.deleting && !p.update_pending);
    if !settled {
        return None;
    }
    let due: Vec<u32> = stale(observed)
        .into_iter()
        .filter(|&o| renewed_by_restart(observed, o))
        .collect();
    if input.previous_ca_trusted && !due.is_empty() {
        return Some(Verdict::blocked(
            XCOM_CA_CHANGED,
            format!(
                "the operator's CA was made anew; {} still serve a certificate of the previous \
                 CA, and their XCom trusts only that CA until Group Replication restarts, so a \
                 member restarting alone with the new certificate would be refused by the \
                 others. The group serves on its established connections, but a member that \
                 leaves cannot rejoin: stop Group Replication on every member (secondaries \
                 first, the primary last); the operator then starts the group again from the \
                 most complete member with the new certificates",
                names(observed, &due)
            ),
        ));
    }
    let served = |o: u32| {
        observed
            .state(o)
            .and_then(|s| s.certificate_end)
            .map_or_else(|| "none".to_string(), |t| t.to_string())
    };
    if let Some(&member) = due.iter().find(|&&o| group.primary != Some(o)) {
        return Some(Verdict::run(
            Operation::RenewXcomTls {
                member,
                certificate_end: want,
            },
            None,
            RENEWING_TLS,
            format!(
                "{} serves a certificate ending at {}, the Secret's ends at {want}; XCom reads \
                 certificates only when Group Replication starts: reloading and restarting it",
                name(observed, member),
                served(member)
            ),
        ));
    }
    let primary = group.primary.filter(|p| due.contains(p))?;
    if flapping(observed, primary, ActionKind::Switchover) {
        return None;
    }
    let op = best_successor(observed, group, primary).and_then(|t| set_primary(group, t))?;
    Some(Verdict::run(
        op,
        Some(ActionKind::Switchover),
        RENEWING_TLS,
        format!(
            "moving the primary off {} so its Group Replication can restart with the renewed \
             certificate (XCom reads certificates only when it starts)",
            name(observed, primary)
        ),
    ))
}
