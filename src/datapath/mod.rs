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

use mysql_async::{Opts, OptsBuilder};

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
