//! The wire client against scripted server bytes: handshakes, results, errors, corruption.

use std::sync::Arc;

use super::*;
use mysql_common::constants::StatusFlags;
use mysql_common::scramble::{scramble_native, scramble_sha256};
use tokio::io::{DuplexStream, duplex};

const NONCE: &[u8; 20] = b"abcdefghijklmnopqrst";
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApHilgN9B537QWwi6gdpJ
qnerwD7+gR9b939R6wESHepZToUYykDcTawcSET7it1ztZp40U5Bl26VbaL6cIjA
CKLtVdMUCXHQBPI6rQNjzxPuwQdDMopVaEYraXVrq7T9vN/arIIVfgCtL3KxNZrw
rJLZ4CuPdY52hrLP/KAP9levFF/LpHRi48yOWxGJnZwwy+7KVHzpVn/r3gEH7eJw
zdHGswuwaiYkAP6wHsSO2zXcTWxHY9isTO8Qz1oyKhq0IitQ/ko+9WVnMukMrRMK
Xwc3tqTER4Bi7gZ4Zx0sodgVmlTUGAxbCrCQxmr1sbsVz4hPjmmXDshoD5P2nhuu
nQIDAQAB
-----END PUBLIC KEY-----
";

/// What a server sends, packet by packet, with sequence ids.
#[derive(Default)]
struct Script(Vec<u8>);

impl Script {
    fn packet(mut self, seq: u8, payload: &[u8]) -> Self {
        let len = (payload.len() as u32).to_le_bytes();
        self.0.extend_from_slice(&[len[0], len[1], len[2], seq]);
        self.0.extend_from_slice(payload);
        self
    }

    fn handshake(self, plugin: &str) -> Self {
        self.hello(plugin, CapabilityFlags::empty())
    }

    /// The initial handshake, with `extra` capabilities (CLIENT_SSL: the server offers TLS).
    fn hello(self, plugin: &str, extra: CapabilityFlags) -> Self {
        let caps = client_capabilities() | CapabilityFlags::CLIENT_DEPRECATE_EOF | extra;
        let hs = HandshakePacket::new(
            10,
            &b"8.4.3"[..],
            7,
            NONCE[..8].try_into().unwrap(),
            // The second part travels with its NUL terminator, as servers send it.
            Some(&b"ijklmnopqrst\0"[..]),
            caps,
            255,
            StatusFlags::empty(),
            Some(plugin.as_bytes()),
        );
        let mut p = Vec::new();
        hs.serialize(&mut p);
        self.packet(0, &p)
    }

    fn err(self, seq: u8, code: u16, message: &str) -> Self {
        let mut p = vec![ERR];
        p.extend_from_slice(&code.to_le_bytes());
        p.extend_from_slice(b"#28000");
        p.extend_from_slice(message.as_bytes());
        self.packet(seq, &p)
    }

    fn ok(self, seq: u8) -> Self {
        self.packet(seq, &[OK, 0, 0, 2, 0, 0, 0])
    }

    fn eof(self, seq: u8, status: u16) -> Self {
        let s = status.to_le_bytes();
        self.packet(seq, &[EOF, 0, 0, s[0], s[1]])
    }

    /// A result set header: column count, definitions (opaque here), EOF; next seq returned.
    fn columns(self, n: u8) -> (Self, u8) {
        let mut s = self.packet(1, &[n]);
        for i in 0..n {
            s = s.packet(2 + i, b"\x03def\x00\x00\x00\x01c\x00\x0c\x3f\x00");
        }
        (s.eof(2 + n, 0), 3 + n)
    }
}

/// Feeds `script` to a client; returns the client end and a handle on what the client sent.
fn serve(script: Script) -> (DuplexStream, tokio::task::JoinHandle<Vec<u8>>) {
    let (client, mut server) = duplex(64 << 20);
    let sent = tokio::spawn(async move {
        server.write_all(&script.0).await.unwrap();
        server.shutdown().await.unwrap();
        let mut got = Vec::new();
        let _ = server.read_to_end(&mut got).await;
        got
    });
    (client, sent)
}

/// Splits what the client sent into (seq, payload) packets.
fn packets(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while bytes.len() >= 4 {
        let len = usize::from(bytes[0]) | usize::from(bytes[1]) << 8 | usize::from(bytes[2]) << 16;
        out.push((bytes[3], bytes[4..4 + len].to_vec()));
        bytes = &bytes[4 + len..];
    }
    out
}

