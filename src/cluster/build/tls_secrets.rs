//! The Secrets of the operator's CA (`C-ca`) and of the members' certificate it signs (`C-tls`):
//! made when missing, the member certificate renewed at two thirds of its lifetime or when the CA
//! changed (then trusting the previous CA beside the new one for a while). With `spec.tls.secretName` the user's Secret is used and nothing is written here.
//! Pure: the time and the randomness come in; the keys never reach a log (only Secrets).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::Rng;

use crate::certs::inspect;
use crate::certs::issue::{self, CertError, KeyedCert, LeafRequest, Usage};
use crate::certs::validity::Validity;
use crate::cluster::validate::ValidCluster;
use crate::objects::names::Component;
use crate::objects::tls::{CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY, TlsSource};

/// Annotations with the certificate's validity (RFC 3339), written with it.
pub(crate) const NOT_BEFORE_ANNOTATION: &str = "innodb-operator.io/not-before";
pub const NOT_AFTER_ANNOTATION: &str = "innodb-operator.io/not-after";
/// Annotation of the members' Secret while its `ca.crt` holds the previous CA beside the
/// current one (after the CA changed): until when (RFC 3339).
pub const PREVIOUS_CA_UNTIL_ANNOTATION: &str = "innodb-operator.io/previous-ca-until";
/// How long the members trust the previous CA beside a new one. Members serve a new
/// certificate within a minute or two of its Secret (the kubelet's update of the files, then the
/// reload, `tls_reload::RETRY`); meanwhile those still serving the previous CA's certificate are
/// trusted by the others, the operator and the Routers. Then the previous CA is dropped with a
/// certificate issued again, so every member reloads and forgets it.
pub const CA_TRANSITION: jiff::SignedDuration = jiff::SignedDuration::from_hours(1);

/// A Secret as dereference found it: its data and annotations. `Debug` shows the keys' names
/// only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FoundSecret {
    pub data: BTreeMap<String, Vec<u8>>,
    pub annotations: BTreeMap<String, String>,
}

impl std::fmt::Debug for FoundSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoundSecret")
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .field("annotations", &self.annotations)
            .finish()
    }
}

impl FoundSecret {
    pub fn from_secret(s: Secret) -> Self {
        FoundSecret {
            data: s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
            annotations: s.metadata.annotations.unwrap_or_default(),
        }
    }

    fn text(&self, key: &str) -> Option<String> {
        self.data
            .get(key)
            .and_then(|v| String::from_utf8(v.clone()).ok())
    }

    fn validity(&self) -> Option<Validity> {
        let at = |key: &str| self.annotations.get(key)?.parse::<Timestamp>().ok();
        Some(Validity {
            not_before: at(NOT_BEFORE_ANNOTATION)?,
            not_after: at(NOT_AFTER_ANNOTATION)?,
        })
    }
}

/// The operator CA's Secrets as found (`None`: they do not exist).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundTls {
    pub ca: Option<FoundSecret>,
    pub member: Option<FoundSecret>,
}

/// What to write.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsWrites {
    /// A new CA, created first: when it exists already (another writer was first), nothing
    /// below is written (it is signed by this CA) and the next reconcile issues from the stored
    /// one.
    pub new_ca: Option<Secret>,
    /// Created (a certificate whose Secret does not exist).
    pub create: Vec<Secret>,
    /// Replaced (a certificate renewed).
    pub renew: Vec<Secret>,
}

impl TlsWrites {
    /// When the members' certificate written here ends (`None`: none is written).
    pub fn member_certificate_end(&self) -> Option<Timestamp> {
        self.create
            .iter()
            .chain(&self.renew)
            .filter_map(|s| s.data.as_ref()?.get(TLS_CERT_KEY))
            .find_map(|pem| crate::certs::inspect::not_after(&pem.0).ok())
    }
}

/// Why the certificates cannot be made; the cluster keeps the ones it has.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "CA Secret {secret:?} has no usable key {key:?}: restore it, or delete the Secret so the operator makes a new CA (every member certificate is then reissued)"
    )]
    CaSecret { secret: String, key: &'static str },
    #[error("making the certificates of Secret {secret:?}: {source}")]
    Issue {
        secret: String,
        #[source]
        source: CertError,
    },
}

/// The subject of the CA of cluster `c`.
fn ca_subject(c: &ValidCluster) -> String {
    format!("{}.{} CA", c.names.cluster, c.names.namespace)
}

/// The member certificate's request: every member under the headless Service (one wildcard, so
/// scaling needs no new certificate), and the cluster's Services (a client through a Router
/// that passes TLS through verifies the Router's name).
pub(crate) fn member_request(c: &ValidCluster) -> LeafRequest {
    let n = &c.names;
    let mut dns_names = vec![format!(
        "*.{}",
        n.service_fqdn(&n.instances_service(), &c.domain)
    )];
    for service in [
        n.rw_service(),
        n.ro_service(),
        n.router(),
        n.router_lb_service(),
    ] {
        dns_names.extend([
            service.clone(),
            format!("{service}.{}", n.namespace),
            format!("{service}.{}.svc", n.namespace),
            n.service_fqdn(&service, &c.domain),
        ]);
    }
    LeafRequest {
        common_name: format!("{}.{} member", n.cluster, n.namespace),
        dns_names,
        usage: Usage::ServerAndClient,
    }
}

