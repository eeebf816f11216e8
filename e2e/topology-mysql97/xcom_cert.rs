//! The certificate a member's XCom presents to its peers on the group communication port
//! (33061), read the way a peer reads it: from another member's pod (XCom's IP allowlist refuses
//! the host), a TLS handshake from the first byte, the member's own
//! certificate and key (from its TLS volume) as the client's, the CA verified and the member's
//! name checked. `Ssl_server_not_after` says what mysqld serves; only this says what XCom does.

use std::sync::Arc;

use innodb_operator::objects::tls::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::group::Group;

const XCOM_PORT: u16 = 33061;

/// When the certificate member `ordinal`'s XCom presents ends, asked from member `from`'s pod
/// (XCom's IP allowlist refuses the host).
pub(crate) async fn xcom_certificate_end(g: &Group, ordinal: u32, from: u32) -> jiff::Timestamp {
    let member = g.members.member(ordinal);
    let dir = g.members.volume_path(ordinal, "tls");
    let read = |key: &str| std::fs::read(dir.join(key)).expect("the member's TLS file");
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(CA_CERT_KEY)) {
        roots
            .add(ca.expect("a CA certificate"))
            .expect("a usable CA");
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(TLS_CERT_KEY))
        .map(|c| c.expect("the member certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(&read(TLS_KEY_KEY)).expect("the member key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("the member's certificate as a client's");
    let to = std::net::SocketAddr::new(member.ip.parse().unwrap(), XCOM_PORT);
    let tcp = g.members.member(from).connect_from(to).unwrap();
    tcp.set_nonblocking(true).unwrap();
    let tcp = tokio::net::TcpStream::from_std(tcp).unwrap();
    let name = ServerName::try_from(member.fqdn.clone()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake with {}'s XCom: {e}", member.name));
    let presented = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("XCom presented a certificate");
    let parsed = x509_parser::parse_x509_certificate(presented.as_ref())
        .expect("XCom's certificate parses")
        .1;
    jiff::Timestamp::from_second(parsed.validity().not_after.timestamp()).unwrap()
}
