//! `MySQLCluster`: a single-primary Group Replication cluster, its routers and its backups.

// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads it as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::storage::S3Storage;

use crate::version::DEFAULT_VERSION;

/// What `spec.version` accepts: 9.7.x and 8.4.x (LTS), 8.0.27 and later 8.0 releases. The
/// operator checks the same in `version::ServerVersion::series`; this rule refuses the rest
/// before anything is created.
const VERSION_RULE: &str =
    r"self.version.matches('^(9\\.7|8\\.4)\\.[0-9]{1,2}$|^8\\.0\\.(2[7-9]|[3-9][0-9])$')";

/// Desired state of a MySQL InnoDB Cluster.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "innodb-operator.io",
    version = "v1alpha1",
    kind = "MySQLCluster",
    plural = "mysqlclusters",
    singular = "mysqlcluster",
    shortname = "myc",
    category = "innodb",
    namespaced,
    status = "MySQLClusterStatus",
    validation = Rule::new("self.metadata.name.size() <= 52 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("the name of a MySQLCluster must be at most 52 characters of lowercase letters, digits and '-', starting with a letter: it names Services (63 characters at most with their suffix, e.g. <name>-instances) and the StatefulSet's pods"),
    doc = "A MySQL InnoDB Cluster: a single-primary Group Replication group run as a StatefulSet, MySQL Routers in front of it, and backups streamed to S3.",
    printcolumn(
        name = "Instances",
        type_ = "integer",
        json_path = ".spec.instances",
        description = "Desired members"
    ),
    printcolumn(
        name = "Online",
        type_ = "integer",
        json_path = ".status.onlineInstances",
        description = "Members ONLINE in the group"
    ),
    printcolumn(
        name = "Primary",
        type_ = "string",
        json_path = ".status.primary",
        description = "Pod of the primary member"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "Summary of the conditions"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(VERSION_RULE).message("spec.version must be a supported MySQL release: 9.7.x (LTS, the default), 8.4.x (LTS), or 8.0.27 and later 8.0 releases (end of life); innovation releases (8.1-8.3, 9.0-9.6) are not supported"),
    validation = Rule::new("has(self.restoreFrom) == has(oldSelf.restoreFrom) && (!has(self.restoreFrom) || self.restoreFrom == oldSelf.restoreFrom)").message("restoreFrom cannot be changed after the cluster is created"),
    validation = Rule::new("has(self.groupCommunicationStack) == has(oldSelf.groupCommunicationStack) && (!has(self.groupCommunicationStack) || self.groupCommunicationStack == oldSelf.groupCommunicationStack)").message("groupCommunicationStack cannot be changed: the whole group would have to be restarted")
)]
pub struct MySQLClusterSpec {
    /// MySQL server version: 9.7.x (LTS, the default), 8.4.x (LTS), or 8.0.27 and later 8.0
    /// releases (end of life: the status warns). Changes follow MySQL's upgrade paths: patch
    /// upgrades, 8.0 → 8.4 and 8.4 → 9.7, members one at a time, the primary last.
    #[serde(default = "default_version")]
    pub version: String,
    /// Container image of the server; defaults to the official `mysql:<version>` image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Pull policy for the server and router images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) image_pull_policy: Option<PullPolicy>,
    /// Number of Group Replication members (1-9; an odd number tolerates the most failures).
    #[serde(default = "default_instances")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// Group communication stack: MYSQL (the server's own connections, as InnoDB Cluster uses)
    /// or XCOM (a separate port 33061). Fixed when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) group_communication_stack: Option<CommunicationStack>,
    /// Data volume of each member.
    #[serde(default)]
    pub storage: StorageSpec,
    /// CPU and memory of the `mysql` container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Extra `[mysqld]` settings appended to the generated my.cnf. Settings the operator manages
    /// (server_id, gtid_mode, group_replication_*, ...) are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 128))]
    pub mycnf: BTreeMap<String, String>,
    /// MySQL Router tier in front of the group.
    #[serde(default)]
    pub router: RouterSpec,
    /// TLS for client and group connections.
    #[serde(default)]
    pub tls: TlsSpec,
    /// NetworkPolicies for the members and the Routers; none unless enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) network_policy: Option<NetworkPolicySpec>,
    /// Backup storage and schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupConfig>,
    /// Create the cluster from a backup instead of empty. Fixed when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreSource>,
    /// Scheduling overrides for the member pods.
    #[serde(default)]
    pub(crate) pod_template: PodTemplateOverrides,
    /// When a member whose data cannot join the group may be re-provisioned by a clone of a
    /// healthy member: `Never`, `EmptyOnly` (default: new or wiped members), or `ReplaceErrant`
    /// (also members with errant transactions, which are then lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_policy: Option<ClonePolicySpec>,
}

