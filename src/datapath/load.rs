//! `load::run`: parallel load of a backup into an empty server. Every chunk streams from S3
//! through zstd into `LOAD DATA LOCAL INFILE` inside its own transaction; its object and row
//! checksums and row count are checked against the manifest before it commits. Plain secondary
//! indexes are created after their table's rows are in (one `ALTER TABLE` per table, built by
//! sorting), and loads are spread over tables so the server never makes two workers wait on one
//! table's lock (see [`load_order`](super::load_order)). Then views, routines, triggers, events and
//! accounts, and last the GTID set, so the restored server can start (or join) a group.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use super::encode;
use super::load_order::{Job, Next, Schedule, TablePlan};
use super::manifest::{
    self, ChunkEntry, Gtid, GtidFlavor, Manifest, ManifestError, Summary, TableEntry,
};
use super::s3::{Bucket, S3Config, S3Error};
use super::schema::Ddl;
use super::tabledef;
use super::{MysqlConfig, normalize_prefix, sql};
use verify::verified_rows;

mod verify;

#[derive(Clone, Debug)]
pub struct RestoreConfig {
    pub mysql: MysqlConfig,
    pub s3: S3Config,
    pub prefix: String,
    /// Parallel load connections.
    pub workers: usize,
    /// Set the backup's GTID set on the target (it must be a fresh server: its binary log is reset).
    pub apply_gtid: bool,
    /// Accounts (user names, any host) not restored: the target's own service accounts, whose
    /// passwords differ from the source's.
    pub skip_accounts: Vec<String>,
    /// How long to keep trying while the server refuses connections (a member that is still
    /// initialising); zero tries once.
    pub wait_for_server: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("invalid restore settings: {0}")]
    Config(String),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(
        "s3://{bucket}/{key} does not exist: there is no complete backup at this prefix \
         (a backup without its manifest was interrupted and cannot be restored)"
    )]
    NoManifest { bucket: String, key: String },
    #[error("{key}: {source}")]
    Manifest {
        key: String,
        #[source]
        source: ManifestError,
    },
    #[error("cannot connect to the restore target: {0}")]
    Connect(#[source] mysql_async::Error),
    #[error("restore step `{what}` failed: {source}")]
    Sql {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error(
        "the target already has database(s) {0:?}; restore only into an empty server \
         (drop them or use a fresh server)"
    )]
    NotEmpty(Vec<String>),
    #[error(
        "object {object} is corrupt: {detail}; the backup cannot be trusted, restore another one"
    )]
    Corrupt { object: String, detail: String },
    #[error("{object}: loaded {loaded} rows but the manifest says {expected}")]
    RowCount {
        object: String,
        expected: u64,
        loaded: u64,
    },
    #[error("loading {object} raised {count} warning(s), first: {first}")]
    Warnings {
        object: String,
        count: u16,
        first: String,
    },
    #[error(
        "the backup is of a {backup:?} server but the target is {}; {}",
        target.map_or("a server without GTIDs".to_string(), |t| format!("a {t:?} server")),
        if target.is_some() {
            "a backup restores into the same server family only (MariaDB and MySQL differ in \
             SQL modes, account plugins and GTIDs)"
        } else {
            "pass --skip-gtid to restore without the backup's GTID set"
        }
    )]
    Flavor {
        backup: GtidFlavor,
        target: Option<GtidFlavor>,
    },
    #[error("could not create view(s) {0:?}: their dependencies are missing from the backup")]
    Views(Vec<String>),
    #[error("a restore worker stopped unexpectedly: {0}")]
    Worker(String),
}

