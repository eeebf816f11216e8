//! The Events the operator records on a `MySQLCluster`, one variant per reason: each knows its
//! type (Normal or Warning) and the action it reports, so a call site names what happened and
//! nothing else. The reasons of validation and of the topology are those of the conditions they
//! set, chosen where they are decided, and are carried through as they are.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tracing::warn;

/// The reason of an object this operator version cannot read, and of a spec without the
/// metadata validation needs.
pub(crate) const INVALID_OBJECT: &str = "InvalidObject";

/// Why an Event is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The stored object cannot be read by this operator version.
    InvalidObject,
    /// The spec was rejected by validation (the reason names what is wrong).
    InvalidSpec(&'static str),
    /// The spec runs with a caveat validation names (end-of-life version, refused change...).
    SpecWarning(&'static str),
    /// The operator created credentials Secrets.
    CredentialsCreated,
    /// Objects were created or updated by server-side apply.
    Applied,
    /// Server-side apply failed.
    ApplyFailed,
    /// Objects the spec no longer needs were deleted.
    Pruned,
    /// A member pod is replaced to take the new spec.
    RollingUpdate,
    /// The topology's operation failed.
    OperationFailed,
    /// An action on one member beside the operation failed (expel timeout, clients admitted,
    /// TLS reloaded): the member and the server's words.
    MemberActionFailed,
    /// What the topology announces (its reason is that of the condition it sets).
    Topology { reason: &'static str, warning: bool },
    /// The restore Job was created.
    RestoreStarted,
    /// The backup was restored into the first member.
    Restored,
    /// A schedule created its Backup.
    BackupScheduled,
    /// Retention deleted old Backups.
    BackupsExpired,
    /// A schedule's expression cannot be used.
    InvalidSchedule,
    /// The InnoDB Cluster metadata was created or corrected.
    MetadataUpdated,
    /// The InnoDB Cluster metadata could not be kept.
    MetadataFailed,
}

impl Reason {
    /// The CamelCase reason of the Event.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Reason::InvalidObject => INVALID_OBJECT,
            Reason::InvalidSpec(reason) | Reason::SpecWarning(reason) => reason,
            Reason::CredentialsCreated => "CredentialsCreated",
            Reason::Applied => "Applied",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::Pruned => "Pruned",
            Reason::RollingUpdate => "RollingUpdate",
            Reason::OperationFailed => "OperationFailed",
            Reason::MemberActionFailed => "MemberActionFailed",
            Reason::Topology { reason, .. } => reason,
            Reason::RestoreStarted => "RestoreStarted",
            Reason::Restored => "Restored",
            Reason::BackupScheduled => "BackupScheduled",
            Reason::BackupsExpired => "BackupsExpired",
            Reason::InvalidSchedule => "InvalidSchedule",
            Reason::MetadataUpdated => "MetadataUpdated",
            Reason::MetadataFailed => "MetadataFailed",
        }
    }

    /// Normal, or Warning when someone should look.
    pub(crate) fn type_(&self) -> EventType {
        let warning = match self {
            Reason::InvalidObject
            | Reason::InvalidSpec(_)
            | Reason::SpecWarning(_)
            | Reason::ApplyFailed
            | Reason::OperationFailed
            | Reason::MemberActionFailed
            | Reason::InvalidSchedule
            | Reason::MetadataFailed => true,
            Reason::Topology { warning, .. } => *warning,
            Reason::CredentialsCreated
            | Reason::Applied
            | Reason::Pruned
            | Reason::RollingUpdate
            | Reason::RestoreStarted
            | Reason::Restored
            | Reason::BackupScheduled
            | Reason::BackupsExpired
            | Reason::MetadataUpdated => false,
        };
        if warning {
            EventType::Warning
        } else {
            EventType::Normal
        }
    }

    /// What the operator was doing.
    pub(crate) fn action(&self) -> &'static str {
        match self {
            Reason::InvalidObject => "Read",
            Reason::InvalidSpec(_) | Reason::SpecWarning(_) => "Validate",
            Reason::CredentialsCreated | Reason::BackupScheduled => "Create",
            Reason::Applied | Reason::ApplyFailed => "Apply",
            Reason::Pruned | Reason::BackupsExpired => "Delete",
            Reason::RollingUpdate => "Update",
            Reason::OperationFailed | Reason::MemberActionFailed | Reason::Topology { .. } => {
                "Topology"
            }
            Reason::RestoreStarted | Reason::Restored => "Restore",
            Reason::InvalidSchedule => "Schedule",
            Reason::MetadataUpdated | Reason::MetadataFailed => "Metadata",
        }
    }
}

/// Records an Event on `reference` (its note cut to the 1,000 characters the API keeps); a
/// failure is logged, never fatal.
pub(crate) async fn publish(
    recorder: &Recorder,
    reference: &ObjectReference,
    reason: Reason,
    note: &str,
) {
    let event = Event {
        type_: reason.type_(),
        reason: reason.as_str().to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: reason.action().to_string(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        warn!(error = %e, reason = reason.as_str(), "could not publish an Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_what_someone_should_look_at() {
        assert_eq!(Reason::ApplyFailed.type_(), EventType::Warning);
        assert_eq!(
            Reason::InvalidSpec("InvalidVersion").as_str(),
            "InvalidVersion"
        );
        assert_eq!(Reason::InvalidSpec("InvalidVersion").action(), "Validate");
        let warning = Reason::SpecWarning("EndOfLifeVersion");
        assert_eq!(
            (warning.type_(), warning.action()),
            (EventType::Warning, "Validate")
        );
        assert_eq!(Reason::Applied.type_(), EventType::Normal);
        let topology = |warning| Reason::Topology {
            reason: "QuorumLost",
            warning,
        };
        assert_eq!(topology(true).type_(), EventType::Warning);
        assert_eq!(topology(false).type_(), EventType::Normal);
        assert_eq!(topology(true).as_str(), "QuorumLost");
    }
}
