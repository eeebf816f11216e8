//! What Group Replication says of a member, as its SQL reads it: the role and the state of one
//! row of `performance_schema.replication_group_members`. Both the SQL (which parses the rows)
//! and the observation (which holds them) use these, so they live apart from either.

use serde::{Deserialize, Serialize};

use crate::api::cluster::ReportedState;

/// A member's role as the Services see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

impl Role {
    /// The value of [`ROLE_LABEL`](crate::objects::names::ROLE_LABEL).
    pub fn label_value(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Secondary => "secondary",
        }
    }

    /// The role a [`ROLE_LABEL`](crate::objects::names::ROLE_LABEL) value names.
    pub(crate) fn from_label(value: &str) -> Option<Role> {
        [Role::Primary, Role::Secondary]
            .into_iter()
            .find(|r| r.label_value() == value)
    }
}

/// `MEMBER_STATE` of `performance_schema.replication_group_members`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    Online,
    Recovering,
    Offline,
    Error,
    Unreachable,
}

impl MemberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Online => "ONLINE",
            MemberStatus::Recovering => "RECOVERING",
            MemberStatus::Offline => "OFFLINE",
            MemberStatus::Error => "ERROR",
            MemberStatus::Unreachable => "UNREACHABLE",
        }
    }

    /// Whether the member takes part in a group (as far as it knows).
    pub(crate) fn in_group(self) -> bool {
        ReportedState::from(self).in_group()
    }
}

impl From<MemberStatus> for ReportedState {
    fn from(status: MemberStatus) -> ReportedState {
        match status {
            MemberStatus::Online => ReportedState::Online,
            MemberStatus::Recovering => ReportedState::Recovering,
            MemberStatus::Offline => ReportedState::Offline,
            MemberStatus::Error => ReportedState::Error,
            MemberStatus::Unreachable => ReportedState::Unreachable,
        }
    }
}

/// One row of `performance_schema.replication_group_members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberRow {
    pub member_id: String,
    pub host: String,
    pub port: u16,
    pub state: MemberStatus,
    /// `None` when the column is empty (member not in a group).
    pub role: Option<Role>,
    pub version: String,
}
