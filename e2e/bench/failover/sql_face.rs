//! A fake member's MySQL classic protocol port (opensrv-mysql): answers from the shared
//! [`Group`] over TLS with the member's certificate (a client that does not ask for TLS is
//! dropped: the operator's sessions always do); refuses connections while the member is down.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opensrv_mysql::{
    AsyncMysqlIntermediary, AsyncMysqlShim, Column, ColumnFlags, ColumnType, ErrorKind,
    IntermediaryOptions, OkResponse, ParamParser, QueryResultWriter, StatementMetaWriter,
    secure_run_with_options,
};
pub use opensrv_tls::rustls::ServerConfig;
use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::group::{Answer, Group, Status, VERSION};

struct Member {
    me: usize,
    group: Arc<Mutex<Group>>,
}

impl Member {
    fn status(&self) -> Status {
        self.group.lock().unwrap().members[self.me].status
    }
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin> AsyncMysqlShim<W> for Member {
    type Error = io::Error;

    fn version(&self) -> String {
        format!("{VERSION}-bench")
    }

    async fn on_prepare<'a>(
        &'a mut self,
        query: &'a str,
        info: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        self.group
            .lock()
            .unwrap()
            .unexpected
            .push(format!("prepare: {query}"));
        info.error(
            ErrorKind::ER_UNKNOWN_COM_ERROR,
            b"no prepared statements here",
        )
        .await
    }

    async fn on_execute<'a>(
        &'a mut self,
        _: u32,
        _: ParamParser<'a>,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        results
            .error(
                ErrorKind::ER_UNKNOWN_COM_ERROR,
                b"no prepared statements here",
            )
            .await
    }

    async fn on_close(&mut self, _: u32) {}

    async fn on_query<'a>(
        &'a mut self,
        query: &'a str,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        // Cut off mid-session: nothing more reaches the client until the partition heals.
        while self.status() == Status::Partitioned {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A switchover held: in flight until the group is let go on, then carried out or lost.
        let held = self.group.lock().unwrap().receive(query);
        while held && self.group.lock().unwrap().hold_switchovers {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if held && self.group.lock().unwrap().lose_held {
            return Ok(());
        }
        let answer = self.group.lock().unwrap().answer(self.me, query);
        match answer {
            Answer::Ok => results.completed(OkResponse::default()).await,
            Answer::Error(message) => {
                results
                    .error(ErrorKind::ER_PARSE_ERROR, message.as_bytes())
                    .await
            }
            Answer::Rows { columns, rows } => {
                let columns: Vec<Column> = columns
                    .into_iter()
                    .map(|column| Column {
                        table: String::new(),
                        column,
                        coltype: ColumnType::MYSQL_TYPE_VAR_STRING,
                        colflags: ColumnFlags::empty(),
                    })
                    .collect();
                let mut writer = results.start(&columns).await?;
                for row in rows {
                    for value in row {
                        writer.write_col(value)?;
                    }
                    writer.end_row().await?;
                }
                writer.finish().await
            }
        }
    }
}

/// Keeps a connection open without a byte of answer while `me` is cut off.
async fn hold(stream: TcpStream, member: Member) {
    while member.status() == Status::Partitioned {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stream);
}

/// The server configuration of opensrv-mysql's TLS (its own rustls) for the certificate chain
/// and key in PEM.
pub fn tls_config(cert_pem: &str, key_pem: &str) -> Arc<ServerConfig> {
    let (chain, key) = crate::xserver::server_identity(cert_pem, key_pem);
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("a server certificate that matches its key");
    Arc::new(config)
}

/// Runs one session: the handshake, the TLS upgrade the client asks for, then its statements.
async fn session(mut member: Member, stream: TcpStream, tls: Arc<ServerConfig>) -> io::Result<()> {
    let (r, mut w) = stream.into_split();
    let (secure, init) =
        AsyncMysqlIntermediary::init_before_ssl(&mut member, r, &mut w, &Some(tls.clone())).await?;
    if !secure {
        return Ok(());
    }
    secure_run_with_options(member, w, IntermediaryOptions::default(), tls, init).await
}

/// Serves member `me` on `addr` with `tls` until the task is aborted.
pub async fn serve(
    addr: SocketAddr,
    me: usize,
    group: Arc<Mutex<Group>>,
    tls: Arc<ServerConfig>,
) -> JoinHandle<()> {
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| panic!("bind the fake member's SQL port {addr}: {e}"));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let member = Member {
                me,
                group: group.clone(),
            };
            match member.status() {
                Status::Online => {}
                Status::Down => continue, // dropped: the client sees the connection close at once
                Status::Partitioned => {
                    tokio::spawn(hold(stream, member));
                    continue;
                }
            }
            stream.set_nodelay(true).ok();
            tokio::spawn(session(member, stream, tls.clone()));
        }
    })
}
