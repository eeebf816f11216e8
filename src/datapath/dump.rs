//! `datapath::run`: snapshot, schema, chunk plan, parallel chunk dumps streamed to S3, manifest last.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use tokio::task::JoinSet;
use xxhash_rust::xxh3::Xxh3;

use super::chunk::{self, KeyRange};
use super::encode;
use super::manifest::{self, ChunkEntry, Manifest, TableEntry};
use super::s3::{self, Bucket, PartBudget, S3Config, S3Error};
use super::schema::{self, SchemaError, TableData};
use super::snapshot::{self, SnapshotError};
use super::wire::{WireConn, WireError};
use super::{MysqlConfig, normalize_prefix, sql};

/// Everything one backup needs.
#[derive(Clone, Debug)]
pub struct BackupConfig {
    pub mysql: MysqlConfig,
    pub s3: S3Config,
    /// Key prefix of this backup in the bucket (one backup per prefix).
    pub prefix: String,
    /// Parallel dump connections.
    pub workers: usize,
    /// Base multipart part size in bytes (≥ 5 MiB).
    pub part_size: usize,
    /// Part uploads in flight across all workers while every worker fills its next part.
    pub parts_in_flight: usize,
    /// Target uncompressed size of one chunk.
    pub chunk_bytes: u64,
    pub zstd_level: i32,
    /// Databases to dump; empty for all but the system ones.
    pub databases: Vec<String>,
    /// How long the first connection keeps trying while the server cannot be reached.
    pub wait_for_server: std::time::Duration,
}

impl BackupConfig {
    /// Part buffers shared by all workers: one filling per worker plus the uploads in flight.
    pub(crate) fn part_buffers(&self) -> usize {
        self.workers + self.parts_in_flight
    }

    /// Peak bytes held in part buffers.
    pub(crate) fn buffer_budget(&self) -> usize {
        self.part_buffers() * self.part_size
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("invalid backup settings: {0}")]
    Config(String),
    #[error(
        "s3://{bucket}/{key} already exists: a complete backup is at this prefix; \
         choose a new prefix for every backup"
    )]
    AlreadyExists { bucket: String, key: String },
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("dumping {table} failed: {source}")]
    Query {
        table: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("reading the rows of {table} failed: {source}")]
    Rows {
        table: String,
        #[source]
        source: WireError,
    },
    #[error("zstd compression of {table} failed: {source}")]
    Compress {
        table: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a dump worker stopped unexpectedly: {0}")]
    Worker(String),
}

/// Raw bytes encoded before they go through the compressor. Each batch becomes one zstd frame
/// with its content checksum (an object is a series of frames, which any zstd decoder reads as
/// one stream and verifies frame by frame): compressing a whole buffer at once skips the copy
/// into, and the wrap-around of, a streaming compressor's window, and at the fast levels
/// (window ≤ 1 MiB) costs almost no ratio.
const ENCODE_BATCH: usize = 1 << 20;

/// The compressor of chunk frames: each frame carries its content checksum.
pub(super) fn frame_compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    c.include_checksum(true)?;
    Ok(c)
}

/// Checks the settings before anything touches a server.
pub fn validate(cfg: &BackupConfig) -> Result<(), BackupError> {
    if cfg.workers == 0 || cfg.workers > 64 {
        return Err(BackupError::Config(format!(
            "workers must be 1..=64, got {}",
            cfg.workers
        )));
    }
    if cfg.part_size < s3::MIN_PART_SIZE || cfg.part_size > s3::MAX_PART_SIZE {
        return Err(BackupError::Config(format!(
            "part size must be between 5 MiB and 5 GiB (S3 limits), got {} bytes",
            cfg.part_size
        )));
    }
    if !(1..=64).contains(&cfg.parts_in_flight) {
        return Err(BackupError::Config(format!(
            "parts in flight must be 1..=64, got {}",
            cfg.parts_in_flight
        )));
    }
    if cfg.chunk_bytes < 1 << 20 {
        return Err(BackupError::Config(
            "chunk size must be at least 1 MiB".to_string(),
        ));
    }
    if !(1..=19).contains(&cfg.zstd_level) {
        return Err(BackupError::Config(format!(
            "zstd level must be 1..=19, got {}",
            cfg.zstd_level
        )));
    }
    if cfg.s3.bucket.is_empty() {
        return Err(BackupError::Config("bucket is empty".to_string()));
    }
    Ok(())
}

