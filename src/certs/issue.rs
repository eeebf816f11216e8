//! Making a CA and signing certificates with it (rcgen, ECDSA P-256).
//!
//! The CA is kept as its certificate and key (PEM). To sign with it again the issuer is rebuilt
//! from the same subject ([`ca_params`]) and the stored key: a signature only needs the issuer's
//! name and key, so the stored certificate is never parsed.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use super::validity::Validity;

/// How long a CA the operator makes is valid. Long: replacing a CA means every peer trusting
/// both for a while, which the operator does not do yet.
pub(crate) const CA_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 365 * 10);
/// How long a member, Router or client certificate is valid (renewed at two thirds of it).
pub(crate) const LEAF_LIFETIME: SignedDuration = SignedDuration::from_hours(24 * 365);

/// A certificate with its private key, both PEM. `Debug` leaves the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub(crate) validity: Validity,
}

impl fmt::Debug for KeyedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedCert")
            .field("validity", &self.validity)
            .field("key_pem", &"<withheld>")
            .finish_non_exhaustive()
    }
}

/// What a certificate is used for (its extended key usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A server only (a Router's listener).
    Server,
    /// A client only (the operator's sessions).
    Client,
    /// Both: a member serves clients and connects to its peers (recovery, clone, group
    /// communication over the MYSQL stack).
    ServerAndClient,
}

/// A certificate to sign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRequest {
    pub common_name: String,
    /// DNS subject alternative names; a leading `*.` is a wildcard for one label.
    pub dns_names: Vec<String>,
    pub usage: Usage,
}

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("the CA's private key cannot be read: {0} (delete the CA Secret to make a new CA)")]
    CaKey(rcgen::Error),
    #[error("{name:?} cannot be a DNS name in a certificate: {source}")]
    Name {
        name: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("signing the certificate for {subject:?} failed: {source}")]
    Sign {
        subject: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("{0} is outside the dates a certificate can carry")]
    Date(Timestamp),
}

/// The subject, key usages and constraints of the CA named `subject`.
fn ca_params(subject: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "innodb-operator");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn set_window(
    params: &mut CertificateParams,
    validity: Validity,
    rng: &mut impl Rng,
) -> Result<(), CertError> {
    params.not_before = offset(validity.not_before)?;
    params.not_after = offset(validity.not_after)?;
    // A positive 16-byte serial: unique per issuer, as peers expect.
    let mut serial: [u8; 16] = rng.random();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

fn offset(t: Timestamp) -> Result<time::OffsetDateTime, CertError> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|_| CertError::Date(t))
}

/// A new self-signed CA named `subject`, valid [`CA_LIFETIME`] from `now`.
pub fn new_ca(subject: &str, now: Timestamp, rng: &mut impl Rng) -> Result<KeyedCert, CertError> {
    let sign = |source| CertError::Sign {
        subject: subject.to_string(),
        source,
    };
    let key = KeyPair::generate().map_err(sign)?;
    let validity = Validity::starting(now, CA_LIFETIME);
    let mut params = ca_params(subject);
    set_window(&mut params, validity, rng)?;
    let cert = params.self_signed(&key).map_err(sign)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        validity,
    })
}

/// `leaf` signed by the CA named `ca_subject` whose key is `ca_key_pem`, valid
/// [`LEAF_LIFETIME`] from `now`.
pub fn issue(
    ca_subject: &str,
    ca_key_pem: &str,
    leaf: &LeafRequest,
    now: Timestamp,
    rng: &mut impl Rng,
) -> Result<KeyedCert, CertError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(CertError::CaKey)?;
    let issuer = Issuer::new(ca_params(ca_subject), ca_key);
    let sign = |source| CertError::Sign {
        subject: leaf.common_name.clone(),
        source,
    };
    let mut params = CertificateParams::default();
    for name in &leaf.dns_names {
        let san = name.clone().try_into().map_err(|source| CertError::Name {
            name: name.clone(),
            source,
        })?;
        params.subject_alt_names.push(rcgen::SanType::DnsName(san));
    }
    params.distinguished_name = distinguished_name(&leaf.common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = match leaf.usage {
        Usage::Server => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        Usage::ServerAndClient => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
    };
    params.use_authority_key_identifier_extension = true;
    let validity = Validity::starting(now, LEAF_LIFETIME);
    set_window(&mut params, validity, rng)?;
    let key = KeyPair::generate().map_err(sign)?;
    let cert = params.signed_by(&key, &issuer).map_err(sign)?;
    Ok(KeyedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        validity,
    })
}

#[cfg(test)]
mod tests;