fn sql_err(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> RestoreError {
    let what = what.into();
    move |source| RestoreError::Sql { what, source }
}

/// Session settings of every restore connection: no binary logging (the GTID set is set
/// explicitly at the end), no foreign key checks (tables load in any order), UTC timestamps.
const SESSION: &[&str] = &[
    "SET NAMES utf8mb4",
    "SET SESSION sql_log_bin = 0",
    "SET SESSION foreign_key_checks = 0",
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
];
const SQL_MODE: &str = SESSION[4];

/// A restore session, waiting up to `wait` while the server cannot be reached.
async fn connect(cfg: &MysqlConfig, wait: Duration) -> Result<Conn, RestoreError> {
    let mut conn = super::connect_waiting(cfg, wait)
        .await
        .map_err(RestoreError::Connect)?;
    for s in SESSION {
        conn.query_drop(*s).await.map_err(sql_err(*s))?;
    }
    Ok(conn)
}

/// Reads and checks the manifest at `prefix`.
pub(crate) async fn read_manifest(bucket: &Bucket, prefix: &str) -> Result<Manifest, RestoreError> {
    let key = format!("{}{}", normalize_prefix(prefix), manifest::MANIFEST);
    if !bucket.exists(&key).await? {
        return Err(RestoreError::NoManifest {
            bucket: bucket.name().to_string(),
            key,
        });
    }
    let bytes = bucket.get_all(&key).await?;
    manifest::parse(&bytes).map_err(|source| RestoreError::Manifest { key, source })
}

/// Restores the backup at `cfg.prefix` into the (empty) server `cfg.mysql`; what it did is the
/// backup's summary with the target's GTID position and the time it took.
pub async fn run(cfg: RestoreConfig) -> Result<Summary, RestoreError> {
    if cfg.workers == 0 || cfg.workers > 64 {
        return Err(RestoreError::Config(format!(
            "workers must be 1..=64, got {}",
            cfg.workers
        )));
    }
    let start = Instant::now();
    let bucket = Bucket::open(&cfg.s3).await?;
    let prefix = normalize_prefix(&cfg.prefix);
    let m = Arc::new(read_manifest(&bucket, &prefix).await?);
    let mut conn = connect(&cfg.mysql, cfg.wait_for_server).await?;
    let target_flavor = gtid_flavor(&mut conn).await?;
    check_family(&m.gtid, target_flavor, cfg.apply_gtid)?;
    check_empty(&mut conn, &m).await?;
    let target = Target::of(&mut conn, target_flavor).await?;

    // LOAD DATA LOCAL needs the server's `local_infile`, which MySQL 8 turns off by default: it is
    // on for the restore only, and back off afterwards whether the restore worked or not.
    let turned_on = enable_local_infile(&mut conn).await?;
    let loaded = load(&cfg, target, &bucket, &prefix, m.clone(), &mut conn).await;
    if turned_on {
        let reset = conn
            .query_drop(LOCAL_INFILE_OFF)
            .await
            .map_err(sql_err(LOCAL_INFILE_OFF));
        if let (Ok(_), Err(e)) = (&loaded, reset) {
            return Err(e);
        }
    }
    let gtid_set = loaded?;
    let _ = conn.disconnect().await;
    Ok(Summary {
        gtid_set,
        origin: None,
        seconds: Some(start.elapsed().as_secs_f64()),
        ..m.summary()
    })
}

const LOCAL_INFILE_OFF: &str = "SET GLOBAL local_infile = OFF";

/// Turns the server's `local_infile` on when it is off; returns whether it did.
async fn enable_local_infile(conn: &mut Conn) -> Result<bool, RestoreError> {
    let on: Option<i64> = conn
        .query_first("SELECT @@GLOBAL.local_infile")
        .await
        .map_err(sql_err("read local_infile"))?;
    if on == Some(1) {
        return Ok(false);
    }
    conn.query_drop("SET GLOBAL local_infile = ON")
        .await
        .map_err(sql_err(
            "SET GLOBAL local_infile = ON (LOAD DATA LOCAL needs it; the restore account needs \
             SYSTEM_VARIABLES_ADMIN or SUPER)",
        ))?;
    Ok(true)
}

/// Creates the schema (plain secondary indexes deferred), loads the data, adds the deferred
/// indexes, then views, routines, triggers, events and accounts; returns the GTID set applied.
async fn load(
    cfg: &RestoreConfig,
    target: Target,
    bucket: &Bucket,
    prefix: &str,
    m: Arc<Manifest>,
    conn: &mut Conn,
) -> Result<String, RestoreError> {
    let mut deferred = BTreeMap::new();
    for db in &m.schema.databases {
        conn.query_drop(&db.create)
            .await
            .map_err(sql_err(format!("create database {}", db.name)))?;
        use_db(conn, &db.name).await?;
        for t in &db.tables {
            let d = tabledef::defer_indexes(&t.statement);
            let create = Ddl {
                statement: d.create,
                ..t.clone()
            };
            run_ddl(
                conn,
                &create,
                &format!("create table {}.{}", db.name, t.name),
            )
            .await?;
            let parallel = target.max_parallel(&t.statement, cfg.workers);
            deferred.insert(
                (db.name.as_str(), t.name.as_str()),
                (d.add_indexes, parallel),
            );
        }
    }
    let plans: Vec<(TablePlan, Vec<String>)> = m
        .tables
        .iter()
        .map(|t| {
            let (add_indexes, max_parallel) = deferred
                .remove(&(t.database.as_str(), t.name.as_str()))
                .unwrap_or((vec![], 1));
            let plan = TablePlan {
                chunk_bytes: t.chunks.iter().map(|c| c.raw_bytes).collect(),
                max_parallel,
                deferred_indexes: !add_indexes.is_empty(),
            };
            (plan, add_indexes)
        })
        .collect();

    load_all(cfg, target, bucket, prefix, m.clone(), plans).await?;

    create_views(conn, &m).await?;
    for db in &m.schema.databases {
        use_db(conn, &db.name).await?;
        for (kind, items) in [
            ("routine", &db.routines),
            ("trigger", &db.triggers),
            ("event", &db.events),
        ] {
            for d in items {
                run_ddl(conn, d, &format!("create {kind} {}.{}", db.name, d.name)).await?;
            }
        }
    }
    conn.query_drop(SQL_MODE).await.map_err(sql_err(SQL_MODE))?;
    restore_accounts(conn, &m, &cfg.skip_accounts).await?;

    Ok(if cfg.apply_gtid {
        apply_gtid(conn, &m).await?
    } else {
        String::new()
    })
}

async fn use_db(conn: &mut Conn, db: &str) -> Result<(), RestoreError> {
    conn.query_drop(format!("USE {}", sql::ident(db)))
        .await
        .map_err(sql_err(format!("use {db}")))
}

/// Runs a CREATE statement under its own sql_mode (restoring the session's afterwards).
async fn run_ddl(conn: &mut Conn, ddl: &Ddl, what: &str) -> Result<(), RestoreError> {
    if let Some(mode) = &ddl.sql_mode {
        conn.query_drop(format!("SET SESSION sql_mode = {}", sql::literal(mode)))
            .await
            .map_err(sql_err(format!("{what}: set sql_mode")))?;
    }
    let result = conn.query_drop(&ddl.statement).await.map_err(sql_err(what));
    if ddl.sql_mode.is_some() {
        conn.query_drop(SQL_MODE).await.map_err(sql_err(SQL_MODE))?;
    }
    result
}

/// Refuses a target of the other server family before anything is created (a MariaDB backup's
/// routines carry `NO_AUTO_CREATE_USER`, which MySQL 8+ refuses, and its accounts
/// `mysql_native_password`, which 9.x lacks), and a target without GTIDs when the backup's GTID
/// set is to be applied.
fn check_family(
    backup: &Gtid,
    target: Option<GtidFlavor>,
    apply_gtid: bool,
) -> Result<(), RestoreError> {
    let other_family = target.is_some_and(|t| t != backup.flavor);
    let no_gtids = target.is_none() && apply_gtid && !backup.set.is_empty();
    if other_family || no_gtids {
        return Err(RestoreError::Flavor {
            backup: backup.flavor,
            target,
        });
    }
    Ok(())
}

async fn gtid_flavor(conn: &mut Conn) -> Result<Option<GtidFlavor>, RestoreError> {
    let names: Vec<String> = conn
        .query(
            "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('gtid_binlog_state', 'gtid_executed')",
        )
        .await
        .map(|rows: Vec<(String, String)>| rows.into_iter().map(|r| r.0).collect())
        .map_err(sql_err("read GTID variables"))?;
    Ok(if names.iter().any(|n| n == "gtid_binlog_state") {
        Some(GtidFlavor::Mariadb)
    } else if names.iter().any(|n| n == "gtid_executed") {
        Some(GtidFlavor::Mysql)
    } else {
        None
    })
}

async fn check_empty(conn: &mut Conn, m: &Manifest) -> Result<(), RestoreError> {
    let existing: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        .await
        .map_err(sql_err("list databases"))?;
    let clash: Vec<String> = m
        .schema
        .databases
        .iter()
        .filter(|d| existing.contains(&d.name))
        .map(|d| d.name.clone())
        .collect();
    if clash.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::NotEmpty(clash))
    }
}