/// The auth data of a HandshakeResponse41 sent with CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA.
fn auth_data(response: &[u8]) -> (String, Vec<u8>) {
    let rest = &response[32..];
    let user_end = rest.iter().position(|&b| b == 0).unwrap();
    let user = String::from_utf8(rest[..user_end].to_vec()).unwrap();
    let len = usize::from(rest[user_end + 1]);
    (user, rest[user_end + 2..user_end + 2 + len].to_vec())
}

#[tokio::test]
async fn native_password_and_a_result_with_every_field_shape() {
    let long = vec![b'x'; 300];
    let mid = vec![b'y'; 70_000];
    let (script, seq) = Script::default()
        .handshake("mysql_native_password")
        .ok(2)
        .columns(4);
    let script = script
        .packet(
            seq,
            &row_packet(&[None, Some(b""), Some(&long), Some(&mid)]),
        )
        .packet(
            seq + 1,
            &row_packet(&[Some(b"1"), Some(b"\xfb"), None, Some(b"a\tb")]),
        )
        .eof(seq + 2, 0);
    let (stream, sent) = serve(script);
    let mut conn = WireConn::handshake(stream, "backup", "pw", None)
        .await
        .unwrap();
    let mut rows = conn.query("SELECT 1").await.unwrap();
    let mut seen = Vec::new();
    while let Some(r) = rows.next().await.unwrap() {
        let fields: Vec<Option<Vec<u8>>> =
            r.fields().map(|f| f.unwrap().map(<[u8]>::to_vec)).collect();
        seen.push(fields);
    }
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], vec![None, Some(vec![]), Some(long), Some(mid)]);
    assert_eq!(seen[1][1].as_deref(), Some(&b"\xfb"[..]));
    assert!(
        !conn.broken,
        "a result read to its end leaves the session usable"
    );
    drop(conn);
    let sent = packets(&sent.await.unwrap());
    let (user, data) = auth_data(&sent[0].1);
    assert_eq!(sent[0].0, 1, "the handshake response is packet 1");
    assert_eq!(user, "backup");
    assert_eq!(data, scramble_native(NONCE, b"pw").unwrap().to_vec());
    assert_eq!(
        sent[1],
        (0, b"\x03SELECT 1".to_vec()),
        "COM_QUERY restarts at 0"
    );
}

#[tokio::test]
async fn caching_sha2_full_authentication_encrypts_with_the_server_key() {
    let mut key = vec![AUTH_MORE];
    key.extend_from_slice(PUBLIC_KEY.as_bytes());
    let script = Script::default()
        .handshake("caching_sha2_password")
        .packet(2, &[AUTH_MORE, SHA2_FULL_AUTH])
        .packet(4, &key)
        .ok(6);
    let (stream, sent) = serve(script);
    let conn = WireConn::handshake(stream, "u", "secret", None)
        .await
        .unwrap();
    drop(conn);
    let sent = packets(&sent.await.unwrap());
    assert_eq!(
        auth_data(&sent[0].1).1,
        scramble_sha256(NONCE, b"secret").unwrap().to_vec()
    );
    assert_eq!(sent[1], (3, vec![SHA2_REQUEST_KEY]));
    assert_eq!(sent[2].0, 5);
    assert_eq!(sent[2].1.len(), 256, "one RSA-2048 block");
    assert!(
        !sent[2].1.windows(6).any(|w| w == b"secret"),
        "never in clear"
    );
}

#[tokio::test]
async fn caching_sha2_fast_path_and_auth_switch_to_native() {
    let script = Script::default()
        .handshake("caching_sha2_password")
        .packet(2, &[AUTH_MORE, SHA2_FAST_OK])
        .ok(3);
    let (stream, _) = serve(script);
    WireConn::handshake(stream, "u", "p", None).await.unwrap();

    let mut switch = vec![EOF];
    switch.extend_from_slice(b"mysql_native_password\0");
    switch.extend_from_slice(b"ZYXWVUTSRQPONMLKJIHG\0");
    let script = Script::default()
        .handshake("caching_sha2_password")
        .packet(2, &switch)
        .ok(4);
    let (stream, sent) = serve(script);
    drop(WireConn::handshake(stream, "u", "p", None).await.unwrap());
    let sent = packets(&sent.await.unwrap());
    assert_eq!(
        sent[1],
        (
            3,
            scramble_native(b"ZYXWVUTSRQPONMLKJIHG", b"p")
                .unwrap()
                .to_vec()
        )
    );
}

