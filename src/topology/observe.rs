//! What the state machine sees: the cluster as the lead fills it in from the `MySQLCluster` and
//! its pods ([`ClusterInput`]), and what each member said when asked ([`Observed`]).

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::gtid::GtidSet;
pub use super::member::{GroupMemberRow, MemberStatus, Role};
use super::sql::Capabilities;
use crate::api::cluster::CommunicationStack;

/// Port of the classic protocol on every member.
pub(crate) const MYSQL_PORT: u16 = 3306;

/// Kubernetes pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// One pod of the StatefulSet as the lead sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub ordinal: u32,
    pub phase: PodPhase,
    pub ready: bool,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// The pod runs an older StatefulSet revision and will be replaced.
    pub update_pending: bool,
    /// The pod's current value of [`ROLE_LABEL`](crate::objects::names::ROLE_LABEL).
    pub role_label: Option<Role>,
    /// `status.podIP`: where the operator connects (no DNS in the failover path).
    pub ip: Option<String>,
}

/// When a member whose data cannot join the group may be replaced by a clone of a healthy one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClonePolicy {
    /// Never clone: empty members recover through binary logs, errant members stop with a condition.
    Never,
    /// Clone empty members only (errant members stop with a condition).
    #[default]
    EmptyOnly,
    /// Also replace a member with errant transactions by a clone (its extra transactions are lost).
    ReplaceErrant,
}

/// Kinds of automatic action, for anti-flapping: the status's own type, which keeps them.
pub use crate::api::cluster::ActionKind;

/// An automatic action the operator took on a member; the lead keeps these in the status so
/// anti-flapping survives operator restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    pub(crate) ordinal: u32,
    pub(crate) kind: ActionKind,
    pub(crate) at: Timestamp,
}

/// Whether the group may be started, for a cluster created from a backup (`spec.restoreFrom`):
/// the backup is loaded into the first member, which then starts the group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RestoreGate {
    /// No restore was asked for, or it succeeded: the group starts as usual (the restored first
    /// member holds every other member's transactions, so it is the seed).
    #[default]
    Open,
    /// The restore has not finished (first member not up yet, Job running): no member starts
    /// the group. `reason` and `message` say why.
    Waiting {
        reason: &'static str,
        message: String,
    },
    /// The restore failed or its source cannot be used: no member starts the group until a
    /// person acts; `message` says what to do.
    Blocked {
        reason: &'static str,
        message: String,
    },
}

/// Why the group's first start waits: the restore has not reached the member yet.
pub(crate) const RESTORE_PENDING: &str = "RestorePending";

impl RestoreGate {
    /// Before the restore step has planned in this reconcile: nothing may start the group (the
    /// plan sets the gate before anything decides).
    pub fn not_planned() -> Self {
        RestoreGate::Waiting {
            reason: RESTORE_PENDING,
            message: "the restore step has not run yet".into(),
        }
    }
}

/// Everything the state machine needs from the `MySQLCluster` and its pods.
#[derive(Debug, Clone)]
pub struct ClusterInput {
    pub name: String,
    pub namespace: String,
    /// Cluster DNS domain, usually `cluster.local`.
    pub cluster_domain: String,
    /// The group communication stack: its port is `group_replication_local_address`'s, and
    /// XCom reads its certificate only when Group Replication starts (see `tls_reload`).
    pub stack: CommunicationStack,
    /// `spec.instances` (1–9).
    pub instances: u32,
    /// The pods that exist (any order).
    pub pods: Vec<PodInfo>,
    /// A switchover the user asked for (spec field or annotation): the ordinal to promote.
    pub switchover_to: Option<u32>,
    /// The user's explicit order to force quorum from the partition of these ordinals.
    pub force_quorum_from: Option<Vec<u32>>,
    pub clone_policy: ClonePolicy,
    /// Recent automatic actions (from the status).
    pub history: Vec<ActionRecord>,
    /// No second automatic action of the same kind on the same member within this window.
    pub flap_window: std::time::Duration,
    /// The members' configured `group_replication_member_expel_timeout` (seconds), which the
    /// operator sets back after expelling a gone member at once (see `expel`).
    pub expel_timeout: u32,
    /// This cluster's group name (a UUID, lowercase): a member configured with another one
    /// belongs to another group and is neither started nor joined.
    pub group_name: String,
    /// When the certificate in the members' TLS Secret ends (`None`: unknown): a member that
    /// serves another one reloads its TLS files (see `tls_reload`).
    pub member_certificate_end: Option<Timestamp>,
    /// The members' `ca.crt` holds the previous CA beside the current one because the
    /// operator's CA was made anew: on XCOM, peers' XCom still trusts only the previous CA (see
    /// `xcom_tls`).
    pub previous_ca_trusted: bool,
    pub now: Timestamp,
    /// Holds the first start of the group while a restore from a backup has not succeeded.
    pub restore: RestoreGate,
}