/// What the target server does with concurrent loads.
#[derive(Clone, Copy, Debug)]
struct Target {
    mysql: bool,
    /// `innodb_autoinc_lock_mode` below 2: `LOAD DATA` holds the table's AUTO-INC lock for the
    /// whole statement, so tables with an AUTO_INCREMENT column load one chunk at a time.
    autoinc_lock: bool,
}

impl Target {
    async fn of(conn: &mut Conn, flavor: Option<GtidFlavor>) -> Result<Target, RestoreError> {
        let mode: Option<Option<u8>> = conn
            .query_first("SELECT @@GLOBAL.innodb_autoinc_lock_mode")
            .await
            .map_err(sql_err("read innodb_autoinc_lock_mode"))?;
        Ok(Target {
            mysql: flavor == Some(GtidFlavor::Mysql),
            autoinc_lock: mode.flatten().is_none_or(|m| m < 2),
        })
    }

    fn max_parallel(self, create: &str, workers: usize) -> usize {
        if self.autoinc_lock && tabledef::has_auto_increment(create) {
            1
        } else {
            workers
        }
    }

    /// Extra settings of the load sessions. MySQL: no unique checks, so unique secondary indexes
    /// can use the change buffer (the backup came from a server that enforced them). MariaDB
    /// keeps them on: with both unique and foreign key checks off, a load into an empty table
    /// takes its bulk-insert path, which holds a table lock until commit and measured slower for
    /// `LOAD DATA` than the row path (MariaDB 10.11, 1M sysbench rows in 4 chunks: 9.0 against
    /// 7.0 server CPU seconds). All of a table's chunks in one bulk transaction is slower still:
    /// the bulk path sorts every index, the already ordered primary key too, through
    /// `innodb_sort_buffer_size` (read-only, 1 MiB by default) runs (1M rows in 3 chunks, plain
    /// index added afterwards: 12.8-13.6 s against 8.2-8.9 s for the row path; plain index built
    /// by the bulk path: 19.8 s).
    fn load_session(self) -> &'static [&'static str] {
        if self.mysql {
            &["SET SESSION unique_checks = 0"]
        } else {
            &[]
        }
    }
}