#[tokio::test]
async fn refusals_say_what_the_server_said() {
    let script = Script::default().handshake("mysql_native_password").err(
        2,
        1045,
        "Access denied for user 'u'",
    );
    let (stream, _) = serve(script);
    let err = WireConn::handshake(stream, "u", "p", None)
        .await
        .err()
        .unwrap();
    assert_eq!(err.server_code(), Some(1045), "{err}");
    assert!(err.to_string().contains("Access denied"), "{err}");

    let mut switch = vec![EOF];
    switch.extend_from_slice(b"client_ed25519\0abc");
    let script = Script::default()
        .handshake("mysql_native_password")
        .packet(2, &switch);
    let (stream, _) = serve(script);
    let err = WireConn::handshake(stream, "u", "p", None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, WireError::AuthPlugin(ref p) if p == "client_ed25519"),
        "{err}"
    );

    // An error in the middle of the rows (the query was killed) ends the result.
    let (script, seq) = Script::default()
        .handshake("mysql_native_password")
        .ok(2)
        .columns(1);
    let script = script
        .packet(seq, &row_packet(&[Some(b"1")]))
        .err(seq + 1, 1317, "Query execution was interrupted")
        .ok(1);
    let (stream, _) = serve(script);
    let mut conn = WireConn::handshake(stream, "u", "p", None).await.unwrap();
    let mut rows = conn.query("SELECT 1").await.unwrap();
    assert!(rows.next().await.unwrap().is_some());
    let err = rows.next().await.err().unwrap();
    assert_eq!(err.server_code(), Some(1317));
    conn.execute("DO 1")
        .await
        .expect("the session is usable after an ERR");
}

#[tokio::test]
async fn a_row_of_several_packets_is_joined() {
    let big = vec![7u8; MAX_PAYLOAD + 10];
    let payload = row_packet(&[Some(&big)]);
    let (script, seq) = Script::default()
        .handshake("mysql_native_password")
        .ok(2)
        .columns(1);
    let script = script
        .packet(seq, &payload[..MAX_PAYLOAD])
        .packet(seq + 1, &payload[MAX_PAYLOAD..])
        .eof(seq + 2, 0);
    let (stream, _) = serve(script);
    let mut conn = WireConn::handshake(stream, "u", "p", None).await.unwrap();
    let mut rows = conn.query("SELECT b").await.unwrap();
    let r = rows.next().await.unwrap().unwrap();
    let f: Vec<_> = r.fields().collect::<Result<_, _>>().unwrap();
    assert_eq!(f, vec![Some(&big[..])]);
    assert!(rows.next().await.unwrap().is_none());
}