#[cfg(test)]
impl ClusterInput {
    /// `db` in `ns` with `instances` running, ready pods, no request pending and the restore gate
    /// open: the base of decision fixtures (override fields with `..ClusterInput::for_test(n)`).
    pub(crate) fn for_test(instances: u32) -> Self {
        ClusterInput {
            name: "db".into(),
            namespace: "ns".into(),
            cluster_domain: "cluster.local".into(),
            stack: CommunicationStack::MYSQL,
            instances,
            pods: (0..instances)
                .map(|ordinal| PodInfo {
                    ordinal,
                    phase: PodPhase::Running,
                    ready: true,
                    deleting: false,
                    update_pending: false,
                    role_label: None,
                    ip: None,
                })
                .collect(),
            switchover_to: None,
            force_quorum_from: None,
            clone_policy: ClonePolicy::EmptyOnly,
            history: vec![],
            flap_window: std::time::Duration::from_secs(30),
            expel_timeout: 5,
            group_name: String::new(),
            member_certificate_end: None,
            previous_ca_trusted: false,
            now: Timestamp::from_second(1_000_000).unwrap(),
            restore: RestoreGate::Open,
        }
    }
}

impl ClusterInput {
    /// Whether `at` is less than the flap window ago.
    pub(crate) fn within_flap_window(&self, at: Timestamp) -> bool {
        let window =
            jiff::SignedDuration::try_from(self.flap_window).unwrap_or(jiff::SignedDuration::MAX);
        self.now.duration_since(at) < window
    }

    /// The port of `group_replication_local_address`.
    pub fn group_port(&self) -> u16 {
        self.stack.local_address_port()
    }

    /// The pod name of an ordinal.
    pub(crate) fn pod_name(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// `<cluster>-<ordinal>.<cluster>-instances.<ns>.svc.<domain>`: the member's `report_host`.
    pub fn host(&self, ordinal: u32) -> String {
        format!(
            "{}-{ordinal}.{}-instances.{}.svc.{}",
            self.name, self.name, self.namespace, self.cluster_domain
        )
    }

    /// Where the operator reaches a member: the pod's IP when it has one (a DNS answer for a
    /// recreated pod can lag behind it), else its host name.
    pub fn endpoint(&self, ordinal: u32) -> Endpoint {
        let host = self.host(ordinal);
        let address = self
            .pod(ordinal)
            .and_then(|p| p.ip.clone())
            .unwrap_or_else(|| host.clone());
        Endpoint {
            ordinal,
            host,
            address,
            port: MYSQL_PORT,
        }
    }

    /// The ordinal a member host name belongs to, if it is one of this cluster's.
    pub fn ordinal_of_host(&self, host: &str) -> Option<u32> {
        let first = host.split('.').next()?;
        let rest = first.strip_prefix(&self.name)?.strip_prefix('-')?;
        let ordinal: u32 = rest.parse().ok()?;
        let domain = &host[first.len()..];
        let in_service = domain
            .strip_prefix('.')
            .and_then(|d| d.strip_prefix(self.name.as_str()))
            .is_some_and(|d| d.starts_with("-instances."));
        (domain.is_empty() || in_service).then_some(ordinal)
    }

    pub(crate) fn pod(&self, ordinal: u32) -> Option<&PodInfo> {
        self.pods.iter().find(|p| p.ordinal == ordinal)
    }

    /// Every ordinal that belongs to the cluster: the desired ones and any pod still there.
    pub(crate) fn ordinals(&self) -> Vec<u32> {
        let mut ordinals: Vec<u32> = (0..self.instances)
            .chain(self.pods.iter().map(|p| p.ordinal))
            .collect();
        ordinals.sort_unstable();
        ordinals.dedup();
        ordinals
    }
}

/// Where a member listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ordinal: u32,
    /// The member's host name (its `report_host`): what other members and clone use.
    pub(crate) host: String,
    /// What the operator connects to: the pod IP, or `host` when the pod has none yet.
    pub(crate) address: String,
    pub(crate) port: u16,
}

