//! Native logical backup and restore: a consistent, parallel, zstd-compressed dump streamed into
//! S3 with bounded memory (no local disk), and a parallel restore that checks every checksum.
//!
//! Layout of a backup under its prefix: `data/<db>/<table>/<n>.tsv.zst` (one object per
//! primary-key chunk, in the `LOAD DATA` text format) and `manifest.json`, written last.

pub mod chunk;
pub mod cli;
pub mod dump;
pub mod encode;
pub mod load;
pub(crate) mod load_order;
pub mod manifest;
pub mod s3;
pub mod schema;
pub mod snapshot;
pub(crate) mod sql;
pub(crate) mod tabledef;
pub mod tls;
pub mod wire;

pub use dump::{BackupConfig, BackupError, run};
pub use manifest::Manifest;
pub use tls::MysqlTls;

use std::time::{Duration, Instant};

use mysql_async::{Conn, Opts, OptsBuilder};

/// How to reach the MySQL server. The password comes from an env var or a file, never an arg.
#[derive(Clone)]
pub struct MysqlConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub tls: MysqlTls,
}

impl std::fmt::Debug for MysqlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}

impl MysqlConfig {
    pub fn opts(&self) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host.clone())
            .tcp_port(self.port)
            .user(Some(self.user.clone()))
            .pass(Some(self.password.clone()))
            .prefer_socket(false)
            .ssl_opts(self.tls.ssl_opts())
            .into()
    }
}

/// The prefix with exactly one trailing slash (empty stays empty: the bucket root).
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

/// Whether a connection failed because the server cannot be reached (yet), not because it
/// refused the login or its certificate is wrong: a TLS failure comes as an I/O error whose kind
/// is `InvalidData`.
fn unreachable(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Io(mysql_async::IoError::Io(io))
        if io.kind() != std::io::ErrorKind::InvalidData)
}

/// Connects, retrying every 2 s for up to `wait` while the server cannot be reached at all: a
/// member still initialising (a restore), or a new Job pod that a NetworkPolicy enforcer has
/// not admitted yet (on the real node a backup Job was refused 1.5 s after its start). A
/// refused login or a failed TLS handshake is reported at once.
pub(crate) async fn connect_waiting(
    cfg: &MysqlConfig,
    wait: Duration,
) -> Result<Conn, mysql_async::Error> {
    let deadline = Instant::now() + wait;
    loop {
        match Conn::new(cfg.opts()).await {
            Err(e) if unreachable(&e) && Instant::now() < deadline => {
                tracing::info!(error = %e, "the server cannot be reached yet; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_get_one_trailing_slash() {
        assert_eq!(normalize_prefix("/a/b//"), "a/b/");
        assert_eq!(normalize_prefix(""), "");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let c = MysqlConfig {
            host: "h".into(),
            port: 1,
            user: "u".into(),
            password: "s3cret".into(),
            tls: MysqlTls::Cleartext,
        };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
