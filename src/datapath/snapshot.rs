//! A consistent snapshot across N worker connections: take the lock the server supports, start a
//! consistent-snapshot transaction on every worker, record the replication position, release.

use std::time::{Duration, Instant};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;

use super::MysqlConfig;
use super::manifest::{Gtid, GtidFlavor};
use super::wire::{WireConn, WireError};

/// How commits are held still while the workers' snapshots start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockMethod {
    /// MariaDB 10.4+: `BACKUP STAGE START` + `BACKUP STAGE BLOCK_COMMIT`, then `BACKUP STAGE END`.
    BackupStage,
    /// MySQL 8: `LOCK INSTANCE FOR BACKUP` (held for the whole dump, so no DDL can change the
    /// schema under it) plus a brief `FLUSH TABLES WITH READ LOCK` to line the snapshots up.
    InstanceLock,
    /// Anything else: a brief `FLUSH TABLES WITH READ LOCK`.
    GlobalReadLock,
}

impl LockMethod {
    pub(crate) fn name(self) -> &'static str {
        match self {
            LockMethod::BackupStage => "backup-stage",
            LockMethod::InstanceLock => "lock-instance-for-backup",
            LockMethod::GlobalReadLock => "flush-tables-with-read-lock",
        }
    }

    fn acquire(self) -> &'static [&'static str] {
        match self {
            LockMethod::BackupStage => &["BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"],
            LockMethod::InstanceLock => {
                &["LOCK INSTANCE FOR BACKUP", "FLUSH TABLES WITH READ LOCK"]
            }
            LockMethod::GlobalReadLock => &["FLUSH TABLES WITH READ LOCK"],
        }
    }

    /// Statement that lets commits go on once every snapshot has started.
    fn release_commits(self) -> &'static str {
        match self {
            LockMethod::BackupStage => "BACKUP STAGE END",
            LockMethod::InstanceLock | LockMethod::GlobalReadLock => "UNLOCK TABLES",
        }
    }
}

/// Server error codes that mean "this server does not have that statement" or "not allowed".
const ER_PARSE_ERROR: u16 = 1064;
const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
const ER_NOT_SUPPORTED_YET: u16 = 1235;

/// The capability probe: which method to try after `tried` failed with server error `code`
/// (`None` when the failure is real and must be reported).
pub(crate) fn fallback(tried: LockMethod, code: u16) -> Option<LockMethod> {
    let unsupported = matches!(
        code,
        ER_PARSE_ERROR | ER_SPECIFIC_ACCESS_DENIED | ER_NOT_SUPPORTED_YET
    );
    match tried {
        LockMethod::BackupStage if unsupported => Some(LockMethod::InstanceLock),
        LockMethod::InstanceLock if unsupported => Some(LockMethod::GlobalReadLock),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot connect to MySQL for the snapshot: {0}")]
    Connect(#[source] mysql_async::Error),
    #[error("snapshot step `{step}` failed: {source}")]
    Step {
        step: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("snapshot step `{step}` on a dump connection failed: {source}")]
    Worker {
        step: String,
        #[source]
        source: WireError,
    },
    #[error(
        "the server reports neither gtid_executed nor gtid_binlog_pos; it is not MySQL 5.6+ or \
         MariaDB 10+ and cannot be backed up by this tool"
    )]
    NoGtidSupport,
}

