//! The Jobs that move a backup between a member and S3: the operator's own image running
//! `innodb-operator backup` (from a member of a cluster) or `innodb-operator restore` (into the
//! first member of a new cluster). One builder for both; pure.

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, KeyToPath, PodSpec, PodTemplateSpec,
    SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::schedule_plan::CLUSTER_LABEL;
use crate::api::{Backup, MySQLCluster, S3Storage};
use crate::objects::MYSQL_PORT;
use crate::objects::accounts::Account;
use crate::objects::names::{Component, Names};
use crate::objects::pod_security::{restricted_container, restricted_pod, secret_env};
use crate::objects::tls::CA_CERT_KEY;

/// Where the container writes its one-line JSON result; Kubernetes copies it into the pod's
/// status (`terminated.message`), where the operator reads it.
pub(crate) const RESULT_FILE: &str = "/dev/termination-log";
/// A Job that runs longer than this is stopped and Failed.
pub(crate) const DEADLINE_SECONDS: i64 = 6 * 3600;
/// Finished backup Jobs are kept this long for their logs.
pub(crate) const TTL_AFTER_FINISHED_SECONDS: i32 = 24 * 3600;
/// UID of the operator image's non-root user.
pub(crate) const OPERATOR_UID: i64 = 65532;
/// How long a restore waits for its member to accept connections: the Job is created once the
/// pod runs, and the member's init container and mysqld's first start may still take minutes on
/// a slow volume.
pub(crate) const RESTORE_WAIT_FOR_SERVER_SECONDS: u64 = 600;

/// How long a backup waits for its member to accept its connection: a NetworkPolicy enforcer
/// admits a new pod's address a moment after the pod starts (on the real node, kube-router's
/// firewall refused the Job's first connection, 1.5 s after its start).
pub(crate) const BACKUP_WAIT_FOR_SERVER_SECONDS: u64 = 60;

/// Where the cluster's CA (`ca.crt` of the members' TLS Secret) is mounted, and the file the
/// container verifies the member's certificate with.
pub(crate) const MYSQL_CA_DIR: &str = "/etc/innodb-operator/mysql-ca";
pub(crate) const MYSQL_CA_FILE: &str = "/etc/innodb-operator/mysql-ca/ca.crt";
/// Where the S3 CA bundle (`caSecret`) is mounted, and the file the container reads.
pub(crate) const S3_CA_DIR: &str = "/etc/innodb-operator/s3-ca";
pub(crate) const S3_CA_FILE: &str = "/etc/innodb-operator/s3-ca/ca.crt";

/// What the Job does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Dump a member of a running cluster into S3, as the backup account.
    Backup,
    /// Load a backup into the first member of a new cluster before its group starts, as `root`:
    /// a backup holds any schema object, definer, account and grant, which only a full account
    /// can recreate (the operator's own account is least-privilege: no DDL, no data). The
    /// cluster's own accounts are not restored from the backup (their passwords are this
    /// cluster's). The Job is kept after it finished: a failed one is what a person deletes to
    /// retry.
    Restore,
}

impl Mode {
    /// The subcommand, and the container's name.
    pub(crate) fn as_str(self) -> &'static str {
        self.component().as_str()
    }

    /// The component its Job and pod are labelled with (the members' NetworkPolicy admits them
    /// by it).
    fn component(self) -> Component {
        match self {
            Mode::Backup => Component::Backup,
            Mode::Restore => Component::Restore,
        }
    }

    fn account(self) -> Account {
        match self {
            Mode::Backup => Account::Backup,
            Mode::Restore => Account::Root,
        }
    }

    fn args(self) -> Vec<String> {
        let wait = match self {
            Mode::Backup => BACKUP_WAIT_FOR_SERVER_SECONDS,
            Mode::Restore => RESTORE_WAIT_FOR_SERVER_SECONDS,
        };
        let mut args = vec![
            self.as_str().to_string(),
            "--log-format=json".to_string(),
            format!("--wait-for-server-seconds={wait}"),
        ];
        if self == Mode::Restore {
            for account in Account::ALL.iter().filter(|a| **a != Account::Root) {
                args.push("--skip-account".to_string());
                args.push(account.user().to_string());
            }
        }
        args
    }

    fn ttl_after_finished(self) -> Option<i32> {
        match self {
            Mode::Backup => Some(TTL_AFTER_FINISHED_SECONDS),
            Mode::Restore => None,
        }
    }
}

