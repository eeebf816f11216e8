//! Test fixtures: clusters from YAML, as a user would write them.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::dereference::Dereferenced;
use super::validate::{ValidCluster, validate};
use crate::api::MySQLCluster;
use crate::api::storage::{S3CredentialsSecret, S3Storage};

/// The group name every fixture uses.
pub(crate) const GROUP_NAME: &str = "6f1c8d8e-4a59-4bd4-9a3e-2f0d7d5d1a10";

/// A `MySQLCluster` from a YAML document with `metadata` and `spec` (apiVersion and kind are added).
pub(crate) fn cluster_from_yaml(yaml: &str) -> MySQLCluster {
    let mut value: serde_yaml::Value = serde_yaml::from_str(yaml).expect("fixture is YAML");
    let map = value.as_mapping_mut().expect("fixture is a mapping");
    map.insert("apiVersion".into(), "innodb-operator.io/v1alpha1".into());
    map.insert("kind".into(), "MySQLCluster".into());
    serde_yaml::from_value(value).expect("fixture is a MySQLCluster")
}

/// What dereference finds for a new cluster.
pub(crate) fn deref() -> Dereferenced {
    Dereferenced {
        group_name: Uuid::parse_str(GROUP_NAME).unwrap(),
        existing_accounts: BTreeSet::new(),
        tls_secret_keys: None,
        certificate_pending: None,
        member_certificate_end: None,
        previous_ca_trusted: false,
        tls: Default::default(),
        restore: None,
    }
}

/// A validated cluster `orders` in namespace `db` with the given `spec: ...` YAML line(s).
pub(crate) fn valid_cluster(spec_yaml: &str) -> ValidCluster {
    let c = cluster_from_yaml(&format!(
        "metadata: {{name: orders, namespace: db, uid: 0b7c4a52-1f0e-4c57-9d55-3e8a3c1c9e01}}\n{spec_yaml}\n"
    ));
    let mut d = deref();
    if c.spec.tls.secret_name.is_some() {
        d.tls_secret_keys = Some(vec!["tls.crt".into(), "tls.key".into(), "ca.crt".into()]);
    }
    validate(&c, &d, None, "cluster.local").expect("fixture is valid")
}

/// Bucket `bucket` on a MinIO endpoint, with its credentials in Secret `s3` (keys `id`, `key`).
pub(crate) fn minio_storage(bucket: &str) -> S3Storage {
    S3Storage {
        bucket: bucket.into(),
        endpoint: Some("http://minio:9000".into()),
        force_path_style: true,
        credentials_secret: Some(S3CredentialsSecret {
            name: "s3".into(),
            access_key_id_key: "id".into(),
            secret_access_key_key: "key".into(),
        }),
        ..Default::default()
    }
}
