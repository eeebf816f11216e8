//! Data-path tests: real MariaDB and MySQL 9.7 servers and a real S3 server (MinIO). Backup →
//! restore into a fresh server → every row equal; and the fault matrix, where no failure may end
//! as a success. Tests where the server matters run once per [`Flavor`] (`<test>::mariadb`,
//! `<test>::mysql97`); those about S3 run on MariaDB.

mod fixtures;
mod harness;
// Shared with the real-node tier, which starts MinIO on the node's address.
#[allow(dead_code)]
#[path = "../support/minio.rs"]
mod minio;
mod proxy;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use harness::{Flavor, Server, TLS_NAME};
use innodb_operator::credentials::Credentials;
use innodb_operator::datapath::load::{self, RestoreConfig, RestoreError};
use innodb_operator::datapath::manifest::MANIFEST;
use innodb_operator::datapath::s3::S3Config;
use innodb_operator::datapath::wire::WireConn;
use innodb_operator::datapath::wire::WireError;
use innodb_operator::datapath::{self, BackupConfig, BackupError, Manifest, MysqlConfig, MysqlTls};
use innodb_operator::objects::accounts::Account;
use innodb_operator::topology::gtid::GtidSet;
use innodb_operator::topology::sql::{Accounts, Capabilities, account_statements};
use innodb_operator::version::ServerVersion;
use minio::Minio;
use mysql_async::prelude::Queryable;

fn backup_config(db: &Server, s3: S3Config, prefix: &str) -> BackupConfig {
    BackupConfig {
        mysql: db.config(),
        s3,
        prefix: prefix.into(),
        workers: 4,
        part_size: 5 << 20,
        parts_in_flight: 1,
        chunk_bytes: 16 << 20,
        zstd_level: 3,
        databases: vec![],
        wait_for_server: std::time::Duration::ZERO,
    }
}

fn restore_config(db: &Server, s3: S3Config, prefix: &str) -> RestoreConfig {
    RestoreConfig {
        mysql: db.config(),
        s3,
        prefix: prefix.into(),
        workers: 4,
        apply_gtid: true,
        skip_accounts: vec![],
        wait_for_server: std::time::Duration::ZERO,
    }
}

/// A source and a target server (server ids `id` and `id + 1`) and an S3 server with `bucket`,
/// started side by side.
async fn source_target_s3(
    source: Flavor,
    target: Flavor,
    id: u32,
    bucket: &str,
) -> (Server, Server, Minio) {
    let (src, dst, s3) = tokio::join!(
        Server::start(source, id),
        Server::start(target, id + 1),
        Minio::start()
    );
    s3.create_bucket(bucket).await;
    (src, dst, s3)
}

async fn has_manifest(s3: &Minio, bucket: &str, prefix: &str) -> bool {
    s3.client()
        .head_object()
        .bucket(bucket)
        .key(format!("{prefix}/{MANIFEST}"))
        .send()
        .await
        .is_ok()
}

async fn open_uploads(s3: &Minio, bucket: &str) -> usize {
    let out = s3
        .client()
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .expect("list uploads");
    out.uploads().len()
}

/// Waits (bounded) until the backup has an open multipart upload, i.e. is mid-upload.
async fn wait_mid_upload(s3: &Minio, bucket: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while open_uploads(s3, bucket).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the backup never started a multipart upload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs each named `async fn(Flavor)` once per server: `<name>::mariadb` and `<name>::mysql97`.
macro_rules! on_every_flavor {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mariadb() {
                super::$name(super::Flavor::Mariadb).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql97() {
                super::$name(super::Flavor::Mysql97).await
            }
        }
    )*};
}

on_every_flavor!(
    round_trip_every_type_millions_of_rows_and_no_primary_key,
    database_killed_mid_dump_fails_and_aborts_uploads,
    a_wrong_database_password_fails_without_showing_it,
    a_restore_job_turns_local_infile_on_only_while_loading_and_skips_service_accounts,
    the_dump_connection_logs_in_cold_and_warm,
    another_ca_or_another_name_fails_the_backup_and_the_restore_at_once,
);

