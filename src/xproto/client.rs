//! X protocol client: the session-less capabilities probe, and a TLS session with PLAIN
//! authentication that subscribes to Group Replication notices and yields them as typed events.
//!
//! Every network wait is bounded: connecting by `connect_timeout`, each round trip by
//! `io_timeout`. Only [`Session::next_event`] waits without a deadline (notices come when the
//! group changes); the monitor bounds it with periodic pings.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::codec::Framed;

use super::frame::{DEFAULT_MAX_FRAME_LEN, FrameCodec, FrameError};
use super::messages::{
    self, Any, AuthenticateStart, Capabilities, CapabilitiesGet, CapabilitiesSet, Capability,
    ClientMessage, Close, MessageError, ServerMessage, admin_command,
};
use super::notice::{GrEvent, enable_group_replication_notices, group_replication_event};
use super::tls::{self, TlsError, TlsOptions};

/// The X protocol port of a member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The name its certificate must carry when it is not `host` (a member reached at its pod
    /// IP whose certificate names its DNS name).
    pub(crate) tls_name: Option<String>,
}

impl Endpoint {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls_name: None,
        }
    }

    /// The same endpoint, whose certificate must name `name`.
    pub(crate) fn with_tls_name(self, name: impl Into<String>) -> Self {
        Self {
            tls_name: Some(name.into()),
            ..self
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

pub use crate::credentials::Credentials;

/// PLAIN `auth_data`: empty default schema, user, password, separated by NUL.
fn plain_auth_data(c: &Credentials) -> Vec<u8> {
    let mut data = Vec::with_capacity(c.user.len() + c.password.len() + 2);
    data.push(0);
    data.extend_from_slice(c.user.as_bytes());
    data.push(0);
    data.extend_from_slice(c.password.as_bytes());
    data
}

/// What a session needs beyond the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    pub credentials: Credentials,
    pub tls: TlsOptions,
}

/// Deadlines and limits for every connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOptions {
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
    pub max_frame_len: usize,
}

