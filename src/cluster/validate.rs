//! Part of [`super::gather`] (pure): turn the spec (and what dereference found) into a validated
//! value, or say clearly what is wrong. No client here: everything is decided from the inputs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use uuid::Uuid;

use super::build::mycnf::is_managed_option;
use super::dereference::Dereferenced;
use crate::api::cluster::{
    CommunicationStack, MySQLCluster, PodTemplateOverrides, RouterMode, StorageSpec,
};
use crate::events::INVALID_OBJECT;
use crate::objects::names::{Component, Names, owned_meta};
use crate::objects::tls::TlsSource;
use crate::version::{self, ChangeRefused, Series, ServerVersion, VersionError};

/// Everything the builders need, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCluster {
    pub names: Names,
    /// The version the members are to run: the spec's, or what they run now when the spec asks
    /// for a change MySQL does not allow (see `warnings`).
    pub version: ServerVersion,
    pub(crate) series: Series,
    pub image: String,
    pub(crate) router_image: String,
    pub(crate) pull_policy: Option<String>,
    pub instances: i32,
    pub stack: CommunicationStack,
    pub storage: StorageSpec,
    pub resources: Option<ResourceRequirements>,
    pub(crate) mycnf_extra: BTreeMap<String, String>,
    pub(crate) router_instances: i32,
    pub(crate) router_resources: Option<ResourceRequirements>,
    pub(crate) router_mode: RouterMode,
    /// Where the members' certificates come from.
    pub tls: TlsSource,
    /// Members refuse clients without TLS (unless the spec allows cleartext clients).
    pub require_secure_transport: bool,
    pub(crate) pod_template: PodTemplateOverrides,
    /// With `spec.networkPolicy.enabled`: who may connect to the Routers (empty: every pod
    /// of the namespace). `None`: the cluster has no NetworkPolicies.
    pub(crate) network_policy: Option<Vec<NetworkPolicyPeer>>,
    pub group_name: Uuid,
    pub domain: String,
    /// What the spec asks that the operator does with a warning (or not at all), for the status.
    pub warnings: Vec<SpecWarning>,
    owner: OwnerReference,
}

impl ValidCluster {
    /// The Secret the members' certificate, key and CA are mounted from.
    pub fn member_tls_secret(&self) -> String {
        self.tls.member_secret(&self.names)
    }

    /// Whether the Secret of the members' certificate exists (the operator's sessions need its
    /// CA): a user's Secret is checked by validation, the operator's is made by the first apply.
    pub(crate) fn member_certificate_exists(&self, deref: &Dereferenced) -> bool {
        match self.tls {
            TlsSource::OperatorCa => deref.tls.member.is_some(),
            TlsSource::Secret(_) => true,
            TlsSource::CertManager(_) => deref.tls_secret_keys.is_some(),
        }
    }
}

/// What the members run now, read from the existing StatefulSet: a change of version is checked
/// against it, and a refused change keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deployed {
    pub version: ServerVersion,
    pub image: String,
}

/// Something in the spec the cluster runs with, but that a user should know about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecWarning {
    #[error(
        "MySQL {0} is end of life (the 8.0 series gets no more fixes): upgrade to 8.4.x, then 9.7.x"
    )]
    EndOfLife(ServerVersion),
    #[error(
        "groupCommunicationStack XCOM is deprecated in MySQL {0}: new clusters should use the MYSQL stack (the default)"
    )]
    DeprecatedStack(&'static str),
    #[error("{0}; the members keep running the version they have")]
    VersionChangeRefused(ChangeRefused),
    /// The operator CA's certificates cannot be made or renewed (the message says which Secret
    /// and what to do); the members keep the certificates they have.
    #[error("{0}; the members keep the certificates they have")]
    Certificates(String),
    /// cert-manager has not issued the members' certificate yet: the members wait for it.
    #[error("{0}")]
    CertificatePending(String),
    /// A certificate in use (the Secret's, or one a member serves) ends within a week.
    #[error("{0}")]
    CertificateExpiring(String),
    /// A certificate in use has ended: new connections to the member that serves it fail.
    #[error("{0}")]
    CertificateExpired(String),
}

