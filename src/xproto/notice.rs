//! Group Replication notices: which ones to enable and how a notice frame becomes a typed event.

use prost::Message;

use super::messages::{
    Any, GroupReplicationChange, GroupReplicationStateChanged, MessageError, NoticeFrame,
    NoticeType, StmtExecute, admin_command,
};

/// The notice names a session subscribes to with `enable_notices` (all off by default).
pub const GROUP_REPLICATION_NOTICES: [&str; 4] = [
    "group_replication/membership/quorum_loss",
    "group_replication/membership/view",
    "group_replication/status/role_change",
    "group_replication/status/state_change",
];

/// What changed in the group, as reported by `GroupReplicationStateChanged.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrEventKind {
    QuorumLoss,
    ViewChange,
    RoleChange,
    StateChange,
    /// A change type this client does not know; still a reason to look at the group.
    Unknown(u32),
}

impl From<u32> for GrEventKind {
    fn from(value: u32) -> Self {
        const QUORUM: u32 = GroupReplicationChange::MembershipQuorumLoss as u32;
        const VIEW: u32 = GroupReplicationChange::MembershipViewChange as u32;
        const ROLE: u32 = GroupReplicationChange::MemberRoleChange as u32;
        const STATE: u32 = GroupReplicationChange::MemberStateChange as u32;
        match value {
            QUORUM => Self::QuorumLoss,
            VIEW => Self::ViewChange,
            ROLE => Self::RoleChange,
            STATE => Self::StateChange,
            other => Self::Unknown(other),
        }
    }
}

/// A Group Replication state change seen by one member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GrEvent {
    pub kind: GrEventKind,
    /// The group view id, when the server sent one (view changes carry the new view).
    pub view_id: Option<String>,
}

/// The `enable_notices` admin command for the four Group Replication notices.
pub fn enable_group_replication_notices() -> StmtExecute {
    let names = GROUP_REPLICATION_NOTICES
        .iter()
        .map(|name| Any::string(name))
        .collect();
    admin_command(
        "enable_notices",
        vec![Any::object(vec![("notice", Any::array(names))])],
    )
}

/// Turns a notice into a Group Replication event; other notice types give `None`.
pub fn group_replication_event(frame: &NoticeFrame) -> Result<Option<GrEvent>, MessageError> {
    if frame.r#type != NoticeType::GroupReplicationStateChanged as u32 {
        return Ok(None);
    }
    let changed = GroupReplicationStateChanged::decode(frame.payload()).map_err(|source| {
        MessageError::Decode {
            msg_type: 11,
            name: "GroupReplicationStateChanged",
            source,
        }
    })?;
    Ok(Some(GrEvent {
        kind: changed.r#type.into(),
        view_id: changed.view_id.filter(|v| !v.is_empty()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xproto::messages::ClientMessage;

    fn gr_frame(kind: u32, view_id: Option<&str>) -> NoticeFrame {
        NoticeFrame {
            r#type: NoticeType::GroupReplicationStateChanged as u32,
            scope: None,
            payload: Some(
                GroupReplicationStateChanged {
                    r#type: kind,
                    view_id: view_id.map(str::to_owned),
                }
                .encode_to_vec(),
            ),
        }
    }

    #[test]
    fn every_change_type_maps_to_its_kind() {
        let cases = [
            (1, GrEventKind::QuorumLoss),
            (2, GrEventKind::ViewChange),
            (3, GrEventKind::RoleChange),
            (4, GrEventKind::StateChange),
            (9, GrEventKind::Unknown(9)),
        ];
        for (raw, kind) in cases {
            let event = group_replication_event(&gr_frame(raw, Some("1:2")))
                .unwrap()
                .unwrap();
            assert_eq!(event.kind, kind);
            assert_eq!(event.view_id.as_deref(), Some("1:2"));
        }
    }

    #[test]
    fn empty_view_id_is_none() {
        let event = group_replication_event(&gr_frame(3, Some("")))
            .unwrap()
            .unwrap();
        assert_eq!(event.view_id, None);
    }

    #[test]
    fn other_notices_are_skipped() {
        for kind in [
            NoticeType::Warning,
            NoticeType::SessionVariableChanged,
            NoticeType::SessionStateChanged,
            NoticeType::ServerHello,
        ] {
            let frame = NoticeFrame {
                r#type: kind as u32,
                scope: None,
                payload: Some(vec![0xFF, 0xFF]),
            };
            assert_eq!(group_replication_event(&frame).unwrap(), None);
        }
    }

    #[test]
    fn malformed_payload_is_an_error() {
        let frame = NoticeFrame {
            r#type: NoticeType::GroupReplicationStateChanged as u32,
            scope: None,
            payload: Some(vec![0x12, 0x09]),
        };
        assert!(group_replication_event(&frame).is_err());
    }

    #[test]
    fn enable_notices_lists_the_four_names_and_survives_the_wire() {
        let sent = ClientMessage::StmtExecute(enable_group_replication_notices());
        let ClientMessage::StmtExecute(stmt) = ClientMessage::decode(&sent.to_frame()).unwrap()
        else {
            panic!("wrong variant")
        };
        assert_eq!(ClientMessage::StmtExecute(stmt.clone()), sent);
        assert_eq!(stmt.namespace(), "mysqlx");
        assert_eq!(stmt.stmt, b"enable_notices");
        let names: Vec<&str> = stmt.args[0]
            .get("notice")
            .and_then(Any::as_array)
            .unwrap()
            .iter()
            .filter_map(Any::as_str)
            .collect();
        assert_eq!(names, GROUP_REPLICATION_NOTICES);
    }
}
