//! The rules of a group with quorum, in order: the switchover the user asked for, scaling
//! down, handing the primary over before its pod goes, healing each member that is out of the
//! group, renewing XCom's certificates (`xcom_tls`), and else what the group is waiting for.

use super::diagnose::QuorumGroup;
use super::observe::{ActionKind, ClonePolicy, MemberState, MemberStatus, Observed};
use super::ops::Operation;
use super::pick::{
    best_donor, best_successor, denied, flapping, foreign_group, name, names, no_donor, set_primary,
};
use super::verdict::{MEMBER_NEEDS_ATTENTION, Verdict};
use super::xcom_tls;

/// Members above `spec.instances` leave the group (the primary hands over first).
const SCALING_DOWN: &str = "ScalingDown";

/// The verdict for a group with quorum: the first rule that runs something, else why not.
pub(super) fn with_quorum(observed: &Observed, group: &QuorumGroup) -> Verdict {
    if let Some(verdict) = requested_switchover(observed, group)
        .or_else(|| scale_down(observed, group))
        .or_else(|| hand_over_before_the_pod_goes(observed, group))
    {
        return verdict;
    }
    // (A requested switchover that is not possible now is reported by `settled`.)
    let mut blocked: Vec<String> = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    for ordinal in 0..observed.input.instances {
        match heal(observed, group, ordinal) {
            Heal::Run(verdict) => return verdict,
            Heal::Blocked(why) => blocked.push(why),
            Heal::Waiting(why) => waiting.push(why),
            Heal::Nothing => {}
        }
    }
    blocked.extend(denied(observed));
    if !blocked.is_empty() {
        return Verdict::blocked(MEMBER_NEEDS_ATTENTION, blocked.join("; "));
    }
    xcom_tls::renewal(observed, group).unwrap_or_else(|| settled(observed, group, waiting))
}

/// 1. The switchover the user asked for, when its target can take the primary role now.
fn requested_switchover(observed: &Observed, group: &QuorumGroup) -> Option<Verdict> {
    let input = &observed.input;
    if let Some(target) = input.switchover_to
        && group.primary != Some(target)
        && target < input.instances
        && group.is_online(target)
        && group.can_lead(target)
        && let Some(op) = set_primary(group, target)
    {
        return Some(Verdict::run(
            op,
            None,
            "SwitchoverRequested",
            format!(
                "switching the primary to {} as requested",
                name(observed, target)
            ),
        ));
    }
    None
}

/// 2. Scale down: members beyond `instances` leave (the primary hands over first).
fn scale_down(observed: &Observed, group: &QuorumGroup) -> Option<Verdict> {
    let input = &observed.input;
    for ordinal in group
        .participants()
        .into_iter()
        .filter(|&o| o >= input.instances)
    {
        if group.primary == Some(ordinal) {
            if let Some(op) =
                best_successor(observed, group, ordinal).and_then(|t| set_primary(group, t))
            {
                return Some(Verdict::run(
                    op,
                    Some(ActionKind::Switchover),
                    SCALING_DOWN,
                    format!(
                        "moving the primary off {} before it leaves",
                        name(observed, ordinal)
                    ),
                ));
            }
        } else if observed.state(ordinal).is_some() {
            return Some(Verdict::run(
                Operation::Leave { member: ordinal },
                Some(ActionKind::Leave),
                SCALING_DOWN,
                format!(
                    "{} leaves the group before its pod is removed",
                    name(observed, ordinal)
                ),
            ));
        }
    }
    None
}

/// 3. The primary's pod is going away: hand over first. For an update, hand over only to an
///    already updated member (secondaries are updated first, see `update_next`).
fn hand_over_before_the_pod_goes(observed: &Observed, group: &QuorumGroup) -> Option<Verdict> {
    let input = &observed.input;
    if let Some(primary) = group.primary {
        let deleting = input.pod(primary).is_some_and(|p| p.deleting);
        let updating = input.pod(primary).is_some_and(|p| p.update_pending);
        if (deleting || updating)
            && !flapping(observed, primary, ActionKind::Switchover)
            && let Some(op) = best_successor(observed, group, primary)
                .filter(|&t| {
                    input
                        .pod(t)
                        .is_some_and(|p| !p.deleting && (deleting || !p.update_pending))
                })
                .and_then(|t| set_primary(group, t))
        {
            return Some(Verdict::run(
                op,
                Some(ActionKind::Switchover),
                "PlannedSwitchover",
                format!(
                    "moving the primary off {} before its pod is replaced",
                    name(observed, primary)
                ),
            ));
        }
    }
    None
}

