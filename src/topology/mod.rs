//! The Group Replication topology state machine.
//!
//! One reconcile tick: [`observe`] asks every member for its state ([`ops::gather`]),
//! [`decide::decide`] (pure) diagnoses the cluster and picks at most one [`ops::Operation`],
//! plus the idempotent side steps run before it on any number of members ([`expel`] on proof,
//! the [`membership`] settings, [`admit`] clients back, [`tls_reload`] a renewed certificate); [`carry_out`] runs them through
//! a [`ops::MemberOps`] implementation ([`mysql::SqlOps`] in production, the simulator in tests). The reconcile's plan (`cluster::plan`) calls `decide`
//! between the two I/O steps. The SQL the operator issues is listed in `SQL.md` next to this file.

use std::time::Duration;

pub mod admit;
pub mod decide;
pub mod diagnose;
pub mod event;
pub mod expel;
pub mod gtid;
pub mod labels;
pub mod member;
pub mod membership;
pub mod metadata;
#[cfg(feature = "test-mutations")]
mod mutation;
pub mod mysql;
pub mod observe;
pub mod ops;
mod pick;
pub mod report;
pub mod sql;
pub(crate) mod tls_reload;
mod verdict;
mod with_quorum;
mod xcom_tls;

pub use decide::decide;
pub(crate) use decide::updated_history;
pub use event::Event;
pub use observe::{
    ActionRecord, ClonePolicy, ClusterInput, Observed, PodInfo, PodPhase, RestoreGate, Role,
};
use ops::MemberAction;
pub use ops::{MemberOps, Operation, OpsError};
pub use report::{Condition, Decision, MemberReport};

/// How long a tick waits for stragglers once the group's majority answered (see
/// [`ops::Patience`]): far above a healthy member's answer time, far below the observe deadline.
pub(crate) const STRAGGLER_WAIT: Duration = Duration::from_millis(300);

/// What every member says, waiting for stragglers only [`STRAGGLER_WAIT`] once the group's
/// majority answered.
pub async fn observe<O: MemberOps>(ops: &O, input: ClusterInput) -> Observed {
    ops::gather(ops, input, ops::Patience::Quorum(STRAGGLER_WAIT)).await
}

/// Carries out what `decide` chose: the expel-timeout change first (it shortens a failover under
/// way), the membership settings (a member joining in the operation is then admitted), the
/// members admitted to clients and those reloading their certificate, then the operation.
pub async fn carry_out<O: MemberOps>(ops: &O, observed: &Observed, decision: &Decision) -> Carried {
    let expel = decision
        .expel_timeout
        .as_ref()
        .map(|c| (MemberAction::ExpelTimeout(c.seconds), c.members.as_slice()));
    let actions = expel.into_iter().chain([
        (MemberAction::Membership, decision.membership.as_slice()),
        (MemberAction::AdmitClients, decision.admit.as_slice()),
        (MemberAction::ReloadTls, decision.reload_tls.as_slice()),
    ]);
    let mut failed = Vec::new();
    for (action, members) in actions {
        failed.extend(ops::on_each(ops, observed, members, action).await);
    }
    Carried {
        failed,
        operation: ops::execute(ops, observed, &decision.operation).await,
    }
}

/// What [`carry_out`] did.
#[derive(Debug)]
pub struct Carried {
    /// The members' actions that failed (expel timeout, membership settings, clients admitted,
    /// TLS reloaded), each
    /// with the member and the server's words; tried again at the next tick.
    pub failed: Vec<String>,
    /// The operation's result.
    pub operation: Result<(), OpsError>,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::gtid::GtidSet;
    use super::observe::{
        ActionKind, Endpoint, GroupMemberRow, Member, MemberState, MemberStatus, Reach,
    };
    use super::*;
    use crate::version::ServerVersion;

    /// Members that are all reachable and OFFLINE, except the ones listed as a group; every
    /// call is recorded; `fail` makes operations fail.
    struct Recorder {
        online: Vec<u32>,
        fail: bool,
        calls: Mutex<Vec<String>>,
        /// Members that answer only after this long (`None`: never, like a member cut off).
        slow: Vec<(u32, Option<Duration>)>,
        /// When the certificate every member serves ends.
        serves: Option<jiff::Timestamp>,
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
            match self.slow.iter().find(|(o, _)| *o == at.ordinal) {
                Some((_, Some(delay))) => tokio::time::sleep(*delay).await,
                Some((_, None)) => std::future::pending().await,
                None => {}
            }
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
                gtid_executed: GtidSet::parse("cccccccc-cccc-cccc-cccc-cccccccccccc:1-3").unwrap(),
                super_read_only: at.ordinal != 0,
                certificate_end: self.serves,
                ..MemberState::for_test(uuid(at.ordinal), ServerVersion::new(8, 4, 2), group)
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
        async fn set_expel_timeout(&self, at: &Endpoint, seconds: u32) -> Result<(), OpsError> {
            self.record(format!("expel timeout {seconds} on {}", at.host))
        }
        async fn set_membership(
            &self,
            at: &Endpoint,
            settings: &membership::Settings,
        ) -> Result<(), OpsError> {
            self.record(format!(
                "seeds {} allowlist {:?} on {}",
                settings.seeds.split(',').count(),
                settings.allowlist.as_ref().map(|a| a.split(',').count()),
                at.host
            ))
        }
        async fn admit_clients(&self, at: &Endpoint) -> Result<(), OpsError> {
            self.record(format!("admit {}", at.host))
        }
        async fn reload_tls(&self, at: &Endpoint) -> Result<(), OpsError> {
            self.record(format!("reload TLS {}", at.host))
        }
        async fn set_primary(&self, at: &Endpoint, uuid: &str) -> Result<(), OpsError> {
            self.record(format!("primary {uuid} via {}", at.host))
        }
        async fn force_members(&self, at: &Endpoint, members: &[String]) -> Result<(), OpsError> {
            self.record(format!("force {members:?} via {}", at.host))
        }
    }

