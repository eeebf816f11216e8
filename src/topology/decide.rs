//! `decide(observed) -> Decision`: the topology state machine as one pure function. It picks at
//! most one operation and says what the status, Events and role labels should be.

use std::collections::BTreeMap;
use std::time::Duration;

use super::diagnose::{Diagnosis, Health, QuorumGroup, diagnose};
use super::labels;
use super::observe::{ActionKind, ActionRecord, ClonePolicy, MemberStatus, Observed, Reach, Role};
use super::ops::Operation;

/// Condition types the topology sets.
pub const CONDITION_TYPES: [&str; 5] = [
    "Ready",
    "Available",
    "Progressing",
    "Degraded",
    "QuorumLost",
];

/// A status condition (`status` is "True"/"False" on the object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

/// An Event to record on the `MySQLCluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// One member in the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberReport {
    pub name: String,
    pub role: Option<Role>,
    /// MEMBER_STATE as the group (or the member) reports it, or UNREACHABLE / MISSING.
    pub state: String,
}

/// What the lead does with one tick's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Run this (through [`super::ops::execute`]); then re-tick after `requeue`.
    pub operation: Operation,
    /// Append to the status history when the operation succeeded (anti-flapping).
    pub record: Option<ActionRecord>,
    /// All five condition types, every tick.
    pub conditions: Vec<Condition>,
    pub members: Vec<MemberReport>,
    /// Pod name of the primary.
    pub primary: Option<String>,
    pub events: Vec<Event>,
    /// Desired role label per existing pod ordinal.
    pub labels: BTreeMap<u32, Option<Role>>,
    /// What the StatefulSet's replicas should be: members leave the group before their pod goes.
    pub statefulset_replicas: u32,
    /// The requested switchover is done: clear the request.
    pub switchover_complete: bool,
    /// The force-quorum order is being carried out by this operation: clear the annotation once it
    /// succeeded (it must never fire twice).
    pub force_quorum_consumed: bool,
    pub requeue: Duration,
}

/// Why no operation (or which one) was chosen: becomes the conditions' reason and message.
struct Verdict {
    operation: Operation,
    record: Option<ActionKind>,
    reason: &'static str,
    message: String,
    /// The operator cannot proceed without the user.
    needs_user: bool,
}

impl Verdict {
    fn wait(reason: &'static str, message: String) -> Self {
        Verdict {
            operation: Operation::None,
            record: None,
            reason,
            message,
            needs_user: false,
        }
    }

    fn blocked(reason: &'static str, message: String) -> Self {
        Verdict {
            needs_user: true,
            ..Verdict::wait(reason, message)
        }
    }

    fn run(
        operation: Operation,
        record: Option<ActionKind>,
        reason: &'static str,
        message: String,
    ) -> Self {
        Verdict {
            operation,
            record,
            reason,
            message,
            needs_user: false,
        }
    }
}

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
    assemble(observed, &diagnosis, verdict)
}

fn name(observed: &Observed, ordinal: u32) -> String {
    observed.input.pod_name(ordinal)
}

