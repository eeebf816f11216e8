//! `decide(observed) -> Decision`: the topology state machine as one pure function. It picks at
//! most one operation and says what the status, Events and role labels should be.

use super::diagnose::{Diagnosis, Health, QuorumGroup, diagnose};
use super::expel;
use super::observe::{
    ActionKind, ActionRecord, ClonePolicy, MemberStatus, Observed, Reach, RestoreGate, Silence,
};
use super::ops::Operation;
use super::report::assemble;
pub use super::report::{Condition, Decision, Event, MemberReport};
use crate::version;

/// Why no operation (or which one) was chosen: becomes the conditions' reason and message.
pub(super) struct Verdict {
    pub(super) operation: Operation,
    pub(super) record: Option<ActionKind>,
    pub(super) reason: &'static str,
    pub(super) message: String,
    /// The operator cannot proceed without the user.
    pub(super) needs_user: bool,
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
    let expel_timeout = expel::decide(observed, diagnosis.group.as_ref());
    let mut decision = assemble(observed, &diagnosis, verdict);
    decision
        .events
        .extend(clone_retried(observed, &decision.operation));
    if let Some(change) = &expel_timeout {
        decision.events.extend(change.event(observed));
        decision.requeue = decision.requeue.min(std::time::Duration::from_secs(1));
    }
    decision.expel_timeout = expel_timeout;
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
        reason: "CloneFailed".into(),
        message: format!(
            "the last clone into {} failed ({failure}); cloning it again from {}",
            name(observed, *member),
            name(observed, *donor)
        ),
    })
}

