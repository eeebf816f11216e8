//! Admitting clients to a member once it is back in the group. Pure.
//!
//! `offline_mode=ON` refuses every client without `CONNECTION_ADMIN` (applications, and Routers
//! that would send them there) and closes their sessions; the operator's account holds the
//! privilege and still connects. A member is offline:
//! - from the start of a mysqld that has been in a group (the `mysql` container's run script
//!   passes `--offline-mode=ON` with `--super-read-only=ON`): found on real MySQL 9.7, a killed
//!   primary started again at once is still listed PRIMARY by the others until it is expelled, and
//!   a metadata-cache Router sent read-write connections to it, which read its stale data and
//!   failed on their first write (ERROR 1290);
//! - after Group Replication's exit action (`OFFLINE_MODE`, the default since 8.4): a member that
//!   leaves the group by failure (expelled, applier or recovery error, auto-rejoin exhausted)
//!   turns it on, and nothing in the server turns it off again — a member the operator joins
//!   back would otherwise be ONLINE and refuse every client for good.
//!
//! The operator sets it OFF on a member that is ONLINE in its own view and in the view of the
//! group with quorum: it then holds the group's data (RECOVERING is not enough) and is where the
//! group says it is.

use super::diagnose::QuorumGroup;
use super::event::Event;
use super::observe::{MemberStatus, Observed};

/// The members to admit clients to (`SET GLOBAL offline_mode = OFF`), ascending.
pub fn decide(observed: &Observed, group: Option<&QuorumGroup>) -> Vec<u32> {
    let Some(group) = group else {
        return Vec::new();
    };
    observed
        .members
        .iter()
        .filter(|m| {
            m.state().is_some_and(|s| {
                s.offline_mode
                    && s.own_status() == MemberStatus::Online
                    && group
                        .row(m.ordinal)
                        .is_some_and(|row| row.state == MemberStatus::Online)
            })
        })
        .map(|m| m.ordinal)
        .collect()
}

/// The Event announcing that `members` accept clients again.
pub fn event(observed: &Observed, members: &[u32]) -> Option<Event> {
    if members.is_empty() {
        return None;
    }
    let names = super::pick::names(observed, members);
    Some(Event {
        warning: false,
        reason: "ClientsAdmitted",
        message: format!(
            "{names} ONLINE in the group: accepting clients again (offline_mode OFF; a member \
             starts offline after a restart, and Group Replication sets it when a member leaves \
             the group by failure)"
        ),
    })
}
