//! The Group Replication topology's side of the reconcile: the state machine's input from the
//! cluster and its pods (pure, for [`super::gather`]), the SQL operations with the cluster's
//! credentials, what the status keeps of a decision (pure, for [`super::plan`]), and the writes
//! a decision asks of Kubernetes (role labels on pods, the one pod a rolling update replaces,
//! clearing one-shot annotations), which the driver makes.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use super::dereference::AccountSecrets;
use super::status::{TopologyView, member_role};
use super::validate::ValidCluster;
use crate::api::MySQLCluster;
use crate::api::cluster::{
    ActionStatus, ClonePolicySpec, FORCE_QUORUM_ANNOTATION, MemberStatus, SWITCHOVER_ANNOTATION,
};
use crate::api::conditions::Desired;
use crate::cluster::build::mycnf::EXPEL_TIMEOUT_S;
use crate::credentials::SecretText;
use crate::objects::MYSQLX_PORT;
use crate::objects::accounts::Account;
use crate::objects::names::{Names, ROLE_LABEL};
use crate::objects::tls::CA_CERT_KEY;
use crate::topology::mysql::{SessionTls, SqlOps};
use crate::topology::sql::{Accounts, Credentials};
use crate::topology::{self, ActionRecord, ClonePolicy, ClusterInput, PodInfo, PodPhase, Role};
use crate::xproto::{
    self,
    client::SessionOptions,
    monitor::ClusterTargets,
    tls::{TlsOptions, TlsVerify},
};

