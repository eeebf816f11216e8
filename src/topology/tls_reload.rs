//! Members serve the certificate their TLS Secret holds. Pure.
//!
//! The kubelet rewrites a mounted Secret's files in a running pod (within about a minute), but
//! mysqld reads them only when it starts and on `ALTER INSTANCE RELOAD TLS`. Without a reload a
//! renewed certificate (the operator's at two thirds of its lifetime, cert-manager's, a user's)
//! would be served only after the member's next restart, and the old one could expire first and
//! break the group's connections. So when a member serves a certificate whose end differs from
//! the end of the one in the Secret, the operator reloads its TLS files: new connections get the
//! new certificate, established ones (the group's, the applications') keep theirs. Until the
//! kubelet has written the new files a reload reads the old ones again and changes nothing; the
//! next tick, [`RETRY`] later at most, tries again.
//!
//! On the XCOM stack a reload is not enough for a member in a group: XCom reads the certificate
//! and the CA only when Group Replication starts, so [`super::xcom_tls`] renews such a member by
//! restarting its Group Replication, one member at a time, instead of a reload beside the
//! operation.

use std::time::Duration;

use super::observe::Observed;
use crate::api::cluster::CommunicationStack;

/// How soon the next tick comes while a member serves another certificate than the Secret's.
pub(crate) const RETRY: Duration = Duration::from_secs(15);

/// The members that answer and serve a certificate ending at another second than the
/// Secret's, ascending. Nothing when the Secret's end is unknown, or a member serves none.
pub(super) fn stale(observed: &Observed) -> Vec<u32> {
    let Some(want) = observed.input.member_certificate_end else {
        return Vec::new();
    };
    observed
        .members
        .iter()
        .filter(|m| {
            m.state()
                .and_then(|s| s.certificate_end)
                .is_some_and(|served| served.as_second() != want.as_second())
        })
        .map(|m| m.ordinal)
        .collect()
}

/// Whether the member's XCom must be given the certificate by a restart of its Group
/// Replication: the XCOM stack, and the member is in a group with another member (alone, no
/// peer connects to its XCom; out of a group, its next start reads the files).
pub(super) fn renewed_by_restart(observed: &Observed, ordinal: u32) -> bool {
    observed.input.stack == CommunicationStack::XCOM
        && observed.state(ordinal).is_some_and(|s| {
            s.own_status().in_group() && s.group.iter().filter(|r| r.state.in_group()).count() > 1
        })
}

/// The members to reload beside the operation, ascending: the [`stale`] ones, except those
/// [`renewed_by_restart`].
pub fn decide(observed: &Observed) -> Vec<u32> {
    stale(observed)
        .into_iter()
        .filter(|&o| !renewed_by_restart(observed, o))
        .collect()
}

/// How long before its end a certificate in use is reported.
pub(crate) const EXPIRY_WARNING: jiff::SignedDuration = jiff::SignedDuration::from_hours(7 * 24);

/// Where a certificate in use is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// The members' TLS Secret.
    Secret,
    /// What the member of this ordinal serves.
    Member(u32),
}

/// A certificate in use that ends within [`EXPIRY_WARNING`], or has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Expiring {
    pub holder: Holder,
    pub end: jiff::Timestamp,
}

impl Expiring {
    /// Whether it has ended at `now` (clients and the group's new connections refuse it).
    pub fn ended(&self, now: jiff::Timestamp) -> bool {
        self.end <= now
    }
}

/// The certificate in use that ends first, when that is within [`EXPIRY_WARNING`] of `now`:
/// the Secret's (nobody renewed it) or one a member still serves (not reloaded). Reported
/// before it breaks the group's new connections.
pub(crate) fn expiring(observed: &Observed, now: jiff::Timestamp) -> Option<Expiring> {
    let secret = observed.input.member_certificate_end.map(|end| Expiring {
        holder: Holder::Secret,
        end,
    });
    let served = observed.members.iter().filter_map(|m| {
        Some(Expiring {
            holder: Holder::Member(m.ordinal),
            end: m.state()?.certificate_end?,
        })
    });
    secret
        .into_iter()
        .chain(served)
        .min_by_key(|e| e.end)
        .filter(|e| e.end.duration_since(now) < EXPIRY_WARNING)
}
