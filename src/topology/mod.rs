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
pub mod status;

pub use decide::{decide, updated_history};
pub use observe::{
    ActionRecord, ClonePolicy, ClusterInput, Observed, PodInfo, PodPhase, RestoreGate, Role,
};
pub use ops::{MemberOps, Operation, OpsError};
pub use status::{Condition, Decision, Event, MemberReport};

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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::gtid::GtidSet;
    use super::observe::{ActionKind, Endpoint, GroupMemberRow, MemberState, MemberStatus};
    use super::sql::{Capabilities, ServerVersion};
    use super::*;

    /// Members that are all reachable and OFFLINE, except the ones listed as a group; every
    /// call is recorded; `fail` makes operations fail.
    struct Recorder {
        online: Vec<u32>,
        fail: bool,
        calls: Mutex<Vec<String>>,
    }

    fn uuid(o: u32) -> String {
        format!("00000000-0000-0000-0000-{:012}", o + 1)
    }

    impl Recorder {
        fn record(&self, call: String) -> Result<(), OpsError> {
            self.calls.lock().unwrap().push(call);
            if self.fail {
                Err(OpsError::Statement {
                    endpoint: "x".into(),
                    what: "START GROUP_REPLICATION".into(),
                    message: "refused".into(),
                })
            } else {
                Ok(())
            }
        }
    }

    impl MemberOps for Recorder {
        async fn observe(&self, at: &Endpoint) -> Result<MemberState, OpsError> {
            let row = |o: u32, host: &str, state| GroupMemberRow {
                member_id: uuid(o),
                host: host.replace(&format!("-{}.", at.ordinal), &format!("-{o}.")),
                port: 3306,
                state,
                role: Some(if o == 0 {
                    Role::Primary
                } else {
                    Role::Secondary
                }),
                version: "8.4.2".into(),
            };
            let group = if self.online.contains(&at.ordinal) {
                self.online
                    .iter()
                    .map(|&o| row(o, &at.host, MemberStatus::Online))
                    .collect()
            } else {
                vec![row(at.ordinal, &at.host, MemberStatus::Offline)]
            };
            Ok(MemberState {
                server_uuid: uuid(at.ordinal),
                capabilities: Capabilities {
                    version: ServerVersion::new(8, 4, 2),
                    group_replication: true,
                    clone: true,
                    communication_stack: true,
                },
                gtid_executed: GtidSet::parse("cccccccc-cccc-cccc-cccc-cccccccccccc:1-3").unwrap(),
                gtid_received: GtidSet::new(),
                super_read_only: at.ordinal != 0,
                group,
                applier_queue: 0,
                cloning: false,
            })
        }
        async fn bootstrap(&self, at: &Endpoint) -> Result<(), OpsError> {
            self.record(format!("bootstrap {}", at.host))
        }
        async fn join(&self, at: &Endpoint, restart: bool) -> Result<(), OpsError> {
            self.record(format!("join {} {restart}", at.host))
        }
        async fn clone_from(&self, at: &Endpoint, donor: &Endpoint) -> Result<(), OpsError> {
            self.record(format!("clone {} from {}", at.host, donor.host))
        }
        async fn leave(&self, at: &Endpoint) -> Result<(), OpsError> {
            self.record(format!("leave {}", at.host))
        }
        async fn set_primary(&self, at: &Endpoint, uuid: &str) -> Result<(), OpsError> {
            self.record(format!("primary {uuid} via {}", at.host))
        }
        async fn force_members(&self, at: &Endpoint, members: &[String]) -> Result<(), OpsError> {
            self.record(format!("force {members:?} via {}", at.host))
        }
    }

    fn input() -> ClusterInput {
        ClusterInput {
            name: "db".into(),
            namespace: "ns".into(),
            cluster_domain: "cluster.local".into(),
            group_port: 3306,
            instances: 2,
            pods: (0..2)
                .map(|ordinal| PodInfo {
                    ordinal,
                    phase: PodPhase::Running,
                    ready: true,
                    deleting: false,
                    update_pending: false,
                    role_label: None,
                })
                .collect(),
            switchover_to: None,
            force_quorum_from: None,
            clone_policy: ClonePolicy::EmptyOnly,
            history: vec![],
            flap_window: Duration::from_secs(30),
            now: jiff::Timestamp::from_second(1_000).unwrap(),
            restore: RestoreGate::Open,
        }
    }

    #[test]
    fn a_tick_gathers_decides_and_runs_one_operation() {
        let ops = Recorder {
            online: vec![],
            fail: false,
            calls: Mutex::new(vec![]),
        };
        let tick = futures::executor::block_on(tick(&ops, input()));
        assert_eq!(tick.decision.operation, Operation::Bootstrap { seed: 0 });
        assert_eq!(
            *ops.calls.lock().unwrap(),
            ["bootstrap db-0.db-instances.ns.svc.cluster.local"]
        );
        assert!(tick.outcome.is_ok());
        assert!(tick.history.is_empty(), "a bootstrap is not anti-flapped");
    }

    #[test]
    fn a_failed_join_is_reported_and_still_counts_for_anti_flapping() {
        let ops = Recorder {
            online: vec![0],
            fail: true,
            calls: Mutex::new(vec![]),
        };
        let tick = futures::executor::block_on(tick(&ops, input()));
        assert_eq!(
            tick.decision.operation,
            Operation::Join {
                member: 1,
                restart: false
            }
        );
        assert!(tick.outcome.is_err());
        assert_eq!(tick.history.len(), 1);
        assert_eq!(
            (tick.history[0].ordinal, tick.history[0].kind),
            (1, ActionKind::Join)
        );
        let mut again = input();
        again.history = tick.history;
        let next = futures::executor::block_on(super::tick(&ops, again));
        assert_eq!(next.decision.operation, Operation::None);
        assert_eq!(
            ops.calls.lock().unwrap().len(),
            1,
            "no second join within the window"
        );
    }
}
