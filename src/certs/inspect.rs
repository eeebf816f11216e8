//! What a certificate in PEM says of its own validity: read from the certificate itself, so a
//! user's Secret and cert-manager's are read like the operator's own.

use jiff::Timestamp;

/// Why a certificate cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InspectError {
    #[error("not a PEM certificate: {0}")]
    Pem(String),
    #[error("not an X.509 certificate: {0}")]
    X509(String),
    #[error("its notAfter ({0}) is out of range")]
    Time(i64),
}

/// When the first certificate of `pem` (a leaf, then its chain) ends.
pub fn not_after(pem: &[u8]) -> Result<Timestamp, InspectError> {
    let (_, block) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| InspectError::Pem(e.to_string()))?;
    let cert = block
        .parse_x509()
        .map_err(|e| InspectError::X509(e.to_string()))?;
    let seconds = cert.validity().not_after.timestamp();
    Timestamp::from_second(seconds).map_err(|_| InspectError::Time(seconds))
}

/// Every certificate of `pem` (a bundle), each from its BEGIN line to its END line, in order.
pub fn certificates(pem: &str) -> Vec<&str> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut found = Vec::new();
    let mut rest = pem;
    while let Some(begin) = rest.find(BEGIN) {
        let Some(end) = rest[begin..].find(END) else {
            break;
        };
        let end = begin + end + END.len();
        found.push(&rest[begin..end]);
        rest = &rest[end..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::issue::{self, LeafRequest, Usage};

    #[test]
    fn the_end_of_an_issued_certificate_is_read_back_to_the_second() {
        let now: Timestamp = "2026-12-06T20:00:00.75Z".parse().unwrap();
        let rng = &mut rand::rng();
        let ca = issue::new_ca("db.ns CA", now, rng).unwrap();
        let leaf = issue::issue(
            "db.ns CA",
            &ca.key_pem,
            &LeafRequest {
                common_name: "db.ns member".into(),
                dns_names: vec!["*.db-instances.ns.svc.cluster.local".into()],
                usage: Usage::ServerAndClient,
            },
            now,
            rng,
        )
        .unwrap();
        let end = not_after(leaf.cert_pem.as_bytes()).unwrap();
        assert_eq!(end.as_second(), leaf.validity.not_after.as_second());
        assert_eq!(end.subsec_nanosecond(), 0, "X.509 keeps whole seconds");
        assert_eq!(
            not_after(ca.cert_pem.as_bytes()).unwrap().as_second(),
            ca.validity.not_after.as_second()
        );
    }

    #[test]
    fn anything_else_is_an_error_that_says_what() {
        assert!(matches!(not_after(b""), Err(InspectError::Pem(_))));
        assert!(matches!(
            not_after(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(InspectError::X509(_))
        ));
    }
}