/// Annotation naming the ordinal to make primary (a switchover on request); the operator
/// removes it when the switchover is done.
pub const SWITCHOVER_ANNOTATION: &str = "innodb-operator.io/switchover-to";
/// Annotation with the ordinals (e.g. `0,1`) of the partition to force quorum from after a
/// majority was lost for good. Only a person sets it; the operator removes it once carried out.
pub(crate) const FORCE_QUORUM_ANNOTATION: &str = "innodb-operator.io/force-quorum-from";

/// When a member may be replaced by a clone.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ClonePolicySpec {
    Never,
    #[default]
    EmptyOnly,
    ReplaceErrant,
}

fn default_version() -> String {
    DEFAULT_VERSION.to_string()
}

fn default_instances() -> i32 {
    3
}

/// Image pull policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Group Replication's group communication stack.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum CommunicationStack {
    #[default]
    MYSQL,
    XCOM,
}

impl CommunicationStack {
    /// The port of `group_replication_local_address`: the classic protocol's with MYSQL, XCom's
    /// own with XCOM.
    pub const fn local_address_port(self) -> u16 {
        match self {
            CommunicationStack::MYSQL => 3306,
            CommunicationStack::XCOM => 33061,
        }
    }
}

/// The data volume of each member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName is immutable"))]
pub struct StorageSpec {
    /// Size of each member's volume (e.g. `20Gi`).
    #[serde(default = "default_storage_size")]
    #[schemars(schema_with = "quantity_string")]
    pub size: Quantity,
    /// StorageClass of the volumes; empty means the cluster default. Fixed when the cluster is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub(crate) storage_class_name: Option<String>,
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
        }
    }
}

fn default_storage_size() -> Quantity {
    Quantity("10Gi".to_string())
}

/// A positive Kubernetes quantity, checked with the CEL quantity library.
fn quantity_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "maxLength": 64,
        "default": "10Gi",
        "x-kubernetes-validations": [
            {"rule": "isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
             "message": "must be a positive Kubernetes quantity such as 10Gi or 500M"}
        ]
    })
}

/// The MySQL Router tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouterSpec {
    /// Number of router pods (0 disables the router tier).
    #[serde(default = "default_router_instances")]
    #[schemars(range(min = 0, max = 32))]
    pub instances: i32,
    /// Router image; defaults to the official community router image of the server's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,
    /// CPU and memory of the router container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// How the routers find the primary: `metadataCache` (the default) reads the InnoDB Cluster
    /// metadata the operator keeps and follows the group by itself (a new primary is routed to
    /// without the operator, from Group Replication's notices), verifies the members with the
    /// cluster's CA, and adds a read-write split port (6450); `static` routes through the `C` and
    /// `C-ro` Services, which follow the operator's role labels. The API server stores the value
    /// a cluster is created with, so a later change of this default moves no existing cluster.
    #[serde(default)]
    pub mode: RouterMode,
}

impl Default for RouterSpec {
    fn default() -> Self {
        Self {
            instances: default_router_instances(),
            image: None,
            resources: None,
            mode: RouterMode::default(),
        }
    }
}

/// How MySQL Router finds its destinations.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum RouterMode {
    /// Static routes through the cluster's role Services.
    Static,
    /// Metadata cache: Router follows the group through the InnoDB Cluster metadata.
    #[default]
    MetadataCache,
}

fn default_router_instances() -> i32 {
    2
}

/// TLS of client and group connections.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.secretName) && has(self.issuerRef))").message("spec.tls: set secretName (your Secret) or issuerRef (cert-manager issues one), not both"))]
pub struct TlsSpec {
    /// A `kubernetes.io/tls` Secret of the user's (keys `tls.crt`, `tls.key` and `ca.crt`; the
    /// certificate names every member, `*.C-instances.NS.svc.DOMAIN`). Without it the operator
    /// makes a CA for the cluster (Secret `C-ca`) and a member certificate signed by it (`C-tls`),
    /// renewed at two thirds of its year. Either way group communication, recovery, clone and
    /// the operator verify the CA and the member's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
    /// A cert-manager issuer that signs the members' certificate instead of the operator's CA:
    /// the operator requests it (Certificate `C-member`, Secret `C-member-tls`, the same names
    /// as the operator's certificate) and cert-manager issues and renews it. The issuer must put
    /// its CA in the Secret's `ca.crt` (CA, SelfSigned and Vault issuers do; ACME does not).
    /// cert-manager is needed only with this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) issuer_ref: Option<IssuerRef>,
    /// Members also accept clients without TLS (`require_secure_transport=OFF`). By default
    /// they refuse them: every client uses TLS, directly or through a Router (which passes the
    /// client's TLS through to the member). The members' own socket (probes, their scripts) is
    /// not affected.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) allow_cleartext_clients: bool,
}

