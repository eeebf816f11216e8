//! From what the members said to what state the cluster is in. Pure.

use super::gtid::GtidSet;
use super::observe::{GroupMemberRow, MemberStatus, Observed, Reach, Role};
use crate::version::ServerVersion;

/// The cluster's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// A group with quorum holds every desired member ONLINE, and nothing else.
    Online,
    /// A group with quorum exists; some desired member is not ONLINE in it, or an extra one is.
    Partial,
    /// Some member is in a group, but no reachable member's group has quorum.
    NoQuorum,
    /// Two groups each claim quorum.
    SplitBrain,
    /// No reachable member is in a group.
    Offline,
}

/// The group that has quorum, as its members report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumGroup {
    /// Rows of the view, with the ordinal each row's host belongs to.
    pub(crate) rows: Vec<(Option<u32>, GroupMemberRow)>,
    /// The ONLINE primary.
    pub(crate) primary: Option<u32>,
    /// Reachable ONLINE members the operator can send group-wide statements through
    /// (the primary first).
    pub(crate) contacts: Vec<u32>,
    /// Every transaction the group's reachable ONLINE members hold.
    pub(crate) transactions: GtidSet,
}

impl QuorumGroup {
    pub fn row(&self, ordinal: u32) -> Option<&GroupMemberRow> {
        self.rows
            .iter()
            .find(|(o, _)| *o == Some(ordinal))
            .map(|(_, r)| r)
    }

    /// The member's state in the view (`None` when not in it).
    pub fn status(&self, ordinal: u32) -> Option<MemberStatus> {
        self.row(ordinal).map(|r| r.state)
    }

    pub(crate) fn is_online(&self, ordinal: u32) -> bool {
        self.status(ordinal) == Some(MemberStatus::Online)
    }

    /// Whether MySQL changes the primary now: `group_replication_set_as_primary` refuses while a
    /// member of the view is UNREACHABLE ("All members in the group must be reachable") or
    /// RECOVERING ("A member is joining the group"), ERROR 1123 on 9.7.4.
    pub(crate) fn can_change_primary(&self) -> bool {
        self.rows.iter().all(|(_, r)| {
            !matches!(
                r.state,
                MemberStatus::Unreachable | MemberStatus::Recovering
            )
        })
    }

    /// Whether the operator read every ONLINE member of the view (so `transactions` is the
    /// group's whole set).
    pub(crate) fn complete(&self) -> bool {
        self.rows
            .iter()
            .filter(|(_, r)| r.state == MemberStatus::Online)
            .all(|(o, _)| o.is_some_and(|o| self.contacts.contains(&o)))
    }

    /// The member's MySQL version as the view reports it (`MEMBER_VERSION`).
    pub fn version(&self, ordinal: u32) -> Option<ServerVersion> {
        ServerVersion::parse_server(&self.row(ordinal)?.version).ok()
    }

    /// Whether `ordinal` may be the primary: during an upgrade MySQL elects, and
    /// `group_replication_set_as_primary` accepts, only a member of the lowest version ONLINE.
    pub(crate) fn can_lead(&self, ordinal: u32) -> bool {
        let lowest = self
            .rows
            .iter()
            .filter(|(_, r)| r.state == MemberStatus::Online)
            .filter_map(|(_, r)| ServerVersion::parse_server(&r.version).ok())
            .min();
        match (self.version(ordinal), lowest) {
            (Some(v), Some(lowest)) => v <= lowest,
            _ => true,
        }
    }

    /// Ordinals the view lists as ONLINE or RECOVERING.
    pub(crate) fn participants(&self) -> Vec<u32> {
        self.rows
            .iter()
            .filter(|(_, r)| r.state.in_group())
            .filter_map(|(o, _)| *o)
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub health: Health,
    /// Some ordinal could not be asked: what it would have said is unknown.
    pub(crate) uncertain: bool,
    pub(crate) group: Option<QuorumGroup>,
    /// Ordinals that could not be asked.
    pub unreachable: Vec<u32>,
    /// Reachable members that are in a group (as far as they know) without quorum.
    pub(crate) stranded: Vec<u32>,
}

/// Diagnoses the observation.
/// Long (101 lines) on purpose: one pass over the members' views, building the diagnosis the rules
/// read.
pub fn diagnose(observed: &Observed) -> Diagnosis {
    let input = &observed.input;
    let unreachable: Vec<u32> = observed
        .members
        .iter()
        .filter(|m| !matches!(m.reach, Reach::Reachable(_)))
        .map(|m| m.ordinal)
        .collect();
    let reporters: Vec<u32> = observed
        .members
        .iter()
        .filter(|m| m.state().is_some_and(|s| s.has_quorum()))
        .map(|m| m.ordinal)
        .collect();
    let stranded: Vec<u32> = observed
        .members
        .iter()
        .filter(|m| {
            m.state()
                .is_some_and(|s| s.own_status().in_group() && !s.has_quorum())
        })
        .map(|m| m.ordinal)
        .collect();
    let sees = |a: u32, b: u32| {
        observed.state(a).is_some_and(|s| {
            s.group
                .iter()
                .any(|r| input.ordinal_of_host(&r.host) == Some(b) && r.state.in_group())
        })
    };
    let split = reporters.iter().enumerate().any(|(i, &a)| {
        reporters[i + 1..]
            .iter()
            .any(|&b| !sees(a, b) && !sees(b, a))
    });
    let uncertain = !unreachable.is_empty();
    if split {
        return Diagnosis {
            health: Health::SplitBrain,
            uncertain,
            group: None,
            unreachable,
            stranded,
        };
    }
    let group = reporters.first().map(|&reporter| {
        let view = &observed
            .state(reporter)
            .expect("reporter is reachable")
            .group;
        let rows: Vec<(Option<u32>, GroupMemberRow)> = view
            .iter()
            .map(|r| (input.ordinal_of_host(&r.host), r.clone()))
            .collect();
        let online_reachable = |o: u32| {
            rows.iter().any(|(ro, r)| {
                *ro == Some(o) && r.state == MemberStatus::Online && observed.state(o).is_some()
            })
        };
        let primary = rows
            .iter()
            .find(|(_, r)| r.state == MemberStatus::Online && r.role == Some(Role::Primary))
            .and_then(|(o, _)| *o);
        let mut contacts: Vec<u32> = rows
            .iter()
            .filter_map(|(o, _)| *o)
            .filter(|&o| online_reachable(o))
            .collect();
        contacts.sort_by_key(|&o| (Some(o) != primary, o));
        let transactions = contacts
            .iter()
            .filter_map(|&o| observed.state(o))
            .fold(GtidSet::new(), |acc, s| acc.union(&s.transactions()));
        QuorumGroup {
            rows,
            primary,
            contacts,
            transactions,
        }
    });
    let health = match &group {
        Some(g) => {
            let all_online = (0..input.instances).all(|o| g.is_online(o));
            let extra = g.participants().iter().any(|&o| o >= input.instances);
            if all_online && !extra {
                Health::Online
            } else {
                Health::Partial
            }
        }
        None if !stranded.is_empty() => Health::NoQuorum,
        None => Health::Offline,
    };
    Diagnosis {
        health,
        uncertain,
        group,
        unreachable,
        stranded,
    }
}