fn step(step: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> SnapshotError {
    let step = step.into();
    move |source| SnapshotError::Step { step, source }
}

/// Session settings every dump connection uses: raw bytes, UTC timestamps, repeatable read.
const SESSION: &[&str] = &[
    "SET NAMES binary",
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "SET SESSION net_write_timeout = 600",
    "SET SESSION lock_wait_timeout = 60",
];

fn worker_step(step: impl Into<String>) -> impl FnOnce(WireError) -> SnapshotError {
    let step = step.into();
    move |source| SnapshotError::Worker { step, source }
}

/// Opens the coordinator connection (mysql_async: locks, schema, position), waiting up to `wait`
/// while the server cannot be reached.
async fn connect_coordinator(cfg: &MysqlConfig, wait: Duration) -> Result<Conn, SnapshotError> {
    let mut conn = super::connect_waiting(cfg, wait)
        .await
        .map_err(SnapshotError::Connect)?;
    for s in SESSION {
        conn.query_drop(*s).await.map_err(step(*s))?;
    }
    Ok(conn)
}

/// Opens a dump connection (the lean data-path client) with the dump session settings.
async fn connect_worker(cfg: &MysqlConfig) -> Result<WireConn, SnapshotError> {
    let mut conn = WireConn::connect(cfg)
        .await
        .map_err(worker_step("connect"))?;
    for s in SESSION {
        conn.execute(s).await.map_err(worker_step(*s))?;
    }
    Ok(conn)
}

/// Snapshot transactions on every worker, all seeing the same committed state.
pub(crate) struct Snapshot {
    /// Holds `LOCK INSTANCE FOR BACKUP` (MySQL 8) until [`Snapshot::finish`].
    pub(crate) coordinator: Conn,
    pub(crate) workers: Vec<WireConn>,
    pub(crate) method: LockMethod,
    pub(crate) gtid: Gtid,
    pub(crate) server_version: String,
}

/// Takes the snapshot, the first connection waiting up to `wait` while the server cannot be
/// reached; `while_locked` runs on the coordinator while commits are still held (the schema is
/// read there so it matches the data).
pub(crate) async fn take<T, E, F>(
    cfg: &MysqlConfig,
    wait: Duration,
    workers: usize,
    while_locked: F,
) -> Result<(Snapshot, T), E>
where
    E: From<SnapshotError>,
    F: AsyncFnOnce(&mut Conn) -> Result<T, E>,
{
    let mut coordinator = connect_coordinator(cfg, wait).await?;
    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers.max(1) {
        conns.push(connect_worker(cfg).await?);
    }
    let server_version: String = coordinator
        .query_first("SELECT VERSION()")
        .await
        .map_err(step("SELECT VERSION()"))?
        .unwrap_or_default();
    let flavor = gtid_flavor(&mut coordinator).await?;

    let start = Instant::now();
    let method = lock(&mut coordinator).await?;
    let locked = async {
        for w in conns.iter_mut() {
            const START: &str = "START TRANSACTION WITH CONSISTENT SNAPSHOT";
            w.execute(START)
                .await
                .map_err(worker_step(START))
                .map_err(E::from)?;
        }
        let gtid = position(&mut coordinator, flavor).await.map_err(E::from)?;
        let extra = while_locked(&mut coordinator).await?;
        Ok::<_, E>((gtid, extra))
    }
    .await;
    // Commits go on again whatever happened above.
    let released = coordinator
        .query_drop(method.release_commits())
        .await
        .map_err(step(method.release_commits()));
    let (gtid, extra) = locked?;
    released.map_err(E::from)?;
    tracing::info!(
        method = method.name(),
        held_ms = start.elapsed().as_millis() as u64,
        workers = conns.len(),
        gtid = %gtid.set,
        "consistent snapshot taken"
    );
    Ok((
        Snapshot {
            coordinator,
            workers: conns,
            method,
            gtid,
            server_version,
        },
        extra,
    ))
}

impl Snapshot {
    /// Ends the snapshot: releases the instance backup lock (if held) and closes connections.
    pub(crate) async fn finish(self) -> Result<(), SnapshotError> {
        let mut coordinator = self.coordinator;
        if self.method == LockMethod::InstanceLock {
            coordinator
                .query_drop("UNLOCK INSTANCE")
                .await
                .map_err(step("UNLOCK INSTANCE"))?;
        }
        for w in self.workers {
            w.close().await;
        }
        let _ = coordinator.disconnect().await;
        Ok(())
    }
}

async fn lock(conn: &mut Conn) -> Result<LockMethod, SnapshotError> {
    let mut method = LockMethod::BackupStage;
    loop {
        let mut failed = None;
        for s in method.acquire() {
            if let Err(e) = conn.query_drop(*s).await {
                failed = Some((s, e));
                break;
            }
        }
        let Some((s, e)) = failed else {
            return Ok(method);
        };
        let code = match &e {
            mysql_async::Error::Server(se) => Some(se.code),
            _ => None,
        };
        match code.and_then(|c| fallback(method, c)) {
            Some(next) => {
                tracing::debug!(
                    tried = method.name(),
                    code,
                    "lock method unsupported, trying next"
                );
                method = next;
            }
            None => return Err(step(*s)(e)),
        }
    }
}

async fn gtid_flavor(conn: &mut Conn) -> Result<GtidFlavor, SnapshotError> {
    let q = "SELECT VARIABLE_NAME FROM information_schema.GLOBAL_VARIABLES \
             WHERE VARIABLE_NAME IN ('GTID_BINLOG_POS', 'GTID_EXECUTED')";
    let names: Vec<String> = match conn.query(q).await {
        Ok(n) => n,
        // MySQL 8 keeps variables in performance_schema only.
        Err(_) => conn
            .query(
                "SELECT VARIABLE_NAME FROM performance_schema.global_variables \
                 WHERE VARIABLE_NAME IN ('gtid_binlog_pos', 'gtid_executed')",
            )
            .await
            .map_err(step("read GTID variables"))?,
    };
    let has = |n: &str| names.iter().any(|x| x.eq_ignore_ascii_case(n));
    if has("gtid_binlog_pos") {
        Ok(GtidFlavor::Mariadb)
    } else if has("gtid_executed") {
        Ok(GtidFlavor::Mysql)
    } else {
        Err(SnapshotError::NoGtidSupport)
    }
}

async fn position(conn: &mut Conn, flavor: GtidFlavor) -> Result<Gtid, SnapshotError> {
    let q = match flavor {
        GtidFlavor::Mariadb => "SELECT @@GLOBAL.gtid_binlog_pos",
        GtidFlavor::Mysql => "SELECT @@GLOBAL.gtid_executed",
    };
    let set: Option<String> = conn.query_first(q).await.map_err(step(q))?;
    // SHOW BINARY LOG STATUS is the 8.4 name; older servers know SHOW MASTER STATUS. Either may be
    // refused (binary log off, no privilege): the GTID set is what restore needs.
    let mut binlog = None;
    for q in ["SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"] {
        if let Ok(Some(row)) = conn.query_first::<mysql_async::Row, _>(q).await {
            let file: Option<String> = row.get(0);
            let pos: Option<u64> = row.get(1);
            binlog = file.zip(pos);
            break;
        }
    }
    Ok(Gtid {
        flavor,
        set: set.unwrap_or_default().replace('\n', ""),
        binlog_file: binlog.as_ref().map(|b| b.0.clone()),
        binlog_position: binlog.map(|b| b.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_by_capability_not_vendor() {
        use LockMethod::*;
        assert_eq!(fallback(BackupStage, ER_PARSE_ERROR), Some(InstanceLock));
        assert_eq!(
            fallback(InstanceLock, ER_SPECIFIC_ACCESS_DENIED),
            Some(GlobalReadLock)
        );
        assert_eq!(fallback(GlobalReadLock, ER_PARSE_ERROR), None);
        // a lock wait timeout is a real failure, not a missing feature
        assert_eq!(fallback(BackupStage, 1205), None);
    }
}