/// Runs the schedule with `cfg.workers` connections.
async fn load_all(
    cfg: &RestoreConfig,
    target: Target,
    bucket: &Bucket,
    prefix: &str,
    m: Arc<Manifest>,
    plans: Vec<(TablePlan, Vec<String>)>,
) -> Result<(), RestoreError> {
    let (plans, indexes): (Vec<TablePlan>, Vec<Vec<String>>) = plans.into_iter().unzip();
    let work = Arc::new(Work {
        schedule: Mutex::new(Schedule::new(&plans)),
        changed: Notify::new(),
        indexes,
    });
    let mut set = JoinSet::new();
    for _ in 0..cfg.workers {
        let mut conn = connect(&cfg.mysql, Duration::ZERO).await?;
        for s in target.load_session() {
            conn.query_drop(*s).await.map_err(sql_err(*s))?;
        }
        let (work, bucket, m) = (work.clone(), bucket.clone(), m.clone());
        let prefix = prefix.to_string();
        set.spawn(async move { load_worker(conn, &work, &bucket, &prefix, &m).await });
    }
    while let Some(joined) = set.join_next().await {
        let outcome = joined.map_err(|e| RestoreError::Worker(e.to_string()));
        if let Err(e) = outcome.and_then(|r| r) {
            set.abort_all();
            return Err(e);
        }
    }
    Ok(())
}

