//! The state machine's rules, each from a cluster fixture through `decide`: the fixture here,
//! the tests by the group's situation in the files below.

mod clients;
mod first_start;
mod running;
mod xcom_tls;

use std::time::Duration;

use super::*;
use crate::topology::ClonePolicy;
use crate::topology::gtid::GtidSet;
use crate::topology::observe::Role;
use crate::topology::observe::{
    ClusterInput, GroupMemberRow, Member, MemberState, MemberStatus as S, Silence,
};
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
                reach: Reach::Reachable(Box::new(MemberState::for_test(
                    uuid(o),
                    ServerVersion::new(8, 4, 2),
                    vec![row(&input, o, S::Offline, None)],
                ))),
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
            reason: "timeout".into(),
            silence: Silence::NoAnswer,
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
            if st != S::Unreachable && matches!(self.members[o as usize].reach, Reach::Reachable(_))
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

    /// Member `o`'s state changed by `f`.
    fn member(mut self, o: u32, f: impl FnOnce(&mut MemberState)) -> Fx {
        f(self.state(o));
        self
    }

    fn with(mut self, f: impl FnOnce(&mut ClusterInput)) -> Fx {
        f(&mut self.input);
        self
    }

    fn observed(self) -> Observed {
        Observed {
            input: self.input,
            members: self.members,
        }
    }

    fn decide(self) -> Decision {
        decide(&self.observed())
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

/// `member` joins by distributed recovery (no restart).
fn join(member: u32) -> Operation {
    Operation::Join {
        member,
        restart: false,
    }
}

/// `member` is cloned from `donor`.
fn clone_from(member: u32, donor: u32) -> Operation {
    Operation::Clone { member, donor }
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
