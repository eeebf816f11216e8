//! A lean MySQL client-protocol connection for the dump's data path: connect and authenticate
//! (with `mysql_common`'s packet types and scrambles), run text-protocol statements, and hand out
//! each result row as borrowed field slices of the receive buffer.
//!
//! Why not mysql_async here: it turns every value into its own heap allocation and every row
//! into a pooled packet buffer, about 600 ns per row, which profiling put at 17 % of a backup's
//! CPU, more than zstd. The control connection (locks, schema, GTID position) stays on
//! mysql_async; only the workers' snapshot transactions and chunk queries run here.
//!
//! Scope, on purpose small: TCP, with TLS that verifies the cluster's CA and the member's name
//! (or cleartext when asked for: a server that does not offer TLS is never used in cleartext
//! otherwise), `mysql_native_password` and `caching_sha2_password` (fast path, and the full path:
//! the password over TLS, or encrypted with the server's RSA key), one statement per query, no
//! compression, no prepared statements.

use std::ops::Range;
use std::time::Duration;

use mysql_common::collations::CollationId;
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ErrPacket, HandshakePacket, HandshakeResponse, SslRequest,
};
use mysql_common::proto::MySerialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::MysqlConfig;
use super::tls::WireTls;
use crate::xproto::tls::TlsError;

mod rows;
mod transport;
#[cfg(test)]
pub(crate) use rows::row_packet;
pub use rows::{Fields, Row, Rows};
pub use transport::Transport;

/// Everything that can go wrong on a data-path connection.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("cannot connect to MySQL at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("connecting to MySQL at {address} timed out after {after:?}")]
    ConnectTimeout { address: String, after: Duration },
    #[error("the MySQL connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server answered with error {code} ({state}): {message}")]
    Server {
        code: u16,
        state: String,
        message: String,
    },
    #[error("the server sent a malformed packet: {0}")]
    Malformed(String),
    #[error(
        "the server asks for authentication plugin {0}, which the dump connections do not speak; \
         give the backup account mysql_native_password or caching_sha2_password"
    )]
    AuthPlugin(String),
    #[error("the server does not speak the MySQL 4.1+ protocol with plugin authentication")]
    OldServer,
    #[error("this connection is unusable after an earlier failure or an unfinished result")]
    Broken,
    #[error(
        "the server does not offer TLS, and the backup does not send rows in cleartext: give \
         the server a certificate (ssl_cert, ssl_key), or run with --mysql-cleartext"
    )]
    NoTls,
    #[error("the TLS handshake with the server failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error(transparent)]
    TlsSetup(#[from] TlsError),
}