/// What healing one member concludes.
enum Heal {
    /// Run this now.
    Run(Verdict),
    /// The member needs the user: why.
    Blocked(String),
    /// The member waits for something: what.
    Waiting(String),
    /// In the group, or nothing to say.
    Nothing,
}

/// 4. A member that is out of the group: whether it can be healed now, and how.
fn heal(observed: &Observed, group: &QuorumGroup, ordinal: u32) -> Heal {
    let input = &observed.input;
    let Some(state) = observed.state(ordinal) else {
        return Heal::Nothing;
    };
    if group.status(ordinal).is_some_and(|s| s.in_group()) {
        return Heal::Nothing;
    }
    let member = name(observed, ordinal);
    if state.own_status().in_group() {
        // Left behind in a view without quorum that the group no longer lists it in (after a
        // forced quorum, or expelled while cut off; 9.7 keeps such a member ONLINE in its old
        // view indefinitely): it can commit nothing. Stop its Group Replication so a later
        // tick joins it again.
        if group.status(ordinal).is_none()
            && !state.has_quorum()
            && !flapping(observed, ordinal, ActionKind::Leave)
        {
            return Heal::Run(Verdict::run(
                Operation::Leave { member: ordinal },
                Some(ActionKind::Leave),
                "Healing",
                format!(
                    "{member} is left behind in an old view without quorum; stopping its \
                     Group Replication so it can rejoin"
                ),
            ));
        }
        return Heal::Nothing;
    }
    if state.cloning {
        return Heal::Waiting(format!("{member} is being cloned"));
    }
    if input.pod(ordinal).is_some_and(|p| p.deleting) {
        return Heal::Waiting(format!("{member} is being deleted"));
    }
    if let Some(why) = foreign_group(observed, ordinal) {
        return Heal::Blocked(why);
    }
    if !state.capabilities.group_replication {
        return Heal::Blocked(format!(
            "{member} has no active group_replication plugin (plugin_load_add=group_replication.so)"
        ));
    }
    if group.status(ordinal) == Some(MemberStatus::Unreachable) {
        // Its previous incarnation is still in the view; the group refuses the same
        // server_uuid until it expels it (about 10 s).
        return Heal::Waiting(format!(
            "{member} is still in the group's view as UNREACHABLE"
        ));
    }
    heal_by(observed, group, ordinal, state, &member)
}

/// How a member that can be healed comes back ([`remedy`]), unless another clone runs or the
/// same action ran too recently on it.
fn heal_by(
    observed: &Observed,
    group: &QuorumGroup,
    ordinal: u32,
    state: &MemberState,
    member: &str,
) -> Heal {
    let (kind, operation, message) = match remedy(observed, group, ordinal, state, member) {
        Ok(remedy) => remedy,
        Err(heal) => return heal,
    };
    if kind == ActionKind::Clone
        && let Some(other) = observed
            .members
            .iter()
            .find(|m| m.ordinal != ordinal && m.state().is_some_and(|s| s.cloning))
    {
        // Measured on 9.7.4: a second clone started while one runs fails (error 3862).
        return Heal::Waiting(format!(
            "{member} waits for the clone into {} to finish (one clone at a time)",
            name(observed, other.ordinal)
        ));
    }
    let failed = match (&state.clone_failed, kind) {
        (Some(failure), ActionKind::Clone) => format!(" (the last clone failed: {failure})"),
        _ => String::new(),
    };
    if flapping(observed, ordinal, kind) {
        return Heal::Waiting(format!(
            "{member}: a {kind:?} ran less than {}s ago (anti-flapping){failed}",
            observed.input.flap_window.as_secs()
        ));
    }
    Heal::Run(Verdict::run(
        operation,
        Some(kind),
        "Healing",
        message + &failed,
    ))
}

