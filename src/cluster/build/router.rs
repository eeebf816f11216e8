//! The MySQL Router tier: a Deployment (static routes through the `C` and `C-ro` Services, or
//! metadata-cache routes that follow the group: `router_conf.rs`), a headless Service
//! `C-router` (SRV records for each router) and a ClusterIP Service `C-router-lb`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, ExecAction, KeyToPath, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, Service, ServiceSpec, TCPSocketAction, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::router_conf::{
    CONFIG_DIR, CONFIG_KEY, PROBE_KEY, RUN_DIR, RW_PORT, SCRIPT_KEY, SECRET_DIR, STATE_KEY,
    TLS_DIR, ports, probe_script, router_conf, start_script, state_json,
};
use super::services::port;
use super::statefulset::CONFIG_HASH_ANNOTATION;

/// The Router pod template's copy of when the members' certificate ends: a renewal changes it,
/// and the Deployment replaces the Routers one at a time.
pub(crate) const CERTIFICATE_END_ANNOTATION: &str = "innodb-operator.io/member-certificate-end";
use crate::api::cluster::RouterMode;
use crate::cluster::validate::ValidCluster;
use crate::objects::accounts::Account;
use crate::objects::names::Component;
use crate::objects::pod_security::{restricted_container, restricted_pod};
use crate::objects::tls::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};

/// UID the router runs as.
pub(crate) const ROUTER_UID: i64 = 999;

/// The router's ConfigMap: its configuration, and in metadata-cache mode its start script and
/// the seed of its state file.
pub(crate) fn config_map(c: &ValidCluster) -> ConfigMap {
    let mut data = BTreeMap::from([(CONFIG_KEY.to_string(), router_conf(c))]);
    if c.router_mode == RouterMode::MetadataCache {
        data.insert(SCRIPT_KEY.to_string(), start_script());
        data.insert(PROBE_KEY.to_string(), probe_script(c));
        data.insert(STATE_KEY.to_string(), state_json(c));
    }
    ConfigMap {
        metadata: c.meta(c.names.router_config_map(), Component::Router),
        data: Some(data),
        ..Default::default()
    }
}

fn service_ports(c: &ValidCluster) -> Vec<k8s_openapi::api::core::v1::ServicePort> {
    ports(c).iter().map(|(n, p)| port(n, *p, *p)).collect()
}

