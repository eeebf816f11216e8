//! `decide(observed) -> Decision`: the topology state machine as one pure function. It picks at
//! most one operation and says what the status, Events and role labels should be.

use super::diagnose::{Diagnosis, Health, diagnose};
pub use super::event::Event;
use super::observe::{ActionKind, ActionRecord, MemberStatus, Observed, Reach, RestoreGate};
use super::ops::Operation;
use super::pick::{denied, flapping, foreign_groups, name, names};
use super::report::assemble;
pub use super::report::{Condition, Decision, MemberReport};
use super::verdict::{FORCE_QUORUM_INVALID, MEMBER_NEEDS_ATTENTION, Verdict};
use super::with_quorum::with_quorum;
use super::{admit, expel, membership, tls_reload};
use crate::api::conditions::QUORUM_LOST;

/// The state machine.
pub fn decide(observed: &Observed) -> Decision {
    let diagnosis = diagnose(observed);
    let verdict = match (&diagnosis.health, &diagnosis.group) {
        (Health::SplitBrain, _) => Verdict::blocked(
            "SplitBrain",
            "more than one group claims quorum; the operator will not act. Stop Group Replication on \
             the members of the group whose writes you are prepared to lose, then re-clone them"
                .into(),
        ),
        (Health::Online | Health::Partial, Some(group)) => with_quorum(observed, group),
        (Health::NoQuorum, _) => no_quorum(observed, &diagnosis),
        _ => offline(observed, &diagnosis),
    };
    let expel_timeout = expel::decide(observed, diagnosis.group.as_ref());
    let admit = admit::decide(observed, diagnosis.group.as_ref());
    let mut decision = assemble(observed, &diagnosis, verdict);
    decision
        .events
        .extend(clone_retried(observed, &decision.operation));
    if let Some(change) = &expel_timeout {
        decision.events.extend(change.event(observed));
        decision.requeue = decision.requeue.min(std::time::Duration::from_secs(1));
    }
    decision.expel_timeout = expel_timeout;
    decision.events.extend(admit::event(observed, &admit));
    decision.admit = admit;
    decision.membership = membership::decide(observed);
    decision
        .events
        .extend(membership::event(observed, &decision.membership));
    decision.reload_tls = tls_reload::decide(observed);
    if !decision.reload_tls.is_empty() {
        decision.requeue = decision.requeue.min(tls_reload::RETRY);
    }
    #[cfg(feature = "test-mutations")]
    let decision = super::mutation::apply(observed, decision);
    decision
}

/// A Warning Event when a member whose last clone failed is cloned again: the failure is the
/// server's, and only `clone_status` kept it.
fn clone_retried(observed: &Observed, operation: &Operation) -> Option<Event> {
    let Operation::Clone { member, donor } = operation else {
        return None;
    };
    let failure = observed.state(*member)?.clone_failed.as_ref()?;
    Some(Event {
        warning: true,
        reason: "CloneFailed",
        message: format!(
            "the last clone into {} failed ({failure}); cloning it again from {}",
            name(observed, *member),
            name(observed, *donor)
        ),
    })
}

