//! TLS for X protocol sessions (and the data path's row readers): a rustls client configuration
//! that either verifies the server against a CA or, when configured to, accepts the self-signed
//! certificate MySQL generates at startup (the connection is then encrypted but the server is
//! not authenticated).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("the CA bundle holds no usable PEM certificate: {0}")]
    CaBundle(String),
    #[error("TLS setup failed: {0}")]
    Config(#[from] rustls::Error),
    #[error("{0:?} is not a valid TLS server name (a DNS name or an IP address)")]
    ServerName(String),
}

/// How the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TlsVerify {
    /// Verify the chain against these PEM CA certificates and the name against `server_name`.
    CaPem(String),
    /// Accept any certificate (MySQL's auto-generated self-signed one). Handshake signatures are
    /// still checked, so the session is encrypted, but the server is not authenticated.
    AcceptSelfSigned,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    pub verify: TlsVerify,
    /// The name to verify the certificate against; defaults to the endpoint's host.
    pub server_name: Option<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls client configuration for `options`.
pub fn client_config(options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match &options.verify {
        TlsVerify::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsError::CaBundle(e.to_string()))?;
                roots.add(cert)?;
            }
            if roots.is_empty() {
                return Err(TlsError::CaBundle("no CERTIFICATE block found".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsVerify::AcceptSelfSigned => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// One rustls configuration per distinct [`TlsOptions`], shared by every session that uses them:
/// a configuration carries its own session cache and verifier, so one per cluster grew the
/// operator by the same amount for each cluster although every cluster uses the same options.
#[derive(Default)]
pub(crate) struct ConfigCache(Mutex<HashMap<TlsOptions, Arc<rustls::ClientConfig>>>);

impl ConfigCache {
    /// The configuration for `options`, built on first use. Configurations no session holds any
    /// more are dropped then, so the cache holds only what is in use.
    pub(crate) fn get(&self, options: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let mut configs = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = configs.get(options) {
            return Ok(config.clone());
        }
        configs.retain(|_, config| Arc::strong_count(config) > 1);
        let config = client_config(options)?;
        configs.insert(options.clone(), config.clone());
        Ok(config)
    }
}

/// The name the certificate must carry: the configured one, else the host.
pub(crate) fn server_name(
    options: &TlsOptions,
    host: &str,
) -> Result<ServerName<'static>, TlsError> {
    let name = options.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
}

#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(verify: TlsVerify) -> TlsOptions {
        TlsOptions {
            verify,
            server_name: None,
        }
    }

    #[test]
    fn accepts_a_generated_ca() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        assert!(client_config(&options(TlsVerify::CaPem(ca.cert.pem()))).is_ok());
    }

    #[test]
    fn empty_or_garbage_ca_bundle_is_an_error() {
        for pem in [
            "",
            "not a pem",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n",
        ] {
            let err = client_config(&options(TlsVerify::CaPem(pem.into()))).unwrap_err();
            assert!(err.to_string().contains("CA bundle"), "{err}");
        }
    }

    #[test]
    fn server_name_prefers_the_configured_name() {
        let mut opts = options(TlsVerify::AcceptSelfSigned);
        assert_eq!(
            server_name(&opts, "127.0.0.1").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        opts.server_name = Some("mysql-0.c-instances.ns.svc".into());
        assert_eq!(
            server_name(&opts, "10.0.0.1").unwrap(),
            ServerName::try_from("mysql-0.c-instances.ns.svc").unwrap()
        );
        opts.server_name = Some("bad name!".into());
        assert!(matches!(
            server_name(&opts, "x"),
            Err(TlsError::ServerName(_))
        ));
    }

    #[test]
    fn self_signed_mode_builds() {
        assert!(client_config(&options(TlsVerify::AcceptSelfSigned)).is_ok());
    }

    #[test]
    fn clusters_with_the_same_options_share_one_configuration_while_it_is_used() {
        let cache = ConfigCache::default();
        let self_signed = options(TlsVerify::AcceptSelfSigned);
        let first = cache.get(&self_signed).unwrap();
        assert!(Arc::ptr_eq(&first, &cache.get(&self_signed).unwrap()));
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        let with_ca = cache
            .get(&options(TlsVerify::CaPem(ca.cert.pem())))
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &with_ca));
        assert_eq!(cache.0.lock().unwrap().len(), 2, "both in use");
        drop(first);
        let other = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        let _third = cache
            .get(&options(TlsVerify::CaPem(other.cert.pem())))
            .unwrap();
        assert_eq!(
            cache.0.lock().unwrap().len(),
            2,
            "the configuration no session holds is dropped"
        );
    }
}
