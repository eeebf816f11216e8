//! Where the members' certificate comes from, as `spec.tls` says: read by dereference (which
//! Secret to look for) and carried by the validated cluster (what to build).

use crate::api::cluster::{IssuerRef, TlsSpec};
use crate::objects::names::Names;

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
}