async fn round_trip_every_type_millions_of_rows_and_no_primary_key(flavor: Flavor) {
    let (src, dst, s3) = source_target_s3(flavor, flavor, 1, "roundtrip").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, &fixtures::every_type()).await;
    fixtures::load(&mut c, &fixtures::big_table(21)).await; // 2,097,152 rows
    let gtid_before = src.gtid_executed(&mut c).await;
    assert!(!gtid_before.is_empty(), "source should have GTIDs");

    let m: Manifest = datapath::run(backup_config(&src, s3.config("roundtrip"), "rt/1"))
        .await
        .expect("backup");
    assert!(has_manifest(&s3, "roundtrip", "rt/1").await);
    assert_eq!(m.gtid.set, gtid_before, "manifest GTID set is the source's");
    assert_eq!(m.lock_method, flavor.lock_method());
    let big = m.tables.iter().find(|t| t.name == "sbtest").unwrap();
    assert!(
        big.chunks.len() > 1,
        "big table was split: {}",
        big.chunks.len()
    );
    assert_eq!(big.chunks.iter().map(|c| c.rows).sum::<u64>(), 1 << 21);
    let nopk = m.tables.iter().find(|t| t.name == "nopk").unwrap();
    assert_eq!(nopk.chunks.len(), 1);
    assert_eq!(open_uploads(&s3, "roundtrip").await, 0);
    let every = m.tables.iter().find(|t| t.name == "every").unwrap();
    assert!(
        every
            .columns
            .iter()
            .all(|c| c.name != "gv" && c.name != "gs"),
        "generated columns skipped"
    );
    assert!(
        every.columns.iter().any(|c| c.name == "hid"),
        "invisible column kept"
    );

    let report = load::run(restore_config(&dst, s3.config("roundtrip"), "rt/1"))
        .await
        .expect("restore");
    assert_eq!(report.rows, m.summary().rows);
    assert_eq!(
        report.gtid_set, gtid_before,
        "restored server carries the GTID set"
    );

    let mut d = dst.conn().await;
    let (want, got) = tokio::join!(
        fixtures::table_digests(&mut c, &["types", "big"]),
        fixtures::table_digests(&mut d, &["types", "big"])
    );
    assert_eq!(got, want, "every row of every table equal");
    assert_eq!(
        fixtures::table_definitions(&mut d, &["types", "big"]).await,
        fixtures::table_definitions(&mut c, &["types", "big"]).await,
        "every table definition equal (deferred indexes rebuilt)"
    );
    // generated columns are recomputed, the schema objects and accounts exist
    let gs: Option<String> = d
        .query_first("SELECT gs FROM types.every WHERE id = 1")
        .await
        .unwrap();
    assert!(gs.unwrap().ends_with('!'));
    let n: Option<u64> = d.query_first("SELECT n FROM types.v_v").await.unwrap();
    assert!(n.unwrap() > 0);
    let t: Option<i64> = d.query_first("SELECT types.twice(21)").await.unwrap();
    assert_eq!(t, Some(42));
    d.query_drop("INSERT INTO types.parent VALUES (3, 'p3')")
        .await
        .unwrap();
    let audit: Option<String> = d
        .query_first("SELECT note FROM types.audit ORDER BY id DESC LIMIT 1")
        .await
        .unwrap();
    assert_eq!(audit.as_deref(), Some("parent 3"), "trigger restored");
    let ev: Option<u64> = d
        .query_first("SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_NAME = 'nightly'")
        .await
        .unwrap();
    assert_eq!(ev, Some(1));
    let grants: Vec<String> = d.query("SHOW GRANTS FOR 'app'@'%'").await.unwrap();
    assert!(
        grants
            .iter()
            .any(|g| g.contains("SELECT, INSERT ON `types`.*")),
        "{grants:?}"
    );
    // The account logs in with its password: only its hash travelled (caching_sha2 on 9.7).
    let mut app = dst.conn_as("app", "app-password").await;
    let who: Option<String> = app.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(who.as_deref(), Some("app@%"));

    // a second backup to the same prefix is refused, the first stays intact
    let again = datapath::run(backup_config(&src, s3.config("roundtrip"), "rt/1")).await;
    assert!(
        matches!(again, Err(BackupError::AlreadyExists { .. })),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_stopped_mid_upload_fails_and_leaves_no_manifest() {
    let (src, mut s3) = tokio::join!(Server::start(Flavor::Mariadb, 11), Minio::start());
    s3.create_bucket("bkt").await;
    fixtures::load(&mut src.conn().await, &fixtures::incompressible(120_000)).await;
    let mut cfg = backup_config(&src, s3.config("bkt"), "stop/1");
    cfg.chunk_bytes = 256 << 20;
    cfg.workers = 1;
    let run = tokio::spawn(datapath::run(cfg));
    wait_mid_upload(&s3, "bkt").await;
    s3.stop();
    let err = run
        .await
        .unwrap()
        .expect_err("backup must fail when S3 goes away");
    assert!(matches!(err, BackupError::S3(_)), "{err}");
    s3.restart().await;
    assert!(
        !has_manifest(&s3, "bkt", "stop/1").await,
        "no manifest after a failed backup"
    );
    let dst = Server::start(Flavor::Mariadb, 12).await;
    let r = load::run(restore_config(&dst, s3.config("bkt"), "stop/1")).await;
    assert!(matches!(r, Err(RestoreError::NoManifest { .. })), "{r:?}");
}

async fn database_killed_mid_dump_fails_and_aborts_uploads(flavor: Flavor) {
    let (mut src, s3) = tokio::join!(Server::start(flavor, 21), Minio::start());
    s3.create_bucket("bkt").await;
    fixtures::load(&mut src.conn().await, &fixtures::incompressible(120_000)).await;
    let mut cfg = backup_config(&src, s3.config("bkt"), "kill/1");
    cfg.chunk_bytes = 256 << 20;
    cfg.workers = 1;
    let run = tokio::spawn(datapath::run(cfg));
    wait_mid_upload(&s3, "bkt").await;
    src.kill();
    let err = run
        .await
        .unwrap()
        .expect_err("backup must fail when the server dies");
    assert!(matches!(err, BackupError::Rows { .. }), "{err}");
    assert!(!has_manifest(&s3, "bkt", "kill/1").await);
    assert_eq!(
        open_uploads(&s3, "bkt").await,
        0,
        "multipart uploads aborted"
    );
    let left = s3
        .client()
        .list_objects_v2()
        .bucket("bkt")
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0), "partial objects deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_s3_credentials_and_missing_bucket_fail_clearly() {
    let (src, s3) = tokio::join!(Server::start(Flavor::Mariadb, 31), Minio::start());
    s3.create_bucket("bkt").await;
    let mut bad = s3.config("bkt");
    bad.secret_access_key = "not-the-secret".into();
    let err = datapath::run(backup_config(&src, bad, "creds/1"))
        .await
        .expect_err("bad creds");
    assert!(err.to_string().contains("denied (HTTP 403)"), "{err}");
    assert!(
        !err.to_string().contains("not-the-secret"),
        "secret leaked: {err}"
    );

    let err = datapath::run(backup_config(&src, s3.config("no-such-bucket"), "x"))
        .await
        .expect_err("missing bucket");
    assert!(
        err.to_string()
            .contains("bucket no-such-bucket does not exist"),
        "{err}"
    );
    assert!(!has_manifest(&s3, "bkt", "creds/1").await);
}