fn names(observed: &Observed, ordinals: &[u32]) -> String {
    ordinals
        .iter()
        .map(|&o| name(observed, o))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether an automatic action of `kind` on `ordinal` happened within the flap window.
fn flapping(observed: &Observed, ordinal: u32, kind: ActionKind) -> bool {
    let input = &observed.input;
    let window =
        jiff::SignedDuration::try_from(input.flap_window).unwrap_or(jiff::SignedDuration::MAX);
    input
        .history
        .iter()
        .any(|r| r.ordinal == ordinal && r.kind == kind && input.now.duration_since(r.at) < window)
}

/// The best member to promote or clone from: an ONLINE member of the group (not `except`, pod
/// not going away), smallest applier queue first, then lowest ordinal.
fn best_secondary(observed: &Observed, group: &QuorumGroup, except: u32) -> Option<u32> {
    let input = &observed.input;
    let mut candidates: Vec<(bool, u64, u32)> = group
        .participants()
        .into_iter()
        .filter(|&o| o != except && o < input.instances && group.is_online(o))
        .map(|o| {
            let leaving = input.pod(o).is_none_or(|p| p.deleting || p.update_pending);
            let queue = observed.state(o).map_or(u64::MAX, |s| s.applier_queue);
            (leaving, queue, o)
        })
        .collect();
    candidates.sort();
    candidates.first().map(|&(_, _, o)| o)
}

fn set_primary(observed: &Observed, group: &QuorumGroup, target: u32) -> Option<Operation> {
    let via = *group.contacts.first()?;
    let target_uuid = group.row(target)?.member_id.clone();
    Some(Operation::SetPrimary {
        via,
        target,
        target_uuid,
    })
    .filter(|_| observed.member(via).is_some())
}

fn with_quorum(observed: &Observed, group: &QuorumGroup) -> Verdict {
    let input = &observed.input;

    // 1. A switchover the user asked for.
    if let Some(target) = input.switchover_to
        && group.primary != Some(target)
        && target < input.instances
        && group.is_online(target)
        && let Some(op) = set_primary(observed, group, target)
    {
        return Verdict::run(
            op,
            None,
            "SwitchoverRequested",
            format!(
                "switching the primary to {} as requested",
                name(observed, target)
            ),
        );
    }
    // (A request that is not possible now is reported below; healing continues.)

    // 2. Scale down: members beyond `instances` leave (the primary hands over first).
    for ordinal in group
        .participants()
        .into_iter()
        .filter(|&o| o >= input.instances)
    {
        if group.primary == Some(ordinal) {
            if let Some(op) = best_secondary(observed, group, ordinal)
                .and_then(|t| set_primary(observed, group, t))
            {
                return Verdict::run(
                    op,
                    Some(ActionKind::Switchover),
                    "ScalingDown",
                    format!(
                        "moving the primary off {} before it leaves",
                        name(observed, ordinal)
                    ),
                );
            }
        } else if observed.state(ordinal).is_some() {
            return Verdict::run(
                Operation::Leave { member: ordinal },
                Some(ActionKind::Leave),
                "ScalingDown",
                format!(
                    "{} leaves the group before its pod is removed",
                    name(observed, ordinal)
                ),
            );
        }
    }

    // 3. The primary's pod is going away or being updated: hand over first.
    if let Some(primary) = group.primary {
        let going = input
            .pod(primary)
            .is_some_and(|p| p.deleting || p.update_pending);
        if going
            && !flapping(observed, primary, ActionKind::Switchover)
            && let Some(op) = best_secondary(observed, group, primary)
                .filter(|&t| input.pod(t).is_some_and(|p| !p.deleting))
                .and_then(|t| set_primary(observed, group, t))
        {
            return Verdict::run(
                op,
                Some(ActionKind::Switchover),
                "PlannedSwitchover",
                format!(
                    "moving the primary off {} before its pod is replaced",
                    name(observed, primary)
                ),
            );
        }
    }

    // 4. Heal members that are out of the group.
    let mut blocked: Vec<String> = Vec::new();
    let mut waiting: Vec<String> = Vec::new();
    for ordinal in 0..input.instances {
        let Some(state) = observed.state(ordinal) else {
            continue;
        };
        if group.status(ordinal).is_some_and(|s| s.in_group()) || state.own_status().in_group() {
            continue;
        }
        let member = name(observed, ordinal);
        if state.cloning {
            waiting.push(format!("{member} is being cloned"));
            continue;
        }
        if input.pod(ordinal).is_some_and(|p| p.deleting) {
            waiting.push(format!("{member} is being deleted"));
            continue;
        }
        if !state.capabilities.group_replication {
            blocked.push(format!(
                "{member} has no active group_replication plugin (plugin_load_add=group_replication.so)"
            ));
            continue;
        }
        let own = state.transactions();
        let errant = own.subtract(&group.transactions);
        let kind;
        let operation;
        let message;
        if !errant.is_empty() {
            if input.clone_policy != ClonePolicy::ReplaceErrant {
                blocked.push(format!(
                    "{member} has {} transactions the group does not have ({errant}); remove them, \
                     or set the clone policy to ReplaceErrant to replace its data with a clone \
                     (those transactions are then lost)",
                    errant.count()
                ));
                continue;
            }
            let Some(donor) = best_secondary(observed, group, ordinal) else {
                waiting.push(format!("{member} needs a clone but no donor is ONLINE"));
                continue;
            };
            kind = ActionKind::Clone;
            operation = Operation::Clone {
                member: ordinal,
                donor,
            };
            message = format!(
                "re-cloning {member} from {}: it had {} errant transactions ({errant})",
                name(observed, donor),
                errant.count()
            );
        } else if own.is_empty()
            && !group.transactions.is_empty()
            && input.clone_policy != ClonePolicy::Never
            && state.capabilities.clone
        {
            let Some(donor) = best_secondary(observed, group, ordinal) else {
                waiting.push(format!("{member} needs a clone but no donor is ONLINE"));
                continue;
            };
            kind = ActionKind::Clone;
            operation = Operation::Clone {
                member: ordinal,
                donor,
            };
            message = format!(
                "provisioning the empty {member} by cloning {}",
                name(observed, donor)
            );
        } else {
            kind = ActionKind::Join;
            let restart = state.own_status() == MemberStatus::Error;
            operation = Operation::Join {
                member: ordinal,
                restart,
            };
            message = format!("{member} joins the group");
        }
        if flapping(observed, ordinal, kind) {
            waiting.push(format!(
                "{member}: a {kind:?} ran less than {}s ago (anti-flapping)",
                input.flap_window.as_secs()
            ));
            continue;
        }
        return Verdict::run(operation, Some(kind), "Healing", message);
    }
    if !blocked.is_empty() {
        return Verdict::blocked("MemberNeedsAttention", blocked.join("; "));
    }
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
        waiting.push(format!(
            "cannot switch the primary to {}: it is not an ONLINE member",
            name(observed, target)
        ));
    }
    if waiting.is_empty() {
        Verdict::wait("Online", "every member is ONLINE".into())
    } else {
        Verdict::wait("Healing", waiting.join("; "))
    }
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
                "QuorumLost",
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
        "QuorumLost",
        format!(
            "no reachable member is in a group with quorum ({minority} without quorum; unreachable: {}). \
             If the unreachable members are gone for good and no other partition serves writes, \
             force quorum from a partition by annotating the cluster with \
             innodb-operator.io/force-quorum-from=<ordinals>, e.g. {}",
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
            "ForceQuorumInvalid",
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
            "ForceQuorumInvalid",
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

fn offline(observed: &Observed, diagnosis: &Diagnosis) -> Verdict {
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
    let seed = states
        .iter()
        .find(|(_, mine)| states.iter().all(|(_, other)| other.is_subset(mine)))
        .map(|(o, _)| *o);
    let Some(seed) = seed else {
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
    let Some(state) = observed.state(seed) else {
        unreachable!("the seed was chosen among reachable members");
    };
    if !state.capabilities.group_replication {
        return Verdict::blocked(
            "MemberNeedsAttention",
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

fn assemble(observed: &Observed, diagnosis: &Diagnosis, verdict: Verdict) -> Decision {
    let input = &observed.input;
    let labels = labels::desired(observed, diagnosis);
    let group = diagnosis.group.as_ref();
    let primary = group.and_then(|g| g.primary);
    let members: Vec<MemberReport> = observed
        .members
        .iter()
        .map(|m| {
            let row = group.and_then(|g| g.row(m.ordinal));
            let state = match (row, &m.reach) {
                (Some(r), _) => r.state.as_str().to_string(),
                (None, Reach::Reachable(s)) => s.own_status().as_str().to_string(),
                (None, Reach::Unreachable { .. }) => "UNREACHABLE".to_string(),
                (None, Reach::NoPod) => "MISSING".to_string(),
            };
            MemberReport {
                name: name(observed, m.ordinal),
                role: labels.get(&m.ordinal).copied().flatten(),
                state,
            }
        })
        .collect();
    let labels_applied = input
        .pods
        .iter()
        .all(|p| labels.get(&p.ordinal).copied().flatten() == p.role_label);
    let online = diagnosis.health == Health::Online;
    let acting = verdict.operation != Operation::None;
    let ready = online && labels_applied && !acting;
    let quorum_lost = diagnosis.health == Health::NoQuorum;
    let cond = |type_: &'static str, status: bool, reason: &str, message: &str| Condition {
        type_,
        status,
        reason: reason.to_string(),
        message: message.to_string(),
    };
    let (reason, message) = (verdict.reason, verdict.message.as_str());
    let conditions = vec![
        cond(
            "Ready",
            ready,
            if ready { "Online" } else { reason },
            if ready {
                "every member is ONLINE and the Services select them"
            } else {
                message
            },
        ),
        cond(
            "Available",
            primary.is_some(),
            if primary.is_some() {
                "PrimaryOnline"
            } else {
                "NoPrimary"
            },
            &match primary {
                Some(p) => format!(
                    "{} is the ONLINE primary of a group with quorum",
                    name(observed, p)
                ),
                None => "no ONLINE primary in a group with quorum".to_string(),
            },
        ),
        cond(
            "Progressing",
            acting || (!online && !verdict.needs_user),
            reason,
            message,
        ),
        cond(
            "Degraded",
            !online,
            if online { "Online" } else { reason },
            message,
        ),
        cond(
            "QuorumLost",
            quorum_lost,
            if quorum_lost { "QuorumLost" } else { "Quorum" },
            if quorum_lost {
                message
            } else {
                "a group with quorum exists or none is running"
            },
        ),
    ];
    let mut events = Vec::new();
    if acting {
        events.push(Event {
            warning: matches!(verdict.operation, Operation::ForceQuorum { .. }),
            reason: verdict.reason.to_string(),
            message: verdict.message.clone(),
        });
    } else if verdict.needs_user {
        events.push(Event {
            warning: true,
            reason: verdict.reason.to_string(),
            message: verdict.message.clone(),
        });
    }
    let in_group_max = diagnosis
        .group
        .iter()
        .flat_map(|g| g.participants())
        .chain(diagnosis.stranded.iter().copied())
        .max();
    let existing_max = input.pods.iter().map(|p| p.ordinal).max();
    let keep = if group.is_some() {
        in_group_max
    } else {
        existing_max.max(in_group_max)
    };
    let statefulset_replicas = input.instances.max(keep.map_or(0, |o| o + 1));
    let record = verdict.record.and_then(|kind| {
        let ordinal = match &verdict.operation {
            Operation::Join { member, .. }
            | Operation::Clone { member, .. }
            | Operation::Leave { member } => *member,
            Operation::SetPrimary { .. } => primary?,
            _ => return None,
        };
        Some(ActionRecord {
            ordinal,
            kind,
            at: input.now,
        })
    });
    Decision {
        switchover_complete: input.switchover_to.is_some() && input.switchover_to == primary,
        force_quorum_consumed: matches!(verdict.operation, Operation::ForceQuorum { .. }),
        requeue: if ready {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1)
        },
        operation: verdict.operation,
        record,
        conditions,
        members,
        primary: primary.map(|p| name(observed, p)),
        events,
        labels,
        statefulset_replicas,
    }
}

/// The history to store after a tick: entries older than the window dropped, `record` added.
pub fn updated_history(observed: &Observed, record: Option<ActionRecord>) -> Vec<ActionRecord> {
    let input = &observed.input;
    let window =
        jiff::SignedDuration::try_from(input.flap_window).unwrap_or(jiff::SignedDuration::MAX);
    input
        .history
        .iter()
        .filter(|r| input.now.duration_since(r.at) < window)
        .cloned()
        .chain(record)
        .collect()
}
