//! Step 2 of the reconcile: turn the spec (and what dereference found) into a validated value,
//! or say clearly what is wrong. No client here: everything is decided from the inputs.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use uuid::Uuid;

use super::build::mycnf::is_managed_option;
use super::build::names::{Component, Names, owned_meta};
use super::dereference::Dereferenced;
use crate::api::cluster::{CommunicationStack, MySQLCluster, PodTemplateOverrides, StorageSpec};

/// Everything the builders need, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    pub names: Names,
    pub version: ServerVersion,
    pub image: String,
    pub router_image: String,
    pub pull_policy: Option<String>,
    pub instances: i32,
    pub stack: CommunicationStack,
    pub storage: StorageSpec,
    pub resources: Option<ResourceRequirements>,
    pub mycnf_extra: BTreeMap<String, String>,
    pub router_instances: i32,
    pub router_resources: Option<ResourceRequirements>,
    pub tls_secret: Option<String>,
    pub pod_template: PodTemplateOverrides,
    pub group_name: Uuid,
    pub domain: String,
    owner: OwnerReference,
}

/// A MySQL server version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServerVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why a spec cannot be built. Each message says what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("the MySQLCluster has no name or namespace")]
    MissingMetadata,
    #[error(
        "spec.version {0:?} is not a MySQL version: use 8.0.27 or later 8.0 releases, or 8.4.x"
    )]
    BadVersion(String),
    #[error(
        "spec.version {0} is not supported: use 8.0.27 or later (for the MYSQL communication stack and clone), or 8.4.x"
    )]
    UnsupportedVersion(ServerVersion),
    #[error("spec.instances {0} is out of range: use 1 to 9")]
    Instances(i32),
    #[error("spec.router.instances {0} is out of range: use 0 to 32")]
    RouterInstances(i32),
    #[error("spec.mycnf sets {0:?}, which the operator manages: remove it from spec.mycnf")]
    ManagedOption(String),
    #[error(
        "spec.mycnf key {0:?} is not an option name: use lowercase letters, digits, '_' and '-'"
    )]
    BadOptionName(String),
    #[error("spec.mycnf value of {0:?} contains a newline: use a single-line value")]
    BadOptionValue(String),
    #[error("TLS Secret {name:?} is missing key {key:?}: it needs tls.crt, tls.key and ca.crt")]
    TlsSecretKey { name: String, key: String },
    #[error("TLS Secret {0:?} does not exist: create it or remove spec.tls.secretName")]
    TlsSecretMissing(String),
}

impl ValidationError {
    /// A CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::MissingMetadata => "InvalidObject",
            ValidationError::BadVersion(_) | ValidationError::UnsupportedVersion(_) => {
                "InvalidVersion"
            }
            ValidationError::Instances(_) | ValidationError::RouterInstances(_) => {
                "InvalidInstances"
            }
            ValidationError::ManagedOption(_)
            | ValidationError::BadOptionName(_)
            | ValidationError::BadOptionValue(_) => "InvalidMycnf",
            ValidationError::TlsSecretKey { .. } | ValidationError::TlsSecretMissing(_) => {
                "InvalidTLSSecret"
            }
        }
    }
}