/// What the load workers share.
struct Work {
    schedule: Mutex<Schedule>,
    /// Woken whenever a job finishes (it may let a waiting worker start one).
    changed: Notify,
    /// Per table, the `ADD KEY` clauses of its deferred indexes.
    indexes: Vec<Vec<String>>,
}

impl Work {
    async fn next(&self) -> Result<Option<Job>, RestoreError> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let next = self
                .schedule
                .lock()
                .map_err(|e| RestoreError::Worker(e.to_string()))?
                .next_job();
            match next {
                Next::Run(job) => return Ok(Some(job)),
                Next::Done => return Ok(None),
                Next::Wait => changed.await,
            }
        }
    }

    fn finished(&self, job: Job) -> Result<(), RestoreError> {
        self.schedule
            .lock()
            .map_err(|e| RestoreError::Worker(e.to_string()))?
            .finished(job);
        self.changed.notify_waiters();
        Ok(())
    }
}

async fn load_worker(
    mut conn: Conn,
    work: &Work,
    bucket: &Bucket,
    prefix: &str,
    m: &Manifest,
) -> Result<(), RestoreError> {
    while let Some(job) = work.next().await? {
        match job {
            Job::Load { table, chunk } => {
                let t = &m.tables[table];
                load_chunk(&mut conn, bucket, prefix, t, &t.chunks[chunk]).await?;
            }
            Job::BuildIndexes { table } => {
                let t = &m.tables[table];
                build_indexes(&mut conn, t, &work.indexes[table]).await?;
            }
        }
        work.finished(job)?;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

/// Adds a table's deferred indexes in one statement (one pass over the rows for all of them).
async fn build_indexes(
    conn: &mut Conn,
    table: &TableEntry,
    add: &[String],
) -> Result<(), RestoreError> {
    let stmt = format!(
        "ALTER TABLE {} {}",
        sql::qualified(&table.database, &table.name),
        add.join(", ")
    );
    conn.query_drop(stmt).await.map_err(sql_err(format!(
        "add the secondary indexes of {}.{}",
        table.database, table.name
    )))
}

async fn load_chunk(
    conn: &mut Conn,
    bucket: &Bucket,
    prefix: &str,
    table: &TableEntry,
    chunk: &ChunkEntry,
) -> Result<(), RestoreError> {
    let key = format!("{prefix}{}", chunk.object);
    let body = bucket.get(&key).await?;
    let verdict = Arc::new(Mutex::new(None::<String>));
    let stream = verified_rows(body, chunk.clone(), verdict.clone());
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(sql_err("start transaction"))?;
    conn.set_infile_handler(async move { Ok(stream.boxed()) });
    let stmt = encode::load_statement(&chunk.object, &table.database, &table.name, &table.columns);
    let loaded = conn.query_drop(stmt).await;
    let corrupt = verdict.lock().ok().and_then(|mut v| v.take());
    let outcome = match (loaded, corrupt) {
        (_, Some(detail)) => Err(RestoreError::Corrupt {
            object: key.clone(),
            detail,
        }),
        (Err(e), None) => Err(sql_err(format!("load {key}"))(e)),
        (Ok(()), None) => check_load(conn, &key, chunk).await,
    };
    match outcome {
        Ok(()) => conn
            .query_drop("COMMIT")
            .await
            .map_err(sql_err(format!("commit {key}"))),
        Err(e) => {
            let _ = conn.query_drop("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Row count and warnings of the load just done.
async fn check_load(conn: &mut Conn, key: &str, chunk: &ChunkEntry) -> Result<(), RestoreError> {
    let (loaded, warnings) = (conn.affected_rows(), conn.get_warnings());
    if warnings > 0 {
        let first: Option<(String, u32, String)> = conn
            .query_first("SHOW WARNINGS LIMIT 1")
            .await
            .map_err(sql_err("show warnings"))?;
        return Err(RestoreError::Warnings {
            object: key.to_string(),
            count: warnings,
            first: first.map(|w| w.2).unwrap_or_default(),
        });
    }
    if loaded != chunk.rows {
        return Err(RestoreError::RowCount {
            object: key.to_string(),
            expected: chunk.rows,
            loaded,
        });
    }
    Ok(())
}

/// Creates the views, retrying those that depend on views not yet created.
async fn create_views(conn: &mut Conn, m: &Manifest) -> Result<(), RestoreError> {
    let mut pending: Vec<(&str, &Ddl)> = m
        .schema
        .databases
        .iter()
        .flat_map(|d| d.views.iter().map(move |v| (d.name.as_str(), v)))
        .collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut failed = Vec::new();
        for (db, v) in pending {
            use_db(conn, db).await?;
            if conn.query_drop(&v.statement).await.is_err() {
                failed.push((db, v));
            }
        }
        if failed.len() == before {
            return Err(RestoreError::Views(
                failed
                    .iter()
                    .map(|(d, v)| format!("{d}.{}", v.name))
                    .collect(),
            ));
        }
        pending = failed;
    }
    Ok(())
}

/// The accounts of the manifest to restore: all but the users in `skip`.
fn restorable<'a>(
    accounts: &'a [super::schema::Account],
    skip: &'a [String],
) -> impl Iterator<Item = &'a super::schema::Account> {
    accounts.iter().filter(move |a| {
        let skipped = skip.contains(&a.user);
        if skipped {
            tracing::info!(user = %a.user, host = %a.host, "account not restored: the target manages its own");
        }
        !skipped
    })
}

async fn restore_accounts(
    conn: &mut Conn,
    m: &Manifest,
    skip: &[String],
) -> Result<(), RestoreError> {
    for a in restorable(&m.schema.accounts, skip) {
        let exists: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?",
                (&a.user, &a.host),
            )
            .await
            .map_err(sql_err("look up account"))?;
        if exists.unwrap_or(0) > 0 {
            tracing::warn!(user = %a.user, host = %a.host, "account exists on the target; kept as is");
            continue;
        }
        let what = format!("create account {}@{}", a.user, a.host);
        conn.query_drop(&a.create).await.map_err(sql_err(&what))?;
        for g in &a.grants {
            conn.query_drop(g).await.map_err(sql_err(&what))?;
        }
    }
    Ok(())
}

/// Makes the target's GTID state the backup's, and returns it as read back from the server.
async fn apply_gtid(conn: &mut Conn, m: &Manifest) -> Result<String, RestoreError> {
    let set = sql::literal(&m.gtid.set);
    match m.gtid.flavor {
        GtidFlavor::Mariadb => {
            for s in [
                "RESET MASTER".to_string(),
                format!("SET GLOBAL gtid_binlog_state = {set}"),
                format!("SET GLOBAL gtid_slave_pos = {set}"),
            ] {
                conn.query_drop(&s).await.map_err(sql_err(&s))?;
            }
            let pos: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                .await
                .map_err(sql_err("read gtid_binlog_pos"))?;
            Ok(pos.unwrap_or_default())
        }
        GtidFlavor::Mysql => {
            // 8.4 renamed RESET MASTER; try the new name first.
            if conn
                .query_drop("RESET BINARY LOGS AND GTIDS")
                .await
                .is_err()
            {
                conn.query_drop("RESET MASTER")
                    .await
                    .map_err(sql_err("RESET MASTER"))?;
            }
            let s = format!("SET GLOBAL gtid_purged = {set}");
            conn.query_drop(&s).await.map_err(sql_err(&s))?;
            let pos: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_executed")
                .await
                .map_err(sql_err("read gtid_executed"))?;
            Ok(pos.unwrap_or_default().replace('\n', ""))
        }
    }
}

#[cfg(test)]
mod tests;