fn annotated(
    c: &ValidCluster,
    name: String,
    type_: &str,
    validity: Validity,
    data: &[(&str, &str)],
) -> Secret {
    let mut metadata = c.meta(name, Component::Credentials);
    metadata.annotations = Some(BTreeMap::from([
        (
            NOT_BEFORE_ANNOTATION.to_string(),
            validity.not_before.to_string(),
        ),
        (
            NOT_AFTER_ANNOTATION.to_string(),
            validity.not_after.to_string(),
        ),
    ]));
    Secret {
        metadata,
        type_: Some(type_.to_string()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn ca_secret(c: &ValidCluster, ca: &KeyedCert) -> Secret {
    annotated(
        c,
        c.names.ca_secret(),
        "Opaque",
        ca.validity,
        &[(CA_CERT_KEY, &ca.cert_pem), (CA_KEY_KEY, &ca.key_pem)],
    )
}

fn leaf_secret(c: &ValidCluster, name: String, leaf: &KeyedCert, trust: &Trust) -> Secret {
    let mut secret = annotated(
        c,
        name,
        "kubernetes.io/tls",
        leaf.validity,
        &[
            (TLS_CERT_KEY, &leaf.cert_pem),
            (TLS_KEY_KEY, &leaf.key_pem),
            (CA_CERT_KEY, &trust.ca_bundle),
        ],
    );
    if let (Some(until), Some(annotations)) =
        (trust.previous_until, secret.metadata.annotations.as_mut())
    {
        annotations.insert(PREVIOUS_CA_UNTIL_ANNOTATION.into(), until.to_string());
    }
    secret
}

/// The CA as stored: its certificate and key.
fn stored_ca(c: &ValidCluster, found: &FoundSecret) -> Result<(String, String), TlsError> {
    let missing = |key| TlsError::CaSecret {
        secret: c.names.ca_secret(),
        key,
    };
    let cert = found
        .text(CA_CERT_KEY)
        .ok_or_else(|| missing(CA_CERT_KEY))?;
    let key = found.text(CA_KEY_KEY).ok_or_else(|| missing(CA_KEY_KEY))?;
    Ok((cert, key))
}

/// What the members' `ca.crt` holds: the current CA, first, and during a CA change the
/// previous one until `previous_until`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Trust {
    ca_bundle: String,
    previous_until: Option<Timestamp>,
}

impl Trust {
    fn alone(ca_pem: &str) -> Trust {
        Trust {
            ca_bundle: ca_pem.to_string(),
            previous_until: None,
        }
    }
}

/// The members' certificate as found, against the current CA at `now`: `None` when it stays,
/// else the trust its new certificate is written with. Issued again when it does not say its
/// validity or is due; when the CA changed (the first certificate of its `ca.crt` is another),
/// with the previous CA kept beside the new one for [`CA_TRANSITION`], so members still serving
/// the previous CA's certificate stay trusted until they reload; when that transition is over,
/// with the current CA alone (a new certificate, so every member reloads and drops the previous
/// CA).
fn member_renewal(found: &FoundSecret, ca_pem: &str, now: Timestamp) -> Option<Trust> {
    let stored = found.text(CA_CERT_KEY).unwrap_or_default();
    let trusted = inspect::certificates(&stored);
    let due = found.validity().is_none_or(|v| v.due(now));
    match trusted.first() {
        Some(&previous) if inspect::certificates(ca_pem).first() != Some(&previous) => {
            Some(Trust {
                ca_bundle: format!("{}\n{previous}\n", ca_pem.trim_end()),
                previous_until: Some(now + CA_TRANSITION),
            })
        }
        Some(_) if trusted.len() > 1 => {
            let until = found
                .annotations
                .get(PREVIOUS_CA_UNTIL_ANNOTATION)
                .and_then(|t| t.parse::<Timestamp>().ok())
                .filter(|&until| until > now);
            match until {
                None => Some(Trust::alone(ca_pem)),
                Some(until) => due.then(|| Trust {
                    ca_bundle: stored.clone(),
                    previous_until: Some(until),
                }),
            }
        }
        Some(_) => due.then(|| Trust::alone(ca_pem)),
        None => Some(Trust::alone(ca_pem)),
    }
}

/// What to write so the cluster has its CA and a current member certificate.
pub fn tls_writes(
    c: &ValidCluster,
    found: &FoundTls,
    now: Timestamp,
    rng: &mut impl Rng,
) -> Result<TlsWrites, TlsError> {
    if !matches!(c.tls, TlsSource::OperatorCa) {
        return Ok(TlsWrites::default());
    }
    let mut writes = TlsWrites::default();
    let issue_err = |secret: String| move |source| TlsError::Issue { secret, source };
    let subject = ca_subject(c);
    let (ca_pem, ca_key) = match &found.ca {
        Some(stored) => stored_ca(c, stored)?,
        None => {
            let ca = issue::new_ca(&subject, now, rng).map_err(issue_err(c.names.ca_secret()))?;
            writes.new_ca = Some(ca_secret(c, &ca));
            (ca.cert_pem, ca.key_pem)
        }
    };
    let member_secret = c.names.member_tls_secret();
    let (renew, trust) = match &found.member {
        None => (false, Trust::alone(&ca_pem)),
        Some(m) => match member_renewal(m, &ca_pem, now) {
            Some(trust) => (true, trust),
            None => return Ok(writes),
        },
    };
    let leaf = issue::issue(&subject, &ca_key, &member_request(c), now, rng)
        .map_err(issue_err(member_secret.clone()))?;
    let secret = leaf_secret(c, member_secret, &leaf, &trust);
    if renew {
        writes.renew.push(secret);
    } else {
        writes.create.push(secret);
    }
    Ok(writes)
}

#[cfg(test)]
mod tests;
