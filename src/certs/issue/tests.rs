use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::*;

const NOW: &str = "2026-06-01T12:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(5)
}

fn member_leaf() -> LeafRequest {
    LeafRequest {
        common_name: "orders member".into(),
        dns_names: vec![
            "*.orders-instances.db.svc.cluster.local".into(),
            "orders.db.svc.cluster.local".into(),
        ],
        usage: Usage::ServerAndClient,
    }
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Whether rustls (what the operator's own sessions verify with) accepts `leaf` for `name` at
/// `at`, trusting only `ca`.
fn verifies(ca: &KeyedCert, leaf: &KeyedCert, name: &str, at: Timestamp) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der(&ca.cert_pem)).unwrap();
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap();
    let at = UnixTime::since_unix_epoch(Duration::from_secs(at.as_second() as u64));
    verifier
        .verify_server_cert(
            &der(&leaf.cert_pem),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            at,
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[test]
fn a_member_certificate_verifies_for_every_pod_name_and_service() {
    let ca = new_ca("orders CA", now(), &mut rng()).unwrap();
    let leaf = issue("orders CA", &ca.key_pem, &member_leaf(), now(), &mut rng()).unwrap();
    for name in [
        "orders-0.orders-instances.db.svc.cluster.local",
        "orders-17.orders-instances.db.svc.cluster.local",
        "orders.db.svc.cluster.local",
    ] {
        verifies(&ca, &leaf, name, now()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let wrong = verifies(&ca, &leaf, "orders-0.other.db.svc.cluster.local", now()).unwrap_err();
    assert!(wrong.contains("NotValidForName"), "{wrong}");
}

#[test]
fn a_certificate_of_another_ca_is_refused() {
    let ca = new_ca("orders CA", now(), &mut rng()).unwrap();
    let other = new_ca("orders CA", now(), &mut rng()).unwrap();
    let leaf = issue(
        "orders CA",
        &other.key_pem,
        &member_leaf(),
        now(),
        &mut rng(),
    )
    .unwrap();
    let e = verifies(&ca, &leaf, "orders.db.svc.cluster.local", now()).unwrap_err();
    assert!(
        e.contains("BadSignature") || e.contains("UnknownIssuer"),
        "{e}"
    );
}

#[test]
fn validity_is_what_the_certificate_says() {
    let ca = new_ca("orders CA", now(), &mut rng()).unwrap();
    let leaf = issue("orders CA", &ca.key_pem, &member_leaf(), now(), &mut rng()).unwrap();
    assert_eq!(leaf.validity, Validity::starting(now(), LEAF_LIFETIME));
    assert_eq!(ca.validity, Validity::starting(now(), CA_LIFETIME));
    let after = leaf.validity.not_after + SignedDuration::from_secs(1);
    let e = verifies(&ca, &leaf, "orders.db.svc.cluster.local", after).unwrap_err();
    assert!(e.contains("Expired"), "{e}");
}

#[test]
fn a_bad_ca_key_says_what_to_do() {
    let e = issue("orders CA", "not a key", &member_leaf(), now(), &mut rng()).unwrap_err();
    assert!(e.to_string().contains("delete the CA Secret"), "{e}");
}

#[test]
fn a_bad_name_is_named() {
    let ca = new_ca("orders CA", now(), &mut rng()).unwrap();
    let mut leaf = member_leaf();
    leaf.dns_names.push("bäd.example".into());
    let e = issue("orders CA", &ca.key_pem, &leaf, now(), &mut rng()).unwrap_err();
    assert!(e.to_string().contains("bäd.example"), "{e}");
}

#[test]
fn debug_withholds_the_key() {
    let ca = new_ca("orders CA", now(), &mut rng()).unwrap();
    let shown = format!("{ca:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(ca.key_pem.contains("PRIVATE KEY"));
}
