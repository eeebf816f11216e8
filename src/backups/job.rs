//! The Job that takes one backup: the operator's own image running `innodb-operator backup`
//! against one member, streaming to S3. Pure: built from the Backup, the storage and the source.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, PodSpec, PodTemplateSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::schedule::CLUSTER_LABEL;
use crate::api::{Backup, S3Storage};
use crate::cluster::build::mycnf::MYSQL_PORT;
use crate::cluster::build::names::{
    LABEL_COMPONENT, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGER, Names,
};
use crate::cluster::build::secrets::Account;
use crate::cluster::build::statefulset::{restricted_container, restricted_pod, secret_env};

/// Where the backup container writes its one-line JSON result; Kubernetes copies it into the
/// pod's status (`terminated.message`), where the operator reads it.
pub const RESULT_FILE: &str = "/dev/termination-log";
/// A backup that runs longer than this is stopped and Failed.
pub const DEADLINE_SECONDS: i64 = 6 * 3600;
/// Finished Jobs are kept this long for their logs.
pub const TTL_AFTER_FINISHED_SECONDS: i32 = 24 * 3600;
/// UID of the operator image's non-root user.
pub const OPERATOR_UID: i64 = 65532;

/// What a backup Job needs besides the Backup itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInput {
    /// The operator image (the same binary runs the backup).
    pub image: String,
    /// Host name of the member to back up.
    pub source_host: String,
    /// Where the backup goes.
    pub storage: S3Storage,
    /// The key prefix of this backup in the bucket.
    pub prefix: String,
}

/// Name of the Job of a Backup.
pub fn job_name(backup: &str) -> String {
    let name = format!("backup-{backup}");
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

/// The Job for `backup` (owned by it, so deleting the Backup deletes the Job).
pub fn job(backup: &Backup, input: &JobInput) -> Job {
    let ns = backup.namespace().unwrap_or_default();
    let cluster = &backup.spec.cluster_name;
    let names = Names::new(cluster, &ns);
    let labels = BTreeMap::from([
        (LABEL_NAME.to_string(), "mysql-innodb-cluster".to_string()),
        (LABEL_INSTANCE.to_string(), cluster.clone()),
        (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
        (LABEL_COMPONENT.to_string(), "backup".to_string()),
        (CLUSTER_LABEL.to_string(), cluster.clone()),
    ]);
    let s = &input.storage;
    let mut envs = vec![
        env("MYSQL_HOST", input.source_host.clone()),
        env("MYSQL_PORT", MYSQL_PORT.to_string()),
        env("MYSQL_USER", Account::Backup.user()),
        secret_env(
            "MYSQL_PASSWORD",
            &names.secret(Account::Backup.suffix()),
            "password",
        ),
        env("S3_BUCKET", s.bucket.clone()),
        env("S3_PREFIX", input.prefix.clone()),
        env("AWS_REGION", s.region.clone()),
        env("S3_PATH_STYLE", s.force_path_style.to_string()),
        env("RESULT_FILE", RESULT_FILE),
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
    let container = Container {
        name: "backup".to_string(),
        image: Some(input.image.clone()),
        args: Some(vec!["backup".to_string(), "--log-format=json".to_string()]),
        env: Some(envs),
        termination_message_path: Some(RESULT_FILE.to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        security_context: Some(restricted_container()),
        volume_mounts: Some(vec![VolumeMount {
            name: "tmp".to_string(),
            mount_path: "/tmp".to_string(),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&backup.name_any())),
            namespace: Some(ns),
            labels: Some(labels.clone()),
            owner_references: backup.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            // A failed backup is Failed: the schedule takes the next one, a person retries.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED_SECONDS),
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
                    volumes: Some(vec![Volume {
                        name: "tmp".to_string(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    }]),
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
    use crate::api::storage::S3CredentialsSecret;

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
            image: "innodb-operator:1".into(),
            source_host: "orders-1.orders-instances.shop.svc.cluster.local".into(),
            storage: S3Storage {
                bucket: "b".into(),
                region: "eu-west-1".into(),
                endpoint: Some("http://minio:9000".into()),
                force_path_style: true,
                credentials_secret: Some(S3CredentialsSecret {
                    name: "s3".into(),
                    access_key_id_key: "id".into(),
                    secret_access_key_key: "key".into(),
                }),
                ..Default::default()
            },
            prefix: "shop/orders/nightly-1/".into(),
        }
    }

    #[test]
    fn job_runs_once_as_non_root_and_never_inlines_secrets() {
        let j = job(&backup(), &input());
        assert_eq!(j.metadata.name.as_deref(), Some("backup-nightly-1"));
        assert_eq!(
            j.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Backup"
        );
        let spec = j.spec.unwrap();
        assert_eq!(spec.backoff_limit, Some(0));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
        let c = &pod.containers[0];
        assert_eq!(c.args.as_ref().unwrap()[0], "backup");
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

    #[test]
    fn long_names_are_cut_to_a_valid_label_value() {
        let name = job_name(&"x".repeat(80));
        assert_eq!(name.len(), 63);
    }
}
