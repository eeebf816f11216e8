//! The cert-manager Certificate of the members (`spec.tls.issuerRef`): the same names, usages
//! and key type as the certificate the operator's own CA would sign, so members, Routers and
//! the operator use either alike.

use crate::certs::cert_manager::{Certificate, CertificateIssuerRef, CertificateSpec, PrivateKey};
use crate::objects::names::Component;

use super::tls_secrets::member_request;
use crate::cluster::validate::ValidCluster;
use crate::objects::tls::TlsSource;

/// The issuer kind and group when `spec.tls.issuerRef` leaves them out (cert-manager's own).
const DEFAULT_KIND: &str = "Issuer";
const DEFAULT_GROUP: &str = "cert-manager.io";

/// The Certificate to request, when cert-manager issues the members' certificate.
pub(crate) fn member_certificate(c: &ValidCluster) -> Option<Certificate> {
    let TlsSource::CertManager(issuer) = &c.tls else {
        return None;
    };
    let spec = CertificateSpec {
        secret_name: c.names.issued_member_tls_secret(),
        dns_names: member_request(c).dns_names,
        // Members present it to clients and to each other (recovery, clone, the group's own
        // connections), so it authenticates both ends.
        usages: vec![
            "digital signature".into(),
            "server auth".into(),
            "client auth".into(),
        ],
        private_key: PrivateKey {
            algorithm: "ECDSA".into(),
            size: 256,
            rotation_policy: "Always".into(),
        },
        issuer_ref: CertificateIssuerRef {
            name: issuer.name.clone(),
            kind: issuer.kind.clone().unwrap_or_else(|| DEFAULT_KIND.into()),
            group: issuer.group.clone().unwrap_or_else(|| DEFAULT_GROUP.into()),
        },
    };
    let mut certificate = Certificate::new(&c.names.member_certificate(), spec);
    certificate.metadata = c.meta(c.names.member_certificate(), Component::Credentials);
    Some(certificate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::valid_cluster;

    #[test]
    fn cert_manager_is_asked_for_what_the_operator_ca_would_sign() {
        let c = valid_cluster("spec: {tls: {issuerRef: {name: cluster-ca}}}");
        let cert = member_certificate(&c).expect("a Certificate with issuerRef");
        assert_eq!(cert.metadata.name.as_deref(), Some("orders-member"));
        assert_eq!(cert.metadata.namespace.as_deref(), Some("db"));
        assert_eq!(cert.spec.secret_name, "orders-member-tls");
        assert_eq!(cert.spec.secret_name, c.member_tls_secret());
        assert_eq!(cert.spec.dns_names, member_request(&c).dns_names);
        assert!(
            cert.spec
                .dns_names
                .contains(&"*.orders-instances.db.svc.cluster.local".to_string())
        );
        assert_eq!(
            cert.spec.issuer_ref,
            CertificateIssuerRef {
                name: "cluster-ca".into(),
                kind: "Issuer".into(),
                group: "cert-manager.io".into()
            }
        );
        let owner = &cert.metadata.owner_references.as_ref().expect("owned")[0];
        assert_eq!(owner.kind, "MySQLCluster");
    }

    #[test]
    fn a_cluster_issuer_of_another_group_is_named_as_given() {
        let c = valid_cluster(
            "spec: {tls: {issuerRef: {name: step, kind: StepClusterIssuer, group: certmanager.step.sm}}}",
        );
        let issuer = member_certificate(&c).expect("Certificate").spec.issuer_ref;
        assert_eq!(issuer.kind, "StepClusterIssuer");
        assert_eq!(issuer.group, "certmanager.step.sm");
    }

    #[test]
    fn other_sources_request_nothing() {
        assert_eq!(member_certificate(&valid_cluster("spec: {}")), None);
        assert_eq!(
            member_certificate(&valid_cluster("spec: {tls: {secretName: mine}}")),
            None
        );
    }
}