/// The cert-manager issuer of the members' certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuerRef {
    /// Name of the issuer.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `Issuer` (in the cluster's namespace, the default), `ClusterIssuer`, or the kind of an
    /// external issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub kind: Option<String>,
    /// API group of the issuer; `cert-manager.io` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,
}

/// The NetworkPolicies the operator keeps for a cluster. They restrict ingress only (egress is
/// not restricted) and take effect only where the cluster's network plugin enforces
/// NetworkPolicies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NetworkPolicySpec {
    /// Make the policies: the members (`C-members`) accept connections on their MySQL ports
    /// (3306, 33060, and 33061 with the XCOM stack) only from the cluster's members, its Routers,
    /// its backup and restore Jobs and the operator's pods; the Routers (`C-router`) accept
    /// connections on their ports only from `routerFrom`. Set false to delete them.
    #[serde(default)]
    pub enabled: bool,
    /// Who may connect to the Routers' ports, as in a NetworkPolicy's `from` (pod and namespace
    /// selectors, IP blocks). Empty: every pod in the cluster's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.all(p, has(p.ipBlock) != (has(p.podSelector) || has(p.namespaceSelector)))").message("each networkPolicy.routerFrom entry needs either an ipBlock alone, or a podSelector and/or a namespaceSelector"))]
    pub(crate) router_from: Vec<NetworkPolicyPeer>,
}

/// Where backups go and when they are taken.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupConfig {
    /// The S3 location backups of this cluster go to.
    pub storage: S3Storage,
    /// Backups taken on a cron schedule; each becomes an ordinary `Backup` object.
    #[serde(default)]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub schedules: Vec<BackupSchedule>,
}

/// One backup schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSchedule {
    /// Name of the schedule, used in the names of its Backup objects.
    #[schemars(
        length(min = 1, max = 20),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Five-field cron expression in UTC (minute hour day-of-month month day-of-week), or a macro
    /// such as `@daily`.
    #[x_kube(validation = Rule::new(CRON_RULE).message("schedule must be a five-field cron expression with values in range (minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-7), such as '0 3 * * *', or one of @hourly, @daily, @weekly, @monthly, @yearly"))]
    #[schemars(length(min = 1, max = 128))]
    pub schedule: String,
    /// Keep this many succeeded backups of the schedule; older ones are deleted.
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep: i32,
    /// Set false to pause the schedule without deleting it.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// CEL rule for cron syntax, as the schedule parser (croner) reads it: five whitespace-separated
/// fields, each `*`, a value in the field's range (minute 0-59, hour 0-23, day 1-31, month 1-12 or
/// JAN-DEC, weekday 0-7 or SUN-SAT), a range, a step, or a list of those; `?`, `L`, `15W` for the
/// day, `?`, `5L`, `1#2` for the weekday; or a macro. So `99 3 * * *` is refused at `kubectl apply`.
pub(crate) const CRON_RULE: &str = r"self.matches('^@(yearly|annually|monthly|weekly|daily|hourly)$') || self.matches('(?i)^\\s*(\\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]{1,2})?(,(\\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[0-9]{1,2})?)*\\s+(\\*|(2[0-3]|[01]?[0-9])(-(2[0-3]|[01]?[0-9]))?)(/[0-9]{1,2})?(,(\\*|(2[0-3]|[01]?[0-9])(-(2[0-3]|[01]?[0-9]))?)(/[0-9]{1,2})?)*\\s+(\\?|L|(3[01]|[12][0-9]|0?[1-9])W|(\\*|(3[01]|[12][0-9]|0?[1-9])(-(3[01]|[12][0-9]|0?[1-9]))?)(/[0-9]{1,2})?(,(\\*|(3[01]|[12][0-9]|0?[1-9])(-(3[01]|[12][0-9]|0?[1-9]))?)(/[0-9]{1,2})?)*)\\s+(\\*|(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]{1,2})?(,(\\*|(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[0-9]{1,2})?)*\\s+(\\?|[0-7]L|[0-7]#[1-5]|(\\*|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]{1,2})?(,(\\*|([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[0-9]{1,2})?)*)\\s*$')";

fn default_keep() -> i32 {
    7
}

fn default_true() -> bool {
    true
}

/// What a new cluster is restored from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.backup) != has(self.s3)").message("restoreFrom needs exactly one of backup or s3"))]
pub struct RestoreSource {
    /// A succeeded `Backup` in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// A backup location in S3 (the prefix that holds its manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Location>,
}

/// A backup stored in S3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Location {
    /// The bucket and credentials.
    pub storage: S3Storage,
    /// The key prefix of the backup (the folder holding `manifest.json`).
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
}