/// No second automatic action of the same kind on the same member within this window.
pub(crate) const FLAP_WINDOW: Duration = Duration::from_secs(30);
/// Deadline of connecting to a member and reading its state.
pub(crate) const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline of one group operation (START GROUP_REPLICATION waits for the member to join).
pub(crate) const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// A read or write around the tick that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TopologyError {
    #[error("credentials Secret {0} is missing: restore it with the password the members have")]
    NoSecret(String),
    #[error(
        "credentials Secret {0} has no password: delete it and the operator makes a new one only for a new cluster"
    )]
    NoPassword(String),
    #[error("reading the TLS Secret {name}: {source}")]
    Secret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "TLS Secret {0} has no ca.crt: the operator verifies members with it (add it, or with the operator's CA delete the Secret so it is made again)"
    )]
    NoCa(String),
    #[error("{what}: {source}")]
    Write {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// The ordinal of a member pod of `cluster`.
pub(crate) fn ordinal(cluster: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(cluster)?.strip_prefix('-')?.parse().ok()
}

/// A pod as the state machine sees it. `update_revision` is the StatefulSet's current target.
pub(crate) fn pod_info(cluster: &str, pod: &Pod, update_revision: Option<&str>) -> Option<PodInfo> {
    let ordinal = ordinal(cluster, &pod.name_any())?;
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Pending") | None => PodPhase::Pending,
        Some(_) => PodPhase::Unknown,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let revision = pod.labels().get("controller-revision-hash");
    let update_pending = matches!((revision, update_revision), (Some(r), Some(u)) if r != u);
    let role_label = pod
        .labels()
        .get(ROLE_LABEL)
        .and_then(|v| Role::from_label(v));
    Some(PodInfo {
        ordinal,
        phase,
        ready,
        deleting: pod.metadata.deletion_timestamp.is_some(),
        update_pending,
        role_label,
        ip: status.and_then(|s| s.pod_ip.clone()),
    })
}

/// `0,1` → `[0, 1]`; anything else is not an order.
pub(crate) fn parse_ordinals(text: &str) -> Option<Vec<u32>> {
    let list: Option<Vec<u32>> = text.split(',').map(|p| p.trim().parse().ok()).collect();
    list.filter(|l| !l.is_empty())
}

/// What the status keeps of one tick: its conditions, members, primary and action history.
pub(crate) fn topology_view(
    decision: &topology::Decision,
    history: &[ActionRecord],
) -> TopologyView {
    TopologyView {
        conditions: decision
            .conditions
            .iter()
            .map(|c| Desired::new(c.type_, c.status, &c.reason, c.message.clone()))
            .collect(),
        members: decision
            .members
            .iter()
            .map(|m| MemberStatus {
                name: m.name.clone(),
                ordinal: Some(m.ordinal as i32),
                role: m.role.map(member_role),
                state: m.state,
            })
            .collect(),
        primary: decision.primary.clone(),
        history: history_to_status(history),
    }
}

/// The action history as the status stores it.
pub(crate) fn history_to_status(history: &[ActionRecord]) -> Vec<ActionStatus> {
    history
        .iter()
        .map(|r| ActionStatus {
            ordinal: r.ordinal as i32,
            kind: r.kind,
            at: r.at.to_string(),
        })
        .collect()
}

/// The action history from the status (entries that cannot be read are dropped).
pub(crate) fn history_from_status(actions: &[ActionStatus]) -> Vec<ActionRecord> {
    actions
        .iter()
        .filter_map(|a| {
            Some(ActionRecord {
                ordinal: u32::try_from(a.ordinal).ok()?,
                kind: a.kind,
                at: a.at.parse().ok()?,
            })
        })
        .collect()
}

/// The state machine's input for `cluster` with its `pods`. The group's first start is held
/// until the restore step, which runs on what the members said, sets the gate.
pub(crate) fn cluster_input(
    valid: &ValidCluster,
    cluster: &MySQLCluster,
    pods: &[Pod],
    statefulset: Option<&StatefulSet>,
    member_certificate_end: Option<jiff::Timestamp>,
    previous_ca_trusted: bool,
    now: jiff::Timestamp,
) -> ClusterInput {
    let update_revision = statefulset
        .and_then(|s| s.status.as_ref())
        .and_then(|s| s.update_revision.as_deref());
    let annotations = cluster.annotations();
    ClusterInput {
        name: valid.names.cluster.clone(),
        namespace: valid.names.namespace.clone(),
        cluster_domain: valid.domain.clone(),
        stack: valid.stack,
        instances: valid.instances as u32,
        pods: pods
            .iter()
            .filter_map(|p| pod_info(&valid.names.cluster, p, update_revision))
            .collect(),
        switchover_to: annotations
            .get(SWITCHOVER_ANNOTATION)
            .and_then(|v| v.trim().parse().ok()),
        force_quorum_from: annotations
            .get(FORCE_QUORUM_ANNOTATION)
            .and_then(|v| parse_ordinals(v)),
        clone_policy: match cluster.spec.clone_policy.unwrap_or_default() {
            ClonePolicySpec::Never => ClonePolicy::Never,
            ClonePolicySpec::EmptyOnly => ClonePolicy::EmptyOnly,
            ClonePolicySpec::ReplaceErrant => ClonePolicy::ReplaceErrant,
        },
        history: history_from_status(
            cluster
                .status
                .as_ref()
                .map(|s| s.recent_actions.as_slice())
                .unwrap_or_default(),
        ),
        flap_window: FLAP_WINDOW,
        expel_timeout: EXPEL_TIMEOUT_S,
        group_name: valid.group_name.to_string(),
        member_certificate_end,
        previous_ca_trusted,
        now,
        restore: topology::RestoreGate::not_planned(),
    }
}

fn credentials(
    secrets: &AccountSecrets,
    names: &Names,
    account: Account,
) -> Result<Credentials, TopologyError> {
    let name = names.secret(account.suffix());
    let data = secrets
        .get(account)
        .ok_or_else(|| TopologyError::NoSecret(name.clone()))?;
    let read = |k: &str| data.get(k);
    let password = read("password").ok_or_else(|| TopologyError::NoPassword(name.clone()))?;
    Ok(Credentials {
        user: read("username").unwrap_or_else(|| account.user().to_string()),
        password,
    })
}

/// The CA the members' certificate is signed by (`ca.crt` of their TLS Secret).
async fn member_ca(client: &Client, valid: &ValidCluster) -> Result<Vec<u8>, TopologyError> {
    let name = valid.member_tls_secret();
    let data = SecretText::read(client, &valid.names.namespace, &name)
        .await
        .map_err(|source| TopologyError::Secret {
            name: name.clone(),
            source,
        })?;
    data.get(CA_CERT_KEY)
        .map(String::into_bytes)
        .ok_or(TopologyError::NoCa(name))
}

/// The SQL operations with the cluster's credentials (from its Secrets as read), over TLS that
/// trusts the cluster's CA.
pub(crate) async fn sql_ops(
    client: &Client,
    secrets: &AccountSecrets,
    valid: &ValidCluster,
) -> Result<SqlOps, TopologyError> {
    let names = &valid.names;
    Ok(SqlOps {
        tls: SessionTls::Verify {
            ca_pem: member_ca(client, valid).await?,
        },
        admin: credentials(secrets, names, Account::Admin)?,
        accounts: Accounts {
            recovery: credentials(secrets, names, Account::Replication)?,
            router: credentials(secrets, names, Account::Router)?,
            backup: credentials(secrets, names, Account::Backup)?,
        },
        observe_timeout: OBSERVE_TIMEOUT,
        operation_timeout: OPERATION_TIMEOUT,
    })
}

/// What the X protocol monitor watches of the cluster: each member at the address the SQL
/// operations use (its pod IP once it has one), with the operator's account for the notice
/// session (TLS, PLAIN), verified as the SQL sessions are: the cluster's CA, the member's name.
pub fn monitor_targets(input: &ClusterInput, ops: &SqlOps) -> ClusterTargets {
    let verify = match &ops.tls {
        SessionTls::Verify { ca_pem } => TlsVerify::CaPem(String::from_utf8_lossy(ca_pem).into()),
        SessionTls::Off => TlsVerify::AcceptSelfSigned,
    };
    ClusterTargets {
        endpoints: (0..input.instances)
            .map(|i| {
                let e = input.endpoint(i);
                xproto::client::Endpoint::new(e.address, MYSQLX_PORT as u16).with_tls_name(e.host)
            })
            .collect(),
        session: Some(SessionOptions {
            credentials: xproto::client::Credentials::new(
                ops.admin.user.clone(),
                ops.admin.password.clone(),
            ),
            tls: TlsOptions {
                verify,
                server_name: None,
            },
        }),
    }
}

/// The label changes the decision asks for: pod name → new value (`None` removes the label),
/// in the order they must be written: every pod that stops being primary before the one that
/// becomes primary, so the rw Service never selects two pods, not even between two writes.
pub(crate) fn label_changes(
    cluster: &str,
    pods: &[Pod],
    desired: &BTreeMap<u32, Option<Role>>,
) -> Vec<(String, Option<&'static str>)> {
    let mut changes: Vec<(String, Option<&'static str>)> = pods
        .iter()
        .filter_map(|p| {
            let ordinal = ordinal(cluster, &p.name_any())?;
            let want = desired.get(&ordinal)?.map(Role::label_value);
            let have = p.labels().get(ROLE_LABEL).map(String::as_str);
            (have != want).then(|| (p.name_any(), want))
        })
        .collect();
    let promotes = |want: &Option<&str>| *want == Some(Role::Primary.label_value());
    changes.sort_by_key(|(_, want)| promotes(want));
    changes
}

/// The label writes once a switchover to `target` has succeeded, after those of `first` (the
/// decision's labels, already written): whoever is labelled primary becomes a secondary, then
/// `target` becomes the primary. Written at once by the reconcile that switched over: waiting for
/// the next one (which observes every member, a terminating one among them) held the new
/// primary's label back 0.2-4 s on the real node.
pub(crate) fn labels_after_switchover(
    cluster: &str,
    pods: &[Pod],
    first: &BTreeMap<u32, Option<Role>>,
    target: u32,
) -> Vec<(String, Option<&'static str>)> {
    let after = |o: u32, role: Option<Role>| match role {
        _ if o == target => Some(Role::Primary),
        Some(Role::Primary) => Some(Role::Secondary),
        other => other,
    };
    let mut changes: Vec<(String, Option<&'static str>)> = pods
        .iter()
        .filter_map(|p| {
            let ordinal = ordinal(cluster, &p.name_any())?;
            let before = *first.get(&ordinal)?;
            let want = after(ordinal, before);
            (want != before).then(|| (p.name_any(), want.map(Role::label_value)))
        })
        .collect();
    changes.sort_by_key(|(_, want)| *want == Some(Role::Primary.label_value()));
    changes
}

/// Sets the role labels; returns how many pods were written.
pub(crate) async fn apply_labels(
    client: &Client,
    ns: &str,
    changes: &[(String, Option<&'static str>)],
) -> Result<usize, TopologyError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for (name, value) in changes {
        let patch = json!({"metadata": {"labels": {ROLE_LABEL: value}}});
        pods.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| TopologyError::Write {
                what: format!("labelling pod {name}"),
                source,
            })?;
        tracing::info!(pod = %name, role = value.unwrap_or("(removed)"), "role label set");
    }
    Ok(changes.len())
}

/// Deletes the one pod a rolling update may replace now (the StatefulSet recreates it).
pub(crate) async fn replace_pod(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<(), TopologyError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    match pods.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(TopologyError::Write {
            what: format!("replacing pod {name} for the rolling update"),
            source,
        }),
    }
}

/// Removes a one-shot annotation (switchover done, force-quorum carried out).
pub(crate) async fn clear_annotation(
    client: &Client,
    cluster: &MySQLCluster,
    key: &str,
) -> Result<(), TopologyError> {
    let api: Api<MySQLCluster> =
        Api::namespaced(client.clone(), &cluster.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {key: null}}});
    api.patch(
        &cluster.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| TopologyError::Write {
        what: format!("removing annotation {key}"),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cluster::{ActionKind, MemberRole, ReportedState};
    use crate::cluster::testing::{cluster_from_yaml, valid_cluster};

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_tick_becomes_the_status_topology_view() {
        use crate::topology::{Condition, Decision, MemberReport, Operation};
        let decision = Decision {
            operation: Operation::None,
            record: None,
            conditions: vec![Condition {
                type_: "Ready",
                status: true,
                reason: "Online".into(),
                message: "every member is ONLINE".into(),
            }],
            members: vec![
                MemberReport {
                    name: "orders-0".into(),
                    ordinal: 0,
                    role: Some(Role::Primary),
                    state: ReportedState::Online,
                },
                MemberReport {
                    name: "orders-1".into(),
                    ordinal: 1,
                    role: None,
                    state: ReportedState::Unreachable,
                },
            ],
            primary: Some("orders-0".into()),
            events: vec![],
            labels: BTreeMap::new(),
            statefulset_replicas: 2,
            update_next: None,
            switchover_complete: false,
            force_quorum_consumed: false,
            requeue: Duration::from_secs(1),
            expel_timeout: None,
            membership: Vec::new(),
            admit: Vec::new(),
            reload_tls: Vec::new(),
        };
        let at = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        let history = [ActionRecord {
            ordinal: 1,
            kind: ActionKind::Join,
            at,
        }];
        let view = topology_view(&decision, &history);
        assert_eq!(view.primary.as_deref(), Some("orders-0"));
        assert_eq!(
            view.members
                .iter()
                .map(|m| (m.name.as_str(), m.ordinal, m.role, m.state))
                .collect::<Vec<_>>(),
            [
                (
                    "orders-0",
                    Some(0),
                    Some(MemberRole::Primary),
                    ReportedState::Online
                ),
                ("orders-1", Some(1), None, ReportedState::Unreachable)
            ]
        );
        assert_eq!(view.conditions.len(), 1);
        assert_eq!(
            (view.conditions[0].type_, view.conditions[0].status),
            ("Ready", true)
        );
        assert_eq!(view.history, history_to_status(&history));
    }

    #[test]
    fn pods_become_state_machine_input() {
        let p = pod(
            "metadata: {name: orders-2, labels: {controller-revision-hash: r1, innodb-operator.io/role: secondary}}\n\
             status: {phase: Running, conditions: [{type: Ready, status: 'True'}]}",
        );
        let info = pod_info("orders", &p, Some("r2")).unwrap();
        assert_eq!(info.ordinal, 2);
        assert_eq!(info.phase, PodPhase::Running);
        assert!(info.ready && info.update_pending && !info.deleting);
        assert_eq!(info.role_label, Some(Role::Secondary));
        assert!(!pod_info("orders", &p, Some("r1")).unwrap().update_pending);
        assert!(pod_info("orders", &pod("metadata: {name: orders-router-x}"), None).is_none());
        assert!(pod_info("other", &p, None).is_none());
    }

    #[test]
    fn annotations_become_requests() {
        let c = cluster_from_yaml(
            "metadata: {name: orders, namespace: db, uid: u, annotations: {innodb-operator.io/switchover-to: '2', innodb-operator.io/force-quorum-from: '0, 1'}}\n\
             spec: {clonePolicy: ReplaceErrant}\n",
        );
        let v = valid_cluster("spec: {}");
        let input = cluster_input(&v, &c, &[], None, None, false, jiff::Timestamp::UNIX_EPOCH);
        assert_ne!(input.restore, topology::RestoreGate::Open);
        assert_eq!(input.switchover_to, Some(2));
        assert_eq!(input.force_quorum_from, Some(vec![0, 1]));
        assert_eq!(input.clone_policy, ClonePolicy::ReplaceErrant);
        assert_eq!(input.group_port(), 3306);
        assert_eq!(parse_ordinals("0,x"), None);
        assert_eq!(parse_ordinals(""), None);
    }

    #[test]
    fn history_round_trips_through_the_status() {
        let h = vec![ActionRecord {
            ordinal: 1,
            kind: ActionKind::Clone,
            at: "2026-11-23T10:00:00Z".parse().unwrap(),
        }];
        let st = history_to_status(&h);
        assert_eq!(st[0].kind, ActionKind::Clone);
        assert_eq!(history_from_status(&st), h);
        let junk = vec![ActionStatus {
            ordinal: -1,
            kind: ActionKind::Join,
            at: "x".into(),
        }];
        assert!(history_from_status(&junk).is_empty());
    }

    /// Member 0 the primary, 1 a secondary, 2 out of the group.
    fn primary_0_secondary_1() -> BTreeMap<u32, Option<Role>> {
        BTreeMap::from([
            (0, Some(Role::Primary)),
            (1, Some(Role::Secondary)),
            (2, None),
        ])
    }

    #[test]
    fn only_changed_labels_are_written() {
        let pods = vec![
            pod("metadata: {name: orders-0, labels: {innodb-operator.io/role: primary}}"),
            pod("metadata: {name: orders-1, labels: {innodb-operator.io/role: primary}}"),
            pod("metadata: {name: orders-2}"),
        ];
        let desired = primary_0_secondary_1();
        assert_eq!(
            label_changes("orders", &pods, &desired),
            vec![("orders-1".to_string(), Some("secondary"))]
        );
    }

    #[test]
    fn a_switchover_relabels_the_old_primary_then_the_new_one() {
        let pods = vec![
            pod("metadata: {name: orders-0}"),
            pod("metadata: {name: orders-1}"),
            pod("metadata: {name: orders-2}"),
        ];
        let first = BTreeMap::from([
            (0, Some(Role::Secondary)),
            (1, Some(Role::Primary)),
            (2, Some(Role::Secondary)),
        ]);
        assert_eq!(
            labels_after_switchover("orders", &pods, &first, 0),
            vec![
                ("orders-1".to_string(), Some("secondary")),
                ("orders-0".to_string(), Some("primary")),
            ]
        );
        // Already the primary: nothing to write.
        assert!(labels_after_switchover("orders", &pods, &first, 1).is_empty());
    }

    #[test]
    fn the_old_primary_is_demoted_before_the_new_one_is_promoted() {
        let pods = vec![
            pod("metadata: {name: orders-0, labels: {innodb-operator.io/role: secondary}}"),
            pod("metadata: {name: orders-1, labels: {innodb-operator.io/role: secondary}}"),
            pod("metadata: {name: orders-2, labels: {innodb-operator.io/role: primary}}"),
        ];
        let desired = primary_0_secondary_1();
        assert_eq!(
            label_changes("orders", &pods, &desired),
            vec![
                ("orders-2".to_string(), None),
                ("orders-0".to_string(), Some("primary"))
            ]
        );
    }
}