impl SpecWarning {
    /// A CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            SpecWarning::EndOfLife(_) => "EndOfLifeVersion",
            SpecWarning::DeprecatedStack(_) => "DeprecatedCommunicationStack",
            SpecWarning::VersionChangeRefused(_) => "VersionChangeRefused",
            SpecWarning::Certificates(_) => "CertificateError",
            SpecWarning::CertificatePending(_) => "CertificatePending",
            SpecWarning::CertificateExpiring(_) => "CertificateExpiring",
            SpecWarning::CertificateExpired(_) => "CertificateExpired",
        }
    }

    /// Whether the cluster does not run what the spec asks (the Degraded condition says so).
    pub(crate) fn degrades(&self) -> bool {
        matches!(
            self,
            SpecWarning::VersionChangeRefused(_)
                | SpecWarning::Certificates(_)
                | SpecWarning::CertificatePending(_)
                | SpecWarning::CertificateExpired(_)
        )
    }
}

/// Why a spec cannot be built. Each message says what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("the MySQLCluster has no name or namespace")]
    MissingMetadata,
    #[error("spec.version {0}")]
    Version(#[from] VersionError),
    #[error(
        "spec.mycnf sets {option:?}, which MySQL {series} no longer has (mysqld would not start): remove it from spec.mycnf"
    )]
    RemovedOption {
        option: String,
        series: &'static str,
    },
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
    #[error(
        "Secret {name:?} issued by cert-manager has no {key:?}: use an issuer that writes its CA there (CA, SelfSigned or Vault issuers do; ACME does not), or spec.tls.secretName"
    )]
    IssuedSecretKey { name: String, key: String },
    #[error("TLS Secret {0:?} does not exist: create it or remove spec.tls.secretName")]
    TlsSecretMissing(String),
}

impl ValidationError {
    /// A CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            ValidationError::MissingMetadata => INVALID_OBJECT,
            ValidationError::Version(_) => "InvalidVersion",
            ValidationError::Instances(_) | ValidationError::RouterInstances(_) => {
                "InvalidInstances"
            }
            ValidationError::ManagedOption(_)
            | ValidationError::BadOptionName(_)
            | ValidationError::BadOptionValue(_)
            | ValidationError::RemovedOption { .. } => "InvalidMycnf",
            ValidationError::TlsSecretKey { .. }
            | ValidationError::TlsSecretMissing(_)
            | ValidationError::IssuedSecretKey { .. } => "InvalidTLSSecret",
        }
    }
}

/// The version the members are to run, and the image to run it with when it is not the spec's.
struct Chosen {
    version: ServerVersion,
    series: Series,
    /// `None`: the spec's image (or the default image of `version`).
    image: Option<String>,
    refused: Option<SpecWarning>,
}

/// The spec's version, unless it asks for a change MySQL does not allow from what the members
/// run: then what they run, with their image, and a warning that says why.
fn choose_version(
    cluster: &MySQLCluster,
    deployed: Option<&Deployed>,
) -> Result<Chosen, ValidationError> {
    let version = ServerVersion::parse_spec(&cluster.spec.version)?;
    let series = version.series()?;
    let wanted = Chosen {
        version,
        series,
        image: cluster.spec.image.clone(),
        refused: None,
    };
    let Some(from) = deployed.filter(|d| d.version != version) else {
        return Ok(wanted);
    };
    // A version the operator no longer supports may be left behind by hand: allow any way out.
    let Ok(from_series) = from.version.series() else {
        return Ok(wanted);
    };
    Ok(
        match version::check_change(from.version, from_series, version, series) {
            Ok(()) => wanted,
            Err(refused) => Chosen {
                version: from.version,
                series: from_series,
                image: Some(from.image.clone()),
                refused: Some(SpecWarning::VersionChangeRefused(refused)),
            },
        },
    )
}