impl Endpoint {
    /// An endpoint reached at its host name.
    pub fn named(ordinal: u32, host: impl Into<String>, port: u16) -> Self {
        let host = host.into();
        Endpoint {
            ordinal,
            address: host.clone(),
            host,
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// What one member reported about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub server_uuid: String,
    pub capabilities: Capabilities,
    pub gtid_executed: GtidSet,
    /// `received_transaction_set` of the `group_replication_applier` channel.
    pub gtid_received: GtidSet,
    pub super_read_only: bool,
    /// `offline_mode`: clients without `CONNECTION_ADMIN` are refused (see `admit`).
    pub offline_mode: bool,
    /// The member's view of the group (its own row when it is not in one).
    pub group: Vec<GroupMemberRow>,
    /// `COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE` of the member's own stats row.
    pub applier_queue: u64,
    /// A clone into this member is running (`performance_schema.clone_status`).
    pub cloning: bool,
    /// The last clone into this member failed, and why.
    pub clone_failed: Option<super::sql::CloneFailure>,
    /// `group_replication_member_expel_timeout` (seconds); `None` without the plugin.
    pub expel_timeout: Option<u32>,
    /// `group_replication_group_name`, lowercase; `None` without the plugin or when unset.
    pub group_name: Option<String>,
    /// When the certificate the member serves ends (`Ssl_server_not_after`); `None` without TLS.
    pub certificate_end: Option<Timestamp>,
    /// `group_replication_group_seeds`; `None` without the plugin (see `membership`).
    pub group_seeds: Option<String>,
    /// `group_replication_ip_allowlist`; `None` without the plugin (see `membership`).
    pub ip_allowlist: Option<String>,
}

#[cfg(test)]
impl MemberState {
    /// A member of `version` with `group` as its view, every plugin active, no transaction,
    /// read-only, clients admitted, no clone, an expel timeout of 5 s and no group name: the base
    /// of member fixtures (override fields with `..MemberState::for_test(..)`).
    pub(crate) fn for_test(
        server_uuid: String,
        version: crate::version::ServerVersion,
        group: Vec<GroupMemberRow>,
    ) -> Self {
        MemberState {
            server_uuid,
            capabilities: Capabilities {
                version,
                group_replication: true,
                clone: true,
                communication_stack: true,
            },
            gtid_executed: GtidSet::new(),
            gtid_received: GtidSet::new(),
            super_read_only: true,
            offline_mode: false,
            group,
            applier_queue: 0,
            cloning: false,
            clone_failed: None,
            expel_timeout: Some(5),
            group_name: None,
            certificate_end: None,
            group_seeds: None,
            ip_allowlist: None,
        }
    }
}

impl MemberState {
    /// Every transaction the member holds: executed plus received-not-yet-applied.
    pub fn transactions(&self) -> GtidSet {
        self.gtid_executed.union(&self.gtid_received)
    }

    /// The member's own row in its view.
    pub fn own_row(&self) -> Option<&GroupMemberRow> {
        self.group.iter().find(|r| r.member_id == self.server_uuid)
    }

    /// The member's own state (OFFLINE when it shows no row for itself).
    pub fn own_status(&self) -> MemberStatus {
        self.own_row().map_or(MemberStatus::Offline, |r| r.state)
    }

    /// Whether this member's view has quorum: more than half of its members reachable.
    pub fn has_quorum(&self) -> bool {
        let reachable = self
            .group
            .iter()
            .filter(|r| r.state != MemberStatus::Unreachable)
            .count();
        self.own_status().in_group() && reachable * 2 > self.group.len()
    }
}

/// Whether and how the operator reached a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Reachable(Box<MemberState>),
    /// The pod runs but the operator could not read the member.
    Unreachable {
        reason: String,
        silence: Silence,
    },
    /// No pod, or the pod is not running.
    NoPod,
}

/// How a member failed to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// No answer in time, or the session broke: it may be alive (cut off, paused, overloaded).
    NoAnswer,
    /// Its own address refused the connection: nothing listens there, so its mysqld is not
    /// running — proof that it is out of any group, not merely silent.
    Refused,
    /// mysqld answered but refused the operator's account: it runs, and needs the user.
    Denied,
    /// mysqld answered with a certificate the operator does not trust (another CA's, another
    /// name's, or expired): it runs, and needs the user (e.g. a CA changed without a bundle).
    Untrusted,
}