#[test]
fn fields_that_do_not_fit_their_packet_are_errors() {
    let short = Row::new(&[5, b'a', b'b'], 1);
    assert!(short.fields().any(|f| f.is_err()));
    let extra = Row::new(&[1, b'a', 1, b'b'], 1);
    assert!(extra.fields().any(|f| f.is_err()));
    let missing = Row::new(&[1, b'a'], 2);
    assert!(missing.fields().any(|f| f.is_err()));
    let huge = Row::new(
        &[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
        1,
    );
    assert!(huge.fields().any(|f| f.is_err()));
}

#[tokio::test]
async fn a_wrong_sequence_id_is_reported() {
    let (script, _) = Script::default()
        .handshake("mysql_native_password")
        .ok(2)
        .columns(1);
    let script = script.packet(9, &row_packet(&[Some(b"1")]));
    let (stream, _) = serve(script);
    let mut conn = WireConn::handshake(stream, "u", "p", None).await.unwrap();
    let mut rows = conn.query("SELECT 1").await.unwrap();
    let err = rows.next().await.err().unwrap();
    assert!(err.to_string().contains("sequence 9"), "{err}");
    assert!(matches!(
        conn.query("SELECT 1").await,
        Err(WireError::Broken)
    ));
}

#[test]
fn the_auth_data_length_guard_reads_the_right_byte() {
    let good = Script::default().handshake("mysql_native_password").0;
    let payload = &good[4..];
    assert!(check_auth_data_len(payload).is_ok());
    let at = 1 + payload[1..].iter().position(|&b| b == 0).unwrap() + 1 + 20;
    assert_eq!(payload[at], 21, "servers send 21");
    let mut bad = payload.to_vec();
    bad[at] = 0x80;
    assert!(check_auth_data_len(&bad).is_err());
}

/// Seeded corruption of valid conversations (rows, an auth switch, the RSA exchange, a
/// refusal): every outcome is a value or an error, never a panic or a hang (the pipe closes
/// when the script ends).
#[tokio::test]
async fn corrupted_server_bytes_never_panic() {
    let (script, seq) = Script::default()
        .handshake("mysql_native_password")
        .ok(2)
        .columns(3);
    let rows = script
        .packet(seq, &row_packet(&[Some(b"1"), None, Some(&[b'z'; 300])]))
        .packet(seq + 1, &row_packet(&[Some(b"2"), Some(b""), Some(b"q")]))
        .eof(seq + 2, 0);
    let mut switch = vec![EOF];
    switch.extend_from_slice(b"caching_sha2_password\0ZYXWVUTSRQPONMLKJIHG\0");
    let mut key = vec![AUTH_MORE];
    key.extend_from_slice(PUBLIC_KEY.as_bytes());
    let switched = Script::default()
        .handshake("mysql_native_password")
        .packet(2, &switch)
        .packet(4, &[AUTH_MORE, SHA2_FULL_AUTH])
        .packet(6, &key)
        .ok(8);
    let refused =
        Script::default()
            .handshake("caching_sha2_password")
            .err(2, 1045, "Access denied");
    let conversations = [rows.0, switched.0, refused.0];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..3_000 {
        let mut bytes = conversations[i % conversations.len()].clone();
        match next() % 3 {
            0 => bytes.truncate((next() as usize) % bytes.len()),
            1 => {
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % bytes.len();
                    bytes[at] = next() as u8;
                }
            }
            _ => {
                let at = (next() as usize) % bytes.len();
                bytes.insert(at, next() as u8);
            }
        }
        let (stream, _) = serve(Script(bytes));
        let run = async {
            let mut conn = WireConn::handshake(stream, "u", "p", None).await?;
            let mut rows = conn.query("SELECT 1").await?;
            while let Some(r) = rows.next().await? {
                for f in r.fields() {
                    f?;
                }
            }
            Ok::<_, WireError>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .expect("a corrupted stream ends in a value or an error");
    }
}

// ---- TLS: the SSL request, the handshake verifying the CA and the name, then the protocol ----

const TLS_NAME: &str = "db.wire.test";

/// A CA and a server configuration with a certificate it signed for `name`.
fn server_pki(name: &str) -> (String, Arc<rustls::ServerConfig>) {
    use crate::certs::issue::{self, LeafRequest, Usage};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let now = jiff::Timestamp::now();
    let ca = issue::new_ca("wire test CA", now, &mut rand::rng()).unwrap();
    let request = LeafRequest {
        common_name: name.into(),
        dns_names: vec![name.into()],
        usage: Usage::Server,
    };
    let leaf = issue::issue("wire test CA", &ca.key_pem, &request, now, &mut rand::rng()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    (ca.cert_pem, Arc::new(config))
}

fn client_tls(ca_pem: &str, name: &str) -> WireTls {
    crate::datapath::MysqlTls::Verify {
        ca_pem: ca_pem.into(),
        server_name: name.into(),
    }
    .wire()
    .unwrap()
    .unwrap()
}

/// What the TLS test server saw: the SSL request packet, then what the client sent inside TLS.
type Seen = (Vec<u8>, Vec<u8>);

/// A server that offers TLS: the initial handshake, the client's SSL request, the TLS handshake
/// with `config`, then `after` inside TLS (or, with `config` `None`, `after` as raw bytes where
/// the TLS handshake should be).
fn serve_tls(
    config: Option<Arc<rustls::ServerConfig>>,
    after: Vec<u8>,
) -> (DuplexStream, tokio::task::JoinHandle<Seen>) {
    let (client, mut server) = duplex(1 << 20);
    let seen = tokio::spawn(async move {
        let hello = Script::default().hello("caching_sha2_password", CapabilityFlags::CLIENT_SSL);
        server.write_all(&hello.0).await.unwrap();
        let mut request = vec![0u8; 36];
        if server.read_exact(&mut request).await.is_err() {
            return (Vec::new(), Vec::new());
        }
        let Some(config) = config else {
            let _ = server.write_all(&after).await;
            let _ = server.shutdown().await;
            return (request, Vec::new());
        };
        let Ok(mut tls) = tokio_rustls::TlsAcceptor::from(config).accept(server).await else {
            return (request, Vec::new());
        };
        tls.write_all(&after).await.unwrap();
        tls.flush().await.unwrap();
        let mut got = Vec::new();
        let _ = tls.read_to_end(&mut got).await;
        (request, got)
    });
    (client, seen)
}

/// Over TLS: the SSL request (packet 1, CLIENT_SSL) comes before any credential, caching_sha2's
/// full authentication sends the password as it is (inside TLS, no RSA key asked for), and rows
/// are read as over plain TCP.
#[tokio::test]
async fn tls_then_full_authentication_then_rows() {
    let (ca, config) = server_pki(TLS_NAME);
    let (script, seq) = Script::default()
        .packet(3, &[AUTH_MORE, SHA2_FULL_AUTH])
        .ok(5)
        .columns(1);
    let script = script
        .packet(seq, &row_packet(&[Some(b"TLSv1.3")]))
        .eof(seq + 1, 0);
    let (stream, seen) = serve_tls(Some(config), script.0);
    let tls = client_tls(&ca, TLS_NAME);
    let mut conn = WireConn::handshake(stream, "u", "secret", Some(&tls))
        .await
        .unwrap();
    assert!(conn.stream.is_tls());
    let mut rows = conn.query("SHOW STATUS LIKE 'Ssl_version'").await.unwrap();
    let row = rows.next().await.unwrap().unwrap();
    assert_eq!(row.fields().next().unwrap().unwrap(), Some(&b"TLSv1.3"[..]));
    assert!(rows.next().await.unwrap().is_none());
    conn.close().await;
    let (request, inside) = seen.await.unwrap();
    let request = packets(&request);
    assert_eq!(request.len(), 1);
    assert_eq!(request[0].0, 1, "the SSL request is packet 1");
    let caps = u32::from_le_bytes(request[0].1[..4].try_into().unwrap());
    assert!(CapabilityFlags::from_bits_truncate(caps).contains(CapabilityFlags::CLIENT_SSL));
    assert!(!contains(&request[0].1, b"u\0"), "no user name before TLS");
    let inside = packets(&inside);
    assert_eq!(inside[0].0, 2, "the handshake response follows as packet 2");
    assert_eq!(auth_data(&inside[0].1).0, "u");
    assert_eq!(
        inside[1],
        (4, b"secret\0".to_vec()),
        "the password, inside TLS"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A certificate of another CA, or one that names another host, ends the connection before any
/// credential is sent.
#[tokio::test]
async fn another_ca_or_another_name_is_refused() {
    let (ca, config) = server_pki(TLS_NAME);
    let (other_ca, _) = server_pki(TLS_NAME);
    // The other CA has the same subject: its signature does not verify.
    for (tls, want) in [
        (client_tls(&other_ca, TLS_NAME), "BadSignature"),
        (client_tls(&ca, "other.wire.test"), "NotValidForName"),
    ] {
        let (stream, seen) = serve_tls(Some(config.clone()), Vec::new());
        let err = WireConn::handshake(stream, "u", "secret", Some(&tls))
            .await
            .err()
            .expect("refused");
        assert!(matches!(err, WireError::Tls(_)), "{err}");
        assert!(format!("{err:?}").contains(want), "{err:?}");
        let (_, inside) = seen.await.unwrap();
        assert!(inside.is_empty(), "nothing reached the server inside TLS");
    }
}

/// A server that does not offer TLS is refused before the credentials go out: the rows are
/// never read in cleartext when TLS was asked for.
#[tokio::test]
async fn a_server_without_tls_is_refused_before_the_credentials() {
    let (ca, _) = server_pki(TLS_NAME);
    let (stream, sent) = serve(Script::default().handshake("caching_sha2_password"));
    let err = WireConn::handshake(stream, "u", "secret", Some(&client_tls(&ca, TLS_NAME)))
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, WireError::NoTls), "{err}");
    assert!(err.to_string().contains("--mysql-cleartext"), "{err}");
    assert!(sent.await.unwrap().is_empty(), "nothing was sent");
}

/// Bytes that are not TLS where the handshake should be (garbage, a truncated record, a
/// closed connection, a MySQL packet) are an error, never a panic or a hang.
#[tokio::test]
async fn malformed_tls_is_an_error() {
    let (ca, _) = server_pki(TLS_NAME);
    let tls = client_tls(&ca, TLS_NAME);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut junk = Vec::new();
    for _ in 0..400 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        junk.push(state as u8);
    }
    let cases = [
        junk.clone(),
        // A TLS handshake record header that promises more than comes.
        vec![0x16, 0x03, 0x03, 0x40, 0x00, 0x02],
        Vec::new(),
        Script::default().ok(2).0,
        // An alert record.
        vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28],
    ];
    for bytes in cases {
        let (stream, _) = serve_tls(None, bytes.clone());
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            WireConn::handshake(stream, "u", "p", Some(&tls)),
        )
        .await
        .expect("no hang");
        let err = outcome.err().expect("not a connection");
        assert!(matches!(err, WireError::Tls(_)), "{bytes:02x?}: {err}");
    }
}