/// Validates `cluster` with what dereference found and what the members run now (`deployed`,
/// `None` for a new cluster). `domain` is the cluster DNS domain.
/// Long (101 lines) on purpose: one check per spec field, in the spec's order, into one value.
pub fn validate(
    cluster: &MySQLCluster,
    deref: &Dereferenced,
    deployed: Option<&Deployed>,
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
    let Chosen {
        version,
        series,
        image,
        refused,
    } = choose_version(cluster, deployed)?;
    let mut warnings: Vec<SpecWarning> = refused.into_iter().collect();
    if series.end_of_life() {
        warnings.push(SpecWarning::EndOfLife(version));
    }
    let stack = cluster.communication_stack();
    if stack == CommunicationStack::XCOM && series.xcom_deprecated() {
        warnings.push(SpecWarning::DeprecatedStack(series.name()));
    }
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
        if series.removed(k) {
            return Err(ValidationError::RemovedOption {
                option: k.clone(),
                series: series.name(),
            });
        }
        if v.contains(['\n', '\r']) {
            return Err(ValidationError::BadOptionValue(k.clone()));
        }
    }
    check_tls_secret(
        &TlsSource::of(&spec.tls),
        &Names::new(name, namespace),
        deref,
    )?;
    Ok(ValidCluster {
        names: Names::new(name, namespace),
        version,
        series,
        image: image.unwrap_or_else(|| format!("mysql:{version}")),
        // The router follows the server's series (a metadata-cache Router ignores members of a
        // newer series than its own).
        router_image: spec.router.image.clone().unwrap_or_else(|| {
            format!("container-registry.oracle.com/mysql/community-router:{version}")
        }),
        pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        instances: spec.instances,
        stack,
        storage: spec.storage.clone(),
        resources: spec.resources.clone(),
        mycnf_extra: spec.mycnf.clone(),
        router_instances: spec.router.instances,
        router_resources: spec.router.resources.clone(),
        router_mode: spec.router.mode,
        tls: TlsSource::of(&spec.tls),
        require_secure_transport: !spec.tls.allow_cleartext_clients,
        pod_template: spec.pod_template.clone(),
        network_policy: spec
            .network_policy
            .as_ref()
            .filter(|n| n.enabled)
            .map(|n| n.router_from.clone()),
        group_name: deref.group_name,
        domain: domain.to_string(),
        warnings,
        owner,
    })
}

