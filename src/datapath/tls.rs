//! How the data path's connections to MySQL are protected: TLS that trusts only the cluster's
//! CA and checks that the server's certificate names the member, or (asked for by name) none.
//! The same choice drives both clients: mysql_async (the dump's coordinator, the restore) and
//! the lean wire client (the dump's row readers).

use std::sync::Arc;

use mysql_async::SslOpts;
use rustls::pki_types::ServerName;

use crate::xproto::tls::{self as xtls, TlsError, TlsOptions, TlsVerify};

/// The protection of a data-path connection.
#[derive(Clone, PartialEq, Eq)]
pub enum MysqlTls {
    /// TLS, verifying the chain against `ca_pem` (PEM, the cluster CA) and the certificate's name
    /// against `server_name` (the member's DNS name; the connection may go to an address).
    Verify { ca_pem: String, server_name: String },
    /// Cleartext: every row crosses the network readable. Only when asked for explicitly.
    Cleartext,
}

impl std::fmt::Debug for MysqlTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MysqlTls::Verify { server_name, .. } => f
                .debug_struct("Verify")
                .field("server_name", server_name)
                .finish_non_exhaustive(),
            MysqlTls::Cleartext => f.write_str("Cleartext"),
        }
    }
}

/// What the wire client needs for its TLS handshake.
#[derive(Clone, Debug)]
pub(crate) struct WireTls {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

impl MysqlTls {
    /// The mysql_async options: only the CA's roots, the member's name checked.
    pub(crate) fn ssl_opts(&self) -> Option<SslOpts> {
        match self {
            MysqlTls::Verify {
                ca_pem,
                server_name,
            } => Some(
                SslOpts::default()
                    .with_root_certs(vec![ca_pem.clone().into_bytes().into()])
                    .with_disable_built_in_roots(true)
                    .with_danger_tls_hostname_override(Some(server_name.clone())),
            ),
            MysqlTls::Cleartext => None,
        }
    }

    /// The wire client's TLS set-up (`None`: cleartext). A CA bundle without a certificate, or a
    /// name that cannot be a TLS server name, is an error here, before any connection.
    pub(crate) fn wire(&self) -> Result<Option<WireTls>, TlsError> {
        let MysqlTls::Verify {
            ca_pem,
            server_name,
        } = self
        else {
            return Ok(None);
        };
        let options = TlsOptions {
            verify: TlsVerify::CaPem(ca_pem.clone()),
            server_name: Some(server_name.clone()),
        };
        Ok(Some(WireTls {
            config: xtls::client_config(&options)?,
            name: xtls::server_name(&options, server_name)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> String {
        rcgen::generate_simple_self_signed(vec!["ca.test".into()])
            .unwrap()
            .cert
            .pem()
    }

    #[test]
    fn cleartext_has_no_tls_at_all() {
        assert!(MysqlTls::Cleartext.ssl_opts().is_none());
        assert!(MysqlTls::Cleartext.wire().unwrap().is_none());
    }

    #[test]
    fn verify_checks_the_member_name_against_the_ca_only() {
        let tls = MysqlTls::Verify {
            ca_pem: ca(),
            server_name: "orders-0.orders-instances.shop.svc.cluster.local".into(),
        };
        let opts = tls.ssl_opts().unwrap();
        assert!(opts.disable_built_in_roots());
        assert_eq!(
            opts.tls_hostname_override(),
            Some("orders-0.orders-instances.shop.svc.cluster.local")
        );
        let wire = tls.wire().unwrap().unwrap();
        assert_eq!(
            wire.name,
            ServerName::try_from("orders-0.orders-instances.shop.svc.cluster.local").unwrap()
        );
    }

    #[test]
    fn a_bad_ca_or_name_is_an_error_before_connecting() {
        let bad_ca = MysqlTls::Verify {
            ca_pem: "not a pem".into(),
            server_name: "db.test".into(),
        };
        assert!(bad_ca.wire().unwrap_err().to_string().contains("CA bundle"));
        let bad_name = MysqlTls::Verify {
            ca_pem: ca(),
            server_name: "bad name!".into(),
        };
        assert!(matches!(bad_name.wire(), Err(TlsError::ServerName(_))));
    }

    #[test]
    fn debug_leaves_the_bundle_out() {
        let tls = MysqlTls::Verify {
            ca_pem: "-----BEGIN CERTIFICATE-----".into(),
            server_name: "db.test".into(),
        };
        assert!(!format!("{tls:?}").contains("BEGIN"));
    }
}
