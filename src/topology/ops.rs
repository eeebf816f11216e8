//! The operations the state machine can run on members, the [`MemberOps`] trait they go through
//! (SQL in production, the simulator in tests), and the two I/O steps around `decide`:
//! [`gather`] (ask every member) and [`execute`] (run the one chosen operation).

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use thiserror::Error;

use super::membership::{self, Settings};
use super::observe::{
    ClusterInput, Endpoint, Member, MemberState, MemberStatus, Observed, PodPhase, Reach, Silence,
};

/// What went wrong talking to a member. Messages never contain a password.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum OpsError {
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// The member's address answered that nothing listens on the port: its mysqld is not
    /// running (the pod's address outlives its containers).
    #[error("nothing listens at {endpoint} (connection refused): its mysqld is not running")]
    Refused { endpoint: String },
    /// The server refused the operator's account (wrong password, no such account).
    #[error(
        "{endpoint} refuses the operator's account ({message}): its data directory was not \
         initialised by this cluster, or the account was changed; restore the account from the \
         cluster's admin Secret or re-provision the member"
    )]
    Denied { endpoint: String, message: String },
    /// The server answered, but its certificate does not verify: not signed by the CA the
    /// operator trusts (the cluster's `ca.crt`), not naming the member, or expired.
    #[error(
        "{endpoint} serves a certificate the operator does not trust ({reason}): the CA in \
         ca.crt of the members' TLS Secret must have signed it, it must name the member, and it \
         must be valid now. If the CA was changed, put the previous CA back into ca.crt beside \
         the new one until every member serves a certificate of the new CA (the operator reloads \
         them); if it expired, restart the member's pod once the Secret holds a valid one"
    )]
    Untrusted { endpoint: String, reason: String },
    /// After a reload the member still serves another certificate than its Secret's.
    #[error(
        "{endpoint} still serves the certificate ending at {served} after ALTER INSTANCE RELOAD \
         TLS, the Secret's ends at {want}: the kubelet has not written the Secret's files into \
         the pod yet (it does within a minute or two); Group Replication was left running"
    )]
    FilesNotWritten {
        endpoint: String,
        served: String,
        want: String,
    },
    #[error("{what} failed on {endpoint}: {message}")]
    Statement {
        endpoint: String,
        what: String,
        message: String,
    },
    #[error("{endpoint} answered something unexpected: {message}")]
    Protocol { endpoint: String, message: String },
    #[error(
        "{operation} needs member {ordinal}, which the last observation does not show reachable"
    )]
    NotObserved {
        operation: &'static str,
        ordinal: u32,
    },
}

/// The single action a tick may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Nothing to do (or nothing safe to do); see the conditions.
    None,
    /// Start a new group on `seed` (bootstrap ON, START, OFF) and create the accounts.
    Bootstrap { seed: u32 },
    /// Start Group Replication on `member` with the stored recovery credentials
    /// (`restart`: stop it first, it is in ERROR).
    Join { member: u32, restart: bool },
    /// Replace `member`'s data with a clone of `donor` (mysqld restarts afterwards).
    Clone { member: u32, donor: u32 },
    /// Stop Group Replication on `member`.
    Leave { member: u32 },
    /// Make `target` the primary, asking through `via` (an ONLINE member).
    SetPrimary {
        via: u32,
        target: u32,
        target_uuid: String,
    },
    /// The user's order: force the membership to `members`, asking through `via`.
    ForceQuorum { via: u32, members: Vec<u32> },
    /// Give `member`'s XCom the certificate of its Secret (ending at `certificate_end`): reload
    /// TLS and, once mysqld serves that certificate, restart Group Replication (see `xcom_tls`).
    RenewXcomTls {
        member: u32,
        certificate_end: jiff::Timestamp,
    },
}

impl Operation {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Operation::None => "none",
            Operation::Bootstrap { .. } => "bootstrap",
            Operation::Join { .. } => "join",
            Operation::Clone { .. } => "clone",
            Operation::Leave { .. } => "leave",
            Operation::SetPrimary { .. } => "switchover",
            Operation::ForceQuorum { .. } => "force-quorum",
            Operation::RenewXcomTls { .. } => "renew-xcom-tls",
        }
    }
}

