//! Test builds only (feature `test-mutations`): a broken rule chosen by the environment
//! variable `INNODB_OPERATOR_MUTATION`, so that a test tier can show it catches the breakage
//! (as `e2e/simulation` does with its own broken `decide`s).
//!
//! `bootstrap-despite-unreachable`: when no member is in a group and the real rule waits,
//! bootstrap at once from the reachable member holding the most transactions, without waiting
//! for the members that do not answer (which may hold more). The operator-level tier fails on
//! it (`faults::least_complete_back_first`, the group started on the member that lacks rows):
//!
//! ```text
//! INNODB_OPERATOR_MUTATION=bootstrap-despite-unreachable \
//!   cargo test --features test-mutations --test operator-mysql97 -- --test-threads=1 member_faults
//! ```

use super::observe::Observed;
use super::ops::Operation;
use super::report::Decision;

const VARIABLE: &str = "INNODB_OPERATOR_MUTATION";

/// `decision`, broken as the environment asks.
pub(super) fn apply(observed: &Observed, mut decision: Decision) -> Decision {
    if std::env::var(VARIABLE).as_deref() != Ok("bootstrap-despite-unreachable")
        || decision.operation != Operation::None
    {
        return decision;
    }
    let in_group = observed
        .members
        .iter()
        .any(|m| m.state().is_some_and(|s| s.own_status().in_group()));
    let most = observed
        .members
        .iter()
        .filter_map(|m| Some((m.state()?.transactions().count(), m.ordinal)))
        .max();
    if let (false, Some((_, seed))) = (in_group, most) {
        decision.operation = Operation::Bootstrap { seed };
    }
    decision
}