async fn a_wrong_database_password_fails_without_showing_it(flavor: Flavor) {
    let (src, s3) = tokio::join!(Server::start(flavor, 31), Minio::start());
    s3.create_bucket("bkt").await;
    let mut wrong_db = backup_config(&src, s3.config("bkt"), "creds/2");
    wrong_db.mysql.password = "wrong-db-password".into();
    let err = datapath::run(wrong_db).await.expect_err("bad db password");
    assert!(matches!(err, BackupError::Snapshot(_)), "{err}");
    assert!(
        !err.to_string().contains("wrong-db-password"),
        "password leaked: {err}"
    );
    assert!(!has_manifest(&s3, "bkt", "creds/2").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_part_that_fails_once_is_retried() {
    let (src, dst, s3) = source_target_s3(Flavor::Mariadb, Flavor::Mariadb, 41, "bkt").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, &fixtures::incompressible(30_000)).await;
    let proxy = proxy::FaultProxy::start(s3.port, 1).await;
    let mut s3cfg = s3.config("bkt");
    s3cfg.endpoint = Some(proxy.endpoint());
    let mut cfg = backup_config(&src, s3cfg.clone(), "retry/1");
    cfg.chunk_bytes = 256 << 20;
    let m = datapath::run(cfg)
        .await
        .expect("a single failed part is retried");
    assert_eq!(proxy.failed.load(Ordering::SeqCst), 1, "the fault fired");
    assert!(
        m.chunks().any(|(_, c)| c.object_bytes > 5 << 20),
        "object was multipart"
    );
    load::run(restore_config(&dst, s3cfg, "retry/1"))
        .await
        .expect("restore");
    let want = fixtures::table_digests(&mut c, &["blobs"]).await;
    let got = fixtures::table_digests(&mut dst.conn().await, &["blobs"]).await;
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupted_object_is_detected_at_restore() {
    let (src, dst, s3) = source_target_s3(Flavor::Mariadb, Flavor::Mariadb, 51, "bkt").await;
    fixtures::load(&mut src.conn().await, &fixtures::every_type()).await;
    let m = datapath::run(backup_config(&src, s3.config("bkt"), "corrupt/1"))
        .await
        .expect("backup");
    let (table, chunk) = m.chunks().find(|(t, _)| t.name == "every").unwrap();
    let key = format!("corrupt/1/{}", chunk.object);
    let client = s3.client();
    let mut bytes = client
        .get_object()
        .bucket("bkt")
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    client
        .put_object()
        .bucket("bkt")
        .key(&key)
        .body(bytes.into())
        .send()
        .await
        .unwrap();

    let err = load::run(restore_config(&dst, s3.config("bkt"), "corrupt/1"))
        .await
        .expect_err("corruption must be detected");
    assert!(matches!(err, RestoreError::Corrupt { .. }), "{err}");
    let rows: Option<u64> = dst
        .conn()
        .await
        .query_first(format!(
            "SELECT COUNT(*) FROM `{}`.`{}`",
            table.database, table.name
        ))
        .await
        .unwrap();
    assert_eq!(
        rows,
        Some(0),
        "the corrupt chunk was rolled back, not half-loaded"
    );
}

/// The restore as the operator's restore Job runs it into a new cluster's first member: the
/// server's `local_infile` is off (MySQL 8's default) and is off again afterwards, and the
/// cluster's own service accounts in the backup are not restored (the new cluster has its own
/// passwords for them).
async fn a_restore_job_turns_local_infile_on_only_while_loading_and_skips_service_accounts(
    flavor: Flavor,
) {
    let (src, dst, s3) = source_target_s3(flavor, flavor, 61, "job").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, &fixtures::every_type()).await;
    let mut backup = backup_config(&src, s3.config("job"), "job/1");
    match flavor {
        // The old cluster's own accounts as the operator creates them on MySQL; the backup
        // runs as its backup account, with only the grants the operator gives it.
        Flavor::Mysql97 => {
            let old = |a: Account| Credentials::new(a.user(), format!("old-{}-password", a.user()));
            let caps = Capabilities {
                version: ServerVersion {
                    major: 9,
                    minor: 7,
                    patch: 4,
                },
                group_replication: false,
                clone: false,
                communication_stack: true,
            };
            let accounts = Accounts {
                recovery: old(Account::Replication),
                router: old(Account::Router),
                backup: old(Account::Backup),
            };
            for s in account_statements(&caps, &accounts).unwrap() {
                c.query_drop(s.sql()).await.unwrap();
            }
            backup.mysql.user = accounts.backup.user;
            backup.mysql.password = accounts.backup.password;
        }
        Flavor::Mariadb => {
            c.query_drop("CREATE USER 'innodb_repl'@'%' IDENTIFIED BY 'the-old-clusters-password'")
                .await
                .unwrap();
        }
    }
    let m = datapath::run(backup).await.expect("backup");
    // The operator's grants are enough for the lock it means to take.
    assert_eq!(m.lock_method, flavor.lock_method());

    let mut d = dst.conn().await;
    d.query_drop("SET GLOBAL local_infile = OFF").await.unwrap();
    let mut cfg = restore_config(&dst, s3.config("job"), "job/1");
    // What the restore Job skips: every account of the operator's but root.
    cfg.skip_accounts = Account::ALL
        .iter()
        .filter(|a| **a != Account::Root)
        .map(|a| a.user().to_string())
        .collect();
    load::run(cfg).await.expect("restore with local_infile off");

    let on: Option<i64> = d.query_first("SELECT @@GLOBAL.local_infile").await.unwrap();
    assert_eq!(on, Some(0), "local_infile is off again after the restore");
    let users: Vec<String> = d
        .query("SELECT DISTINCT User FROM mysql.user ORDER BY User")
        .await
        .unwrap();
    assert!(users.iter().any(|u| u == "app"), "{users:?}");
    assert!(
        !users.iter().any(|u| u.starts_with("innodb_")),
        "a service account was restored: {users:?}"
    );
    let want = fixtures::table_digests(&mut c, &["types"]).await;
    let got = fixtures::table_digests(&mut d, &["types"]).await;
    assert_eq!(got, want, "every row equal");

    // A restore that fails while loading leaves it off too.
    for db in &m.schema.databases {
        d.query_drop(format!("DROP DATABASE `{}`", db.name))
            .await
            .unwrap();
    }
    let (_, chunk) = m.chunks().next().expect("a chunk");
    let key = format!("job/1/{}", chunk.object);
    s3.client()
        .put_object()
        .bucket("job")
        .key(&key)
        .body(b"not zstd".to_vec().into())
        .send()
        .await
        .unwrap();
    let err = load::run(restore_config(&dst, s3.config("job"), "job/1"))
        .await
        .expect_err("a corrupt chunk fails the restore");
    assert!(matches!(err, RestoreError::Corrupt { .. }), "{err}");
    let on: Option<i64> = d.query_first("SELECT @@GLOBAL.local_infile").await.unwrap();
    assert_eq!(
        on,
        Some(0),
        "local_infile is off again after a failed restore"
    );
}

/// `innodb-operator backup|restore` against the S3 server `s3`, as a Job runs them: TLS to the
/// server with the test CA (the Job's mounted cluster CA) and the server's name.
async fn cli(s3: &Minio, db: &Server, args: &[&str]) -> (bool, String) {
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("mysql-ca.pem");
    std::fs::write(&ca_file, &harness::pki().ca.cert_pem).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_innodb-operator"))
        .args(args)
        .arg("--mysql-ca-file")
        .arg(&ca_file)
        .args(["--mysql-tls-name", TLS_NAME])
        .args([
            "--s3-endpoint",
            &s3.endpoint(),
            "--bucket",
            "tls",
            "--path-style",
        ])
        .args(["--port", &db.port.to_string(), "--user", "root"])
        .env("AWS_ACCESS_KEY_ID", minio::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", minio::SECRET_KEY)
        .env("MYSQL_PASSWORD", db.config().password)
        .env_remove("S3_CA_FILE")
        .output()
        .await
        .expect("run innodb-operator");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// HTTPS to an S3 server behind a private CA, through the binary as the Jobs run it: without the
/// CA the backup fails with a TLS error that says what to do; with `--s3-ca-file` a backup and
/// restore round trip; the parts went up with CRC32Cs the server recorded, and it refuses a
/// part whose bytes do not match its CRC32C.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_behind_a_private_ca_round_trips_and_the_server_checks_every_parts_crc() {
    let (src, dst, s3) = tokio::join!(
        Server::start(Flavor::Mariadb, 71),
        Server::start(Flavor::Mariadb, 72),
        Minio::start_tls()
    );
    s3.create_bucket("tls").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, &fixtures::every_type()).await;
    fixtures::load(&mut c, &fixtures::incompressible(12_000)).await;
    let ca_file = s3.ca().unwrap().certs_dir.path().join("ca.pem");
    std::fs::write(&ca_file, &s3.ca().unwrap().ca_pem).unwrap();
    let ca_file = ca_file.to_str().unwrap();

    let (ok, out) = cli(&s3, &src, &["backup", "--prefix", "tls/0"]).await;
    assert!(!ok, "a backup without the CA must fail: {out}");
    let want = format!("TLS handshake with {} failed", s3.endpoint());
    assert!(
        out.contains(&want) && out.contains("UnknownIssuer"),
        "{out}"
    );
    assert!(
        out.contains("--s3-ca-file"),
        "the error says what to do: {out}"
    );

    let backup = ["backup", "--prefix", "tls/1", "--s3-ca-file", ca_file];
    let (ok, out) = cli(&s3, &src, &backup).await;
    assert!(ok, "backup over HTTPS with the CA: {out}");
    let restore = ["restore", "--prefix", "tls/1", "--s3-ca-file", ca_file];
    let (ok, out) = cli(&s3, &dst, &restore).await;
    assert!(ok, "restore over HTTPS with the CA: {out}");
    let mut d = dst.conn().await;
    for db in [["types"], ["blobs"]] {
        assert_eq!(
            fixtures::table_digests(&mut d, &db).await,
            fixtures::table_digests(&mut c, &db).await,
            "every row of {db:?} equal"
        );
    }

    // The largest object went up in parts, each with a CRC32C: the server keeps the checksum
    // of the checksums, "<base64>-<parts>".
    let client = s3.client();
    let objects = client
        .list_objects_v2()
        .bucket("tls")
        .prefix("tls/1/")
        .send()
        .await
        .unwrap();
    let largest = objects
        .contents()
        .iter()
        .max_by_key(|o| o.size())
        .and_then(|o| o.key())
        .unwrap();
    let head = client
        .head_object()
        .bucket("tls")
        .key(largest)
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    let crc = head.checksum_crc32_c().unwrap_or_default();
    let parts: u32 = crc
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse().ok())
        .unwrap_or(0);
    assert!(parts >= 2, "multipart CRC32C of {largest}: {crc:?}");

    // A part whose bytes do not match its CRC32C is refused.
    let upload = client
        .create_multipart_upload()
        .bucket("tls")
        .key("corrupt")
        .checksum_algorithm(aws_sdk_s3::types::ChecksumAlgorithm::Crc32C)
        .send()
        .await
        .unwrap();
    let id = upload.upload_id().unwrap();
    let body = vec![7u8; 5 << 20];
    let mut flipped = body.clone();
    flipped[1 << 20] ^= 1;
    let err = client
        .upload_part()
        .bucket("tls")
        .key("corrupt")
        .upload_id(id)
        .part_number(1)
        .checksum_crc32_c(datapath::s3::crc32c_base64(&body))
        .body(flipped.into())
        .customize()
        .disable_payload_signing()
        .send()
        .await
        .expect_err("a part with a wrong CRC32C must be refused");
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.as_service_error().and_then(|e| e.meta().code());
    assert_eq!(status, Some(400), "{code:?}");
    assert_eq!(code, Some("XAmzContentChecksumMismatch"), "{err:?}");
    let listed = client
        .list_parts()
        .bucket("tls")
        .key("corrupt")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    assert!(listed.parts().is_empty(), "the refused part was not stored");
}

