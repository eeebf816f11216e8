//! The Group Replication topology state machine.
//!
//! One reconcile tick: [`ops::gather`] asks every member for its state, [`decide::decide`] (pure)
//! diagnoses the cluster and picks at most one [`ops::Operation`], [`ops::execute`] runs it through
//! a [`ops::MemberOps`] implementation ([`mysql::SqlOps`] in production, the simulator in tests).
//! [`tick`] does all three. The SQL the operator issues is listed in `SQL.md` next to this file.

pub mod decide;
pub mod diagnose;
pub mod gtid;
pub mod labels;
pub mod mysql;
pub mod observe;
pub mod ops;
pub mod sql;

pub use decide::{Condition, Decision, Event, MemberReport, decide, updated_history};
pub use observe::{ActionRecord, ClonePolicy, ClusterInput, Observed, PodInfo, PodPhase, Role};
pub use ops::{MemberOps, Operation, OpsError};

/// What one tick observed, decided and how the operation went.
#[derive(Debug)]
pub struct Tick {
    pub observed: Observed,
    pub decision: Decision,
    /// The operation's outcome (`Ok` for [`Operation::None`]).
    pub outcome: Result<(), OpsError>,
    /// The history to store in the status: pruned, plus this tick's record (attempts count,
    /// whether or not they succeeded).
    pub history: Vec<ActionRecord>,
}

/// One reconcile tick of the topology.
pub async fn tick<O: MemberOps>(ops: &O, input: ClusterInput) -> Tick {
    let observed = ops::gather(ops, input).await;
    let decision = decide(&observed);
    let outcome = ops::execute(ops, &observed, &decision.operation).await;
    if let Err(e) = &outcome {
        tracing::warn!(cluster = %observed.input.name, operation = decision.operation.name(), error = %e, "topology operation failed");
    }
    // A failed attempt counts too: anti-flapping must also stop hammering a member.
    let history = updated_history(&observed, decision.record.clone());
    Tick {
        observed,
        decision,
        outcome,
        history,
    }
}