    /// One tick as the reconcile runs it: observe, decide (the plan), execute, history.
    struct Tick {
        decision: Decision,
        outcome: Result<(), OpsError>,
        history: Vec<ActionRecord>,
    }

    async fn tick<O: MemberOps>(ops: &O, input: ClusterInput) -> Tick {
        let observed = observe(ops, input).await;
        let decision = decide(&observed);
        let outcome = ops::execute(ops, &observed, &decision.operation).await;
        let history = updated_history(&observed, decision.record.clone());
        Tick {
            decision,
            outcome,
            history,
        }
    }

    fn input() -> ClusterInput {
        input_of(2)
    }

    fn input_of(instances: u32) -> ClusterInput {
        ClusterInput {
            now: jiff::Timestamp::from_second(1_000).unwrap(),
            ..ClusterInput::for_test(instances)
        }
    }

    #[tokio::test]
    async fn a_tick_gathers_decides_and_runs_one_operation() {
        let ops = Recorder {
            online: vec![],
            fail: false,
            calls: Mutex::new(vec![]),
            slow: vec![],
            serves: None,
        };
        let tick = tick(&ops, input()).await;
        assert_eq!(tick.decision.operation, Operation::Bootstrap { seed: 0 });
        assert_eq!(
            *ops.calls.lock().unwrap(),
            ["bootstrap db-0.db-instances.ns.svc.cluster.local"]
        );
        assert!(tick.outcome.is_ok());
        assert!(tick.history.is_empty(), "a bootstrap is not anti-flapped");
    }

    #[tokio::test]
    async fn a_failed_join_is_reported_and_still_counts_for_anti_flapping() {
        let ops = Recorder {
            online: vec![0],
            fail: true,
            calls: Mutex::new(vec![]),
            slow: vec![],
            serves: None,
        };
        let first = tick(&ops, input()).await;
        assert_eq!(
            first.decision.operation,
            Operation::Join {
                member: 1,
                restart: false
            }
        );
        assert!(first.outcome.is_err());
        assert_eq!(first.history.len(), 1);
        assert_eq!(
            (first.history[0].ordinal, first.history[0].kind),
            (1, ActionKind::Join)
        );
        let mut again = input();
        again.history = first.history;
        let next = tick(&ops, again).await;
        assert_eq!(next.decision.operation, Operation::None);
        assert_eq!(
            ops.calls.lock().unwrap().len(),
            1,
            "no second join within the window"
        );
    }

    #[tokio::test]
    async fn a_members_action_that_fails_is_reported_with_the_member_beside_the_operation() {
        let ops = Recorder {
            online: vec![0, 1],
            fail: true,
            calls: Mutex::new(vec![]),
            slow: vec![],
            serves: None,
        };
        let observed = observe(&ops, input()).await;
        let decision = Decision {
            reload_tls: vec![1],
            ..decide(&observed)
        };
        assert_eq!(decision.operation, Operation::None);
        let carried = carry_out(&ops, &observed, &decision).await;
        assert!(carried.operation.is_ok());
        let [failure] = <[String; 1]>::try_from(carried.failed).unwrap();
        assert!(
            failure.starts_with(
                "reload TLS (the certificate in the Secret differs from the one served) on db-1: "
            ) && failure.contains("refused"),
            "{failure}"
        );
    }

    /// The membership settings are set on the members before the operation runs, so a member
    /// joining in it is admitted by them (XCOM's allowlist).
    #[tokio::test]
    async fn the_membership_settings_go_before_the_operation() {
        let ops = three(vec![0, 1], vec![]);
        let mut xcom = input_of(3);
        xcom.stack = crate::api::cluster::CommunicationStack::XCOM;
        let observed = observe(&ops, xcom).await;
        let decision = Decision {
            membership: vec![0, 1],
            operation: Operation::Join {
                member: 2,
                restart: false,
            },
            ..decide(&observed)
        };
        let carried = carry_out(&ops, &observed, &decision).await;
        assert!(carried.operation.is_ok() && carried.failed.is_empty());
        let host = ".db-instances.ns.svc.cluster.local";
        assert_eq!(
            *ops.calls.lock().unwrap(),
            [
                format!("seeds 3 allowlist Some(3) on db-0{host}"),
                format!("seeds 3 allowlist Some(3) on db-1{host}"),
                format!("join db-2{host} false"),
            ]
        );
    }