/// Scheduling overrides for the member pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodTemplateOverrides {
    /// Replaces the default anti-affinity (members spread over nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) affinity: Option<Affinity>,
    /// Tolerations of the member pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tolerations: Vec<Toleration>,
    /// Node selector of the member pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) node_selector: BTreeMap<String, String>,
    /// PriorityClass of the member pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) priority_class_name: Option<String>,
}

/// Observed state of a MySQL InnoDB Cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MySQLClusterStatus {
    /// One word for the conditions: Pending, Restoring, Initializing, Ready, Degraded, Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Ready, Available, Progressing, Degraded, QuorumLost, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Members of the group as last observed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberStatus>,
    /// Pod name of the primary member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// Members ONLINE in the group.
    #[serde(default)]
    pub(crate) online_instances: i32,
    /// The Group Replication group name (a UUID fixed when the cluster was created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    /// Recent automatic actions on members (join, clone, leave, switchover), kept so that
    /// anti-flapping survives operator restarts.
    #[serde(
        default,
        deserialize_with = "readable_actions",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub(crate) recent_actions: Vec<ActionStatus>,
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The restore of `spec.restoreFrom` into the first member, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,
}

/// Lifecycle of the restore into a new cluster's first member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum RestorePhase {
    /// Waiting for the source or for the first member to be up.
    Pending,
    /// The restore Job runs.
    Running,
    /// The first member holds the backup; the group starts from it.
    Succeeded,
    /// The restore failed; the group is not started (see the message for what to do).
    Failed,
}

/// The restore of `spec.restoreFrom`, as last observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RestorePhase>,
    /// Where the backup is read from (`s3://bucket/prefix/`, and the Backup's name if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The Job that runs the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) job_name: Option<String>,
    /// The GTID set the first member holds after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completion_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// What happened, in words; on failure, what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One automatic action the operator took on a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActionStatus {
    pub ordinal: i32,
    pub kind: ActionKind,
    /// When (RFC 3339).
    pub at: String,
}

/// An automatic action on a member, as the status's history (anti-flapping) keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ActionKind {
    Join,
    Clone,
    Leave,
    Switchover,
}

/// The action history as stored: an entry this version cannot read (another version's kind) is
/// dropped rather than failing the whole object.
fn readable_actions<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ActionStatus>, D::Error> {
    let entries = Vec::<serde_json::Value>::deserialize(d)?;
    Ok(entries
        .into_iter()
        .filter_map(|e| serde_json::from_value(e).ok())
        .collect())
}

/// A member's role in its group, as the status stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum MemberRole {
    Primary,
    Secondary,
}

/// A member's role as stored: older versions wrote "" for a member out of the group.
fn role_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<MemberRole>, D::Error> {
    use serde::de::Error;
    match Option::<String>::deserialize(d)?.as_deref() {
        None | Some("") => Ok(None),
        Some("PRIMARY") => Ok(Some(MemberRole::Primary)),
        Some("SECONDARY") => Ok(Some(MemberRole::Secondary)),
        Some(other) => Err(D::Error::unknown_variant(other, &["PRIMARY", "SECONDARY"])),
    }
}

/// One member as last observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Pod name.
    pub name: String,
    /// The pod's ordinal (absent in a status written by an older version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ordinal: Option<i32>,
    /// PRIMARY or SECONDARY; absent when not in the group (an older version wrote "").
    #[serde(
        default,
        deserialize_with = "role_or_empty",
        skip_serializing_if = "Option::is_none"
    )]
    pub role: Option<MemberRole>,
    pub state: ReportedState,
}

/// A member's state in the status: `MEMBER_STATE` as its group (or, outside one, the member
/// itself) reports it, UNREACHABLE or MISSING when the operator cannot ask it, or its pod's state
/// before the Group Replication step ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub enum ReportedState {
    #[serde(rename = "ONLINE")]
    Online,
    #[serde(rename = "RECOVERING")]
    Recovering,
    #[serde(rename = "OFFLINE")]
    Offline,
    #[serde(rename = "ERROR")]
    Error,
    /// The group lists it as unreachable, or the operator cannot reach it.
    #[serde(rename = "UNREACHABLE")]
    Unreachable,
    /// It has no pod.
    #[serde(rename = "MISSING")]
    Missing,
    PodReady,
    PodPending,
    PodRunning,
    PodSucceeded,
    PodFailed,
    /// The pod's phase is Unknown, or one this version does not know.
    #[serde(other)]
    PodUnknown,
}

impl ReportedState {
    /// Whether the member takes part in a group (as far as it knows).
    pub fn in_group(self) -> bool {
        matches!(self, ReportedState::Online | ReportedState::Recovering)
    }
}

impl MySQLCluster {
    /// The spec's group communication stack, with the default applied.
    pub fn communication_stack(&self) -> CommunicationStack {
        self.spec.group_communication_stack.unwrap_or_default()
    }
}
