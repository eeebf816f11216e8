//! Choosing members for an operation: the successor of a primary, the clone donor, the member
//! that switches through; whether an action would flap; member names for messages.

use super::diagnose::QuorumGroup;
use super::observe::{ActionKind, Observed, Reach, Silence};
use super::ops::Operation;
use crate::version;

pub(super) fn name(observed: &Observed, ordinal: u32) -> String {
    observed.input.pod_name(ordinal)
}

/// Members whose server refuses the operator's account or serves a certificate the operator
/// does not trust, each with what was refused and what to do: they run, and only the user can
/// let the operator in.
pub(super) fn denied(observed: &Observed) -> Vec<String> {
    observed
        .members
        .iter()
        .filter_map(|m| match &m.reach {
            Reach::Unreachable {
                reason,
                silence: Silence::Denied | Silence::Untrusted,
            } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

/// Why member `ordinal` must be neither started nor joined when it is configured with another
/// group's name (`group_replication_group_name`): it would start or seek a group that is not
/// this cluster's.
pub(super) fn foreign_group(observed: &Observed, ordinal: u32) -> Option<String> {
    let ours = &observed.input.group_name;
    let theirs = observed.state(ordinal)?.group_name.as_ref()?;
    (!ours.is_empty() && theirs != ours).then(|| {
        format!(
            "{} is configured for the group {theirs}, not this cluster's group {ours} (its \
             group_replication_group_name, e.g. persisted by SET PERSIST or on a data volume of \
             another cluster); the operator neither starts nor joins it. Run RESET PERSIST \
             group_replication_group_name and SET GLOBAL group_replication_group_name = '{ours}' \
             on it, or delete its data volume to have it cloned afresh",
            name(observed, ordinal)
        )
    })
}

/// [`foreign_group`] of every member.
pub(super) fn foreign_groups(observed: &Observed) -> Vec<String> {
    observed
        .members
        .iter()
        .filter_map(|m| foreign_group(observed, m.ordinal))
        .collect()
}

pub(super) fn names(observed: &Observed, ordinals: &[u32]) -> String {
    ordinals
        .iter()
        .map(|&o| name(observed, o))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an automatic action of `kind` on `ordinal` happened within the flap window.
pub(super) fn flapping(observed: &Observed, ordinal: u32, kind: ActionKind) -> bool {
    let input = &observed.input;
    input
        .history
        .iter()
        .any(|r| r.ordinal == ordinal && r.kind == kind && input.within_flap_window(r.at))
}

/// The best member to promote or clone from among those that `fit`: an ONLINE member of the
/// group (not `except`), pods not going away first, secondaries before the primary, smallest
/// applier queue, lowest ordinal.
fn best_member(
    observed: &Observed,
    group: &QuorumGroup,
    except: u32,
    fit: impl Fn(u32) -> bool,
) -> Option<u32> {
    let input = &observed.input;
    let mut candidates: Vec<(bool, bool, u64, u32)> = group
        .participants()
        .into_iter()
        .filter(|&o| o != except && o < input.instances && group.is_online(o) && fit(o))
        .map(|o| {
            let leaving = input.pod(o).is_none_or(|p| p.deleting || p.update_pending);
            let queue = observed.state(o).map_or(u64::MAX, |s| s.applier_queue);
            (leaving, group.primary == Some(o), queue, o)
        })
        .collect();
    candidates.sort();
    candidates.first().map(|&(_, _, _, o)| o)
}

/// The best member to hand the primary role to: one MySQL accepts (of the lowest version).
pub(super) fn best_successor(
    observed: &Observed,
    group: &QuorumGroup,
    primary: u32,
) -> Option<u32> {
    best_member(observed, group, primary, |o| group.can_lead(o))
}

/// The best clone donor for `recipient`: MySQL's clone works only within a release series and
/// from a donor no newer than the recipient (8.4 and 9.7 refuse each other).
pub(super) fn best_donor(observed: &Observed, group: &QuorumGroup, recipient: u32) -> Option<u32> {
    let recipient_version = observed.state(recipient).map(|s| s.capabilities.version);
    best_member(observed, group, recipient, |donor| {
        match (group.version(donor), recipient_version) {
            (Some(d), Some(r)) => version::can_clone(d, r),
            _ => true,
        }
    })
}

/// The primary's pod waits for its update and no other member can take over by a switchover:
/// every other member runs a newer version (MySQL accepts only the lowest), so its pod is
/// replaced as it is, and the group elects one of the upgraded members when it leaves.
pub(super) fn primary_updates_last(observed: &Observed, group: &QuorumGroup) -> bool {
    let input = &observed.input;
    let Some(primary) = group.primary else {
        return false;
    };
    input.pod(primary).is_some_and(|p| p.update_pending)
        && best_successor(observed, group, primary).is_none()
        && input
            .pods
            .iter()
            .all(|p| p.ordinal == primary || !p.update_pending)
}

/// Switch to `target`, asking `target` itself when it is reachable (else the first reachable
/// ONLINE member); `None` while MySQL would refuse it (see [`QuorumGroup::can_change_primary`]).
/// Never through the old primary by choice: on the real node, asked through a primary whose pod
/// was being deleted, the function failed with ERROR 3910 ("Member has left the group") when
/// that member left right after the election, and the reconcile lost its success (and its
/// relabel) for ~3.5 s.
pub(super) fn set_primary(group: &QuorumGroup, target: u32) -> Option<Operation> {
    if !group.can_change_primary() {
        return None;
    }
    let via = match group.contacts.contains(&target) {
        true => target,
        false => *group.contacts.first()?,
    };
    Some(Operation::SetPrimary {
        via,
        target,
        target_uuid: group.row(target)?.member_id.clone(),
    })
}

/// Why no donor can clone into `recipient`.
pub(super) fn no_donor(observed: &Observed, member: &str, recipient: u32) -> String {
    match observed.state(recipient) {
        Some(s) => format!(
            "{member} needs a clone but no ONLINE member can donate to MySQL {} (a clone needs a \
             donor of the same release series, no newer than the recipient)",
            s.capabilities.version
        ),
        None => format!("{member} needs a clone but no donor is ONLINE"),
    }
}