impl WireError {
    /// The server's error code, when the server refused the statement.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            WireError::Server { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Header byte of an OK packet.
const OK: u8 = 0x00;
/// Header byte of an ERR packet.
const ERR: u8 = 0xFF;
/// Header byte of an EOF packet (and of an auth switch request during the handshake).
const EOF: u8 = 0xFE;
/// Header byte of "more authentication data".
const AUTH_MORE: u8 = 0x01;
/// Payload length that means "continued in the next packet".
const MAX_PAYLOAD: usize = 0xFF_FFFF;
const COM_QUIT: u8 = 0x01;
const COM_QUERY: u8 = 0x03;
/// caching_sha2_password: the scramble matched a cached entry / full authentication is needed /
/// "send me your public key".
const SHA2_FAST_OK: u8 = 0x03;
const SHA2_FULL_AUTH: u8 = 0x04;
const SHA2_REQUEST_KEY: u8 = 0x02;

/// Bytes asked of the socket per read: big reads keep syscalls per row low.
const READ_CHUNK: usize = 256 << 10;
/// Largest packet the client accepts (the server's max_allowed_packet bounds it further).
const MAX_PACKET: u32 = 1 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The capabilities this client asks for (intersected with the server's).
fn client_capabilities() -> CapabilityFlags {
    CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_LONG_FLAG
        | CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
}

/// One connection. `S` is a TCP stream (under TLS or not) in production and an in-memory pipe
/// in tests.
pub struct WireConn<S = Transport<TcpStream>> {
    stream: S,
    buf: Vec<u8>,
    /// Unread bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// A payload that spanned several packets (a row of 16 MiB or more), joined.
    large: Vec<u8>,
    /// Sequence id the next packet (either way) must carry.
    seq: u8,
    capabilities: CapabilityFlags,
    broken: bool,
}

impl WireConn<Transport<TcpStream>> {
    /// Connects and authenticates as `cfg.user`, over TLS unless `cfg.tls` says cleartext.
    pub async fn connect(cfg: &MysqlConfig) -> Result<Self, WireError> {
        let tls = cfg.tls.wire()?;
        let address = format!("{}:{}", cfg.host, cfg.port);
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            TcpStream::connect((cfg.host.as_str(), cfg.port)),
        )
        .await
        .map_err(|_| WireError::ConnectTimeout {
            address: address.clone(),
            after: CONNECT_TIMEOUT,
        })?
        .map_err(|source| WireError::Connect { address, source })?;
        stream.set_nodelay(true)?;
        Self::handshake(stream, &cfg.user, &cfg.password, tls.as_ref()).await
    }
}

/// What the server's initial handshake says.
struct Hello {
    capabilities: CapabilityFlags,
    nonce: Vec<u8>,
    version: (u16, u16, u16),
    plugin: AuthPlugin<'static>,
}

impl Hello {
    fn parse(packet: &[u8]) -> Result<Hello, WireError> {
        if packet.first() == Some(&ERR) {
            return Err(server_error(packet, CapabilityFlags::empty()));
        }
        check_auth_data_len(packet)?;
        let handshake: HandshakePacket<'_> = ParseBuf(packet)
            .parse(())
            .map_err(|e| WireError::Malformed(format!("initial handshake: {e}")))?;
        let capabilities = handshake.capabilities();
        let needed = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH;
        if !capabilities.contains(needed) {
            return Err(WireError::OldServer);
        }
        let mut nonce = handshake.scramble_1_ref().to_vec();
        nonce.extend_from_slice(handshake.scramble_2_ref().unwrap_or_default());
        nonce.resize(20, 0);
        Ok(Hello {
            capabilities,
            nonce,
            version: handshake
                .maria_db_server_version_parsed()
                .or_else(|| handshake.server_version_parsed())
                .unwrap_or((0, 0, 0)),
            // Answer in the plugin the server announced when we speak it; otherwise in the
            // native one, and the server switches us to the account's plugin.
            plugin: match handshake.auth_plugin() {
                Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
                _ => AuthPlugin::MysqlNativePassword,
            },
        })
    }
}

impl<S> WireConn<S> {
    /// The connection state over `stream` instead; the old stream comes back with it.
    fn swap_stream<T>(self, stream: T) -> (S, WireConn<T>) {
        let conn = WireConn {
            stream,
            buf: self.buf,
            start: self.start,
            end: self.end,
            large: self.large,
            seq: self.seq,
            capabilities: self.capabilities,
            broken: self.broken,
        };
        (self.stream, conn)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WireConn<S> {
    fn new(stream: S) -> Self {
        WireConn {
            stream,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            large: Vec::new(),
            seq: 0,
            capabilities: CapabilityFlags::empty(),
            broken: false,
        }
    }

    /// Asks for TLS (the SSL request packet) and runs the TLS handshake, verifying the server.
    async fn start_tls(mut self, tls: &WireTls) -> Result<WireConn<Transport<S>>, WireError> {
        let mut request = Vec::new();
        SslRequest::new(
            self.capabilities,
            MAX_PACKET,
            CollationId::UTF8MB4_GENERAL_CI as u8,
        )
        .serialize(&mut request);
        self.write_packet(&request).await?;
        if self.start != self.end {
            return Err(WireError::Malformed(
                "the server sent data before the TLS handshake".into(),
            ));
        }
        let (stream, state) = self.swap_stream(());
        let secure = TlsConnector::from(tls.config.clone())
            .connect(tls.name.clone(), stream)
            .await
            .map_err(WireError::Tls)?;
        Ok(state.swap_stream(Transport::Tls(Box::new(secure))).1)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WireConn<Transport<S>> {
    /// Runs the connection phase on an open stream: TLS first when `tls` is given (a server
    /// that does not offer it is refused, never used in cleartext), then authentication.
    pub(crate) async fn handshake(
        stream: S,
        user: &str,
        password: &str,
        tls: Option<&WireTls>,
    ) -> Result<Self, WireError> {
        let mut plain = WireConn::new(stream);
        let hello = Hello::parse(plain.read_packet().await?)?;
        plain.capabilities = hello.capabilities & client_capabilities();
        let mut conn = match tls {
            Some(tls) => {
                if !hello.capabilities.contains(CapabilityFlags::CLIENT_SSL) {
                    return Err(WireError::NoTls);
                }
                plain.capabilities |= CapabilityFlags::CLIENT_SSL;
                plain.start_tls(tls).await?
            }
            None => {
                let (stream, state) = plain.swap_stream(());
                state.swap_stream(Transport::Plain(stream)).1
            }
        };
        conn.authenticate(hello, user, password).await?;
        Ok(conn)
    }

    /// Long (70 lines) on purpose: one protocol exchange, packet by packet, as the server sends it.
    async fn authenticate(
        &mut self,
        hello: Hello,
        user: &str,
        password: &str,
    ) -> Result<(), WireError> {
        let Hello {
            mut nonce,
            version,
            mut plugin,
            ..
        } = hello;
        let data = scramble(&plugin, password, &nonce);
        let response = HandshakeResponse::new(
            Some(data.as_slice()),
            version,
            Some(user.as_bytes()),
            None::<&[u8]>,
            Some(plugin.clone()),
            self.capabilities,
            None,
            MAX_PACKET,
        );
        let mut out = Vec::new();
        response.serialize(&mut out);
        self.write_packet(&out).await?;

        let mut switched = false;
        loop {
            let packet = self.read_packet().await?.to_vec();
            match (packet.first().copied(), packet.get(1).copied()) {
                (Some(OK), _) => return Ok(()),
                (Some(ERR), _) => return Err(server_error(&packet, self.capabilities)),
                (Some(EOF), _) if !switched => {
                    switched = true;
                    let request: AuthSwitchRequest<'_> = ParseBuf(&packet)
                        .parse(())
                        .map_err(|e| WireError::Malformed(format!("auth switch request: {e}")))?;
                    plugin = match request.auth_plugin() {
                        AuthPlugin::CachingSha2Password => AuthPlugin::CachingSha2Password,
                        AuthPlugin::MysqlNativePassword => AuthPlugin::MysqlNativePassword,
                        other => {
                            return Err(WireError::AuthPlugin(
                                String::from_utf8_lossy(other.as_bytes()).into_owned(),
                            ));
                        }
                    };
                    nonce = request.plugin_data().to_vec();
                    if nonce.is_empty() {
                        return Err(WireError::Malformed(
                            "an auth switch without a nonce".into(),
                        ));
                    }
                    let data = scramble(&plugin, password, &nonce);
                    self.write_packet(&data).await?;
                }
                (Some(AUTH_MORE), Some(SHA2_FAST_OK))
                    if plugin == AuthPlugin::CachingSha2Password => {}
                (Some(AUTH_MORE), Some(SHA2_FULL_AUTH))
                    if plugin == AuthPlugin::CachingSha2Password =>
                {
                    self.full_sha2_auth(password, &nonce).await?;
                }
                _ => return Err(unexpected("an authentication answer", &packet)),
            }
        }
    }

    /// caching_sha2's full authentication: the password itself, over TLS as it is; over plain
    /// TCP encrypted with the server's RSA key.
    async fn full_sha2_auth(&mut self, password: &str, nonce: &[u8]) -> Result<(), WireError> {
        let mut secret = password.as_bytes().to_vec();
        secret.push(0);
        if self.stream.is_tls() {
            return self.write_packet(&secret).await;
        }
        self.write_packet(&[SHA2_REQUEST_KEY]).await?;
        let key = self.read_packet().await?.to_vec();
        if key.first() != Some(&AUTH_MORE) {
            return Err(unexpected("the server's public key", &key));
        }
        for (i, b) in secret.iter_mut().enumerate() {
            *b ^= nonce[i % nonce.len()];
        }
        let encrypted = encrypt_password(&secret, &key[1..])?;
        self.write_packet(&encrypted).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> WireConn<S> {
    /// Runs a statement that returns no rows (a result set, if any, is read and dropped).
    pub(crate) async fn execute(&mut self, sql: &str) -> Result<(), WireError> {
        let mut rows = self.query(sql).await?;
        while rows.next().await?.is_some() {}
        Ok(())
    }

    /// Says goodbye (best effort: the server closes the session either way).
    pub async fn close(mut self) {
        self.seq = 0;
        let _ = self.write_packet(&[COM_QUIT]).await;
        let _ = self.stream.shutdown().await;
    }

    async fn write_packet(&mut self, payload: &[u8]) -> Result<(), WireError> {
        debug_assert!(payload.len() < MAX_PAYLOAD, "commands here are small");
        let len = (payload.len() as u32).to_le_bytes();
        let mut packet = Vec::with_capacity(payload.len() + 4);
        packet.extend_from_slice(&[len[0], len[1], len[2], self.seq]);
        packet.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream.write_all(&packet).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// The next packet's payload (joined when it spans several packets).
    async fn read_packet(&mut self) -> Result<&[u8], WireError> {
        let span = self.next_packet().await?;
        Ok(self.payload(&span))
    }

    /// Reads the next packet; its payload is [`Self::payload`] until the next read.
    async fn next_packet(&mut self) -> Result<Span, WireError> {
        if let Some(span) = self.buffered_packet() {
            return span;
        }
        let (len, seq) = self.header().await?;
        if len < MAX_PAYLOAD {
            self.check_seq(seq)?;
            self.want(4 + len).await?;
            let at = self.start + 4;
            self.start = at + len;
            return Ok(Span::Buffer(at..at + len));
        }
        self.large.clear();
        loop {
            let (len, seq) = self.header().await?;
            self.check_seq(seq)?;
            self.want(4 + len).await?;
            let at = self.start + 4;
            self.large.extend_from_slice(&self.buf[at..at + len]);
            self.start = at + len;
            if len < MAX_PAYLOAD {
                return Ok(Span::Large);
            }
        }
    }

    /// The next packet when it is whole in the buffer and not part of a large one: most rows
    /// are, and reading them needs no await.
    fn buffered_packet(&mut self) -> Option<Result<Span, WireError>> {
        let (len, seq) = packet_header(self.buf[self.start..self.end].get(..4)?);
        if len >= MAX_PAYLOAD || self.end - self.start < 4 + len {
            return None;
        }
        if let Err(e) = self.check_seq(seq) {
            return Some(Err(e));
        }
        let at = self.start + 4;
        self.start = at + len;
        Some(Ok(Span::Buffer(at..at + len)))
    }

    fn payload(&self, span: &Span) -> &[u8] {
        match span {
            Span::Buffer(r) => &self.buf[r.clone()],
            Span::Large => &self.large,
        }
    }

    async fn header(&mut self) -> Result<(usize, u8), WireError> {
        self.want(4).await?;
        Ok(packet_header(&self.buf[self.start..self.start + 4]))
    }

    fn check_seq(&mut self, seq: u8) -> Result<(), WireError> {
        if seq != self.seq {
            return Err(WireError::Malformed(format!(
                "packet sequence {seq}, expected {}",
                self.seq
            )));
        }
        self.seq = self.seq.wrapping_add(1);
        Ok(())
    }

    /// Makes `n` unread bytes available in `buf[start..]`.
    async fn want(&mut self, n: usize) -> Result<(), WireError> {
        while self.end - self.start < n {
            if self.start + n > self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if n > self.buf.len() {
                    self.buf.resize(n, 0);
                }
            }
            let got = self.stream.read(&mut self.buf[self.end..]).await?;
            if got == 0 {
                return Err(WireError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
            self.end += got;
        }
        Ok(())
    }
}

/// A packet header's payload length (3 bytes, little-endian) and sequence id.
fn packet_header(h: &[u8]) -> (usize, u8) {
    (
        usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16,
        h[3],
    )
}

/// Where the payload of the packet just read is.
enum Span {
    Buffer(Range<usize>),
    Large,
}

/// RSA-OAEP encryption of the (nonce-masked) password with the server's PEM key.
/// mysql_common 0.37 panics on a key that is not valid PEM/DER (found by
/// `corrupted_server_bytes_never_panic`); such a key is the server's malformed input, so the
/// panic is caught and reported as one.
fn encrypt_password(secret: &[u8], pem: &[u8]) -> Result<Vec<u8>, WireError> {
    std::panic::catch_unwind(|| mysql_common::crypto::encrypt(secret, pem))
        .map_err(|_| WireError::Malformed("the server's RSA public key is not valid PEM".into()))
}

/// Rejects an initial handshake whose auth-plugin-data length byte is over 127: mysql_common
/// 0.37 computes `len as i8 - 8`, which overflows (a panic in debug builds) for 0x80..=0x87.
/// Servers send 21. (Found by `corrupted_server_bytes_never_panic`.)
fn check_auth_data_len(packet: &[u8]) -> Result<(), WireError> {
    // protocol version, NUL-terminated server version, then the fixed block in which the
    // length is byte 20 (connection id 4, scramble 8, filler 1, capabilities 2, collation 1,
    // status 2, capabilities 2).
    let version_end = packet.iter().skip(1).position(|&b| b == 0);
    let len = version_end.and_then(|v| packet.get(1 + v + 1 + 20));
    match len {
        Some(&l) if l > 0x7F => Err(WireError::Malformed(format!(
            "initial handshake with an auth data length of {l}"
        ))),
        _ => Ok(()),
    }
}

/// The auth response of `plugin` (native or caching_sha2 only: `gen_data` panics for plugins
/// whose crate features are off); empty for an empty password.
fn scramble(plugin: &AuthPlugin<'_>, password: &str, nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(data) = plugin.gen_data(Some(password), nonce) {
        data.serialize(&mut out);
    }
    out
}

fn server_error(packet: &[u8], caps: CapabilityFlags) -> WireError {
    match ParseBuf(packet).parse::<ErrPacket<'_>>(caps) {
        Ok(ErrPacket::Error(e)) => WireError::Server {
            code: e.error_code(),
            state: e
                .sql_state_ref()
                .map(|s| s.as_str().into_owned())
                .unwrap_or_else(|| "HY000".to_string()),
            message: e.message_str().into_owned(),
        },
        Ok(ErrPacket::Progress(_)) => WireError::Malformed("an unrequested progress report".into()),
        Err(e) => WireError::Malformed(format!("error packet: {e}")),
    }
}

fn unexpected(wanted: &str, packet: &[u8]) -> WireError {
    let head: Vec<String> = packet.iter().take(8).map(|b| format!("{b:02x}")).collect();
    WireError::Malformed(format!(
        "expected {wanted}, got a {}-byte packet starting {}",
        packet.len(),
        head.join(" ")
    ))
}

#[cfg(test)]
mod tests;