/// Parses `8.4.7` (also `8.4` as `8.4.0`).
pub fn parse_version(v: &str) -> Result<ServerVersion, ValidationError> {
    let bad = || ValidationError::BadVersion(v.to_string());
    let mut parts = v.split('.');
    let mut next = |required: bool| -> Result<u16, ValidationError> {
        match parts.next() {
            Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => {
                p.parse().map_err(|_| bad())
            }
            None if !required => Ok(0),
            _ => Err(bad()),
        }
    };
    let version = ServerVersion {
        major: next(true)?,
        minor: next(true)?,
        patch: next(false)?,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(version)
}

fn check_supported(v: ServerVersion) -> Result<ServerVersion, ValidationError> {
    let ok = matches!((v.major, v.minor), (8, 0) if v.patch >= 27) || (v.major, v.minor) == (8, 4);
    if ok {
        Ok(v)
    } else {
        Err(ValidationError::UnsupportedVersion(v))
    }
}

/// Validates `cluster` with what dereference found. `domain` is the cluster DNS domain.
pub fn validate(
    cluster: &MySQLCluster,
    deref: &Dereferenced,
    domain: &str,
) -> Result<ValidCluster, ValidationError> {
    let name = cluster
        .metadata
        .name
        .as_deref()
        .ok_or(ValidationError::MissingMetadata)?;
    let namespace = cluster
        .metadata
        .namespace
        .as_deref()
        .ok_or(ValidationError::MissingMetadata)?;
    let owner = cluster
        .controller_owner_ref(&())
        .ok_or(ValidationError::MissingMetadata)?;
    let spec = &cluster.spec;
    let version = check_supported(parse_version(&spec.version)?)?;
    if !(1..=9).contains(&spec.instances) {
        return Err(ValidationError::Instances(spec.instances));
    }
    if !(0..=32).contains(&spec.router.instances) {
        return Err(ValidationError::RouterInstances(spec.router.instances));
    }
    for (k, v) in &spec.mycnf {
        let well_formed = k.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !well_formed {
            return Err(ValidationError::BadOptionName(k.clone()));
        }
        if is_managed_option(k) {
            return Err(ValidationError::ManagedOption(k.clone()));
        }
        if v.contains(['\n', '\r']) {
            return Err(ValidationError::BadOptionValue(k.clone()));
        }
    }
    if let Some(secret) = &spec.tls.secret_name {
        match &deref.tls_secret_keys {
            None => return Err(ValidationError::TlsSecretMissing(secret.clone())),
            Some(keys) => {
                for key in ["tls.crt", "tls.key", "ca.crt"] {
                    if !keys.iter().any(|k| k == key) {
                        return Err(ValidationError::TlsSecretKey {
                            name: secret.clone(),
                            key: key.to_string(),
                        });
                    }
                }
            }
        }
    }
    let version_tag = spec.version.clone();
    Ok(ValidCluster {
        names: Names::new(name, namespace),
        version,
        image: spec
            .image
            .clone()
            .unwrap_or_else(|| format!("mysql:{version_tag}")),
        router_image: spec.router.image.clone().unwrap_or_else(|| {
            format!("container-registry.oracle.com/mysql/community-router:{version_tag}")
        }),
        pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        instances: spec.instances,
        stack: cluster.communication_stack(),
        storage: spec.storage.clone(),
        resources: spec.resources.clone(),
        mycnf_extra: spec.mycnf.clone(),
        router_instances: spec.router.instances,
        router_resources: spec.router.resources.clone(),
        tls_secret: spec.tls.secret_name.clone(),
        pod_template: spec.pod_template.clone(),
        group_name: deref.group_name,
        domain: domain.to_string(),
        owner,
    })
}

impl ValidCluster {
    /// Metadata of an object of this cluster, owned by it.
    pub fn meta(&self, name: String, component: Component) -> ObjectMeta {
        owned_meta(name, &self.names, component, &self.owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::{cluster_from_yaml, deref};

    #[test]
    fn versions_parse_and_are_checked() {
        assert_eq!(
            parse_version("8.4.7").unwrap(),
            ServerVersion {
                major: 8,
                minor: 4,
                patch: 7
            }
        );
        assert_eq!(parse_version("8.4").unwrap().patch, 0);
        for bad in ["", "8", "8.x.1", "8.0.1.2", "v8.0.30", "8..1"] {
            assert_eq!(
                parse_version(bad),
                Err(ValidationError::BadVersion(bad.into())),
                "{bad}"
            );
        }
        assert!(check_supported(parse_version("8.0.26").unwrap()).is_err());
        assert!(check_supported(parse_version("8.0.27").unwrap()).is_ok());
        assert!(check_supported(parse_version("8.1.0").unwrap()).is_err());
        assert!(check_supported(parse_version("9.1.0").unwrap()).is_err());
    }

    #[test]
    fn defaults_make_a_valid_cluster() {
        let c = cluster_from_yaml("metadata: {name: orders, namespace: db, uid: u1}\nspec: {}\n");
        let v = validate(&c, &deref(), "cluster.local").unwrap();
        assert_eq!(v.instances, 3);
        assert_eq!(v.image, "mysql:8.4.7");
        assert_eq!(v.stack, CommunicationStack::MYSQL);
        assert_eq!(v.router_instances, 2);
    }

    #[test]
    fn rejects_what_the_schema_cannot_say() {
        let cases = [
            (
                "spec: {mycnf: {server_id: '7'}}",
                "InvalidMycnf",
                "server_id",
            ),
            (
                "spec: {mycnf: {loose-group_replication_group_name: x}}",
                "InvalidMycnf",
                "manages",
            ),
            (
                "spec: {mycnf: {'Bad Key': x}}",
                "InvalidMycnf",
                "not an option name",
            ),
            (
                "spec: {mycnf: {max_connections: \"1\\n[client]\"}}",
                "InvalidMycnf",
                "newline",
            ),
            (
                "spec: {version: '8.0.20'}",
                "InvalidVersion",
                "8.0.27 or later",
            ),
            ("spec: {instances: 12}", "InvalidInstances", "1 to 9"),
            (
                "spec: {tls: {secretName: t}}",
                "InvalidTLSSecret",
                "does not exist",
            ),
        ];
        for (spec, reason, text) in cases {
            let c = cluster_from_yaml(&format!(
                "metadata: {{name: a, namespace: b, uid: u}}\n{spec}\n"
            ));
            let err = validate(&c, &deref(), "cluster.local").unwrap_err();
            assert_eq!(err.reason(), reason, "{spec}");
            assert!(err.to_string().contains(text), "{spec}: {err}");
        }
    }

    #[test]
    fn tls_secret_needs_all_keys() {
        let c = cluster_from_yaml(
            "metadata: {name: a, namespace: b, uid: u}\nspec: {tls: {secretName: t}}\n",
        );
        let mut d = deref();
        d.tls_secret_keys = Some(vec!["tls.crt".into(), "tls.key".into()]);
        let err = validate(&c, &d, "cluster.local").unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        d.tls_secret_keys = Some(vec!["tls.crt".into(), "tls.key".into(), "ca.crt".into()]);
        assert_eq!(
            validate(&c, &d, "x").unwrap().tls_secret.as_deref(),
            Some("t")
        );
    }
}