fn service(c: &ValidCluster, name: String, headless: bool) -> Service {
    Service {
        metadata: c.meta(name, Component::Router),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: headless.then(|| "None".to_string()),
            selector: Some(c.names.pod_selector(Component::Router)),
            ports: Some(service_ports(c)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `C-router`: headless, so DNS publishes `_mysql._tcp.C-router` and `_mysqlx._tcp.C-router`
/// SRV records with one target per ready router.
pub(crate) fn headless_service(c: &ValidCluster) -> Service {
    service(c, c.names.router(), true)
}

/// `C-router-lb`: one virtual IP in front of the routers.
pub(crate) fn lb_service(c: &ValidCluster) -> Service {
    service(c, c.names.router_lb_service(), false)
}

/// The container's command, mounts and volumes beyond the configuration and `/tmp`, and its
/// probes, by mode: in metadata-cache mode a start script fills the keyring and the REST API's
/// accounts from the Router account's Secret, and the probes ask the REST API (readiness: the
/// metadata cache reaches the group; liveness: Router answers); static routes are probed on
/// the rw port.
struct ModeParts {
    command: Vec<String>,
    mounts: Vec<VolumeMount>,
    volumes: Vec<Volume>,
    readiness: Probe,
    liveness: Probe,
}

fn probe(tcp: Option<TCPSocketAction>, exec: Option<Vec<String>>) -> Probe {
    Probe {
        tcp_socket: tcp,
        exec: exec.map(|command| ExecAction {
            command: Some(command),
        }),
        period_seconds: Some(10),
        timeout_seconds: Some(5),
        failure_threshold: Some(3),
        ..Default::default()
    }
}

fn probe_script_run(arg: Option<&str>) -> Option<Vec<String>> {
    let mut command = vec!["bash".to_string(), format!("{CONFIG_DIR}/{PROBE_KEY}")];
    command.extend(arg.map(str::to_string));
    Some(command)
}

fn rw_probe() -> Probe {
    let tcp = TCPSocketAction {
        port: IntOrString::Int(RW_PORT),
        ..Default::default()
    };
    probe(Some(tcp), None)
}

fn mode_parts(c: &ValidCluster) -> ModeParts {
    match c.router_mode {
        RouterMode::Static => ModeParts {
            command: vec![
                "mysqlrouter".to_string(),
                "--config".to_string(),
                format!("{CONFIG_DIR}/{CONFIG_KEY}"),
            ],
            mounts: vec![],
            volumes: vec![],
            readiness: rw_probe(),
            liveness: rw_probe(),
        },
        RouterMode::MetadataCache => ModeParts {
            command: vec!["sh".to_string(), format!("{CONFIG_DIR}/{SCRIPT_KEY}")],
            mounts: vec![
                read_only_mount("account", SECRET_DIR),
                read_only_mount("tls", TLS_DIR),
            ],
            volumes: vec![
                secret_volume(
                    "account",
                    c.names.secret(Account::Router.suffix()),
                    &["password"],
                ),
                secret_volume(
                    "tls",
                    c.member_tls_secret(),
                    &[TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY],
                ),
            ],
            readiness: probe(None, probe_script_run(None)),
            liveness: probe(None, probe_script_run(Some("live"))),
        },
    }
}

fn read_only_mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..Default::default()
    }
}

/// The `keys` of Secret `name`, readable by the router's group only.
fn secret_volume(volume: &str, name: String, keys: &[&str]) -> Volume {
    Volume {
        name: volume.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(name),
            items: Some(
                keys.iter()
                    .map(|k| KeyToPath {
                        key: k.to_string(),
                        path: k.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The router Deployment.
/// Long (100 lines) on purpose: one Kubernetes object literal.
pub(crate) fn deployment(
    c: &ValidCluster,
    member_certificate_end: Option<jiff::Timestamp>,
) -> Deployment {
    // The state file's seed is left out: the member list changes with scaling, and Router
    // keeps its own copy current from the metadata.
    let mut hashed = router_conf(c);
    if c.router_mode == RouterMode::MetadataCache {
        hashed += &start_script();
        hashed += &probe_script(c);
    }
    let hash = hex::encode(&Sha256::digest(hashed)[..8]);
    let parts = mode_parts(c);
    let mut mounts = vec![
        VolumeMount {
            name: "config".to_string(),
            mount_path: CONFIG_DIR.to_string(),
            read_only: Some(true),
            ..Default::default()
        },
        VolumeMount {
            name: "tmp".to_string(),
            mount_path: RUN_DIR.to_string(),
            ..Default::default()
        },
    ];
    mounts.extend(parts.mounts);
    let mut volumes = vec![
        Volume {
            name: "config".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: c.names.router_config_map(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "tmp".to_string(),
            empty_dir: Some(Default::default()),
            ..Default::default()
        },
    ];
    volumes.extend(parts.volumes);
    let container = Container {
        name: "router".to_string(),
        image: Some(c.router_image.clone()),
        image_pull_policy: c.pull_policy.clone(),
        command: Some(parts.command),
        ports: Some(
            ports(c)
                .iter()
                .map(|(n, p)| ContainerPort {
                    name: Some(n.to_string()),
                    container_port: *p,
                    protocol: Some("TCP".to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
        readiness_probe: Some(parts.readiness),
        liveness_probe: Some(parts.liveness),
        resources: c.router_resources.clone(),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_container()),
        ..Default::default()
    };
    Deployment {
        metadata: c.meta(c.names.router(), Component::Router),
        spec: Some(DeploymentSpec {
            replicas: Some(c.router_instances),
            selector: LabelSelector {
                match_labels: Some(c.names.pod_selector(Component::Router)),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(c.names.labels(Component::Router)),
                    annotations: Some(
                        [(CONFIG_HASH_ANNOTATION.to_string(), hash)]
                            .into_iter()
                            .chain(member_certificate_end.map(|end| {
                                (CERTIFICATE_END_ANNOTATION.to_string(), end.to_string())
                            }))
                            .collect(),
                    ),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod(ROUTER_UID)),
                    tolerations: (!c.pod_template.tolerations.is_empty())
                        .then(|| c.pod_template.tolerations.clone()),
                    node_selector: (!c.pod_template.node_selector.is_empty())
                        .then(|| c.pod_template.node_selector.clone()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}
