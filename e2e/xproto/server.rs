//! A small X protocol server for tests: capabilities, the TLS upgrade (certificate from a test CA
//! made with rcgen, or one given as PEM), PLAIN authentication, `enable_notices`/`ping`, and Group Replication notices
//! pushed on demand. It can also misbehave: never answer, or send an oversized frame.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use innodb_operator::xproto::Endpoint;
use innodb_operator::xproto::frame::{Frame, FrameCodec};
use innodb_operator::xproto::messages::{
    Any, AuthenticateOk, Capabilities, Capability, ClientMessage, Error,
    GroupReplicationStateChanged, NoticeFrame, NoticeType, Ok, ServerMessage, Severity,
    StmtExecuteOk,
};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::Framed;

pub const USER: &str = "monitor";
pub const PASSWORD: &str = "monitor-pw-123";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Normal,
    /// Like `Normal`, but TLS is not configured: `CapabilitiesSet { tls }` fails.
    NoTls,
    /// Accepts and reads but never writes a byte.
    Silent,
    /// Sends a frame header declaring 4 GiB - 1 bytes.
    Oversized,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: usize,
    pub capability_gets: usize,
    pub tls_upgrades: usize,
    pub auth_ok: usize,
    pub auth_failures: usize,
    pub notice_sessions: usize,
    pub pings: usize,
    pub closes: usize,
}

/// A server certificate and the CA that signed it: made here (a test CA, for `localhost` and
/// 127.0.0.1), or as a member finds them in its cluster's TLS Secret.
#[derive(Clone)]
pub struct TestPki {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl TestPki {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "xproto test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Self::from_pem(&ca_cert.pem(), &cert.pem(), &key.serialize_pem())
    }

    /// From PEM text: the CA's certificate, the server's certificate chain and its key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Self {
        let (chain, key) = server_identity(cert_pem, key_pem);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("a server certificate that matches its key");
        Self {
            ca_pem: ca_pem.to_owned(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// A certificate chain (PEM, the server's first) and its private key (PEM), parsed.
pub fn server_identity(
    cert_pem: &str,
    key_pem: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("PEM certificates");
    assert!(!chain.is_empty(), "no certificate in the PEM text");
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("a PEM private key");
    (chain, key)
}

struct State {
    behavior: Behavior,
    /// The PLAIN authentication data a client must send (`\0user\0password`).
    plain: String,
    acceptor: TlsAcceptor,
    notices: broadcast::Sender<GroupReplicationStateChanged>,
    kill: watch::Sender<u64>,
    stats: Mutex<Stats>,
}

impl State {
    fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.stats.lock().unwrap());
    }
}

pub struct FakeXServer {
    pub addr: SocketAddr,
    pub ca_pem: String,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl FakeXServer {
    /// On a free loopback port, for [`USER`] with [`PASSWORD`], with a certificate of a new test
    /// CA.
    pub async fn start(behavior: Behavior) -> Self {
        let addr = "127.0.0.1:0".parse().unwrap();
        Self::start_on(addr, behavior, USER, PASSWORD, TestPki::new()).await
    }

    /// On `addr`, accepting `user` with `password`, presenting `pki`'s certificate.
    pub async fn start_on(
        addr: SocketAddr,
        behavior: Behavior,
        user: &str,
        password: &str,
        pki: TestPki,
    ) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind the X protocol server to {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            behavior,
            plain: format!("\0{user}\0{password}"),
            acceptor: pki.acceptor,
            notices: broadcast::channel(64).0,
            kill: watch::channel(0).0,
            stats: Mutex::default(),
        });
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                accept_state.count(|s| s.connections += 1);
                // Like mysqld: no Nagle delay on small protocol messages.
                stream.set_nodelay(true).unwrap();
                tokio::spawn(handle(stream, accept_state.clone()));
            }
        });
        Self {
            addr,
            ca_pem: pki.ca_pem,
            state,
            task,
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        Endpoint::new(self.addr.ip().to_string(), self.addr.port())
    }

    /// Sends a GroupReplicationStateChanged notice to every session that enabled notices;
    /// returns how many received it.
    pub fn push_notice(&self, kind: u32, view_id: &str) -> usize {
        let notice = GroupReplicationStateChanged {
            r#type: kind,
            view_id: Some(view_id.to_owned()),
        };
        self.state.notices.send(notice).unwrap_or(0)
    }

    /// Drops every open connection (the listener keeps accepting).
    pub fn drop_connections(&self) {
        self.state.kill.send_modify(|g| *g += 1);
    }

    pub fn stats(&self) -> Stats {
        self.state.stats.lock().unwrap().clone()
    }

    /// Waits until `pred(stats)` holds.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Stats) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !pred(&self.stats()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; stats: {:?}",
                self.stats()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeXServer {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_connections();
    }
}

async fn handle(mut stream: TcpStream, state: Arc<State>) {
    let mut kill = state.kill.subscribe();
    match state.behavior {
        Behavior::Silent => {
            let mut sink = [0u8; 256];
            tokio::select! {
                _ = kill.changed() => {}
                _ = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} } => {}
            }
        }
        Behavior::Oversized => {
            let _ = stream.write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 2]).await;
            let _ = kill.changed().await;
        }
        Behavior::Normal | Behavior::NoTls => {
            let framed = Framed::new(stream, FrameCodec::default());
            if let Some(plain) = serve(framed, false, &state, &mut kill).await {
                let parts = plain.into_parts();
                let Ok(tls) = state.acceptor.accept(parts.io).await else {
                    return;
                };
                state.count(|s| s.tls_upgrades += 1);
                serve(
                    Framed::new(tls, FrameCodec::default()),
                    true,
                    &state,
                    &mut kill,
                )
                .await;
            }
        }
    }
}

