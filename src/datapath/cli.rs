//! The `backup` and `restore` subcommands a Job runs. Secrets come from the environment or a
//! file, never from arguments. The result is one JSON line on stdout; any failure exits non-zero.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::load::{self, RestoreConfig};
use super::s3::{CaBundle, S3Config, S3Error};
use super::{MysqlConfig, MysqlTls, dump::BackupConfig};

#[derive(Args, Clone, Debug)]
pub(crate) struct S3Args {
    /// S3 endpoint URL (MinIO, Ceph, ...); AWS when omitted.
    #[arg(long, env = "S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    #[arg(long, env = "S3_BUCKET")]
    pub(crate) bucket: String,
    /// Key prefix of the backup (one backup per prefix).
    #[arg(long, env = "S3_PREFIX")]
    pub(crate) prefix: String,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub(crate) region: String,
    /// Path-style addressing (needed by most self-hosted S3 servers).
    #[arg(long, env = "S3_PATH_STYLE", default_value_t = false)]
    pub(crate) path_style: bool,
    /// Attempts per S3 request (retries with backoff on throttling, 5xx and connection errors).
    #[arg(long, default_value_t = 5)]
    pub(crate) s3_attempts: u32,
    /// PEM file of CA certificates (one or more) trusted for the S3 endpoint in addition to the
    /// system roots: an HTTPS endpoint behind a private CA.
    #[arg(long, env = "S3_CA_FILE")]
    pub(crate) s3_ca_file: Option<PathBuf>,
}

#[derive(Args, Clone, Debug)]
pub(crate) struct MysqlArgs {
    #[arg(long, env = "MYSQL_HOST", default_value = "127.0.0.1")]
    pub(crate) host: String,
    #[arg(long, env = "MYSQL_PORT", default_value_t = 3306)]
    pub(crate) port: u16,
    #[arg(long, env = "MYSQL_USER", default_value = "root")]
    pub(crate) user: String,
    /// Name of the environment variable that holds the password.
    #[arg(long, default_value = "MYSQL_PASSWORD")]
    pub(crate) password_env: String,
    /// File that holds the password (wins over --password-env).
    #[arg(long)]
    pub(crate) password_file: Option<PathBuf>,
    /// PEM file of the CA that signed the server's certificate (the cluster's CA): every
    /// connection uses TLS and verifies the certificate against it and its name.
    #[arg(long, env = "MYSQL_CA_FILE", conflicts_with = "mysql_cleartext")]
    pub(crate) mysql_ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry; the host when omitted.
    #[arg(long, env = "MYSQL_TLS_NAME")]
    pub(crate) mysql_tls_name: Option<String>,
    /// Connect without TLS: every row crosses the network readable. Only for a server without
    /// a certificate.
    #[arg(long, env = "MYSQL_CLEARTEXT", default_value_t = false)]
    pub(crate) mysql_cleartext: bool,
}

/// What both commands take: the bucket, the server, and how many connections work in parallel.
#[derive(Args, Clone, Debug)]
pub(crate) struct Endpoints {
    #[command(flatten)]
    pub(crate) s3: S3Args,
    #[command(flatten)]
    pub(crate) mysql: MysqlArgs,
    /// Parallel connections to the server (the dump's or the load's).
    #[arg(long, default_value_t = 4)]
    pub(crate) workers: usize,
    /// Keep trying this many seconds while the server cannot be reached (a member still
    /// initialising, a new pod a NetworkPolicy does not admit yet); a refused login fails at
    /// once.
    #[arg(long, default_value_t = 0)]
    pub(crate) wait_for_server_seconds: u64,
}

impl Endpoints {
    fn wait_for_server(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.wait_for_server_seconds)
    }
}

#[derive(Args, Clone, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub(crate) endpoints: Endpoints,
    /// Multipart part size in MiB (≥ 5); part buffers take (workers + parts in flight) × this.
    #[arg(long, default_value_t = 5)]
    pub(crate) part_size_mib: usize,
    /// Part uploads in flight across all workers while each fills its next part.
    #[arg(long, default_value_t = 2)]
    pub(crate) parts_in_flight: usize,
    /// Target uncompressed chunk size in MiB.
    #[arg(long, default_value_t = 64)]
    pub(crate) chunk_mib: u64,
    /// zstd level: 1 keeps compression off the critical path on small machines (about 2:1 on
    /// typical rows); higher levels trade CPU for a smaller backup.
    #[arg(long, default_value_t = 1)]
    pub(crate) zstd_level: i32,
    /// Databases to dump (repeatable); all but the system schemas when omitted.
    #[arg(long = "database")]
    pub(crate) databases: Vec<String>,
}

#[derive(Args, Clone, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub(crate) endpoints: Endpoints,
    /// Do not set the backup's GTID set on the target.
    #[arg(long)]
    pub(crate) skip_gtid: bool,
    /// Do not restore this account (a user name, every host; repeatable): the target's own
    /// service accounts keep their passwords.
    #[arg(long = "skip-account")]
    pub(crate) skip_accounts: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("environment variable {0} is not set; it must hold the {1}")]
    MissingEnv(String, &'static str),
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the MySQL CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no CA to verify the MySQL server with: set --mysql-ca-file (MYSQL_CA_FILE) to the \
         cluster's CA certificate, or pass --mysql-cleartext to send the rows unencrypted"
    )]
    NoMysqlCa,
}