/// One ordinal of the cluster, observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub ordinal: u32,
    pub reach: Reach,
}

impl Member {
    pub fn state(&self) -> Option<&MemberState> {
        match &self.reach {
            Reach::Reachable(state) => Some(state),
            _ => None,
        }
    }
}

/// The input plus what every member said: the only argument of [`super::decide::decide`].
#[derive(Debug, Clone)]
pub struct Observed {
    pub input: ClusterInput,
    /// One entry per ordinal of [`ClusterInput::ordinals`], in order.
    pub members: Vec<Member>,
}

impl Observed {
    pub(crate) fn member(&self, ordinal: u32) -> Option<&Member> {
        self.members.iter().find(|m| m.ordinal == ordinal)
    }

    pub fn state(&self, ordinal: u32) -> Option<&MemberState> {
        self.member(ordinal).and_then(Member::state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ClusterInput {
        ClusterInput {
            name: "db".into(),
            namespace: "prod".into(),
            cluster_domain: "cluster.local".into(),
            stack: CommunicationStack::MYSQL,
            instances: 3,
            pods: vec![],
            switchover_to: None,
            force_quorum_from: None,
            clone_policy: ClonePolicy::default(),
            history: vec![],
            flap_window: std::time::Duration::from_secs(30),
            expel_timeout: 5,
            group_name: String::new(),
            member_certificate_end: None,
            previous_ca_trusted: false,
            now: Timestamp::UNIX_EPOCH,
            restore: RestoreGate::Open,
        }
    }

    #[test]
    fn host_names_round_trip_to_ordinals() {
        let input = input();
        assert_eq!(input.host(2), "db-2.db-instances.prod.svc.cluster.local");
        assert_eq!(input.ordinal_of_host(&input.host(2)), Some(2));
        assert_eq!(input.ordinal_of_host("db-7"), Some(7));
        assert_eq!(input.ordinal_of_host("dbx-1.dbx-instances.prod.svc"), None);
        assert_eq!(input.ordinal_of_host("db-1.other.prod.svc"), None);
        assert_eq!(input.ordinal_of_host("db-a.db-instances"), None);
    }

    #[test]
    fn ordinals_cover_desired_and_leftover_pods() {
        let mut input = input();
        input.pods.push(PodInfo {
            ordinal: 4,
            phase: PodPhase::Running,
            ready: true,
            deleting: false,
            update_pending: false,
            role_label: None,
            ip: Some("198.18.0.4".into()),
        });
        assert_eq!(input.ordinals(), vec![0, 1, 2, 4]);
    }

    #[test]
    fn members_are_reached_at_their_pod_ip_and_named_by_host() {
        let mut input = input();
        input.pods.push(PodInfo {
            ordinal: 1,
            phase: PodPhase::Running,
            ready: true,
            deleting: false,
            update_pending: false,
            role_label: None,
            ip: Some("198.18.0.7".into()),
        });
        let with_ip = input.endpoint(1);
        assert_eq!(with_ip.address, "198.18.0.7");
        assert_eq!(with_ip.host, "db-1.db-instances.prod.svc.cluster.local");
        assert_eq!(
            with_ip.to_string(),
            "db-1.db-instances.prod.svc.cluster.local:3306"
        );
        let without = input.endpoint(2);
        assert_eq!(without.address, without.host);
    }
}