/// The dump's lean client logs in as an account the server has no cached login for, then again
/// from the cache (the fast path), over TLS (the session says it is encrypted; on MySQL 9.7 the
/// full authentication sends the password inside TLS) and in cleartext when asked for (on 9.7
/// the password RSA-encrypted with the server's key); a wrong password is refused with the
/// server's error, which does not show it.
async fn the_dump_connection_logs_in_cold_and_warm(flavor: Flavor) {
    let db = Server::start(flavor, 81).await;
    let mut c = db.conn().await;
    for s in [
        "CREATE USER 'dumper'@'127.0.0.1' IDENTIFIED BY 'dumper-password'",
        "GRANT SELECT ON *.* TO 'dumper'@'127.0.0.1'",
    ] {
        c.query_drop(s).await.unwrap();
    }
    let cfg = MysqlConfig {
        user: "dumper".into(),
        password: "dumper-password".into(),
        ..db.config()
    };
    let cleartext = MysqlConfig {
        tls: MysqlTls::Cleartext,
        ..cfg.clone()
    };
    for (cfg, encrypted) in [(&cfg, true), (&cleartext, false)] {
        // Empties caching_sha2's cache of successful logins.
        c.query_drop("FLUSH PRIVILEGES").await.unwrap();
        for round in ["cold", "warm"] {
            let mut w = WireConn::connect(cfg)
                .await
                .unwrap_or_else(|e| panic!("{round} login ({cfg:?}): {e}"));
            let sql = "SELECT CURRENT_USER(), (SELECT VARIABLE_VALUE FROM \
                       information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_version')";
            let sql = match flavor {
                Flavor::Mariadb => sql.to_string(),
                Flavor::Mysql97 => sql.replace(
                    "information_schema.SESSION_STATUS",
                    "performance_schema.session_status",
                ),
            };
            let mut rows = w.query(&sql).await.unwrap();
            let row: Vec<Option<Vec<u8>>> = rows
                .next()
                .await
                .unwrap()
                .expect("a row")
                .fields()
                .map(|f| f.unwrap().map(<[u8]>::to_vec))
                .collect();
            assert_eq!(row[0], Some(b"dumper@127.0.0.1".to_vec()), "{round}");
            let version =
                String::from_utf8_lossy(row[1].as_deref().unwrap_or_default()).into_owned();
            assert_eq!(
                version.starts_with("TLSv1."),
                encrypted,
                "{round} {cfg:?}: Ssl_version {version:?}"
            );
            assert!(rows.next().await.unwrap().is_none());
            w.close().await;
        }
    }
    let wrong = MysqlConfig {
        password: "not-the-password".into(),
        ..cfg
    };
    let err = WireConn::connect(&wrong).await.err().expect("refused");
    assert_eq!(err.server_code(), Some(1045), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
}

/// A server whose certificate another CA signed, or that names another host, is refused by the
/// row reader, the backup and the restore, with the reason, at once (the restore does not wait
/// for the server as if it were still starting) and before any row or object moves.
async fn another_ca_or_another_name_fails_the_backup_and_the_restore_at_once(flavor: Flavor) {
    let (src, s3) = tokio::join!(Server::start(flavor, 91), Minio::start());
    s3.create_bucket("tlsbad").await;
    fixtures::load(&mut src.conn().await, &fixtures::every_type()).await;
    datapath::run(backup_config(&src, s3.config("tlsbad"), "good"))
        .await
        .expect("a backup verifying the right CA and name");
    let other = innodb_operator::certs::issue::new_ca(
        "another CA",
        jiff::Timestamp::now(),
        &mut rand::rng(),
    )
    .unwrap();
    let wrong_ca = MysqlTls::Verify {
        ca_pem: other.cert_pem,
        server_name: TLS_NAME.into(),
    };
    let wrong_name = MysqlTls::Verify {
        ca_pem: harness::pki().ca.cert_pem.clone(),
        server_name: "other.datapath.test".into(),
    };
    for (i, (tls, reason)) in [
        (wrong_ca, "UnknownIssuer"),
        (wrong_name, "not valid for name"),
    ]
    .into_iter()
    .enumerate()
    {
        let mysql = MysqlConfig {
            tls,
            ..src.config()
        };
        let err = WireConn::connect(&mysql).await.err().expect("refused");
        assert!(matches!(err, WireError::Tls(_)), "{err}");
        assert!(err.to_string().contains(reason), "{err}");

        let prefix = format!("bad/{i}");
        let mut backup = backup_config(&src, s3.config("tlsbad"), &prefix);
        backup.mysql = mysql.clone();
        backup.wait_for_server = Duration::from_secs(60);
        let started = Instant::now();
        let err = datapath::run(backup).await.expect_err("refused");
        assert!(err.to_string().contains(reason), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a TLS failure is not waited out by the backup: {:?}",
            started.elapsed()
        );
        assert!(!has_manifest(&s3, "tlsbad", &prefix).await);

        let mut restore = restore_config(&src, s3.config("tlsbad"), "good");
        restore.mysql = mysql;
        restore.wait_for_server = Duration::from_secs(60);
        let started = Instant::now();
        let err = load::run(restore).await.expect_err("refused");
        assert!(err.to_string().contains(reason), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a TLS failure is not waited out: {:?}",
            started.elapsed()
        );
    }
}

/// A backup whose server cannot be reached yet (a new Job pod that a NetworkPolicy enforcer has
/// not admitted: on the real node kube-router refused the Job's first connection) keeps trying
/// for `wait_for_server` and then succeeds; without the wait it fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_waits_for_a_server_it_cannot_reach_yet() {
    let (src, s3) = tokio::join!(Server::start(Flavor::Mariadb, 101), Minio::start());
    s3.create_bucket("wait").await;
    src.conn()
        .await
        .query_drop("CREATE DATABASE w; CREATE TABLE w.t (id INT PRIMARY KEY); INSERT INTO w.t VALUES (1), (2)")
        .await
        .unwrap();
    let closed_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    // Nothing listens: refused at once without a wait.
    let mut at_once = backup_config(&src, s3.config("wait"), "at-once");
    at_once.mysql.port = closed_port();
    let started = Instant::now();
    let err = datapath::run(at_once).await.expect_err("refused");
    assert!(matches!(err, BackupError::Snapshot(_)), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!has_manifest(&s3, "wait", "at-once").await);
    // The port starts forwarding to the server 3 s after the backup began.
    let port = closed_port();
    let upstream = src.port;
    let opened = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    let mut waiting = backup_config(&src, s3.config("wait"), "waiting");
    waiting.mysql.port = port;
    waiting.wait_for_server = Duration::from_secs(30);
    let started = Instant::now();
    datapath::run(waiting)
        .await
        .expect("the backup once the server is reachable");
    let took = started.elapsed();
    opened.abort();
    assert!(took >= Duration::from_secs(3), "it waited: {took:?}");
    assert!(has_manifest(&s3, "wait", "waiting").await);
    eprintln!("a backup waiting for its server: succeeded after {took:?}");
}