/// Member operations. Each call is one complete step; implementations bound their own time.
pub trait MemberOps {
    /// Reads the member's state (capabilities, GTID sets, its view of the group, stats).
    fn observe(&self, at: &Endpoint) -> impl Future<Output = Result<MemberState, OpsError>> + Send;
    /// Bootstraps a group on this member (never leaving `group_replication_bootstrap_group` ON),
    /// then creates the replicated accounts.
    fn bootstrap(&self, at: &Endpoint) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// Stores the recovery credentials and starts Group Replication (stopping it first when
    /// `restart`).
    fn join(
        &self,
        at: &Endpoint,
        restart: bool,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// Sets `group_replication_member_expel_timeout` on this member.
    fn set_expel_timeout(
        &self,
        at: &Endpoint,
        seconds: u32,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// Sets `group_replication_group_seeds` and, on XCOM, `group_replication_ip_allowlist` on
    /// this member (see `membership`).
    fn set_membership(
        &self,
        at: &Endpoint,
        settings: &Settings,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// `SET GLOBAL offline_mode = OFF`: clients are admitted again.
    fn admit_clients(&self, at: &Endpoint) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// `ALTER INSTANCE RELOAD TLS`: new connections get the certificate now in the files.
    fn reload_tls(&self, at: &Endpoint) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// Clones `donor` into this member.
    fn clone_from(
        &self,
        at: &Endpoint,
        donor: &Endpoint,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// Stops Group Replication.
    fn leave(&self, at: &Endpoint) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// `group_replication_set_as_primary`, run on `at`.
    fn set_primary(
        &self,
        at: &Endpoint,
        server_uuid: &str,
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
    /// `group_replication_force_members` (then reset to empty), run on `at`.
    fn force_members(
        &self,
        at: &Endpoint,
        local_addresses: &[String],
    ) -> impl Future<Output = Result<(), OpsError>> + Send;
}

/// How long [`gather`] waits for members that are slow to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    /// For every member (each bounded by the operations' own deadline).
    Everyone,
    /// For every member until the group's majority has answered; then the others only until
    /// this long after the start. A member cut off by the network holds a connection open
    /// without answering, and would otherwise hold the whole tick — and the failover behind
    /// it — for the full observe deadline. The members not heard from count as unreachable,
    /// which every rule already treats as "could be alive": nothing unsafe follows, the next
    /// tick asks them again.
    Quorum(Duration),
}

/// Whether members holding a majority of a group's view have answered: some answered member
/// is ONLINE in its own view, and more than half of that view's members answered and say of
/// themselves that they are ONLINE. Pure.
pub(crate) fn majority_answered(input: &ClusterInput, answered: &[Member]) -> bool {
    fn online(m: &Member) -> Option<&MemberState> {
        match &m.reach {
            Reach::Reachable(s) => (s.own_status() == MemberStatus::Online).then_some(s.as_ref()),
            _ => None,
        }
    }
    answered.iter().filter_map(online).any(|state| {
        let view: Vec<Option<u32>> = state
            .group
            .iter()
            .map(|row| input.ordinal_of_host(&row.host))
            .collect();
        let heard = view
            .iter()
            .flatten()
            .filter(|&&o| {
                answered
                    .iter()
                    .any(|m| m.ordinal == o && online(m).is_some())
            })
            .count();
        heard * 2 > view.len()
    })
}

/// Asks every ordinal of the cluster for its state, concurrently. Pods that are not running are
/// not asked.
pub async fn gather<O: MemberOps>(ops: &O, input: ClusterInput, patience: Patience) -> Observed {
    let started = tokio::time::Instant::now();
    let ordinals = input.ordinals();
    let mut asks: FuturesUnordered<_> = ordinals
        .iter()
        .map(|&ordinal| {
            let running = input
                .pod(ordinal)
                .is_some_and(|p| p.phase == PodPhase::Running);
            let endpoint = input.endpoint(ordinal);
            async move {
                let reach = if !running {
                    Reach::NoPod
                } else {
                    match ops.observe(&endpoint).await {
                        Ok(state) => Reach::Reachable(Box::new(state)),
                        Err(e) => Reach::Unreachable {
                            silence: match e {
                                OpsError::Refused { .. } => Silence::Refused,
                                OpsError::Denied { .. } => Silence::Denied,
                                OpsError::Untrusted { .. } => Silence::Untrusted,
                                _ => Silence::NoAnswer,
                            },
                            reason: e.to_string(),
                        },
                    }
                };
                Member { ordinal, reach }
            }
        })
        .collect();
    let mut members = Vec::with_capacity(ordinals.len());
    let mut cutoff = None;
    loop {
        if cutoff.is_none()
            && let Patience::Quorum(limit) = patience
            && !asks.is_empty()
            && majority_answered(&input, &members)
        {
            cutoff = Some(Box::pin(tokio::time::sleep_until(started + limit)));
        }
        let next = match cutoff.as_mut() {
            None => asks.next().await,
            Some(deadline) => tokio::select! {
                next = asks.next() => next,
                () = deadline => None,
            },
        };
        match next {
            Some(member) => members.push(member),
            None => break,
        }
    }
    if let Patience::Quorum(limit) = patience {
        for &ordinal in &ordinals {
            if !members.iter().any(|m| m.ordinal == ordinal) {
                members.push(Member {
                    ordinal,
                    reach: Reach::Unreachable {
                        silence: Silence::NoAnswer,
                        reason: format!(
                            "no answer within {} ms while the group's majority answered",
                            limit.as_millis()
                        ),
                    },
                });
            }
        }
    }
    members.sort_by_key(|m| m.ordinal);
    Observed { input, members }
}

/// Runs one statement beside the operation on each of `members`, concurrently. A member that
/// fails is logged and left: the next tick decides again from what it then says.
/// An action on members beside the operation, run on several at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberAction {
    /// Set `group_replication_member_expel_timeout` to these seconds.
    ExpelTimeout(u32),
    /// Set the group's membership settings to what the spec says (see `membership`).
    Membership,
    /// Admit clients (`offline_mode` OFF).
    AdmitClients,
    /// Reload the TLS files: mysqld keeps serving what it has when it refuses them (e.g. ERROR
    /// 3888 for a certificate not valid yet or a key that does not match).
    ReloadTls,
}

impl MemberAction {
    fn what(self) -> String {
        match self {
            MemberAction::ExpelTimeout(seconds) => {
                format!("set group_replication_member_expel_timeout to {seconds}")
            }
            MemberAction::Membership => {
                "set the group's seeds (and XCOM's allowlist) to every member of the spec".into()
            }
            MemberAction::AdmitClients => "admit clients (offline_mode OFF)".into(),
            MemberAction::ReloadTls => {
                "reload TLS (the certificate in the Secret differs from the one served)".into()
            }
        }
    }

    async fn run<O: MemberOps>(
        self,
        ops: &O,
        input: &ClusterInput,
        at: &Endpoint,
    ) -> Result<(), OpsError> {
        match self {
            MemberAction::ExpelTimeout(seconds) => ops.set_expel_timeout(at, seconds).await,
            MemberAction::Membership => ops.set_membership(at, &membership::wanted(input)).await,
            MemberAction::AdmitClients => ops.admit_clients(at).await,
            MemberAction::ReloadTls => ops.reload_tls(at).await,
        }
    }
}

/// Runs `action` on each of `members` at once; each failure, saying what failed on which member
/// and the server's words.
pub async fn on_each<O: MemberOps>(
    ops: &O,
    observed: &Observed,
    members: &[u32],
    action: MemberAction,
) -> Vec<String> {
    let input = &observed.input;
    let what = action.what();
    let results = futures::future::join_all(
        members
            .iter()
            .map(|&o| async move { (o, action.run(ops, input, &input.endpoint(o)).await) }),
    )
    .await;
    let mut failed = Vec::new();
    for (o, result) in results {
        match result {
            Ok(()) => tracing::info!(cluster = %input.name, member = o, "{what}: done"),
            Err(e) => {
                tracing::warn!(cluster = %input.name, member = o, error = %e, "{what}: failed");
                failed.push(format!("{what} on {}: {e}", input.pod_name(o)));
            }
        }
    }
    failed
}

/// Runs the decided operation.
pub async fn execute<O: MemberOps>(
    ops: &O,
    observed: &Observed,
    operation: &Operation,
) -> Result<(), OpsError> {
    let input = &observed.input;
    let at = |ordinal: u32, operation: &'static str| {
        observed
            .state(ordinal)
            .map(|_| input.endpoint(ordinal))
            .ok_or(OpsError::NotObserved { operation, ordinal })
    };
    match operation {
        Operation::None => Ok(()),
        Operation::Bootstrap { seed } => ops.bootstrap(&at(*seed, "bootstrap")?).await,
        Operation::Join { member, restart } => ops.join(&at(*member, "join")?, *restart).await,
        Operation::Clone { member, donor } => {
            ops.clone_from(&at(*member, "clone")?, &input.endpoint(*donor))
                .await
        }
        Operation::Leave { member } => ops.leave(&at(*member, "leave")?).await,
        Operation::SetPrimary {
            via, target_uuid, ..
        } => ops.set_primary(&at(*via, "switchover")?, target_uuid).await,
        Operation::ForceQuorum { via, members } => {
            let addresses: Vec<String> = members
                .iter()
                .map(|&m| format!("{}:{}", input.host(m), input.group_port()))
                .collect();
            ops.force_members(&at(*via, "force-quorum")?, &addresses)
                .await
        }
        Operation::RenewXcomTls {
            member,
            certificate_end,
        } => renew_xcom_tls(ops, &at(*member, "renew-xcom-tls")?, *certificate_end).await,
    }
}

/// Reloads the member's TLS files; when mysqld then serves the certificate ending at `want`
/// (the kubelet has written the Secret's files into the pod), stops and starts its Group
/// Replication so XCom reads them too. Otherwise leaves Group Replication running.
async fn renew_xcom_tls<O: MemberOps>(
    ops: &O,
    at: &Endpoint,
    want: jiff::Timestamp,
) -> Result<(), OpsError> {
    ops.reload_tls(at).await?;
    let served = ops.observe(at).await?.certificate_end;
    if served.map(|t| t.as_second()) != Some(want.as_second()) {
        return Err(OpsError::FilesNotWritten {
            endpoint: at.to_string(),
            served: served.map_or_else(|| "none".into(), |t| t.to_string()),
            want: want.to_string(),
        });
    }
    ops.leave(at).await?;
    ops.join(at, false).await
}
