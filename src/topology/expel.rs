//! Expel on proof: when a member of the group is provably gone, the group is asked to expel it
//! at once instead of waiting out `group_replication_member_expel_timeout`. Pure.
//!
//! On MySQL 9.7.4 here, with the default expel timeout of 5 s, a new primary was elected
//! 21.6–22.0 s after `kill -9` of the old one; with the timeout at 0 on the survivors, 6.3–6.9 s
//! (the group's own failure detector, ~5 s, is then the floor). Setting it while a member is
//! already suspected takes effect at once (6.7 s).
//!
//! **Proof** that a member listed in the group's view is gone, any one of:
//! - [`Gone::Refused`]: its own address refused the operator's connection. A pod's address outlives
//!   its containers, and mysqld listens on it whenever it runs: nothing listening means its
//!   mysqld is not running, so it takes part in no group.
//! - [`Gone::NoPod`]: its pod is not running (deleted, failed, pending).
//! - [`Gone::Restarted`]: it answers, but says of itself that it is in no group (OFFLINE or
//!   ERROR) while the group still lists it: the listed incarnation is the old process.
//!
//! A member that is merely silent (no answer: cut off, paused, overloaded) is never proof: it
//! may still be alive, and the expel timeout is what lets it come back without a rejoin.
//!
//! **Why it is safe.** An expulsion never makes a second group or loses an acknowledged
//! transaction: only a majority of the view can expel, and it keeps everything it agreed on. The
//! only thing the timeout buys is time for a *live* member to return; a gone member has none to
//! use. The variable is global per member, so while it is 0 a live member cut off at the same
//! time is also expelled without grace (it then rejoins by auto-rejoin or the operator's join):
//! the timeout is therefore set back as soon as no member of the view is gone or UNREACHABLE.

use super::diagnose::QuorumGroup;
use super::event::Event;
use super::observe::{MemberStatus, Observed, Reach, Silence};

/// Why the operator knows a listed member is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    Refused,
    NoPod,
    Restarted,
}

impl Gone {
    fn says(self) -> &'static str {
        match self {
            Gone::Refused => "refuses connections at its address (its mysqld is not running)",
            Gone::NoPod => "has no running pod",
            Gone::Restarted => "was restarted and is no longer in the group",
        }
    }
}

/// Set `group_replication_member_expel_timeout` to `seconds` on `members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpelTimeout {
    pub members: Vec<u32>,
    pub seconds: u32,
    /// The members found gone (empty when the timeout is set back).
    pub gone: Vec<(u32, Gone)>,
}

/// Whether the view's member `ordinal` is provably gone.
fn gone(observed: &Observed, ordinal: u32) -> Option<Gone> {
    let member = observed.members.iter().find(|m| m.ordinal == ordinal)?;
    match &member.reach {
        Reach::Unreachable {
            silence: Silence::Refused,
            ..
        } => Some(Gone::Refused),
        Reach::Unreachable { .. } => None,
        Reach::NoPod => Some(Gone::NoPod),
        Reach::Reachable(state) => matches!(
            state.own_status(),
            MemberStatus::Offline | MemberStatus::Error
        )
        .then_some(Gone::Restarted),
    }
}

/// What to change, if anything, given the group with quorum (`None` without one: a group
/// without quorum expels nobody).
pub fn decide(observed: &Observed, group: Option<&QuorumGroup>) -> Option<ExpelTimeout> {
    let group = group?;
    let configured = observed.input.expel_timeout;
    let listed: Vec<(u32, MemberStatus)> = group
        .rows
        .iter()
        .filter_map(|(o, row)| o.map(|o| (o, row.state)))
        .filter(|&(o, _)| !group.contacts.contains(&o))
        .collect();
    let gone: Vec<(u32, Gone)> = listed
        .iter()
        .filter_map(|&(o, _)| gone(observed, o).map(|g| (o, g)))
        .collect();
    let suspected = listed
        .iter()
        .any(|&(_, state)| state == MemberStatus::Unreachable);
    let current = |o: u32| observed.state(o).and_then(|s| s.expel_timeout);
    let (seconds, members): (u32, Vec<u32>) = if !gone.is_empty() {
        let members = group
            .contacts
            .iter()
            .copied()
            .filter(|&o| current(o).is_some_and(|t| t != 0))
            .collect();
        (0, members)
    } else if !suspected {
        let members = observed
            .members
            .iter()
            .map(|m| m.ordinal)
            .filter(|&o| current(o).is_some_and(|t| t != configured))
            .collect();
        (configured, members)
    } else {
        return None;
    };
    if members.is_empty() {
        return None;
    }
    Some(ExpelTimeout {
        members,
        seconds,
        gone: if seconds == configured { vec![] } else { gone },
    })
}

