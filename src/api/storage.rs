//! Where backups live: an S3 bucket (AWS or any S3-compatible endpoint).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// An S3 location and the credentials to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Bucket name (3-63 lowercase letters, digits, dots and hyphens).
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// Key prefix inside the bucket, without a leading slash (e.g. `prod/orders`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!self.startsWith('/')").message("prefix must not start with '/'"))]
    #[schemars(length(max = 512))]
    pub prefix: Option<String>,
    /// Region of the bucket; S3-compatible servers usually accept the default.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,
    /// Endpoint URL for S3-compatible servers (MinIO, Ceph, R2, ...); empty means AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s/]+(/.*)?$"))]
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint` (most S3-compatible servers).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret holding the access key; without it the ambient AWS credentials (IRSA, instance
    /// profile) are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<S3CredentialsSecret>,
    /// Secret key holding PEM CA certificates to trust for an HTTPS endpoint behind a private CA
    /// (in addition to the system roots). A Secret, as cert-manager writes `ca.crt` into the
    /// Secret of the certificate it issues: point at that Secret directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
}

/// One key of a Secret in the cluster's namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub(crate) name: String,
    /// Key in the Secret.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub(crate) key: String,
}

fn default_ca_key() -> String {
    "ca.crt".to_string()
}

fn default_region() -> String {
    "us-east-1".to_string()
}

/// A Secret in the cluster's namespace with an S3 access key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3CredentialsSecret {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub(crate) name: String,
    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_id_key")]
    pub(crate) access_key_id_key: String,
    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_access_key_key")]
    pub(crate) secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_string()
}

fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_string()
}

impl S3Storage {
    /// The object key under which a named backup is stored: `<prefix>/<namespace>/<cluster>/<backup>/`.
    pub(crate) fn backup_prefix(&self, namespace: &str, cluster: &str, backup: &str) -> String {
        let base = self
            .prefix
            .as_deref()
            .map(|p| p.trim_end_matches('/'))
            .filter(|p| !p.is_empty());
        match base {
            Some(p) => format!("{p}/{namespace}/{cluster}/{backup}/"),
            None => format!("{namespace}/{cluster}/{backup}/"),
        }
    }

    /// `s3://bucket/key` for display in status.
    pub(crate) fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_prefix_joins_without_double_slashes() {
        let mut s = S3Storage {
            bucket: "b".into(),
            ..Default::default()
        };
        assert_eq!(s.backup_prefix("ns", "c", "b1"), "ns/c/b1/");
        s.prefix = Some("prod/".into());
        assert_eq!(s.backup_prefix("ns", "c", "b1"), "prod/ns/c/b1/");
        assert_eq!(s.url("prod/ns/c/b1/"), "s3://b/prod/ns/c/b1/");
    }
}