/// Members whose server refuses the operator's account, each with the server's words and what
/// to do: they run, and only the user can let the operator in.
fn denied(observed: &Observed) -> Vec<String> {
    observed
        .members
        .iter()
        .filter_map(|m| match &m.reach {
            Reach::Unreachable {
                reason,
                silence: Silence::Denied,
            } => Some(reason.clone()),
            _ => None,
        })
        .collect()
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
fn best_successor(observed: &Observed, group: &QuorumGroup, primary: u32) -> Option<u32> {
    best_member(observed, group, primary, |o| group.can_lead(o))
}

/// The best clone donor for `recipient`: MySQL's clone works only within a release series and
/// from a donor no newer than the recipient (8.4 and 9.7 refuse each other).
fn best_donor(observed: &Observed, group: &QuorumGroup, recipient: u32) -> Option<u32> {
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

/// Switch to `target` through the first reachable ONLINE member (the primary if reachable).
fn set_primary(group: &QuorumGroup, target: u32) -> Option<Operation> {
    Some(Operation::SetPrimary {
        via: *group.contacts.first()?,
        target,
        target_uuid: group.row(target)?.member_id.clone(),
    })
}

fn with_quorum(observed: &Observed, group: &QuorumGroup) -> Verdict {
    let input = &observed.input;

    // 1. A switchover the user asked for.
    if let Some(target) = input.switchover_to
        && group.primary != Some(target)
        && target < input.instances
        && group.is_online(target)
        && group.can_lead(target)
        && let Some(op) = set_primary(group, target)
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
            if let Some(op) =
                best_successor(observed, group, ordinal).and_then(|t| set_primary(group, t))
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

    // 3. The primary's pod is going away: hand over first. For an update, hand over only to an
    //    already updated member (secondaries are updated first, see `update_next`).
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
        if group.status(ordinal).is_some_and(|s| s.in_group()) {
            continue;
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
                return Verdict::run(
                    Operation::Leave { member: ordinal },
                    Some(ActionKind::Leave),
                    "Healing",
                    format!(
                        "{member} is left behind in an old view without quorum; stopping its \
                         Group Replication so it can rejoin"
                    ),
                );
            }
            continue;
        }
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
        if group.status(ordinal) == Some(MemberStatus::Unreachable) {
            // Its previous incarnation is still in the view; the group refuses the same
            // server_uuid until it expels it (about 10 s).
            waiting.push(format!(
                "{member} is still in the group's view as UNREACHABLE"
            ));
            continue;
        }
        let own = state.transactions();
        let errant = own.subtract(&group.transactions);
        if !errant.is_empty() && !group.complete() {
            // An ONLINE member the operator cannot read may hold these: no verdict yet.
            waiting.push(format!(
                "{member} has transactions the reachable members lack; waiting to read every ONLINE member"
            ));
            continue;
        }
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
            let Some(donor) = best_donor(observed, group, ordinal) else {
                waiting.push(no_donor(observed, &member, ordinal));
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
            let Some(donor) = best_donor(observed, group, ordinal) else {
                waiting.push(no_donor(observed, &member, ordinal));
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
        if kind == ActionKind::Clone
            && let Some(other) = observed
                .members
                .iter()
                .find(|m| m.ordinal != ordinal && m.state().is_some_and(|s| s.cloning))
        {
            // Measured on 9.7.4: a second clone started while one runs fails (error 3862).
            waiting.push(format!(
                "{member} waits for the clone into {} to finish (one clone at a time)",
                name(observed, other.ordinal)
            ));
            continue;
        }
        let failed = match (&state.clone_failed, kind) {
            (Some(failure), ActionKind::Clone) => format!(" (the last clone failed: {failure})"),
            _ => String::new(),
        };
        if flapping(observed, ordinal, kind) {
            waiting.push(format!(
                "{member}: a {kind:?} ran less than {}s ago (anti-flapping){failed}",
                input.flap_window.as_secs()
            ));
            continue;
        }
        return Verdict::run(operation, Some(kind), "Healing", message + &failed);
    }
    blocked.extend(denied(observed));
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
        let why = if group.is_online(target) && !group.can_lead(target) {
            "it runs a newer MySQL version than other members, and MySQL makes only a member of \
             the lowest version the primary (switch once every member is upgraded)"
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

/// Why no donor can clone into `recipient`.
fn no_donor(observed: &Observed, member: &str, recipient: u32) -> String {
    match observed.state(recipient) {
        Some(s) => format!(
            "{member} needs a clone but no ONLINE member can donate to MySQL {} (a clone needs a \
             donor of the same release series, no newer than the recipient)",
            s.capabilities.version
        ),
        None => format!("{member} needs a clone but no donor is ONLINE"),
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
    // A cluster created from a backup starts its group only from the restored first member,
    // once the restore succeeded: never from an empty member, never from a half-loaded one.
    match &observed.input.restore {
        RestoreGate::Open => {}
        RestoreGate::Waiting { reason, message } => {
            return Verdict::wait(
                reason,
                format!(
                    "the group starts once the backup is restored into {}: {message}",
                    name(observed, 0)
                ),
            );
        }
        RestoreGate::Blocked { reason, message } => {
            return Verdict::blocked(reason, message.clone());
        }
    }
    let denied = denied(observed);
    if !denied.is_empty() {
        return Verdict::blocked("MemberNeedsAttention", denied.join("; "));
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::topology::gtid::GtidSet;
    use crate::topology::observe::Role;
    use crate::topology::observe::{
        ClusterInput, GroupMemberRow, Member, MemberState, MemberStatus as S,
    };
    use crate::topology::sql::Capabilities;
    use crate::version::ServerVersion;

    const GROUP: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc";

    fn uuid(o: u32) -> String {
        format!("00000000-0000-0000-0000-{:012}", o + 1)
    }

    /// A cluster fixture: `n` running pods, every member reachable and OFFLINE with no data.
    struct Fx {
        input: ClusterInput,
        members: Vec<Member>,
    }

    impl Fx {
        fn new(n: u32) -> Fx {
            let input = ClusterInput::for_test(n);
            let members = (0..n)
                .map(|o| Member {
                    ordinal: o,
                    reach: Reach::Reachable(Box::new(MemberState {
                        server_uuid: uuid(o),
                        capabilities: Capabilities {
                            version: ServerVersion::new(8, 4, 2),
                            group_replication: true,
                            clone: true,
                            communication_stack: true,
                        },
                        gtid_executed: GtidSet::new(),
                        gtid_received: GtidSet::new(),
                        super_read_only: true,
                        group: vec![row(&input, o, S::Offline, None)],
                        applier_queue: 0,
                        cloning: false,
                        clone_failed: None,
                        expel_timeout: Some(5),
                    })),
                })
                .collect();
            Fx { input, members }
        }

        fn state(&mut self, o: u32) -> &mut MemberState {
            match &mut self.members[o as usize].reach {
                Reach::Reachable(s) => s,
                _ => panic!("member {o} is not reachable in the fixture"),
            }
        }

        fn gtids(mut self, o: u32, text: &str) -> Fx {
            self.state(o).gtid_executed = GtidSet::parse(text).unwrap();
            self
        }

        fn unreachable(mut self, o: u32) -> Fx {
            self.members[o as usize].reach = Reach::Unreachable {
                silence: Silence::NoAnswer,
                reason: "timeout".into(),
            };
            self
        }

        /// `members` form a group with `primary`; each sees the listed states.
        fn group(mut self, members: &[(u32, S)], primary: u32) -> Fx {
            let view: Vec<GroupMemberRow> = members
                .iter()
                .map(|&(o, st)| {
                    let role = if o == primary {
                        Role::Primary
                    } else {
                        Role::Secondary
                    };
                    row(&self.input, o, st, Some(role))
                })
                .collect();
            for &(o, st) in members {
                if st != S::Unreachable
                    && matches!(self.members[o as usize].reach, Reach::Reachable(_))
                {
                    self.state(o).group = view.clone();
                }
            }
            self
        }

        fn own(mut self, o: u32, st: S) -> Fx {
            let input = self.input.clone();
            self.state(o).group = vec![row(&input, o, st, None)];
            self
        }

        /// Member `o` runs `v`: its own probe and every view that lists it say so.
        fn version(mut self, o: u32, v: &str) -> Fx {
            self.state(o).capabilities.version = ServerVersion::parse_server(v).unwrap();
            for m in &mut self.members {
                if let Reach::Reachable(st) = &mut m.reach {
                    for r in st.group.iter_mut().filter(|r| r.member_id == uuid(o)) {
                        r.version = v.to_string();
                    }
                }
            }
            self
        }

        fn with(mut self, f: impl FnOnce(&mut ClusterInput)) -> Fx {
            f(&mut self.input);
            self
        }

        fn decide(self) -> Decision {
            decide(&Observed {
                input: self.input,
                members: self.members,
            })
        }
    }

    fn row(input: &ClusterInput, o: u32, state: S, role: Option<Role>) -> GroupMemberRow {
        GroupMemberRow {
            member_id: uuid(o),
            host: input.host(o),
            port: 3306,
            state,
            role,
            version: "8.4.2".into(),
        }
    }

    fn condition(d: &Decision, type_: &str) -> Condition {
        d.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
            .clone()
    }

    fn g(range: &str) -> String {
        format!("{GROUP}:{range}")
    }

    fn healthy3() -> Fx {
        Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 0)
    }

    #[test]
    fn new_cluster_bootstraps_from_the_first_member_when_all_answer() {
        let d = Fx::new(3).decide();
        assert_eq!(d.operation, Operation::Bootstrap { seed: 0 });
        assert!(condition(&d, "Progressing").status);
        assert!(!condition(&d, "Ready").status);
    }

    #[test]
    fn no_member_starts_the_group_while_the_restore_into_the_first_has_not_succeeded() {
        let pending = || RestoreGate::Waiting {
            reason: "RestoreInProgress",
            message: "the restore Job runs".into(),
        };
        // Member 0 is loading (empty so far); another member holding data must not seed.
        let d = Fx::new(3)
            .gtids(1, &g("1-5"))
            .with(|i| i.restore = pending())
            .decide();
        assert_eq!(d.operation, Operation::None);
        let progressing = condition(&d, "Progressing");
        assert!(progressing.status);
        assert_eq!(progressing.reason, "RestoreInProgress");
        assert!(
            progressing.message.contains("restored into db-0")
                && progressing.message.contains("Job runs"),
            "{}",
            progressing.message
        );
        assert!(!condition(&d, "Ready").status);
        assert!(d.events.is_empty(), "waiting is not an Event every tick");
        // Every member empty and answering (what bootstraps a new cluster) is held as well.
        let d = Fx::new(3).with(|i| i.restore = pending()).decide();
        assert_eq!(d.operation, Operation::None);
        // Member 0 answering mid-load with part of the data: still held.
        let d = Fx::new(3)
            .gtids(0, &g("1-3"))
            .with(|i| i.restore = pending())
            .decide();
        assert_eq!(d.operation, Operation::None);
    }

    #[test]
    fn a_failed_restore_blocks_the_first_start_and_says_what_to_do() {
        let d = Fx::new(3)
            .with(|i| {
                i.restore = RestoreGate::Blocked {
                    reason: "RestoreFailed",
                    message: "delete the Job restore-db to retry".into(),
                }
            })
            .decide();
        assert_eq!(d.operation, Operation::None);
        let degraded = condition(&d, "Degraded");
        assert_eq!(degraded.reason, "RestoreFailed");
        assert!(degraded.message.contains("delete the Job"));
        assert!(
            !condition(&d, "Progressing").status,
            "it waits for a person"
        );
        assert!(
            d.events
                .iter()
                .any(|e| e.warning && e.reason == "RestoreFailed")
        );
    }

    #[test]
    fn after_the_restore_the_group_starts_from_the_restored_first_member() {
        // The restored member holds the backup's GTID set; the others are new and empty.
        let d = Fx::new(3)
            .gtids(0, &g("1-1000"))
            .with(|i| i.restore = RestoreGate::Open)
            .decide();
        assert_eq!(d.operation, Operation::Bootstrap { seed: 0 });
        // Then the empty members are provisioned from it by clone.
        let d = Fx::new(3)
            .gtids(0, &g("1-1000"))
            .group(&[(0, S::Online)], 0)
            .decide();
        assert_eq!(
            d.operation,
            Operation::Clone {
                member: 1,
                donor: 0
            }
        );
    }

    #[test]
    fn the_gate_does_not_touch_a_running_group() {
        let d = Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-4"))
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .with(|i| {
                i.restore = RestoreGate::Waiting {
                    reason: "RestorePending",
                    message: "status was lost".into(),
                }
            })
            .decide();
        assert_eq!(
            d.operation,
            Operation::Join {
                member: 2,
                restart: false
            }
        );
    }

    #[test]
    fn never_bootstraps_while_a_member_does_not_answer() {
        let d = Fx::new(3).gtids(0, &g("1-5")).unreachable(2).decide();
        assert_eq!(d.operation, Operation::None);
        assert_eq!(condition(&d, "Degraded").reason, "WaitingForAllMembers");
        let mut missing = Fx::new(3);
        missing.members[1].reach = Reach::NoPod;
        assert_eq!(missing.decide().operation, Operation::None);
    }

    #[test]
    fn reboots_from_the_member_holding_every_transaction() {
        let d = Fx::new(3)
            .gtids(0, &g("1-7"))
            .gtids(1, &g("1-9"))
            .gtids(2, &g("1-8"))
            .decide();
        assert_eq!(d.operation, Operation::Bootstrap { seed: 1 });
    }

    #[test]
    fn an_equal_seed_whose_pod_is_not_terminating_is_preferred() {
        let d = Fx::new(3)
            .gtids(0, &g("1-9"))
            .gtids(1, &g("1-9"))
            .gtids(2, &g("1-8"))
            .with(|i| i.pods[0].deleting = true)
            .decide();
        assert_eq!(d.operation, Operation::Bootstrap { seed: 1 });
    }

    #[test]
    fn received_but_unapplied_transactions_count_for_the_seed() {
        let mut fx = Fx::new(2).gtids(0, &g("1-7")).gtids(1, &g("1-5"));
        fx.state(1).gtid_received = GtidSet::parse(&g("6-9")).unwrap();
        assert_eq!(fx.decide().operation, Operation::Bootstrap { seed: 1 });
    }

    #[test]
    fn diverged_sets_stop_with_a_condition_and_an_event() {
        let d = Fx::new(3)
            .gtids(0, &g("1-7"))
            .gtids(1, &format!("{},{}:1", g("1-7"), uuid(1)))
            .gtids(2, &g("1-8"))
            .decide();
        assert_eq!(d.operation, Operation::None);
        let degraded = condition(&d, "Degraded");
        assert_eq!(degraded.reason, "DivergedGtidSets");
        assert!(
            degraded.message.contains("db-2 lacks"),
            "{}",
            degraded.message
        );
        assert!(
            d.events
                .iter()
                .any(|e| e.warning && e.reason == "DivergedGtidSets")
        );
        assert!(!condition(&d, "Progressing").status);
    }

    #[test]
    fn healthy_cluster_is_ready_once_labels_are_applied() {
        let d = healthy3().decide();
        assert_eq!(d.operation, Operation::None);
        assert_eq!(d.labels[&0], Some(Role::Primary));
        assert_eq!(d.labels[&1], Some(Role::Secondary));
        assert!(
            !condition(&d, "Ready").status,
            "labels are not on the pods yet"
        );
        let d = healthy3()
            .with(|i| {
                i.pods[0].role_label = Some(Role::Primary);
                i.pods[1].role_label = Some(Role::Secondary);
                i.pods[2].role_label = Some(Role::Secondary);
            })
            .decide();
        assert!(condition(&d, "Ready").status);
        assert!(condition(&d, "Available").status);
        assert!(!condition(&d, "Degraded").status);
        assert_eq!(d.primary.as_deref(), Some("db-0"));
        assert_eq!(d.requeue, Duration::from_secs(10));
        assert_eq!(d.statefulset_replicas, 3);
    }

    #[test]
    fn an_offline_member_with_data_joins() {
        let d = Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-4"))
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .decide();
        assert_eq!(
            d.operation,
            Operation::Join {
                member: 2,
                restart: false
            }
        );
        assert_eq!(
            d.record.as_ref().map(|r| (r.ordinal, r.kind)),
            Some((2, ActionKind::Join))
        );
        assert_eq!(d.labels[&2], None);
    }

    #[test]
    fn a_member_in_error_is_restarted_into_the_group() {
        let d = healthy3()
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .own(2, S::Error)
            .decide();
        assert_eq!(
            d.operation,
            Operation::Join {
                member: 2,
                restart: true
            }
        );
    }

    #[test]
    fn an_empty_member_is_provisioned_by_clone_unless_the_policy_forbids() {
        let fx = || {
            Fx::new(3)
                .gtids(0, &g("1-10"))
                .gtids(1, &g("1-10"))
                .group(&[(0, S::Online), (1, S::Online)], 0)
        };
        assert_eq!(
            fx().decide().operation,
            Operation::Clone {
                member: 2,
                donor: 1
            }
        );
        let d = fx().with(|i| i.clone_policy = ClonePolicy::Never).decide();
        assert_eq!(
            d.operation,
            Operation::Join {
                member: 2,
                restart: false
            }
        );
    }

    #[test]
    fn a_member_that_refuses_the_operators_account_needs_the_user() {
        let deny = |mut fx: Fx| {
            fx.members[2].reach = Reach::Unreachable {
                silence: Silence::Denied,
                reason: "db-2 refuses the operator's account (ERROR 1045: Access denied)".into(),
            };
            fx.decide()
        };
        // Before the first start: nothing is bootstrapped, the condition says who and why.
        let d = deny(Fx::new(3));
        assert_eq!(d.operation, Operation::None);
        let c = condition(&d, "Degraded");
        assert_eq!(c.reason, "MemberNeedsAttention");
        assert!(c.message.contains("ERROR 1045"), "{}", c.message);
        // In a running group: the others are served, the condition says so.
        let d = deny(
            Fx::new(3)
                .gtids(0, &g("1-3"))
                .gtids(1, &g("1-3"))
                .group(&[(0, S::Online), (1, S::Online)], 0),
        );
        assert_eq!(d.operation, Operation::None);
        assert_eq!(condition(&d, "Degraded").reason, "MemberNeedsAttention");
    }

    #[test]
    fn one_clone_at_a_time() {
        let mut fx = Fx::new(4).gtids(0, &g("1-10")).group(&[(0, S::Online)], 0);
        fx.state(1).cloning = true;
        let d = fx.decide();
        assert_eq!(d.operation, Operation::None);
        assert!(
            condition(&d, "Ready")
                .message
                .contains("db-2 waits for the clone into db-1 to finish"),
            "{:?}",
            condition(&d, "Ready")
        );
    }

    #[test]
    fn a_failed_clone_is_said_when_the_member_is_cloned_again() {
        let mut fx = Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online)], 0);
        fx.state(2).clone_failed = Some(crate::topology::sql::CloneFailure {
            error_no: 3862,
            message: "Clone Donor Error: 2013".into(),
        });
        let d = fx.decide();
        assert!(matches!(d.operation, Operation::Clone { member: 2, .. }));
        let event = d
            .events
            .iter()
            .find(|e| e.reason == "CloneFailed")
            .expect("event");
        assert!(event.warning);
        assert!(
            event
                .message
                .contains("ERROR 3862: Clone Donor Error: 2013"),
            "{}",
            event.message
        );
        assert!(
            condition(&d, "Ready")
                .message
                .contains("the last clone failed: ERROR 3862")
        );
    }

    #[test]
    fn clones_come_from_a_donor_of_the_recipients_series() {
        // An 8.4 -> 9.7 upgrade half way: 0 (primary) still 8.4, 1 upgraded, 2 empty on 9.7.
        let fx = || {
            Fx::new(3)
                .gtids(0, &g("1-10"))
                .gtids(1, &g("1-10"))
                .group(&[(0, S::Online), (1, S::Online)], 0)
                .version(0, "8.4.7")
                .version(1, "9.7.4")
        };
        let d = fx().version(2, "9.7.4").decide();
        assert_eq!(
            d.operation,
            Operation::Clone {
                member: 2,
                donor: 1
            }
        );
        // An 8.4 recipient: the only secondary is 9.7, so the 8.4 primary donates.
        let d = fx().version(2, "8.4.7").decide();
        assert_eq!(
            d.operation,
            Operation::Clone {
                member: 2,
                donor: 0
            }
        );
        // A 9.7.3 recipient cannot clone from 9.7.4 nor from 8.4: wait, and say why.
        let d = fx().version(2, "9.7.3").decide();
        assert_eq!(d.operation, Operation::None);
        let ready = condition(&d, "Ready");
        assert!(
            ready.message.contains("can donate to MySQL 9.7.3"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn the_primary_is_always_a_member_of_the_lowest_version() {
        // 1 and 2 upgraded to 9.7, the 8.4 primary's pod is next: MySQL refuses to make a 9.7
        // member the primary while an 8.4 one is ONLINE, so no switchover is tried; the pod is
        // replaced as it is and the group elects a 9.7 member when it leaves.
        let upgraded = || {
            healthy3()
                .version(0, "8.4.7")
                .version(1, "9.7.4")
                .version(2, "9.7.4")
                .with(|i| i.pods[0].update_pending = true)
        };
        let d = upgraded().decide();
        assert_eq!(d.operation, Operation::None);
        assert_eq!(d.update_next, Some(0));
        // While a secondary still waits for its update, the primary's turn has not come.
        let d = upgraded()
            .with(|i| i.pods[2].update_pending = true)
            .decide();
        assert_eq!(d.update_next, Some(2));
        // A requested switchover to a newer member waits and says why.
        let d = healthy3()
            .version(0, "8.4.7")
            .version(1, "9.7.4")
            .with(|i| i.switchover_to = Some(1))
            .decide();
        assert_eq!(d.operation, Operation::None);
        let ready = condition(&d, "Ready");
        assert!(
            ready.message.contains("lowest version"),
            "{}",
            ready.message
        );
        // Among members of the same version the usual hand-over runs.
        let d = healthy3()
            .version(0, "9.7.3")
            .version(1, "9.7.4")
            .version(2, "9.7.3")
            .with(|i| i.pods[0].update_pending = true)
            .decide();
        assert!(
            matches!(d.operation, Operation::SetPrimary { target: 2, .. }),
            "{:?}",
            d.operation
        );
    }

    #[test]
    fn a_member_with_errant_transactions_never_joins() {
        let errant = || {
            Fx::new(3)
                .gtids(0, &g("1-10"))
                .gtids(1, &g("1-10"))
                .gtids(2, &format!("{},{}:1-2", g("1-3"), uuid(2)))
                .group(&[(0, S::Online), (1, S::Online)], 0)
        };
        let d = errant().decide();
        assert_eq!(d.operation, Operation::None);
        let degraded = condition(&d, "Degraded");
        assert_eq!(degraded.reason, "MemberNeedsAttention");
        assert!(
            degraded.message.contains("db-2 has 2 transactions"),
            "{}",
            degraded.message
        );
        let d = errant()
            .with(|i| i.clone_policy = ClonePolicy::ReplaceErrant)
            .decide();
        assert_eq!(
            d.operation,
            Operation::Clone {
                member: 2,
                donor: 1
            }
        );
    }

    #[test]
    fn a_restarted_member_still_in_the_view_waits_for_its_expulsion() {
        let d = healthy3()
            .group(&[(0, S::Online), (1, S::Online), (2, S::Unreachable)], 0)
            .own(2, S::Offline)
            .decide();
        assert_eq!(d.operation, Operation::None);
        assert!(condition(&d, "Progressing").message.contains("UNREACHABLE"));
    }

    #[test]
    fn no_errant_verdict_while_an_online_member_cannot_be_read() {
        let fx = Fx::new(3)
            .gtids(0, &g("1-12"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-12"))
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .unreachable(0);
        let d = fx
            .with(|i| i.clone_policy = ClonePolicy::ReplaceErrant)
            .decide();
        assert_eq!(d.operation, Operation::None, "db-2's 11-12 may be on db-0");
        assert!(
            condition(&d, "Progressing")
                .message
                .contains("waiting to read every ONLINE member")
        );
    }

    #[test]
    fn anti_flapping_holds_a_second_join_within_the_window() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let fx = |ago: i64| {
            healthy3()
                .group(&[(0, S::Online), (1, S::Online)], 0)
                .own(2, S::Offline)
                .with(move |i| {
                    i.history.push(ActionRecord {
                        ordinal: 2,
                        kind: ActionKind::Join,
                        at: now - jiff::SignedDuration::from_secs(ago),
                    })
                })
        };
        let d = fx(10).decide();
        assert_eq!(d.operation, Operation::None);
        assert!(
            condition(&d, "Progressing")
                .message
                .contains("anti-flapping")
        );
        assert_eq!(
            fx(31).decide().operation,
            Operation::Join {
                member: 2,
                restart: false
            }
        );
    }

    #[test]
    fn quorum_loss_with_a_member_unreachable_waits_for_the_user() {
        let d = Fx::new(3)
            .gtids(0, &g("1-10"))
            .unreachable(1)
            .unreachable(2)
            .group(
                &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
                0,
            )
            .decide();
        assert_eq!(d.operation, Operation::None);
        let lost = condition(&d, "QuorumLost");
        assert!(lost.status);
        assert!(
            lost.message.contains("force-quorum-from=0"),
            "{}",
            lost.message
        );
        assert!(
            d.events
                .iter()
                .any(|e| e.warning && e.reason == "QuorumLost")
        );
        assert!(!condition(&d, "Available").status);
        assert_eq!(
            d.labels[&0], None,
            "a minority primary leaves the rw Service"
        );
    }

    #[test]
    fn quorum_is_forced_only_on_the_users_order() {
        let fx = || {
            Fx::new(3)
                .gtids(0, &g("1-10"))
                .unreachable(1)
                .unreachable(2)
                .group(
                    &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
                    0,
                )
        };
        let d = fx().with(|i| i.force_quorum_from = Some(vec![0])).decide();
        assert_eq!(
            d.operation,
            Operation::ForceQuorum {
                via: 0,
                members: vec![0]
            }
        );
        assert!(d.force_quorum_consumed);
        let d = fx()
            .with(|i| i.force_quorum_from = Some(vec![0, 1]))
            .decide();
        assert_eq!(d.operation, Operation::None);
        assert_eq!(condition(&d, "Degraded").reason, "ForceQuorumInvalid");
    }

    #[test]
    fn a_member_left_behind_in_an_old_view_without_quorum_is_stopped_so_it_can_rejoin() {
        // After a forced quorum member 2 still shows itself ONLINE in the old view, where the
        // others are UNREACHABLE; the group with quorum no longer lists it.
        let left_behind = |group_view: &[(u32, S)]| {
            Fx::new(3)
                .gtids(0, &g("1-10"))
                .gtids(1, &g("1-10"))
                .gtids(2, &g("1-10"))
                .group(
                    &[(2, S::Online), (0, S::Unreachable), (1, S::Unreachable)],
                    1,
                )
                .group(group_view, 1)
                .decide()
        };
        let d = left_behind(&[(0, S::Online), (1, S::Online)]);
        assert_eq!(d.operation, Operation::Leave { member: 2 });
        // While the group still lists it (UNREACHABLE, not yet expelled), the operator waits.
        let d = left_behind(&[(0, S::Online), (1, S::Online), (2, S::Unreachable)]);
        assert_eq!(d.operation, Operation::None);
    }

    #[test]
    fn a_stranded_minority_is_stopped_when_every_member_answers_and_the_rest_are_out() {
        let d = Fx::new(3)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-10"))
            .group(
                &[(0, S::Online), (1, S::Unreachable), (2, S::Unreachable)],
                0,
            )
            .own(1, S::Offline)
            .own(2, S::Offline)
            .decide();
        assert_eq!(d.operation, Operation::Leave { member: 0 });
        assert!(condition(&d, "QuorumLost").status);
    }

    #[test]
    fn requested_switchover_promotes_the_target_and_reports_completion() {
        let d = healthy3().with(|i| i.switchover_to = Some(2)).decide();
        assert_eq!(
            d.operation,
            Operation::SetPrimary {
                via: 0,
                target: 2,
                target_uuid: uuid(2)
            }
        );
        assert!(!d.switchover_complete);
        let done = Fx::new(3)
            .gtids(0, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 2)
            .with(|i| i.switchover_to = Some(2))
            .decide();
        assert!(done.switchover_complete);
        assert_eq!(done.operation, Operation::None);
    }

    #[test]
    fn the_primary_hands_over_before_its_pod_is_deleted_or_updated() {
        for update in [false, true] {
            let d = healthy3()
                .with(|i| {
                    i.pods[0].deleting = !update;
                    i.pods[0].update_pending = update;
                })
                .decide();
            assert!(
                matches!(d.operation, Operation::SetPrimary { target: 1, .. }),
                "{:?}",
                d.operation
            );
        }
    }

    #[test]
    fn a_rolling_update_replaces_secondaries_first_and_the_primary_after_handing_over() {
        let pending = |i: &mut ClusterInput| {
            for p in &mut i.pods {
                p.update_pending = true;
            }
        };
        let d = healthy3().with(pending).decide();
        assert_eq!(
            d.operation,
            Operation::None,
            "no hand-over to a member still to update"
        );
        assert_eq!(d.update_next, Some(1), "secondaries first");
        let d = healthy3()
            .with(|i| i.pods[0].update_pending = true)
            .decide();
        assert!(
            matches!(d.operation, Operation::SetPrimary { target: 1, .. }),
            "then hand over"
        );
        assert_eq!(
            d.update_next, None,
            "nothing is deleted while an operation runs"
        );
        let d = healthy3()
            .with(|i| {
                i.pods[1].update_pending = true;
                i.pods[2].update_pending = true;
            })
            .decide();
        assert_eq!(d.operation, Operation::None);
        assert_eq!(d.update_next, Some(1));
        let d = healthy3()
            .with(|i| {
                i.pods[2].update_pending = true;
                i.pods[1].deleting = true;
            })
            .decide();
        assert_eq!(d.update_next, None, "one pod at a time");
        let d = Fx::new(3)
            .gtids(0, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .with(|i| i.pods[1].update_pending = true)
            .decide();
        assert_eq!(d.update_next, None, "not while a member is missing");
        let d = Fx::new(1)
            .gtids(0, &g("1-10"))
            .group(&[(0, S::Online)], 0)
            .with(|i| {
                i.pods[0].update_pending = true;
                i.pods[0].role_label = Some(Role::Primary);
            })
            .decide();
        assert_eq!(
            d.update_next,
            Some(0),
            "a single member is updated in place"
        );
    }

    #[test]
    fn scaling_down_makes_extra_members_leave_before_their_pods_go() {
        let d = healthy3().with(|i| i.instances = 2).decide();
        assert_eq!(d.operation, Operation::Leave { member: 2 });
        assert_eq!(d.statefulset_replicas, 3);
        let d = healthy3()
            .own(2, S::Offline)
            .group(&[(0, S::Online), (1, S::Online)], 0)
            .with(|i| i.instances = 2)
            .decide();
        assert_eq!(d.statefulset_replicas, 2);
        let d = Fx::new(3)
            .gtids(0, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 2)
            .with(|i| i.instances = 2)
            .decide();
        assert!(matches!(
            d.operation,
            Operation::SetPrimary { target: 0, .. }
        ));
    }

    #[test]
    fn scaling_up_adds_members() {
        let d = Fx::new(5)
            .gtids(0, &g("1-10"))
            .gtids(1, &g("1-10"))
            .gtids(2, &g("1-10"))
            .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 0)
            .decide();
        assert!(matches!(d.operation, Operation::Clone { member: 3, .. }));
    }

    #[test]
    fn a_recovering_member_is_not_in_the_ro_service() {
        let d = healthy3()
            .group(&[(0, S::Online), (1, S::Online), (2, S::Recovering)], 0)
            .decide();
        assert_eq!(d.labels[&2], None);
        assert_eq!(d.operation, Operation::None);
        assert!(condition(&d, "Progressing").status);
    }

    #[test]
    fn two_groups_with_quorum_are_split_brain() {
        let mut fx = Fx::new(5);
        for o in 0..5 {
            fx = fx.gtids(o, &g("1-3"));
        }
        let fx = fx
            .group(&[(0, S::Online), (1, S::Online), (2, S::Online)], 0)
            .group(&[(3, S::Online), (4, S::Online)], 3);
        let d = fx.decide();
        // 3 and 4 alone have quorum in a view of two.
        assert_eq!(d.operation, Operation::None);
        assert_eq!(condition(&d, "Degraded").reason, "SplitBrain");
    }

    #[test]
    fn unreachable_pods_keep_their_label_while_nothing_is_certain() {
        let d = Fx::new(3)
            .unreachable(0)
            .unreachable(1)
            .unreachable(2)
            .with(|i| i.pods[0].role_label = Some(Role::Primary))
            .decide();
        assert_eq!(d.labels[&0], Some(Role::Primary));
        assert_eq!(d.operation, Operation::None);
    }

    #[test]
    fn history_is_pruned_and_extended() {
        let now = jiff::Timestamp::from_second(1_000_000).unwrap();
        let fx = healthy3().with(|i| {
            i.history.push(ActionRecord {
                ordinal: 1,
                kind: ActionKind::Join,
                at: now - jiff::SignedDuration::from_secs(300),
            });
        });
        let observed = Observed {
            input: fx.input,
            members: fx.members,
        };
        let record = ActionRecord {
            ordinal: 2,
            kind: ActionKind::Clone,
            at: now,
        };
        assert_eq!(
            updated_history(&observed, Some(record.clone())),
            vec![record]
        );
    }
}