fn error(severity: Severity, code: u32, msg: &str) -> ServerMessage {
    ServerMessage::Error(Error {
        severity: Some(severity as i32),
        code,
        msg: msg.to_owned(),
        sql_state: "HY000".to_owned(),
    })
}

fn notice(kind: NoticeType, payload: Vec<u8>) -> ServerMessage {
    ServerMessage::Notice(NoticeFrame {
        r#type: kind as u32,
        scope: None,
        payload: Some(payload),
    })
}

async fn recv_notice(
    rx: &mut Option<broadcast::Receiver<GroupReplicationStateChanged>>,
) -> Option<GroupReplicationStateChanged> {
    match rx {
        Some(rx) => rx.recv().await.ok(),
        None => std::future::pending().await,
    }
}

/// Serves one connection phase; returns the framed plain connection when the client asked for
/// TLS, `None` when the connection is over.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut framed: Framed<S, FrameCodec>,
    tls: bool,
    state: &State,
    kill: &mut watch::Receiver<u64>,
) -> Option<Framed<S, FrameCodec>> {
    async fn send<S: AsyncRead + AsyncWrite + Unpin>(
        framed: &mut Framed<S, FrameCodec>,
        msg: ServerMessage,
    ) -> Option<()> {
        let frame: Frame = msg.to_frame();
        framed.send(frame).await.ok()
    }

    // Global notices may arrive at any time: greet with one the client must skip.
    send(&mut framed, notice(NoticeType::ServerHello, vec![])).await?;
    let mut authenticated = false;
    let mut notices = None;
    loop {
        let frame = tokio::select! {
            _ = kill.changed() => return None,
            gr = recv_notice(&mut notices) => {
                let gr = gr?;
                send(&mut framed, notice(NoticeType::GroupReplicationStateChanged, gr.encode_to_vec())).await?;
                continue;
            }
            frame = framed.next() => frame?.ok()?,
        };
        let Ok(msg) = ClientMessage::decode(&frame) else {
            send(&mut framed, error(Severity::Fatal, 5000, "invalid message")).await?;
            return None;
        };
        let reply = match msg {
            ClientMessage::CapabilitiesGet(_) => {
                state.count(|s| s.capability_gets += 1);
                ServerMessage::Capabilities(Capabilities {
                    capabilities: vec![
                        Capability {
                            name: "tls".into(),
                            value: Any::bool(tls),
                        },
                        Capability {
                            name: "authentication.mechanisms".into(),
                            value: Any::array(vec![Any::string("PLAIN")]),
                        },
                        Capability {
                            name: "node_type".into(),
                            value: Any::string("mysql"),
                        },
                    ],
                })
            }
            ClientMessage::CapabilitiesSet(set) => {
                let wants_tls = set.capabilities.get("tls").and_then(Any::as_bool) == Some(true);
                if !tls && wants_tls && state.behavior != Behavior::NoTls {
                    send(&mut framed, ServerMessage::Ok(Ok { msg: None })).await?;
                    return Some(framed);
                }
                error(Severity::Error, 5001, "Capability prepare failed for 'tls'")
            }
            ClientMessage::Close(_) => {
                state.count(|s| s.closes += 1);
                send(
                    &mut framed,
                    ServerMessage::Ok(Ok {
                        msg: Some("bye!".into()),
                    }),
                )
                .await?;
                return None;
            }
            ClientMessage::AuthenticateStart(start) => {
                if tls
                    && start.mech_name == "PLAIN"
                    && start.auth_data.as_deref() == Some(state.plain.as_bytes())
                {
                    authenticated = true;
                    state.count(|s| s.auth_ok += 1);
                    // Real servers assign a client id with a local notice before the Ok.
                    send(
                        &mut framed,
                        notice(NoticeType::SessionStateChanged, vec![0x08, 0x0b]),
                    )
                    .await?;
                    ServerMessage::AuthenticateOk(AuthenticateOk { auth_data: None })
                } else {
                    state.count(|s| s.auth_failures += 1);
                    error(Severity::Error, 1045, "Access denied for user")
                }
            }
            ClientMessage::StmtExecute(stmt) if authenticated && stmt.namespace() == "mysqlx" => {
                match &stmt.stmt[..] {
                    b"enable_notices" => {
                        let names: Vec<String> = stmt
                            .args
                            .first()
                            .and_then(|a| a.get("notice"))
                            .and_then(Any::as_array)
                            .unwrap_or_default()
                            .iter()
                            .filter_map(|n| n.as_str().map(str::to_owned))
                            .collect();
                        if names.iter().any(|n| n.starts_with("group_replication/")) {
                            notices = Some(state.notices.subscribe());
                            state.count(|s| s.notice_sessions += 1);
                        }
                        ServerMessage::StmtExecuteOk(StmtExecuteOk {})
                    }
                    b"ping" => {
                        state.count(|s| s.pings += 1);
                        ServerMessage::StmtExecuteOk(StmtExecuteOk {})
                    }
                    _ => error(Severity::Error, 5157, "unknown mysqlx command"),
                }
            }
            _ if !authenticated => {
                send(
                    &mut framed,
                    error(Severity::Fatal, 5000, "not authenticated"),
                )
                .await?;
                return None;
            }
            _ => error(Severity::Error, 5000, "unsupported message"),
        };
        send(&mut framed, reply).await?;
    }
}
