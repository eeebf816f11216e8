//! The member StatefulSet `C` and its PodDisruptionBudget.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, Volume, VolumeMount, VolumeResourceRequirements,
    WeightedPodAffinityTerm,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::member_scripts::{
    self, ADMIN_PASSWORD_ENV, INIT_SCRIPT_KEY, PRE_STOP_SCRIPT_KEY, ROOT_PASSWORD_ENV,
    RUN_SCRIPT_KEY,
};
use super::mycnf::{self, CONF_DIR, DATA_MOUNT, RUN_DIR, SOCKET, TEMPLATE_DIR, TLS_DIR};
use crate::cluster::validate::{Deployed, ValidCluster};
use crate::objects::accounts::Account;
use crate::objects::names::Component;
use crate::objects::pod_security::{restricted_container, restricted_pod, secret_env};
use crate::objects::{GR_PORT, MYSQL_PORT, MYSQLX_PORT};
use crate::version::ServerVersion;

/// UID and GID of the `mysql` user in the official images.
pub(crate) const MYSQL_UID: i64 = 999;
/// Pod annotation with the hash of the configuration, so a config change rolls the members.
pub(crate) const CONFIG_HASH_ANNOTATION: &str = "innodb-operator.io/config-hash";
/// StatefulSet annotation with the MySQL version its pods run: a change of `spec.version` is
/// checked against it.
pub(crate) const VERSION_ANNOTATION: &str = "innodb-operator.io/mysql-version";
/// The name of the member container.
pub(crate) const MYSQL_CONTAINER: &str = "mysql";

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// `mysqladmin ping` answers 0 whenever mysqld is up, even when it refuses the login, so it
/// needs no credentials; it keeps answering while Group Replication is RECOVERING or a clone is
/// donated, so probes never fight the group's own recovery.
fn ping_probe(period: i32, failures: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                "mysqladmin".to_string(),
                "--no-defaults".to_string(),
                format!("--socket={SOCKET}"),
                "ping".to_string(),
            ]),
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Default::default()
    }
}

/// Hash of what the pods read from the ConfigMap only when they start, so a change rolls them.
/// The group's members are left out: the operator sets them on running members
/// (`topology::membership`), and a scale restarts nobody.
pub(crate) fn config_hash(c: &ValidCluster) -> String {
    let mut h = Sha256::new();
    h.update(mycnf::read_at_start(c));
    h.update(member_scripts::init_script(c));
    h.update(member_scripts::run_script());
    h.update(member_scripts::pre_stop_script());
    hex::encode(&h.finalize()[..8])
}