fn no_quorum(observed: &Observed, diagnosis: &Diagnosis) -> Verdict {
    let input = &observed.input;
    if let Some(partition) = &input.force_quorum_from {
        return force_quorum(observed, partition);
    }
    let others_out = observed.members.iter().all(|m| match &m.reach {
        Reach::Reachable(s) => {
            diagnosis.stranded.contains(&m.ordinal) || !s.own_status().in_group()
        }
        _ => false,
    });
    if others_out {
        // Every member answered and none outside the stranded ones is in a group: no partition
        // anywhere can have quorum, and no transaction can commit on the stranded ones. Stop them so
        // the group reboots from the member holding every transaction.
        let member = diagnosis.stranded[0];
        if !flapping(observed, member, ActionKind::Leave) {
            return Verdict::run(
                Operation::Leave { member },
                Some(ActionKind::Leave),
                QUORUM_LOST,
                format!(
                    "no group has quorum and every member answered; stopping Group Replication on the \
                     stranded {} so the group can reboot from the most complete member",
                    name(observed, member)
                ),
            );
        }
    }
    let minority = names(observed, &diagnosis.stranded);
    Verdict::blocked(
        QUORUM_LOST,
        format!(
            "no reachable member is in a group with quorum ({minority} without quorum; unreachable: {}). \
             If the unreachable members are gone for good and no other partition serves writes, \
             force quorum from the reachable partition by annotating the cluster with \
             innodb-operator.io/force-quorum-from={}",
            names(observed, &diagnosis.unreachable),
            diagnosis
                .stranded
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    )
}

fn force_quorum(observed: &Observed, partition: &[u32]) -> Verdict {
    let Some(&via) = partition.first() else {
        return Verdict::blocked(
            FORCE_QUORUM_INVALID,
            "force-quorum-from names no member".into(),
        );
    };
    let problems: Vec<String> = partition
        .iter()
        .filter(|&&o| {
            observed
                .state(o)
                .is_none_or(|s| s.own_status() != MemberStatus::Online)
        })
        .map(|&o| format!("{} is not reachable and ONLINE", name(observed, o)))
        .collect();
    let view_ok = observed.state(via).is_some_and(|s| {
        partition.iter().all(|&o| {
            s.group
                .iter()
                .any(|r| observed.input.ordinal_of_host(&r.host) == Some(o))
        })
    });
    if !problems.is_empty() || !view_ok {
        return Verdict::blocked(
            FORCE_QUORUM_INVALID,
            format!(
                "cannot force quorum from {}: {}",
                names(observed, partition),
                if problems.is_empty() {
                    "they are not in one group view".to_string()
                } else {
                    problems.join("; ")
                }
            ),
        );
    }
    Verdict::run(
        Operation::ForceQuorum {
            via,
            members: partition.to_vec(),
        },
        None,
        "ForcingQuorum",
        format!(
            "forcing the group membership to {} as the user ordered",
            names(observed, partition)
        ),
    )
}

/// A cluster created from a backup starts its group only from the restored first member, once
/// the restore succeeded: never from an empty member, never from a half-loaded one.
fn held_by_restore(observed: &Observed) -> Option<Verdict> {
    match &observed.input.restore {
        RestoreGate::Open => None,
        RestoreGate::Waiting { reason, message } => Some(Verdict::wait(
            reason,
            format!(
                "the group starts once the backup is restored into {}: {message}",
                name(observed, 0)
            ),
        )),
        RestoreGate::Blocked { reason, message } => Some(Verdict::blocked(reason, message.clone())),
    }
}

/// No member is in a group: (re)start it from the member that holds every other member's
/// transactions, once every member answers.
fn offline(observed: &Observed, diagnosis: &Diagnosis) -> Verdict {
    if let Some(held) = held_by_restore(observed) {
        return held;
    }
    let mut needs_attention = denied(observed);
    needs_attention.extend(foreign_groups(observed));
    if !needs_attention.is_empty() {
        return Verdict::blocked(MEMBER_NEEDS_ATTENTION, needs_attention.join("; "));
    }
    if !diagnosis.unreachable.is_empty() {
        return Verdict::wait(
            "WaitingForAllMembers",
            format!(
                "no member is in a group; the group is (re)started only when every member answers \
                 (not answering: {})",
                names(observed, &diagnosis.unreachable)
            ),
        );
    }
    let states: Vec<(u32, super::gtid::GtidSet)> = observed
        .members
        .iter()
        .filter_map(|m| m.state().map(|s| (m.ordinal, s.transactions())))
        .collect();
    // Among members holding everything (equal sets), prefer a pod that is not going away.
    let terminating = |o: u32| observed.input.pod(o).is_none_or(|p| p.deleting);
    let seed = states
        .iter()
        .filter(|(_, mine)| states.iter().all(|(_, other)| other.is_subset(mine)))
        .min_by_key(|(o, _)| (terminating(*o), *o))
        .and_then(|(o, _)| Some((*o, observed.state(*o)?)));
    let Some((seed, state)) = seed else {
        let all = states
            .iter()
            .fold(super::gtid::GtidSet::new(), |acc, (_, s)| acc.union(s));
        let detail: Vec<String> = states
            .iter()
            .map(|(o, s)| format!("{} lacks {}", name(observed, *o), all.subtract(s)))
            .collect();
        return Verdict::blocked(
            "DivergedGtidSets",
            format!(
                "no member holds every other member's transactions, so no member can safely restart \
                 the group ({}). Choose the member to keep, re-provision the others from it (delete \
                 their data volumes) or restore from a backup",
                detail.join("; ")
            ),
        );
    };
    if !state.capabilities.group_replication {
        return Verdict::blocked(
            MEMBER_NEEDS_ATTENTION,
            format!(
                "{} has no active group_replication plugin (plugin_load_add=group_replication.so)",
                name(observed, seed)
            ),
        );
    }
    Verdict::run(
        Operation::Bootstrap { seed },
        None,
        "Bootstrapping",
        format!(
            "every member answered and none is in a group; starting the group on {}, which holds \
             every member's transactions",
            name(observed, seed)
        ),
    )
}

/// The history to store after a tick: entries older than the window dropped, `record` added.
pub(crate) fn updated_history(
    observed: &Observed,
    record: Option<ActionRecord>,
) -> Vec<ActionRecord> {
    let input = &observed.input;
    input
        .history
        .iter()
        .filter(|r| input.within_flap_window(r.at))
        .cloned()
        .chain(record)
        .collect()
}

#[cfg(test)]
mod tests;