impl ExpelTimeout {
    /// The Event announcing an expulsion without grace (none when the timeout is set back).
    pub fn event(&self, observed: &Observed) -> Option<Event> {
        if self.gone.is_empty() {
            return None;
        }
        let gone = self
            .gone
            .iter()
            .map(|&(o, why)| format!("{} {}", observed.input.pod_name(o), why.says()))
            .collect::<Vec<_>>()
            .join("; ");
        Some(Event {
            warning: false,
            reason: "ExpelGoneMember",
            message: format!(
                "{gone}: the group expels it as soon as it is suspected, without the {} s grace \
                 (group_replication_member_expel_timeout=0 on the others until it is out)",
                observed.input.expel_timeout
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::diagnose::diagnose;
    use crate::topology::observe::{ClusterInput, GroupMemberRow, Member, MemberState, Role};
    use crate::version::ServerVersion;

    fn uuid(o: u32) -> String {
        format!("00000000-0000-0000-0000-{:012}", o + 1)
    }

    /// Three members; `view` is what the reachable members list (state per ordinal), each
    /// reachable member's expel timeout is `timeouts[o]`.
    fn observed(
        view: [MemberStatus; 3],
        reach: [Option<Reach>; 3],
        timeouts: [u32; 3],
    ) -> Observed {
        let input = ClusterInput::for_test(3);
        let rows: Vec<GroupMemberRow> = (0..3)
            .map(|o| GroupMemberRow {
                member_id: uuid(o),
                host: input.host(o),
                port: 3306,
                state: view[o as usize],
                role: Some(if o == 0 {
                    Role::Primary
                } else {
                    Role::Secondary
                }),
                version: "9.7.4".into(),
            })
            .collect();
        let members = (0..3u32)
            .map(|o| Member {
                ordinal: o,
                reach: reach[o as usize].clone().unwrap_or_else(|| {
                    Reach::Reachable(Box::new(MemberState {
                        super_read_only: o != 0,
                        expel_timeout: Some(timeouts[o as usize]),
                        ..MemberState::for_test(uuid(o), ServerVersion::new(9, 7, 4), rows.clone())
                    }))
                }),
            })
            .collect();
        Observed { input, members }
    }

    fn run(observed: &Observed) -> Option<ExpelTimeout> {
        decide(observed, diagnose(observed).group.as_ref())
    }

    use MemberStatus::{Online, Unreachable};

    fn refused() -> Option<Reach> {
        Some(Reach::Unreachable {
            reason: "refused".into(),
            silence: Silence::Refused,
        })
    }

    fn silent() -> Option<Reach> {
        Some(Reach::Unreachable {
            reason: "no answer".into(),
            silence: Silence::NoAnswer,
        })
    }

    #[test]
    fn a_killed_primary_is_expelled_at_once_even_before_the_group_suspects_it() {
        for view in [[Online; 3], [Unreachable, Online, Online]] {
            let o = observed(view, [refused(), None, None], [5; 3]);
            let change = run(&o).expect("shorten");
            assert_eq!(change.seconds, 0);
            assert_eq!(change.members, vec![1, 2]);
            assert_eq!(change.gone, vec![(0, Gone::Refused)]);
            let event = change.event(&o).expect("event");
            assert!(
                event.message.contains("db-0 refuses connections"),
                "{}",
                event.message
            );
        }
    }

    #[test]
    fn a_silent_member_keeps_its_grace() {
        let o = observed(
            [Unreachable, Online, Online],
            [silent(), None, None],
            [5; 3],
        );
        assert_eq!(run(&o), None);
    }

    #[test]
    fn a_deleted_pod_and_a_restarted_member_are_proof_too() {
        let mut o = observed(
            [Online, Online, Unreachable],
            [None, None, Some(Reach::NoPod)],
            [5; 3],
        );
        assert_eq!(run(&o).unwrap().gone, vec![(2, Gone::NoPod)]);
        // The restarted member answers, OFFLINE, while the others still list it.
        o.members[2].reach = Reach::Reachable(Box::new(MemberState {
            server_uuid: uuid(2),
            group: vec![],
            ..o.members[1].state().unwrap().clone()
        }));
        let change = run(&o).expect("shorten");
        assert_eq!(change.gone, vec![(2, Gone::Restarted)]);
        assert_eq!(change.members, vec![0, 1]);
    }

    #[test]
    fn members_already_at_zero_are_not_asked_again() {
        let o = observed(
            [Unreachable, Online, Online],
            [refused(), None, None],
            [5, 0, 0],
        );
        assert_eq!(run(&o), None);
        let o = observed(
            [Unreachable, Online, Online],
            [refused(), None, None],
            [5, 0, 5],
        );
        assert_eq!(run(&o).unwrap().members, vec![2]);
    }

    #[test]
    fn the_timeout_is_set_back_once_nobody_is_gone_or_suspected() {
        let o = observed([Online; 3], [None, None, None], [0, 0, 5]);
        let change = run(&o).expect("restore");
        assert_eq!((change.seconds, change.members.clone()), (5, vec![0, 1]));
        assert_eq!(change.event(&o), None);
        // Not while a member is still UNREACHABLE in the view, even without proof.
        let o = observed(
            [Online, Online, Unreachable],
            [None, None, silent()],
            [0, 0, 5],
        );
        assert_eq!(run(&o), None);
    }

    #[test]
    fn without_quorum_nothing_changes() {
        let o = observed(
            [Unreachable, Unreachable, Online],
            [refused(), refused(), None],
            [5; 3],
        );
        assert_eq!(run(&o), None);
    }
}