/// The operation that heals the member, with its message: a clone when it holds errant
/// transactions (clone policy ReplaceErrant) or is empty while the group is not, else a join.
/// `Err` says why nothing can run (yet).
fn remedy(
    observed: &Observed,
    group: &QuorumGroup,
    ordinal: u32,
    state: &MemberState,
    member: &str,
) -> Result<(ActionKind, Operation, String), Heal> {
    let input = &observed.input;
    let own = state.transactions();
    let errant = own.subtract(&group.transactions);
    let clone = |message: &dyn Fn(&str) -> String| {
        let Some(donor) = best_donor(observed, group, ordinal) else {
            return Err(Heal::Waiting(no_donor(observed, member, ordinal)));
        };
        let operation = Operation::Clone {
            member: ordinal,
            donor,
        };
        Ok((
            ActionKind::Clone,
            operation,
            message(&name(observed, donor)),
        ))
    };
    if !errant.is_empty() && !group.complete() {
        // An ONLINE member the operator cannot read may hold these: no verdict yet.
        return Err(Heal::Waiting(format!(
            "{member} has transactions the reachable members lack; waiting to read every ONLINE member"
        )));
    }
    if !errant.is_empty() {
        if input.clone_policy != ClonePolicy::ReplaceErrant {
            return Err(Heal::Blocked(format!(
                "{member} has {} transactions the group does not have ({errant}); remove them, \
                 or set the clone policy to ReplaceErrant to replace its data with a clone \
                 (those transactions are then lost)",
                errant.count()
            )));
        }
        return clone(&|donor| {
            format!(
                "re-cloning {member} from {donor}: it had {} errant transactions ({errant})",
                errant.count()
            )
        });
    }
    if own.is_empty()
        && !group.transactions.is_empty()
        && input.clone_policy != ClonePolicy::Never
        && state.capabilities.clone
    {
        return clone(&|donor| format!("provisioning the empty {member} by cloning {donor}"));
    }
    let operation = Operation::Join {
        member: ordinal,
        restart: state.own_status() == MemberStatus::Error,
    };
    Ok((
        ActionKind::Join,
        operation,
        format!("{member} joins the group"),
    ))
}

/// 5. Nothing to run: what the group is waiting for, or that every member is ONLINE.
fn settled(observed: &Observed, group: &QuorumGroup, mut waiting: Vec<String>) -> Verdict {
    let input = &observed.input;
    let recovering: Vec<u32> = group
        .rows
        .iter()
        .filter(|(_, r)| r.state == MemberStatus::Recovering)
        .filter_map(|(o, _)| *o)
        .collect();
    if !recovering.is_empty() {
        waiting.push(format!("{} recovering", names(observed, &recovering)));
    }
    let missing: Vec<u32> = (0..input.instances)
        .filter(|&o| observed.state(o).is_none())
        .collect();
    if !missing.is_empty() {
        waiting.push(format!(
            "waiting for {} to be reachable",
            names(observed, &missing)
        ));
    }
    if let Some(target) = input.switchover_to.filter(|&t| group.primary != Some(t)) {
        let why = if group.is_online(target) && !group.can_lead(target) {
            "it runs a newer MySQL version than other members, and MySQL makes only a member of \
             the lowest version the primary (switch once every member is upgraded)"
        } else if group.is_online(target) && !group.can_change_primary() {
            "MySQL changes the primary only while every member of the group is reachable and none \
             is joining; the switchover runs once the group has expelled or recovered them"
        } else {
            "it is not an ONLINE member"
        };
        waiting.push(format!(
            "cannot switch the primary to {}: {why}",
            name(observed, target)
        ));
    }
    if waiting.is_empty() {
        Verdict::wait("Online", "every member is ONLINE".into())
    } else {
        Verdict::wait("Healing", waiting.join("; "))
    }
}