/// Everything a Job needs besides its name and owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JobInput {
    pub(crate) mode: Mode,
    /// The operator image (the same binary runs the backup and the restore).
    pub(crate) image: String,
    /// The cluster whose member the Job talks to (its credentials Secrets are used).
    pub(crate) cluster: String,
    pub(crate) namespace: String,
    /// Host name of that member (its certificate names it).
    pub(crate) host: String,
    /// The members' TLS Secret: its `ca.crt` (only that key) is what the Job trusts.
    pub(crate) tls_secret: String,
    /// The bucket and its credentials.
    pub(crate) storage: S3Storage,
    /// The key prefix of the backup in the bucket.
    pub(crate) prefix: String,
}

/// `<kind>-<name>`, cut to a valid label value (the Job controller labels pods with it).
fn job_name_for(mode: Mode, name: &str) -> String {
    let name = format!("{}-{name}", mode.as_str());
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Name of the Job of a Backup.
pub(crate) fn job_name(backup: &str) -> String {
    job_name_for(Mode::Backup, backup)
}

/// Name of the restore Job of a cluster.
pub(crate) fn restore_job_name(cluster: &str) -> String {
    job_name_for(Mode::Restore, cluster)
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The Job of `backup` (owned by it, so deleting the Backup deletes the Job).
pub(crate) fn backup_job(backup: &Backup, input: &JobInput) -> Job {
    job(
        job_name(&backup.name_any()),
        backup.controller_owner_ref(&()),
        input,
    )
}

/// The restore Job of `cluster` (owned by it).
pub(crate) fn restore_job(cluster: &MySQLCluster, input: &JobInput) -> Job {
    job(
        restore_job_name(&cluster.name_any()),
        cluster.controller_owner_ref(&()),
        input,
    )
}

/// Long (119 lines) on purpose: one Kubernetes object literal.
fn job(name: String, owner: Option<OwnerReference>, input: &JobInput) -> Job {
    let mode = input.mode;
    let names = Names::new(&input.cluster, &input.namespace);
    let mut labels = names.labels(mode.component());
    labels.insert(CLUSTER_LABEL.to_string(), input.cluster.clone());
    let s = &input.storage;
    let account = mode.account();
    let mut envs = vec![
        env("MYSQL_HOST", input.host.clone()),
        env("MYSQL_PORT", MYSQL_PORT.to_string()),
        env("MYSQL_USER", account.user()),
        secret_env(
            "MYSQL_PASSWORD",
            &names.secret(account.suffix()),
            "password",
        ),
        env("S3_BUCKET", s.bucket.clone()),
        env("S3_PREFIX", input.prefix.clone()),
        env("AWS_REGION", s.region.clone()),
        env("S3_PATH_STYLE", s.force_path_style.to_string()),
        env("RESULT_FILE", RESULT_FILE),
        env("MYSQL_CA_FILE", MYSQL_CA_FILE),
    ];
    if let Some(endpoint) = &s.endpoint {
        envs.push(env("S3_ENDPOINT", endpoint.clone()));
    }
    if let Some(creds) = &s.credentials_secret {
        envs.push(secret_env(
            "AWS_ACCESS_KEY_ID",
            &creds.name,
            &creds.access_key_id_key,
        ));
        envs.push(secret_env(
            "AWS_SECRET_ACCESS_KEY",
            &creds.name,
            &creds.secret_access_key_key,
        ));
    }
    let mut mounts = vec![VolumeMount {
        name: "tmp".to_string(),
        mount_path: "/tmp".to_string(),
        ..Default::default()
    }];
    let mut volumes = vec![Volume {
        name: "tmp".to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    }];
    let mut mount_ca = |name: &str, dir: &str, secret: &str, key: &str| {
        mounts.push(VolumeMount {
            name: name.to_string(),
            mount_path: dir.to_string(),
            read_only: Some(true),
            ..Default::default()
        });
        volumes.push(Volume {
            name: name.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_string()),
                items: Some(vec![KeyToPath {
                    key: key.to_string(),
                    path: "ca.crt".to_string(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    };
    mount_ca("mysql-ca", MYSQL_CA_DIR, &input.tls_secret, CA_CERT_KEY);
    if let Some(ca) = &s.ca_secret {
        envs.push(env("S3_CA_FILE", S3_CA_FILE));
        mount_ca("s3-ca", S3_CA_DIR, &ca.name, &ca.key);
    }
    let container = Container {
        name: mode.as_str().to_string(),
        image: Some(input.image.clone()),
        args: Some(mode.args()),
        env: Some(envs),
        termination_message_path: Some(RESULT_FILE.to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: Some(restricted_container()),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(input.namespace.clone()),
            labels: Some(labels.clone()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // One attempt: a failed backup is Failed (the schedule takes the next one); a failed
            // restore may have loaded part of the data, so it is never retried on its own.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(DEADLINE_SECONDS),
            ttl_seconds_after_finished: mode.ttl_after_finished(),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(restricted_pod(OPERATOR_UID)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::storage::SecretKeyRef;
    use crate::objects::names::LABEL_COMPONENT;

    fn backup() -> Backup {
        serde_yaml::from_str(
            "apiVersion: innodb-operator.io/v1alpha1\nkind: Backup\n\
             metadata: {name: nightly-1, namespace: shop, uid: 5d1c0c1e-2c1a-4a73-9d45-3f6f1f0f2a11}\n\
             spec: {clusterName: orders}\n",
        )
        .unwrap()
    }

    fn input() -> JobInput {
        JobInput {
            mode: Mode::Backup,
            image: "innodb-operator:1".into(),
            cluster: "orders".into(),
            namespace: "shop".into(),
            host: "orders-1.orders-instances.shop.svc.cluster.local".into(),
            tls_secret: "orders-tls".into(),
            storage: S3Storage {
                region: "eu-west-1".into(),
                ..crate::cluster::testing::minio_storage("b")
            },
            prefix: "shop/orders/nightly-1/".into(),
        }
    }

    #[test]
    fn job_runs_once_as_non_root_and_never_inlines_secrets() {
        let j = backup_job(&backup(), &input());
        assert_eq!(j.metadata.name.as_deref(), Some("backup-nightly-1"));
        assert_eq!(
            j.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Backup"
        );
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        assert_eq!(
            spec.ttl_seconds_after_finished,
            Some(TTL_AFTER_FINISHED_SECONDS)
        );
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap().join(" "),
            "backup --log-format=json --wait-for-server-seconds=60",
            "a backup waits for a member its NetworkPolicy does not admit yet"
        );
        assert_eq!(c.termination_message_path.as_deref(), Some(RESULT_FILE));
        let env = c.env.as_ref().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).unwrap();
        assert_eq!(
            get("MYSQL_HOST").value.as_deref(),
            Some("orders-1.orders-instances.shop.svc.cluster.local")
        );
        assert_eq!(
            get("S3_ENDPOINT").value.as_deref(),
            Some("http://minio:9000")
        );
        assert_eq!(get("S3_PATH_STYLE").value.as_deref(), Some("true"));
        for secret in [
            "MYSQL_PASSWORD",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(
                get(secret).value.is_none(),
                "{secret} must come from a Secret"
            );
        }
        let pw = get("MYSQL_PASSWORD")
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(pw.name, "orders-backup");
        assert_eq!(
            get("AWS_SECRET_ACCESS_KEY")
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .key,
            "key"
        );
    }

    /// The Job verifies the member with the cluster's CA: only `ca.crt` of the members' TLS
    /// Secret is mounted (never the key), and the container is told where it is.
    #[test]
    fn the_cluster_ca_and_only_it_is_mounted_for_the_mysql_connections() {
        for mode in [Mode::Backup, Mode::Restore] {
            let input = JobInput { mode, ..input() };
            let job = match mode {
                Mode::Backup => backup_job(&backup(), &input),
                Mode::Restore => job("r".into(), None, &input),
            };
            let pod = job.spec.unwrap().template.spec.unwrap();
            let c = &pod.containers[0];
            let env = c.env.as_ref().unwrap();
            let file = env.iter().find(|e| e.name == "MYSQL_CA_FILE").unwrap();
            assert_eq!(file.value.as_deref(), Some(MYSQL_CA_FILE));
            assert!(!env.iter().any(|e| e.name == "MYSQL_CLEARTEXT"));
            let mount = c
                .volume_mounts
                .as_ref()
                .unwrap()
                .iter()
                .find(|m| m.name == "mysql-ca")
                .unwrap();
            assert_eq!(mount.read_only, Some(true));
            assert_eq!(format!("{}/ca.crt", mount.mount_path), MYSQL_CA_FILE);
            let secret = pod
                .volumes
                .as_ref()
                .unwrap()
                .iter()
                .find(|v| v.name == "mysql-ca")
                .and_then(|v| v.secret.clone())
                .unwrap();
            assert_eq!(secret.secret_name.as_deref(), Some("orders-tls"));
            let items: Vec<(String, String)> = secret
                .items
                .unwrap()
                .into_iter()
                .map(|i| (i.key, i.path))
                .collect();
            assert_eq!(items, vec![("ca.crt".to_string(), "ca.crt".to_string())]);
        }
    }

    #[test]
    fn a_ca_secret_is_mounted_and_named_to_the_container() {
        let plain = backup_job(&backup(), &input());
        let pod = plain.spec.unwrap().template.spec.unwrap();
        assert_eq!(
            pod.volumes.as_ref().unwrap().len(),
            2,
            "tmp and the cluster's CA, no S3 CA volume without caSecret"
        );
        assert!(
            !pod.containers[0]
                .env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name == "S3_CA_FILE")
        );

        let mut input = input();
        input.storage.endpoint = Some("https://minio.storage:9000".into());
        input.storage.ca_secret = Some(SecretKeyRef {
            name: "minio-tls".into(),
            key: "ca.crt".into(),
        });
        let pod = backup_job(&backup(), &input)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let c = &pod.containers[0];
        let env = c.env.as_ref().unwrap();
        let file = env.iter().find(|e| e.name == "S3_CA_FILE").unwrap();
        assert_eq!(file.value.as_deref(), Some(S3_CA_FILE));
        let mount = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "s3-ca")
            .unwrap();
        assert_eq!(mount.read_only, Some(true));
        assert!(S3_CA_FILE.starts_with(&format!("{}/", mount.mount_path)));
        let secret = pod
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "s3-ca")
            .and_then(|v| v.secret.as_ref())
            .unwrap();
        assert_eq!(secret.secret_name.as_deref(), Some("minio-tls"));
        let item = &secret.items.as_ref().unwrap()[0];
        assert_eq!(
            (
                item.key.as_str(),
                format!("{}/{}", mount.mount_path, item.path)
            ),
            ("ca.crt", S3_CA_FILE.to_string())
        );
    }

    #[test]
    fn long_names_are_cut_to_a_valid_label_value() {
        let name = job_name(&"x".repeat(80));
        assert_eq!(name.len(), 63);
        assert_eq!(restore_job_name(&"y".repeat(80)).len(), 63);
        assert_eq!(restore_job_name("orders"), "restore-orders");
    }

    #[test]
    fn restore_job_loads_member_0_as_root_and_keeps_the_clusters_own_accounts() {
        let cluster: MySQLCluster = serde_yaml::from_str(
            "apiVersion: innodb-operator.io/v1alpha1\nkind: MySQLCluster\n\
             metadata: {name: orders, namespace: shop, uid: 7d1c0c1e-2c1a-4a73-9d45-3f6f1f0f2a12}\n\
             spec: {}\n",
        )
        .unwrap();
        let input = JobInput {
            mode: Mode::Restore,
            host: "orders-0.orders-instances.shop.svc.cluster.local".into(),
            ..input()
        };
        let j = restore_job(&cluster, &input);
        assert_eq!(j.metadata.name.as_deref(), Some("restore-orders"));
        let owner = &j.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("MySQLCluster", Some(true))
        );
        assert_eq!(
            j.metadata.labels.as_ref().unwrap()[LABEL_COMPONENT],
            "restore"
        );
        let spec = j.spec.unwrap();
        assert_eq!(
            spec.backoff_limit,
            Some(0),
            "a partial load is never retried on its own"
        );
        assert_eq!(
            spec.ttl_seconds_after_finished, None,
            "the Job is kept: deleting it retries"
        );
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.name, "restore");
        assert_eq!(
            c.args.as_ref().unwrap().join(" "),
            "restore --log-format=json --wait-for-server-seconds=600 --skip-account innodb_admin --skip-account innodb_repl \
             --skip-account innodb_router --skip-account innodb_backup"
        );
        assert_eq!(c.termination_message_path.as_deref(), Some(RESULT_FILE));
        let env = c.env.as_ref().unwrap();
        let get = |n: &str| env.iter().find(|e| e.name == n).unwrap();
        assert_eq!(
            get("MYSQL_HOST").value.as_deref(),
            Some("orders-0.orders-instances.shop.svc.cluster.local")
        );
        assert_eq!(get("MYSQL_USER").value.as_deref(), Some("root"));
        let pw = get("MYSQL_PASSWORD").value_from.as_ref().unwrap();
        assert_eq!(pw.secret_key_ref.as_ref().unwrap().name, "orders-root");
        assert_eq!(
            get("S3_PREFIX").value.as_deref(),
            Some("shop/orders/nightly-1/")
        );
        assert!(get("AWS_ACCESS_KEY_ID").value.is_none());
    }
}