    /// A renewal on XCOM: the member's TLS reloaded and checked, then its Group Replication
    /// restarted; when mysqld still serves another certificate (the kubelet has not written the
    /// files yet), Group Replication is left running.
    #[tokio::test]
    async fn an_xcom_renewal_restarts_group_replication_only_once_the_files_are_served() {
        let want: jiff::Timestamp = "2027-04-01T00:00:00Z".parse().unwrap();
        let renewal = Operation::RenewXcomTls {
            member: 1,
            certificate_end: want,
        };
        for (serves, calls) in [
            (
                want,
                &["reload TLS db-1", "leave db-1", "join db-1 false"][..],
            ),
            (
                "2027-01-01T00:00:00Z".parse().unwrap(),
                &["reload TLS db-1"],
            ),
        ] {
            let ops = Recorder {
                serves: Some(serves),
                ..three(vec![0, 1], vec![])
            };
            let observed = observe(&ops, input()).await;
            let outcome = ops::execute(&ops, &observed, &renewal).await;
            let host = ".db-instances.ns.svc.cluster.local";
            let made: Vec<String> = ops
                .calls
                .lock()
                .unwrap()
                .iter()
                .map(|c| c.replace(host, ""))
                .collect();
            assert_eq!(made, calls);
            assert_eq!(outcome.is_ok(), serves == want, "{outcome:?}");
        }
    }

    fn three(online: Vec<u32>, slow: Vec<(u32, Option<Duration>)>) -> Recorder {
        Recorder {
            online,
            fail: false,
            calls: Mutex::new(vec![]),
            slow,
            serves: None,
        }
    }

    #[tokio::test]
    async fn a_member_that_never_answers_does_not_hold_the_tick_once_the_majority_answered() {
        let ops = three(vec![0, 1, 2], vec![(2, None)]);
        let gather = ops::gather(
            &ops,
            input_of(3),
            ops::Patience::Quorum(Duration::from_millis(50)),
        );
        let observed = tokio::time::timeout(Duration::from_secs(2), gather)
            .await
            .expect("the silent member held the gather");
        assert!(observed.state(0).is_some() && observed.state(1).is_some());
        let silent = &observed.members[2];
        assert_eq!(silent.ordinal, 2);
        assert!(
            matches!(&silent.reach, Reach::Unreachable { reason, .. } if reason.contains("majority")),
            "{silent:?}"
        );
        // The rest of the tick goes on with it unknown: the group still has its primary.
        let decision = decide(&observed);
        assert_eq!(decision.labels[&0], Some(Role::Primary));
    }

    #[tokio::test]
    async fn without_a_majority_every_member_is_waited_for() {
        // Only member 0 answers at once; 1 answers late, 2 never: the wait goes past the limit
        // until 1 makes the majority, and only then is 2 given up on.
        let slow = Duration::from_millis(150);
        let ops = three(vec![0, 1, 2], vec![(1, Some(slow)), (2, None)]);
        let gather = ops::gather(
            &ops,
            input_of(3),
            ops::Patience::Quorum(Duration::from_millis(20)),
        );
        let observed = tokio::time::timeout(Duration::from_secs(2), gather)
            .await
            .expect("gather returned once the majority answered");
        assert!(
            observed.state(0).is_some() && observed.state(1).is_some(),
            "{observed:?}"
        );
        assert!(observed.state(2).is_none());
        // Everyone: even a majority does not cut the wait short.
        let ops = three(vec![0, 1, 2], vec![(2, Some(slow))]);
        let observed = ops::gather(&ops, input_of(3), ops::Patience::Everyone).await;
        assert!(observed.state(2).is_some());
    }

    #[test]
    fn a_majority_is_counted_in_the_answering_members_view() {
        let input = input_of(3);
        let ops = three(vec![0, 1, 2], vec![]);
        let member = |o: u32| Member {
            ordinal: o,
            reach: Reach::Reachable(Box::new(
                futures::executor::block_on(ops.observe(&input.endpoint(o))).unwrap(),
            )),
        };
        assert!(!ops::majority_answered(&input, &[member(0)]));
        assert!(ops::majority_answered(&input, &[member(0), member(2)]));
        // OFFLINE members do not make a majority of anything.
        let offline = three(vec![], vec![]);
        let alone = |o: u32| Member {
            ordinal: o,
            reach: Reach::Reachable(Box::new(
                futures::executor::block_on(offline.observe(&input.endpoint(o))).unwrap(),
            )),
        };
        assert!(!ops::majority_answered(
            &input,
            &[alone(0), alone(1), alone(2)]
        ));
        let unreachable = Member {
            ordinal: 1,
            reach: Reach::Unreachable {
                reason: "x".into(),
                silence: crate::topology::observe::Silence::NoAnswer,
            },
        };
        assert!(!ops::majority_answered(&input, &[member(0), unreachable]));
    }
}