impl Default for ConnOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            io_timeout: Duration::from_secs(3),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the X protocol port: {0}")]
    Connect(#[source] std::io::Error),
    #[error(
        "timed out after {after:?} during {what}: the member is down, overloaded or unreachable"
    )]
    Timeout { what: &'static str, after: Duration },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("the server closed the connection during {0}")]
    Closed(&'static str),
    #[error("the server rejected {what} with error {code} ({sql_state}): {msg}")]
    Server {
        what: &'static str,
        code: u32,
        sql_state: String,
        msg: String,
        fatal: bool,
    },
    #[error("the server answered {what} with message type {got}, expected {expected}")]
    Unexpected {
        what: &'static str,
        got: u8,
        expected: &'static str,
    },
    #[error("the server sent {0} bytes before the TLS handshake: protocol violation")]
    DataBeforeTls(usize),
    #[error("TLS handshake with the X protocol server failed (check the CA and server name): {0}")]
    Handshake(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

async fn timed<T>(
    after: Duration,
    what: &'static str,
    fut: impl Future<Output = T>,
) -> Result<T, ClientError> {
    tokio::time::timeout(after, fut)
        .await
        .map_err(|_| ClientError::Timeout { what, after })
}

fn unexpected(what: &'static str, got: &ServerMessage, expected: &'static str) -> ClientError {
    ClientError::Unexpected {
        what,
        got: got.msg_type(),
        expected,
    }
}

/// A framed connection with a per-round-trip deadline.
struct Conn<S> {
    framed: Framed<S, FrameCodec>,
    io_timeout: Duration,
}

impl Conn<TcpStream> {
    async fn connect(endpoint: &Endpoint, options: &ConnOptions) -> Result<Self, ClientError> {
        let stream = timed(
            options.connect_timeout,
            "connect",
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await?
        .map_err(ClientError::Connect)?;
        stream.set_nodelay(true).map_err(ClientError::Connect)?;
        Ok(Self {
            framed: Framed::new(stream, FrameCodec::new(options.max_frame_len)),
            io_timeout: options.io_timeout,
        })
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// The next server message, without a deadline. Cancel-safe. A server `Error` is an error.
    async fn next_message(&mut self, what: &'static str) -> Result<ServerMessage, ClientError> {
        let frame = self
            .framed
            .next()
            .await
            .ok_or(ClientError::Closed(what))??;
        match ServerMessage::decode(&frame)? {
            ServerMessage::Error(e) => Err(ClientError::Server {
                what,
                fatal: e.is_fatal(),
                code: e.code,
                sql_state: e.sql_state,
                msg: e.msg,
            }),
            other => Ok(other),
        }
    }

    /// Sends `msg` and returns the first reply that is not a notice, within `io_timeout`.
    /// Group Replication notices that arrive meanwhile are appended to `events`.
    async fn call(
        &mut self,
        msg: ClientMessage,
        what: &'static str,
        events: &mut VecDeque<GrEvent>,
    ) -> Result<ServerMessage, ClientError> {
        timed(self.io_timeout, what, async {
            self.framed.send(msg.to_frame()).await?;
            loop {
                match self.next_message(what).await? {
                    ServerMessage::Notice(notice) => {
                        events.extend(group_replication_event(&notice)?);
                    }
                    reply => return Ok(reply),
                }
            }
        })
        .await?
    }

    /// Sends `Connection.Close` and waits for its `Ok`; failures are only logged, since the
    /// caller is done with the connection either way.
    async fn close(mut self) {
        let mut ignored = VecDeque::new();
        let what = "closing the connection";
        match self
            .call(ClientMessage::Close(Close {}), what, &mut ignored)
            .await
        {
            Ok(ServerMessage::Ok(_)) => {}
            Ok(other) => {
                tracing::debug!(error = %unexpected(what, &other, "Ok"), "X protocol close")
            }
            Err(error) => tracing::debug!(%error, "X protocol close"),
        }
    }
}

/// The health probe: connect, `CapabilitiesGet` → `Capabilities`, `Close`. No session and no
/// credentials. Returns the latency of the capabilities round trip.
pub async fn probe(endpoint: &Endpoint, options: &ConnOptions) -> Result<Duration, ClientError> {
    let mut conn = Conn::connect(endpoint, options).await?;
    let what = "the capabilities probe";
    let started = Instant::now();
    let reply = conn
        .call(
            ClientMessage::CapabilitiesGet(CapabilitiesGet {}),
            what,
            &mut VecDeque::new(),
        )
        .await?;
    let latency = started.elapsed();
    if !matches!(reply, ServerMessage::Capabilities(_)) {
        return Err(unexpected(what, &reply, "Capabilities"));
    }
    conn.close().await;
    Ok(latency)
}

/// An authenticated TLS session subscribed to the Group Replication notices.
pub struct Session {
    conn: Conn<TlsStream<TcpStream>>,
    events: VecDeque<GrEvent>,
}

impl Session {
    /// Connects, upgrades to TLS, authenticates with PLAIN and enables the notices.
    pub async fn open(
        endpoint: &Endpoint,
        session: &SessionOptions,
        tls_config: Arc<rustls::ClientConfig>,
        options: &ConnOptions,
    ) -> Result<Self, ClientError> {
        let server_name = match &endpoint.tls_name {
            Some(name) => tls::server_name(&session.tls, name)?,
            None => tls::server_name(&session.tls, &endpoint.host)?,
        };
        let mut plain = Conn::connect(endpoint, options).await?;
        let mut events = VecDeque::new();

        let what = "enabling TLS";
        let set_tls = CapabilitiesSet {
            capabilities: Capabilities {
                capabilities: vec![Capability {
                    name: "tls".into(),
                    value: Any::bool(true),
                }],
            },
        };
        let reply = plain
            .call(ClientMessage::CapabilitiesSet(set_tls), what, &mut events)
            .await?;
        if !matches!(reply, ServerMessage::Ok(_)) {
            return Err(unexpected(what, &reply, "Ok"));
        }
        let parts = plain.framed.into_parts();
        if !parts.read_buf.is_empty() {
            return Err(ClientError::DataBeforeTls(parts.read_buf.len()));
        }
        let stream = timed(
            options.io_timeout,
            "the TLS handshake",
            TlsConnector::from(tls_config).connect(server_name, parts.io),
        )
        .await?
        .map_err(ClientError::Handshake)?;
        let mut conn = Conn {
            framed: Framed::new(stream, parts.codec),
            io_timeout: options.io_timeout,
        };

        let what = "PLAIN authentication";
        let start = AuthenticateStart {
            mech_name: "PLAIN".into(),
            auth_data: Some(plain_auth_data(&session.credentials)),
            initial_response: None,
        };
        let reply = conn
            .call(ClientMessage::AuthenticateStart(start), what, &mut events)
            .await?;
        if !matches!(reply, ServerMessage::AuthenticateOk(_)) {
            return Err(unexpected(what, &reply, "AuthenticateOk"));
        }

        let what = "enable_notices";
        let reply = conn
            .call(
                ClientMessage::StmtExecute(enable_group_replication_notices()),
                what,
                &mut events,
            )
            .await?;
        if !matches!(reply, ServerMessage::StmtExecuteOk(_)) {
            return Err(unexpected(what, &reply, "StmtExecuteOk"));
        }
        Ok(Self { conn, events })
    }

    /// Waits for the next Group Replication event. Cancel-safe: dropping the future loses
    /// nothing. Other notices are skipped; anything else ends the session with an error.
    pub async fn next_event(&mut self) -> Result<GrEvent, ClientError> {
        let what = "waiting for notices";
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(event);
            }
            match self.conn.next_message(what).await? {
                ServerMessage::Notice(notice) => {
                    self.events.extend(group_replication_event(&notice)?);
                }
                other => return Err(unexpected(what, &other, "Notice")),
            }
        }
    }

    /// `ping` in the `mysqlx` namespace; returns its round-trip latency. Notices that arrive
    /// meanwhile are kept for [`Session::next_event`].
    pub async fn ping(&mut self) -> Result<Duration, ClientError> {
        let what = "the session ping";
        let started = Instant::now();
        let reply = self
            .conn
            .call(
                ClientMessage::StmtExecute(admin_command("ping", vec![])),
                what,
                &mut self.events,
            )
            .await?;
        match reply {
            ServerMessage::StmtExecuteOk(messages::StmtExecuteOk {}) => Ok(started.elapsed()),
            other => Err(unexpected(what, &other, "StmtExecuteOk")),
        }
    }

    /// Closes the connection politely (bounded by the I/O timeout).
    pub async fn close(self) {
        self.conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_hides_the_password() {
        let creds = Credentials::new("monitor", "s3cret-pw");
        let shown = format!("{creds:?}");
        assert!(shown.contains("monitor"));
        assert!(!shown.contains("s3cret-pw"));
    }

    #[test]
    fn plain_auth_data_layout() {
        assert_eq!(
            plain_auth_data(&Credentials::new("u", "pw")),
            b"\0u\0pw".to_vec()
        );
    }

    use bytes::BytesMut;
    use prost::Message as _;
    use tokio::io::AsyncWriteExt;

    use crate::xproto::frame::encode_frame;
    use crate::xproto::messages::{
        Error, GroupReplicationStateChanged, NoticeFrame, NoticeType, Severity,
    };
    use crate::xproto::notice::GrEventKind;

    /// A connection whose server side has already written `replies` and closes after reading
    /// the client's request.
    async fn conn_with_replies(replies: &[ServerMessage]) -> Conn<tokio::io::DuplexStream> {
        let (client, mut server) = tokio::io::duplex(64 * 1024);
        let mut wire = BytesMut::new();
        for reply in replies {
            let frame = reply.to_frame();
            encode_frame(frame.msg_type, &frame.payload, 1 << 20, &mut wire).unwrap();
        }
        server.write_all(&wire).await.unwrap();
        tokio::spawn(async move {
            let mut request = [0u8; 256];
            let _ = tokio::io::AsyncReadExt::read(&mut server, &mut request).await;
        });
        Conn {
            framed: Framed::new(client, FrameCodec::new(1 << 20)),
            io_timeout: Duration::from_secs(5),
        }
    }

    fn gr_notice(kind: u32) -> ServerMessage {
        ServerMessage::Notice(NoticeFrame {
            r#type: NoticeType::GroupReplicationStateChanged as u32,
            scope: None,
            payload: Some(
                GroupReplicationStateChanged {
                    r#type: kind,
                    view_id: None,
                }
                .encode_to_vec(),
            ),
        })
    }

    fn ping() -> ClientMessage {
        ClientMessage::StmtExecute(admin_command("ping", vec![]))
    }

    #[tokio::test]
    async fn call_skips_notices_and_keeps_group_replication_events() {
        let warning = ServerMessage::Notice(NoticeFrame {
            r#type: NoticeType::Warning as u32,
            scope: None,
            payload: None,
        });
        let ok = ServerMessage::StmtExecuteOk(messages::StmtExecuteOk {});
        let mut conn = conn_with_replies(&[warning, gr_notice(3), ok.clone()]).await;
        let mut events = VecDeque::new();
        assert_eq!(conn.call(ping(), "ping", &mut events).await.unwrap(), ok);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, GrEventKind::RoleChange);
    }

    #[tokio::test]
    async fn server_errors_and_closes_are_reported() {
        let fatal = ServerMessage::Error(Error {
            severity: Some(Severity::Fatal as i32),
            code: 5000,
            msg: "bye".into(),
            sql_state: "HY000".into(),
        });
        let mut conn = conn_with_replies(&[fatal]).await;
        let err = conn
            .call(ping(), "ping", &mut VecDeque::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Server {
                    code: 5000,
                    fatal: true,
                    ..
                }
            ),
            "{err}"
        );

        let mut conn = conn_with_replies(&[]).await;
        let err = conn
            .call(ping(), "ping", &mut VecDeque::new())
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Closed("ping")), "{err}");
    }

    #[tokio::test]
    async fn unknown_and_malformed_server_messages_are_errors() {
        let (client, mut server) = tokio::io::duplex(1024);
        // RESULTSET_ROW (13) is not expected by this client.
        server.write_all(&[1, 0, 0, 0, 13]).await.unwrap();
        let mut conn = Conn {
            framed: Framed::new(client, FrameCodec::new(1024)),
            io_timeout: Duration::from_secs(5),
        };
        let err = conn.next_message("test").await.unwrap_err();
        assert!(
            matches!(err, ClientError::Message(MessageError::UnknownType(13))),
            "{err}"
        );
        // An Error whose string field runs past the payload.
        server
            .write_all(&[4, 0, 0, 0, 1, 0x1a, 0x10, b'x'])
            .await
            .unwrap();
        let err = conn.next_message("test").await.unwrap_err();
        assert!(matches!(err, ClientError::Message(_)), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (client, _server) = tokio::io::duplex(1024);
        let mut conn = Conn {
            framed: Framed::new(client, FrameCodec::new(1024)),
            io_timeout: Duration::from_millis(50),
        };
        let err = conn
            .call(ping(), "ping", &mut VecDeque::new())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Timeout { what: "ping", .. }),
            "{err}"
        );
    }

    #[test]
    fn endpoint_display_brackets_ipv6() {
        assert_eq!(Endpoint::new("db-0", 33060).to_string(), "db-0:33060");
        assert_eq!(Endpoint::new("::1", 33060).to_string(), "[::1]:33060");
    }
}
