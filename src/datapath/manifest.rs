//! The manifest: the last object a backup writes and the only proof that it is complete.
//! It lists every table and chunk with row counts, sizes and checksums, the schema, the GTID set
//! and the versions of the server and of this tool.

use serde::{Deserialize, Serialize};

use super::chunk::KeyRange;
use super::encode::Column;
use super::schema::Schema;

/// Object name of the manifest under the backup prefix.
pub const MANIFEST: &str = "manifest.json";
/// Version of this manifest layout; restore refuses others. Version 2: zstd content checksums in
/// every frame and an XXH3 of each chunk's rows, instead of two SHA-256 (raw rows, stored object),
/// which cost a sixth of a backup's CPU.
pub(crate) const FORMAT_VERSION: u32 = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub(crate) format_version: u32,
    pub(crate) tool_version: String,
    pub(crate) server_version: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
    /// How the snapshot was made consistent (see `snapshot::LockMethod`).
    pub lock_method: String,
    pub gtid: Gtid,
    pub schema: Schema,
    pub tables: Vec<TableEntry>,
}

/// The replication position the data is consistent with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gtid {
    pub(crate) flavor: GtidFlavor,
    /// `gtid_executed` (MySQL) or `gtid_binlog_pos` (MariaDB); empty when the server has none.
    pub set: String,
    pub(crate) binlog_file: Option<String>,
    pub(crate) binlog_position: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GtidFlavor {
    Mysql,
    Mariadb,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableEntry {
    pub database: String,
    pub name: String,
    /// Columns in chunk order (generated columns are not dumped).
    pub columns: Vec<Column>,
    /// The integer key the table was split on, if any.
    pub(crate) split_column: Option<String>,
    pub chunks: Vec<ChunkEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// Object key relative to the backup prefix.
    pub object: String,
    pub(crate) range: KeyRange,
    pub rows: u64,
    /// Size and XXH3-64 (hex) of the uncompressed rows. Each zstd frame also carries its content
    /// checksum, and S3 checked every part against its signed SHA-256 when it was uploaded.
    pub(crate) raw_bytes: u64,
    pub(crate) raw_xxh3: String,
    /// Size of the stored (zstd) object.
    pub object_bytes: u64,
}

/// How a chunk's XXH3-64 is written in the manifest.
pub(crate) fn xxh3_hex(hash: u64) -> String {
    format!("{hash:016x}")
}

/// The one-line result a backup or restore Job prints (the operator reads `status`,
/// `stored_bytes` and `gtid_set`): what the backup holds, with where and when it was taken (a
/// backup) or how long its load took (a restore).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub(crate) status: &'static str,
    pub(crate) tables: usize,
    pub(crate) chunks: usize,
    pub rows: u64,
    pub(crate) raw_bytes: u64,
    pub(crate) stored_bytes: u64,
    /// The backup's GTID set; after a restore, the target's GTID position.
    pub gtid_set: String,
    /// A backup's: the server and tool that wrote it, and when.
    #[serde(flatten)]
    pub(crate) origin: Option<Origin>,
    /// A restore's: how long it took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seconds: Option<f64>,
}

/// The server and tool that wrote a backup, and when.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Origin {
    pub(crate) server_version: String,
    pub(crate) tool_version: String,
    pub(crate) started_at: String,
    pub(crate) finished_at: String,
}

impl Manifest {
    pub fn chunks(&self) -> impl Iterator<Item = (&TableEntry, &ChunkEntry)> {
        self.tables
            .iter()
            .flat_map(|t| t.chunks.iter().map(move |c| (t, c)))
    }

    pub fn summary(&self) -> Summary {
        Summary {
            status: "Succeeded",
            tables: self.tables.len(),
            chunks: self.chunks().count(),
            rows: self.chunks().map(|(_, c)| c.rows).sum(),
            raw_bytes: self.chunks().map(|(_, c)| c.raw_bytes).sum(),
            stored_bytes: self.chunks().map(|(_, c)| c.object_bytes).sum(),
            gtid_set: self.gtid.set.clone(),
            origin: Some(Origin {
                server_version: self.server_version.clone(),
                tool_version: self.tool_version.clone(),
                started_at: self.started_at.clone(),
                finished_at: self.finished_at.clone(),
            }),
            seconds: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for this tool: {0}")]
    Parse(#[from] serde_json::Error),
    #[error(
        "manifest format version {found} is not supported (this tool reads version {FORMAT_VERSION}); \
         restore with the tool version that wrote it ({tool})"
    )]
    Version { found: u32, tool: String },
}

/// Parses and checks a manifest.
pub(crate) fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let m: Manifest = serde_json::from_slice(bytes)?;
    if m.format_version != FORMAT_VERSION {
        return Err(ManifestError::Version {
            found: m.format_version,
            tool: m.tool_version,
        });
    }
    Ok(m)
}

/// Object key of chunk `index` of `db.table` (relative to the prefix). Names are percent-escaped
/// so any identifier makes a valid, unambiguous key.
pub(crate) fn chunk_object(db: &str, table: &str, index: usize) -> String {
    format!("data/{}/{}/{index:06}.tsv.zst", escape(db), escape(table))
}

fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_keys_escape_identifiers() {
        assert_eq!(chunk_object("db", "t", 3), "data/db/t/000003.tsv.zst");
        assert_eq!(
            chunk_object("a/b", "x.y", 0),
            "data/a%2Fb/x%2Ey/000000.tsv.zst"
        );
    }

    #[test]
    fn unknown_versions_and_garbage_are_rejected() {
        assert!(matches!(parse(b"{"), Err(ManifestError::Parse(_))));
        let m = Manifest {
            format_version: 99,
            tool_version: "9.9".into(),
            server_version: String::new(),
            started_at: String::new(),
            finished_at: String::new(),
            lock_method: String::new(),
            gtid: Gtid {
                flavor: GtidFlavor::Mariadb,
                set: String::new(),
                binlog_file: None,
                binlog_position: None,
            },
            schema: Schema::default(),
            tables: vec![],
        };
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(matches!(
            parse(&bytes),
            Err(ManifestError::Version { found: 99, .. })
        ));
    }

    #[test]
    fn a_backup_summary_names_its_origin_and_a_restore_summary_its_time() {
        let summary = Summary {
            status: "Succeeded",
            tables: 1,
            chunks: 2,
            rows: 3,
            raw_bytes: 4,
            stored_bytes: 5,
            gtid_set: "u:1-3".into(),
            origin: Some(Origin {
                server_version: "9.7.4".into(),
                tool_version: "0.1.0".into(),
                started_at: "a".into(),
                finished_at: "b".into(),
            }),
            seconds: None,
        };
        let common = r#""status":"Succeeded","tables":1,"chunks":2,"rows":3,"raw_bytes":4,"stored_bytes":5,"gtid_set":"u:1-3""#;
        assert_eq!(
            serde_json::to_string(&summary).unwrap(),
            format!(
                r#"{{{common},"server_version":"9.7.4","tool_version":"0.1.0","started_at":"a","finished_at":"b"}}"#
            )
        );
        let restored = Summary {
            origin: None,
            seconds: Some(1.5),
            ..summary
        };
        assert_eq!(
            serde_json::to_string(&restored).unwrap(),
            format!(r#"{{{common},"seconds":1.5}}"#)
        );
    }
}