fn env(name: &str, what: &'static str) -> Result<String, CliError> {
    std::env::var(name).map_err(|_| CliError::MissingEnv(name.to_string(), what))
}

impl S3Args {
    pub(crate) fn config(&self) -> Result<S3Config, CliError> {
        Ok(S3Config {
            endpoint: self.s3_endpoint.clone(),
            region: self.region.clone(),
            bucket: self.bucket.clone(),
            path_style: self.path_style,
            access_key_id: env("AWS_ACCESS_KEY_ID", "S3 access key id")?,
            secret_access_key: env("AWS_SECRET_ACCESS_KEY", "S3 secret access key")?,
            max_attempts: self.s3_attempts,
            ca: self.s3_ca_file.as_deref().map(CaBundle::read).transpose()?,
        })
    }
}

impl MysqlArgs {
    pub(crate) fn config(&self) -> Result<MysqlConfig, CliError> {
        let password = match &self.password_file {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|source| CliError::PasswordFile {
                    path: path.clone(),
                    source,
                })?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => env(&self.password_env, "MySQL password")?,
        };
        Ok(MysqlConfig {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            password,
            tls: self.tls()?,
        })
    }

    fn tls(&self) -> Result<MysqlTls, CliError> {
        match (&self.mysql_ca_file, self.mysql_cleartext) {
            (Some(path), _) => Ok(MysqlTls::Verify {
                ca_pem: std::fs::read_to_string(path).map_err(|source| CliError::CaFile {
                    path: path.clone(),
                    source,
                })?,
                server_name: self
                    .mysql_tls_name
                    .clone()
                    .unwrap_or_else(|| self.host.clone()),
            }),
            (None, true) => Ok(MysqlTls::Cleartext),
            (None, false) => Err(CliError::NoMysqlCa),
        }
    }
}

impl BackupArgs {
    pub fn config(&self) -> Result<BackupConfig, CliError> {
        Ok(BackupConfig {
            mysql: self.endpoints.mysql.config()?,
            s3: self.endpoints.s3.config()?,
            prefix: self.endpoints.s3.prefix.clone(),
            workers: self.endpoints.workers,
            part_size: self.part_size_mib << 20,
            parts_in_flight: self.parts_in_flight,
            chunk_bytes: self.chunk_mib << 20,
            zstd_level: self.zstd_level,
            databases: self.databases.clone(),
            wait_for_server: self.endpoints.wait_for_server(),
        })
    }
}

impl RestoreArgs {
    pub(crate) fn config(&self) -> Result<RestoreConfig, CliError> {
        Ok(RestoreConfig {
            mysql: self.endpoints.mysql.config()?,
            s3: self.endpoints.s3.config()?,
            prefix: self.endpoints.s3.prefix.clone(),
            workers: self.endpoints.workers,
            apply_gtid: !self.skip_gtid,
            skip_accounts: self.skip_accounts.clone(),
            wait_for_server: self.endpoints.wait_for_server(),
        })
    }
}

/// Also writes the result line to `$RESULT_FILE` when set: a Job sets it to its termination
/// message path, so the operator reads the result from the pod's status.
fn write_result_file(line: &str) {
    if let Ok(path) = std::env::var("RESULT_FILE")
        && let Err(e) = std::fs::write(&path, line)
    {
        tracing::warn!(%path, error = %e, "cannot write the result file");
    }
}

/// Prints `value` as one JSON line on stdout (or the failure as one JSON line) and maps the
/// outcome to the process exit code.
fn report<T: serde::Serialize, E: std::fmt::Display>(outcome: Result<T, E>) -> ExitCode {
    match outcome {
        Ok(v) => match serde_json::to_string(&v) {
            Ok(line) => {
                println!("{line}");
                write_result_file(&line);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot serialize the result: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "failed");
            let line = serde_json::json!({"status": "Failed", "error": e.to_string()}).to_string();
            println!("{line}");
            write_result_file(&line);
            ExitCode::FAILURE
        }
    }
}

/// Buffers of a MiB or more (a chunk's encode batch, the restore's reads) are allocated and
/// freed as chunks come and go. glibc raises its mmap threshold after the first such free and
/// then keeps freed buffers in the heap, so RSS creeps above the budget; a fixed threshold returns
/// them to the OS. (Part buffers, the bulk, are reused by the part budget instead.)
fn bound_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a glibc tuning parameter; it is called before the runtime
    // allocates any part buffer and has no memory-safety preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// `innodb-operator backup`.
pub async fn backup(args: BackupArgs) -> ExitCode {
    bound_allocator();
    let outcome = match args.config() {
        Ok(cfg) => super::run(cfg)
            .await
            .map(|m| m.summary())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    report(outcome)
}

/// `innodb-operator restore`.
pub async fn restore(args: RestoreArgs) -> ExitCode {
    bound_allocator();
    let outcome = match args.config() {
        Ok(cfg) => load::run(cfg).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    report(outcome)
}