/// Runs one backup. On success the manifest is in the bucket and returned; on any failure no
/// manifest is written, open multipart uploads are aborted and the chunk objects already stored
/// are deleted (best effort: with S3 unreachable they stay, and still no manifest names them).
pub async fn run(cfg: BackupConfig) -> Result<Manifest, BackupError> {
    validate(&cfg)?;
    let bucket = Bucket::open(&cfg.s3).await?;
    let prefix = normalize_prefix(&cfg.prefix);
    let manifest_key = format!("{prefix}{}", manifest::MANIFEST);
    if bucket.exists(&manifest_key).await? {
        return Err(BackupError::AlreadyExists {
            bucket: bucket.name().to_string(),
            key: manifest_key,
        });
    }
    let written = Arc::new(Mutex::new(Vec::<String>::new()));
    match dump(&cfg, &bucket, &prefix, written.clone()).await {
        Ok(m) => Ok(m),
        Err(e) => {
            clean_up(&bucket, &prefix, &written).await;
            Err(e)
        }
    }
}

async fn clean_up(bucket: &Bucket, prefix: &str, written: &Mutex<Vec<String>>) {
    let ours: Vec<String> = written.lock().map(|w| w.clone()).unwrap_or_default();
    match bucket.open_uploads(&format!("{prefix}data/")).await {
        Ok(open) => {
            for (key, _) in open.iter().filter(|(k, _)| ours.contains(k)) {
                if let Err(e) = bucket.abort_uploads(key).await {
                    tracing::warn!(error = %e, "could not abort a multipart upload of the failed backup");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not list multipart uploads to abort"),
    }
    for key in &ours {
        if let Err(e) = bucket.delete_prefix(key).await {
            tracing::warn!(error = %e, "could not delete an object of the failed backup");
        }
    }
}

/// One unit of work: a key range of one table.
struct Job {
    table: usize,
    index: usize,
    range: KeyRange,
}

/// Long (110 lines) on purpose: the dump's steps in their order (lock, snapshot, workers,
/// manifest), each a call or a few lines.
async fn dump(
    cfg: &BackupConfig,
    bucket: &Bucket,
    prefix: &str,
    written: Arc<Mutex<Vec<String>>>,
) -> Result<Manifest, BackupError> {
    let started_at = jiff::Timestamp::now().to_string();
    let (mut snap, (schema, tables)) = snapshot::take(
        &cfg.mysql,
        cfg.wait_for_server,
        cfg.workers,
        async |conn: &mut Conn| {
            schema::read(conn, &cfg.databases)
                .await
                .map_err(BackupError::from)
        },
    )
    .await?;

    let mut jobs = VecDeque::new();
    let mut order: Vec<usize> = (0..tables.len()).collect();
    // Biggest tables first so the long chunks do not end up last.
    order.sort_by_key(|&i| std::cmp::Reverse(tables[i].est_rows * tables[i].avg_row_bytes.max(1)));
    let mut chunk_counts = vec![0usize; tables.len()];
    for i in order {
        let ranges = plan(&mut snap.coordinator, &tables[i], cfg.chunk_bytes).await?;
        chunk_counts[i] = ranges.len();
        for (index, range) in ranges.into_iter().enumerate() {
            written
                .lock()
                .map_err(|e| BackupError::Worker(e.to_string()))?
                .push(format!(
                    "{prefix}{}",
                    manifest::chunk_object(&tables[i].database, &tables[i].name, index)
                ));
            jobs.push_back(Job {
                table: i,
                index,
                range,
            });
        }
    }
    tracing::info!(
        tables = tables.len(),
        chunks = jobs.len(),
        buffer_budget_mib = cfg.buffer_budget() >> 20,
        "dump planned"
    );

    let tables = Arc::new(tables);
    let queue = Arc::new(Mutex::new(jobs));
    let out = Output {
        bucket: bucket.clone(),
        prefix: prefix.to_string(),
        parts: PartBudget::new(cfg.part_buffers()),
    };
    let mut set = JoinSet::new();
    for conn in std::mem::take(&mut snap.workers) {
        let (tables, queue, out, cfg) = (tables.clone(), queue.clone(), out.clone(), cfg.clone());
        set.spawn(async move { worker(conn, &tables, &queue, &out, &cfg).await });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        let outcome = joined.map_err(|e| BackupError::Worker(e.to_string()));
        match outcome.and_then(|r| r) {
            Ok((conn, done)) => {
                snap.workers.push(conn);
                results.extend(done);
            }
            Err(e) => {
                set.abort_all();
                return Err(e);
            }
        }
    }

    let mut entries: Vec<TableEntry> = tables
        .iter()
        .zip(&chunk_counts)
        .map(|(t, &n)| TableEntry {
            database: t.database.clone(),
            name: t.name.clone(),
            columns: t.columns.clone(),
            split_column: t.split_column.clone(),
            chunks: Vec::with_capacity(n),
        })
        .collect();
    results.sort_by_key(|(t, i, _)| (*t, *i));
    for (t, _, entry) in results {
        entries[t].chunks.push(entry);
    }
    let gtid = snap.gtid.clone();
    let server_version = snap.server_version.clone();
    let lock_method = snap.method.name().to_string();
    snap.finish().await?;

    let manifest = Manifest {
        format_version: manifest::FORMAT_VERSION,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        server_version,
        started_at,
        finished_at: jiff::Timestamp::now().to_string(),
        lock_method,
        gtid,
        schema,
        tables: entries,
    };
    let body = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| BackupError::Worker(format!("manifest serialization: {e}")))?;
    bucket
        .put(&format!("{prefix}{}", manifest::MANIFEST), body)
        .await?;
    Ok(manifest)
}

/// Chunk ranges of one table. The coordinator reads the key bounds outside the snapshot: the
/// first and last ranges are open, so rows beyond bounds that moved are still dumped.
async fn plan(
    conn: &mut Conn,
    table: &TableData,
    chunk_bytes: u64,
) -> Result<Vec<KeyRange>, BackupError> {
    let per_chunk = chunk::rows_per_chunk(table.avg_row_bytes, chunk_bytes);
    let Some(col) = &table.split_column else {
        return Ok(vec![KeyRange::ALL]);
    };
    if table.est_rows <= per_chunk {
        return Ok(vec![KeyRange::ALL]);
    }
    let c = sql::ident(col);
    let q = format!(
        "SELECT CAST(MIN({c}) AS CHAR), CAST(MAX({c}) AS CHAR) FROM {}",
        sql::qualified(&table.database, &table.name)
    );
    let bounds: Option<(Option<String>, Option<String>)> =
        conn.query_first(q)
            .await
            .map_err(|source| BackupError::Query {
                table: format!("{}.{}", table.database, table.name),
                source,
            })?;
    let parse = |s: Option<String>| s.and_then(|v| v.parse::<i128>().ok());
    Ok(match bounds {
        Some((lo, hi)) => match (parse(lo), parse(hi)) {
            (Some(lo), Some(hi)) => chunk::plan_ranges(lo, hi, table.est_rows, per_chunk),
            _ => vec![KeyRange::ALL],
        },
        None => vec![KeyRange::ALL],
    })
}

type Done = Vec<(usize, usize, ChunkEntry)>;

/// Where the workers' chunk objects go.
#[derive(Clone)]
struct Output {
    bucket: Bucket,
    prefix: String,
    /// Part buffers shared by all workers.
    parts: PartBudget,
}

async fn worker(
    mut conn: WireConn,
    tables: &[TableData],
    queue: &Mutex<VecDeque<Job>>,
    out: &Output,
    cfg: &BackupConfig,
) -> Result<(WireConn, Done), BackupError> {
    let mut done = Vec::new();
    loop {
        let job = queue
            .lock()
            .map_err(|e| BackupError::Worker(e.to_string()))?
            .pop_front();
        let Some(job) = job else {
            return Ok((conn, done));
        };
        let table = &tables[job.table];
        let entry = dump_chunk(&mut conn, table, &job, out, cfg).await?;
        done.push((job.table, job.index, entry));
    }
}

/// Long (87 lines) on purpose: one chunk's query, encode and upload loop, whose state is shared by
/// its steps.
async fn dump_chunk(
    conn: &mut WireConn,
    table: &TableData,
    job: &Job,
    out: &Output,
    cfg: &BackupConfig,
) -> Result<ChunkEntry, BackupError> {
    let name = format!("{}.{}", table.database, table.name);
    let object = manifest::chunk_object(&table.database, &table.name, job.index);
    let mut writer = out.bucket.writer(
        format!("{}{object}", out.prefix),
        cfg.part_size,
        out.parts.clone(),
    );
    let predicate = table
        .split_column
        .as_deref()
        .and_then(|c| job.range.predicate(c))
        .map(|p| format!(" WHERE {p}"))
        .unwrap_or_default();
    let query = format!(
        "SELECT {} FROM {}{predicate}",
        encode::select_list(&table.columns),
        sql::qualified(&table.database, &table.name)
    );
    let streamed = async {
        let rows_err = |source| BackupError::Rows {
            table: name.clone(),
            source,
        };
        let compress_err = |source| BackupError::Compress {
            table: name.clone(),
            source,
        };
        let mut result = conn.query(&query).await.map_err(rows_err)?;
        let mut compressor = frame_compressor(cfg.zstd_level).map_err(compress_err)?;
        let mut raw = Vec::with_capacity(ENCODE_BATCH + (64 << 10));
        let mut packed = Vec::new();
        let mut hash = Xxh3::new();
        let (mut rows, mut raw_bytes, mut frames) = (0u64, 0u64, 0u64);
        loop {
            let more = match result.next().await.map_err(rows_err)? {
                Some(row) => {
                    encode::push_row(&mut raw, &row).map_err(rows_err)?;
                    rows += 1;
                    true
                }
                None => false,
            };
            // An empty chunk still gets one (empty) frame: a restore needs a complete frame.
            if raw.len() >= ENCODE_BATCH || (!more && (!raw.is_empty() || frames == 0)) {
                hash.update(&raw);
                raw_bytes += raw.len() as u64;
                packed.clear();
                packed.reserve(zstd::zstd_safe::compress_bound(raw.len()));
                compressor
                    .compress_to_buffer(&raw, &mut packed)
                    .map_err(compress_err)?;
                frames += 1;
                writer.write(&packed).await?;
                raw.clear();
            }
            if !more {
                break;
            }
        }
        Ok::<_, BackupError>((rows, raw_bytes, manifest::xxh3_hex(hash.digest())))
    }
    .await;
    let (rows, raw_bytes, raw_xxh3) = match streamed {
        Ok(v) => v,
        Err(e) => {
            writer.abort().await;
            return Err(e);
        }
    };
    let stored = writer.finish().await?;
    tracing::debug!(table = %name, chunk = job.index, rows, raw_bytes, stored = stored.bytes, "chunk stored");
    Ok(ChunkEntry {
        object,
        range: job.range.clone(),
        rows,
        raw_bytes,
        raw_xxh3,
        object_bytes: stored.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BackupConfig {
        BackupConfig {
            mysql: MysqlConfig {
                host: "h".into(),
                port: 3306,
                user: "u".into(),
                password: "p".into(),
                tls: crate::datapath::MysqlTls::Cleartext,
            },
            s3: S3Config {
                endpoint: None,
                region: "us-east-1".into(),
                bucket: "b".into(),
                path_style: true,
                access_key_id: "a".into(),
                secret_access_key: "s".into(),
                max_attempts: 3,
                ca: None,
            },
            prefix: "x".into(),
            workers: 4,
            part_size: 5 << 20,
            parts_in_flight: 1,
            chunk_bytes: 64 << 20,
            zstd_level: 3,
            databases: vec![],
            wait_for_server: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn settings_outside_s3_limits_are_refused() {
        assert!(validate(&cfg()).is_ok());
        let small = BackupConfig {
            part_size: 1 << 20,
            ..cfg()
        };
        assert!(matches!(validate(&small), Err(BackupError::Config(m)) if m.contains("5 MiB")));
        let none = BackupConfig {
            workers: 0,
            ..cfg()
        };
        assert!(validate(&none).is_err());
    }

    #[test]
    fn buffer_budget_is_independent_of_data_size() {
        // one part filling per worker plus the uploads in flight, shared by all workers
        assert_eq!(cfg().buffer_budget(), (4 + 1) * (5 << 20));
        let bad = BackupConfig {
            parts_in_flight: 0,
            ..cfg()
        };
        assert!(validate(&bad).is_err());
    }
}
