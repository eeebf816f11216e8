//! The members' TLS Secrets: where their certificate comes from, as `spec.tls` says (read by
//! dereference, carried by the validated cluster, mounted by the data-path Jobs), and the keys
//! the Secrets hold.

use crate::api::cluster::{IssuerRef, TlsSpec};
use crate::objects::names::Names;

/// Keys of the CA Secret.
pub const CA_CERT_KEY: &str = "ca.crt";
pub(crate) const CA_KEY_KEY: &str = "ca.key";
/// Keys of a `kubernetes.io/tls` Secret.
pub const TLS_CERT_KEY: &str = "tls.crt";
pub const TLS_KEY_KEY: &str = "tls.key";

/// Where the members' certificates come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// The cluster's own CA, which the operator makes and keeps (`C-ca`), and the member
    /// certificate it signs (`C-tls`).
    OperatorCa,
    /// A `kubernetes.io/tls` Secret the user provides (`spec.tls.secretName`).
    Secret(String),
    /// A certificate cert-manager issues (`spec.tls.issuerRef`) into `C-member-tls`.
    CertManager(IssuerRef),
}

impl TlsSource {
    /// Where `spec.tls` says the members' certificate comes from.
    pub(crate) fn of(tls: &TlsSpec) -> TlsSource {
        match (&tls.secret_name, &tls.issuer_ref) {
            (Some(secret), _) => TlsSource::Secret(secret.clone()),
            (None, Some(issuer)) => TlsSource::CertManager(issuer.clone()),
            (None, None) => TlsSource::OperatorCa,
        }
    }

    /// The Secret someone else writes the members' certificate into (the user, cert-manager);
    /// `None` for the operator's CA, whose Secrets the operator makes.
    pub(crate) fn outside_secret(&self, names: &Names) -> Option<String> {
        match self {
            TlsSource::OperatorCa => None,
            TlsSource::Secret(name) => Some(name.clone()),
            TlsSource::CertManager(_) => Some(names.issued_member_tls_secret()),
        }
    }

    /// The Secret the members' certificate, key and CA are mounted from (by the members, the
    /// Routers and the data-path Jobs).
    pub(crate) fn member_secret(&self, names: &Names) -> String {
        self.outside_secret(names)
            .unwrap_or_else(|| names.member_tls_secret())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_members_secret_follows_the_spec_for_every_reader() {
        let names = Names::new("orders", "db");
        let spec = |yaml: &str| -> TlsSpec { serde_yaml::from_str(yaml).unwrap() };
        let secret = |yaml| TlsSource::of(&spec(yaml)).member_secret(&names);
        assert_eq!(secret("{}"), "orders-tls");
        assert_eq!(secret("{secretName: mine}"), "mine");
        // cert-manager writes its own Secret: a backup Job mounting `orders-tls` would wait
        // for a Secret that never comes.
        assert_eq!(secret("{issuerRef: {name: ca}}"), "orders-member-tls");
        assert_eq!(secret("{secretName: mine, issuerRef: {name: ca}}"), "mine");
    }
}
