//! cert-manager's `Certificate` (`cert-manager.io/v1`), the fields the operator writes and reads.
//! cert-manager is optional: the type is used only for a cluster with `spec.tls.issuerRef`, and
//! its CRD is never installed or required by the operator.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// A request to cert-manager for a certificate in a Secret.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    plural = "certificates",
    namespaced,
    status = "CertificateStatus",
    schema = "disabled",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The Secret cert-manager writes `tls.crt`, `tls.key` and `ca.crt` into.
    pub secret_name: String,
    pub dns_names: Vec<String>,
    pub usages: Vec<String>,
    pub private_key: PrivateKey,
    pub issuer_ref: CertificateIssuerRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivateKey {
    pub algorithm: String,
    pub size: u32,
    /// `Always`: a renewal makes a new key.
    pub rotation_policy: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertificateIssuerRef {
    pub name: String,
    pub kind: String,
    pub group: String,
}

/// What cert-manager reports about a Certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default)]
    pub conditions: Vec<CertificateCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Time>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CertificateCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Certificate {
    /// Why the certificate is not issued, from cert-manager's `Ready` condition: `None` when it
    /// is Ready, or cert-manager has not looked at it yet.
    pub fn not_ready(&self) -> Option<String> {
        let ready = self
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status != "True").then(|| {
            format!(
                "{}: {}",
                ready.reason.as_deref().unwrap_or("NotReady"),
                ready.message.as_deref().unwrap_or("no message")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_ready(status: &str, reason: &str, message: &str) -> Certificate {
        let mut c: Certificate = serde_json::from_value(serde_json::json!({
            "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": "orders-member"},
            "spec": {"secretName": "orders-member-tls", "dnsNames": ["a"], "usages": [],
                     "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                     "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"}},
            "status": {"conditions": [{"type": "Issuing", "status": "True"},
                       {"type": "Ready", "status": status, "reason": reason, "message": message}]}
        }))
        .expect("a Certificate as cert-manager writes it");
        c.metadata.namespace = Some("db".into());
        c
    }

    #[test]
    fn not_ready_says_cert_managers_reason() {
        let c = with_ready("False", "DoesNotExist", "Issuer \"ca\" not found");
        assert_eq!(
            c.not_ready().as_deref(),
            Some("DoesNotExist: Issuer \"ca\" not found")
        );
        assert_eq!(with_ready("True", "Ready", "ok").not_ready(), None);
    }
}