/// The keys a Secret of the members' certificate must have. A user's Secret must exist; the one
/// cert-manager issues may not exist yet (the members wait for it, and the status says so).
fn check_tls_secret(
    source: &TlsSource,
    names: &Names,
    deref: &Dereferenced,
) -> Result<(), ValidationError> {
    let Some(name) = source.outside_secret(names) else {
        return Ok(());
    };
    let issued = matches!(source, TlsSource::CertManager(_));
    let Some(keys) = deref.tls_secret_keys.as_deref() else {
        return match issued {
            true => Ok(()),
            false => Err(ValidationError::TlsSecretMissing(name)),
        };
    };
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        if !keys.iter().any(|k| k == key) {
            let key = key.to_string();
            return Err(match issued {
                true => ValidationError::IssuedSecretKey { name, key },
                false => ValidationError::TlsSecretKey { name, key },
            });
        }
    }
    Ok(())
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
    fn defaults_make_a_valid_cluster() {
        let c = cluster_from_yaml("metadata: {name: orders, namespace: db, uid: u1}\nspec: {}\n");
        let v = validate(&c, &deref(), None, "cluster.local").unwrap();
        assert_eq!(v.instances, 3);
        assert_eq!(v.image, "mysql:9.7.4");
        assert_eq!(v.series, Series::Lts97);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(v.stack, CommunicationStack::MYSQL);
        assert_eq!(v.router_instances, 2);
    }

    fn with_version(spec: &str, deployed: Option<(&str, &str)>) -> ValidCluster {
        let c = cluster_from_yaml(&format!(
            "metadata: {{name: a, namespace: b, uid: u}}\nspec: {spec}\n"
        ));
        let deployed = deployed.map(|(v, image)| Deployed {
            version: ServerVersion::parse_spec(v).unwrap(),
            image: image.to_string(),
        });
        validate(&c, &deref(), deployed.as_ref(), "cluster.local").unwrap()
    }

    #[test]
    fn allowed_version_changes_take_the_spec() {
        let v = with_version("{version: '9.7.4'}", Some(("8.4.7", "mysql:8.4.7")));
        assert_eq!(
            (v.version.to_string(), v.image.as_str()),
            ("9.7.4".into(), "mysql:9.7.4")
        );
        assert!(v.router_image.ends_with("community-router:9.7.4"));
        assert!(v.warnings.is_empty());
    }

    #[test]
    fn refused_version_changes_keep_what_runs_and_say_why() {
        for (spec, deployed, why) in [
            ("{version: '8.4.7'}", "9.7.4", "older than 9.7.4"),
            (
                "{version: '9.7.4', image: 'reg/mysql:9.7.4'}",
                "8.0.40",
                "to 8.4.x first",
            ),
        ] {
            let v = with_version(spec, Some((deployed, "reg/mysql:old")));
            assert_eq!(v.version.to_string(), deployed, "{spec}");
            assert_eq!(v.image, "reg/mysql:old", "{spec}: the running image stays");
            let warning = v
                .warnings
                .iter()
                .find(|w| w.degrades())
                .unwrap_or_else(|| panic!("{spec}: no refusal in {:?}", v.warnings));
            assert_eq!(warning.reason(), "VersionChangeRefused");
            assert!(warning.degrades());
            assert!(warning.to_string().contains(why), "{warning}");
        }
    }

    #[test]
    fn end_of_life_and_deprecated_stacks_warn() {
        let v = with_version("{version: '8.0.40'}", None);
        assert_eq!(v.warnings, vec![SpecWarning::EndOfLife(v.version)]);
        assert!(!v.warnings[0].degrades());
        let v = with_version("{version: '9.7.4', groupCommunicationStack: XCOM}", None);
        assert_eq!(v.warnings, vec![SpecWarning::DeprecatedStack("9.7")]);
        let v = with_version("{version: '8.4.7', groupCommunicationStack: XCOM}", None);
        assert!(v.warnings.is_empty());
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
            (
                "spec: {version: '9.6.0'}",
                "InvalidVersion",
                "9.7.x (the default) or 8.4.x",
            ),
            (
                "spec: {version: '9.7.4', mycnf: {innodb_log_file_size: 1G}}",
                "InvalidMycnf",
                "MySQL 9.7 no longer has",
            ),
            (
                "spec: {version: '8.4.7', mycnf: {default-authentication-plugin: x}}",
                "InvalidMycnf",
                "MySQL 8.4 no longer has",
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
            let err = validate(&c, &deref(), None, "cluster.local").unwrap_err();
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
        let err = validate(&c, &d, None, "cluster.local").unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        d.tls_secret_keys = Some(vec!["tls.crt".into(), "tls.key".into(), "ca.crt".into()]);
        assert_eq!(
            validate(&c, &d, None, "x").unwrap().tls,
            TlsSource::Secret("t".into())
        );
    }

    #[test]
    fn a_cert_manager_secret_may_not_exist_yet_but_must_hold_its_ca() {
        let c = cluster_from_yaml(
            "metadata: {name: a, namespace: b, uid: u}\nspec: {tls: {issuerRef: {name: ca}}}\n",
        );
        let mut d = deref();
        // Not issued yet: valid (the members wait; the status says why).
        let valid = validate(&c, &d, None, "cluster.local").expect("valid before issuance");
        assert_eq!(valid.member_tls_secret(), "a-member-tls");
        assert!(matches!(&valid.tls, TlsSource::CertManager(i) if i.name == "ca"));
        assert!(!valid.member_certificate_exists(&d));
        // Issued without a CA (an ACME issuer): refused, saying which issuers work.
        d.tls_secret_keys = Some(vec!["tls.crt".into(), "tls.key".into()]);
        let err = validate(&c, &d, None, "cluster.local").unwrap_err();
        assert_eq!(err.reason(), "InvalidTLSSecret");
        assert!(
            err.to_string()
                .contains("Secret \"a-member-tls\" issued by cert-manager has no \"ca.crt\""),
            "{err}"
        );
        d.tls_secret_keys = Some(vec!["tls.crt".into(), "tls.key".into(), "ca.crt".into()]);
        let valid = validate(&c, &d, None, "cluster.local").expect("valid once issued");
        assert!(valid.member_certificate_exists(&d));
    }
}