fn default_affinity(c: &ValidCluster) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(c.names.pod_selector(Component::Database)),
                            ..Default::default()
                        }),
                        topology_key: "kubernetes.io/hostname".to_string(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn volumes(c: &ValidCluster) -> Vec<Volume> {
    let mut v = vec![
        Volume {
            name: "config-template".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: c.names.config_map(),
                default_mode: Some(0o444),
                ..Default::default()
            }),
            ..Default::default()
        },
        empty_dir("conf-d"),
        empty_dir("run"),
        empty_dir("tmp"),
    ];
    v.push(Volume {
        name: "tls".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(c.member_tls_secret()),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    v
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn script(key: &str) -> Option<Vec<String>> {
    Some(vec!["sh".to_string(), format!("{TEMPLATE_DIR}/{key}")])
}

/// Writes the member's configuration and initialises an empty data directory (see
/// [`member_scripts::init_script`]); the only container that sees the passwords.
fn init_container(c: &ValidCluster) -> Container {
    Container {
        name: "init-member".to_string(),
        image: Some(c.image.clone()),
        image_pull_policy: c.pull_policy.clone(),
        command: script(INIT_SCRIPT_KEY),
        env: Some(vec![
            field_env("POD_NAME", "metadata.name"),
            secret_env(
                ROOT_PASSWORD_ENV,
                &c.names.secret(Account::Root.suffix()),
                "password",
            ),
            secret_env(
                ADMIN_PASSWORD_ENV,
                &c.names.secret(Account::Admin.suffix()),
                "password",
            ),
        ]),
        volume_mounts: Some(vec![
            mount("config-template", TEMPLATE_DIR, true),
            mount("conf-d", CONF_DIR, false),
            mount("data", DATA_MOUNT, false),
            mount("tmp", "/tmp", false),
        ]),
        resources: c.resources.clone(),
        security_context: Some(restricted_container()),
        ..Default::default()
    }
}

fn mysql_container(c: &ValidCluster) -> Container {
    let mounts = vec![
        mount("config-template", TEMPLATE_DIR, true),
        mount("data", DATA_MOUNT, false),
        mount("conf-d", CONF_DIR, true),
        mount("run", RUN_DIR, false),
        mount("tmp", "/tmp", false),
        mount("tls", TLS_DIR, true),
    ];
    Container {
        name: MYSQL_CONTAINER.to_string(),
        image: Some(c.image.clone()),
        image_pull_policy: c.pull_policy.clone(),
        command: script(RUN_SCRIPT_KEY),
        ports: Some(vec![
            container_port("mysql", MYSQL_PORT),
            container_port("mysqlx", MYSQLX_PORT),
            container_port("gr", GR_PORT),
        ]),
        startup_probe: Some(ping_probe(10, 360)),
        liveness_probe: Some(ping_probe(10, 6)),
        readiness_probe: Some(ping_probe(5, 2)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: script(PRE_STOP_SCRIPT_KEY),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: c.resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_container()),
        ..Default::default()
    }
}

/// The members' StatefulSet with `replicas` pods (see [`super::BuildInputs`]).
/// Long (81 lines) on purpose: one Kubernetes object literal.
pub fn statefulset(c: &ValidCluster, replicas: i32) -> StatefulSet {
    let template_meta = ObjectMeta {
        labels: Some(c.names.labels(Component::Database)),
        annotations: Some(BTreeMap::from([(
            CONFIG_HASH_ANNOTATION.to_string(),
            config_hash(c),
        )])),
        ..Default::default()
    };
    let pt = &c.pod_template;
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(restricted_pod(MYSQL_UID)),
        termination_grace_period_seconds: Some(120),
        affinity: Some(pt.affinity.clone().unwrap_or_else(|| default_affinity(c))),
        tolerations: (!pt.tolerations.is_empty()).then(|| pt.tolerations.clone()),
        node_selector: (!pt.node_selector.is_empty()).then(|| pt.node_selector.clone()),
        priority_class_name: pt.priority_class_name.clone(),
        init_containers: Some(vec![init_container(c)]),
        containers: vec![mysql_container(c)],
        volumes: Some(volumes(c)),
        ..Default::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_string()),
            labels: Some(c.names.labels(Component::Database)),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: c.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    c.storage.size.clone(),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut metadata = c.meta(c.names.statefulset(), Component::Database);
    metadata
        .annotations
        .get_or_insert_default()
        .insert(VERSION_ANNOTATION.to_string(), c.version.to_string());
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            // The operator replaces pods itself, one at a time, secondaries first and the primary
            // only after a switchover.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                ..Default::default()
            }),
            service_name: Some(c.names.instances_service()),
            pod_management_policy: Some("Parallel".to_string()),
            selector: LabelSelector {
                match_labels: Some(c.names.pod_selector(Component::Database)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![claim]),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The PodDisruptionBudget: one member at a time, so a drain never takes the majority.
pub fn pdb(c: &ValidCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: c.meta(c.names.pdb(), Component::Database),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(c.names.pod_selector(Component::Database)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the members of an existing StatefulSet run: its version annotation and member image
/// (`None` for a StatefulSet without them, which then constrains no version change).
pub(crate) fn deployed(sts: &StatefulSet) -> Option<Deployed> {
    let version = sts.metadata.annotations.as_ref()?.get(VERSION_ANNOTATION)?;
    let image = sts
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .iter()
        .find(|c| c.name == MYSQL_CONTAINER)?
        .image
        .clone()?;
    Some(Deployed {
        version: ServerVersion::parse_spec(version).ok()?,
        image,
    })
}