/// A backup of a MySQL 9.7 server taking writes: the restored server holds exactly the rows the
/// manifest's GTID set committed (every row acknowledged before the backup, none torn), and
/// its `gtid_executed` contains the manifest's set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_writes_restores_every_acknowledged_row_with_its_gtids() {
    let flavor = Flavor::Mysql97;
    let (src, dst, s3) = source_target_s3(flavor, flavor, 91, "writes").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, &fixtures::big_table(16)).await;
    c.query_drop("CREATE TABLE big.acked (n BIGINT PRIMARY KEY, at DATETIME(6))")
        .await
        .unwrap();
    let before = GtidSet::parse(&src.gtid_executed(&mut c).await).unwrap();

    // One writer, autocommit: row n is acknowledged when its INSERT returns.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let (stop, acked, mut w) = (stop.clone(), acked.clone(), src.conn().await);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                w.exec_drop("INSERT INTO big.acked VALUES (?, NOW(6))", (n,))
                    .await
                    .expect("the writer's commit");
                acked.store(n, Ordering::SeqCst);
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before_backup = acked.load(Ordering::SeqCst);
    let m = datapath::run(backup_config(&src, s3.config("writes"), "w/1"))
        .await
        .expect("backup under writes");
    let acked_after_backup = acked.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();

    let report = load::run(restore_config(&dst, s3.config("writes"), "w/1"))
        .await
        .expect("restore");
    let mut d = dst.conn().await;
    let (rows, max): (u64, Option<u64>) = d
        .query_first("SELECT COUNT(*), MAX(n) FROM big.acked")
        .await
        .unwrap()
        .unwrap();
    let max = max.unwrap_or(0);
    assert_eq!(rows, max, "rows 1..={max} without a gap");
    assert!(
        max >= acked_before_backup,
        "{max} rows restored, {acked_before_backup} acknowledged before the backup began"
    );
    assert!(
        acked_after_backup > acked_before_backup,
        "the writer committed during the backup"
    );
    let manifest = GtidSet::parse(&m.gtid.set).unwrap();
    assert_eq!(
        manifest.subtract(&before).count(),
        u128::from(max),
        "the manifest's GTID set {} is the restored rows' commits",
        m.gtid.set
    );
    let restored = GtidSet::parse(&dst.gtid_executed(&mut d).await).unwrap();
    assert!(
        manifest.subtract(&restored).is_empty(),
        "restored gtid_executed {restored:?} lacks part of the manifest's {}",
        m.gtid.set
    );
    assert_eq!(report.gtid_set.replace('\n', ""), m.gtid.set);
}

/// A MariaDB backup is refused by a MySQL 9.7 server before anything is created, with or
/// without its GTID set (its routines' SQL modes and its accounts' password plugin would fail
/// half-way).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mariadb_backup_is_refused_by_mysql97_before_anything_is_created() {
    let (src, dst, s3) = source_target_s3(Flavor::Mariadb, Flavor::Mysql97, 101, "cross").await;
    fixtures::load(&mut src.conn().await, &fixtures::every_type()).await;
    datapath::run(backup_config(&src, s3.config("cross"), "x/1"))
        .await
        .expect("backup");
    for apply_gtid in [true, false] {
        let mut cfg = restore_config(&dst, s3.config("cross"), "x/1");
        cfg.apply_gtid = apply_gtid;
        let err = load::run(cfg).await.expect_err("another family");
        assert!(matches!(err, RestoreError::Flavor { .. }), "{err}");
    }
    let dbs: Vec<String> = dst
        .conn()
        .await
        .query("SHOW DATABASES LIKE 'types'")
        .await
        .unwrap();
    assert!(dbs.is_empty(), "nothing created: {dbs:?}");
}
