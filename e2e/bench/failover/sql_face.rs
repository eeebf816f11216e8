//! A fake member's MySQL classic protocol port (opensrv-mysql): answers from the shared
//! [`Group`]; refuses connections while the member is down.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opensrv_mysql::{
    AsyncMysqlIntermediary, AsyncMysqlShim, Column, ColumnFlags, ColumnType, ErrorKind, OkResponse,
    ParamParser, QueryResultWriter, StatementMetaWriter,
};
use std::time::Duration;
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

/// Serves member `me` on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, me: usize, group: Arc<Mutex<Group>>) -> JoinHandle<()> {
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
            let (r, w) = stream.into_split();
            tokio::spawn(async move {
                let _ = AsyncMysqlIntermediary::run_on(member, r, w).await;
            });
        }
    })
}
