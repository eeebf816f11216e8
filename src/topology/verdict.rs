//! What a rule of the state machine concludes: at most one operation, or why none, and whether
//! the operator needs the user. [`super::report::assemble`] turns it into a `Decision`.

use super::observe::ActionKind;
use super::ops::Operation;

/// A member cannot be brought back without the user (the message says which and why).
pub(super) const MEMBER_NEEDS_ATTENTION: &str = "MemberNeedsAttention";
/// The force-quorum annotation names members that cannot form the new group.
pub(super) const FORCE_QUORUM_INVALID: &str = "ForceQuorumInvalid";

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
    pub(super) fn wait(reason: &'static str, message: String) -> Self {
        Verdict {
            operation: Operation::None,
            record: None,
            reason,
            message,
            needs_user: false,
        }
    }

    pub(super) fn blocked(reason: &'static str, message: String) -> Self {
        Verdict {
            needs_user: true,
            ..Verdict::wait(reason, message)
        }
    }

    pub(super) fn run(
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
