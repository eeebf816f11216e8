//! Data-path tests: real MariaDB servers and a real S3 server (MinIO). Backup → restore into a
//! fresh server → every row equal; and the fault matrix, where no failure may end as a success.

mod fixtures;
mod harness;
mod proxy;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use harness::{Mariadb, Minio};
use innodb_operator::datapath::load::{self, RestoreConfig, RestoreError};
use innodb_operator::datapath::manifest::MANIFEST;
use innodb_operator::datapath::s3::S3Config;
use innodb_operator::datapath::{self, BackupConfig, BackupError, Manifest};
use mysql_async::prelude::Queryable;

fn backup_config(db: &Mariadb, s3: S3Config, prefix: &str) -> BackupConfig {
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
    }
}

fn restore_config(db: &Mariadb, s3: S3Config, prefix: &str) -> RestoreConfig {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_trip_every_type_millions_of_rows_and_no_primary_key() {
    let (src, dst, s3) = tokio::join!(Mariadb::start(1), Mariadb::start(2), Minio::start());
    s3.create_bucket("roundtrip").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, fixtures::EVERY_TYPE).await;
    fixtures::load(&mut c, &fixtures::big_table(21)).await; // 2,097,152 rows
    let gtid_before: String = c
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    assert!(!gtid_before.is_empty(), "source should have GTIDs");

    let m: Manifest = datapath::run(backup_config(&src, s3.config("roundtrip"), "rt/1"))
        .await
        .expect("backup");
    assert!(has_manifest(&s3, "roundtrip", "rt/1").await);
    assert_eq!(m.gtid.set, gtid_before, "manifest GTID set is the source's");
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
    let want = fixtures::table_digests(&mut c, &["types", "big"]).await;
    let got = fixtures::table_digests(&mut d, &["types", "big"]).await;
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

    // a second backup to the same prefix is refused, the first stays intact
    let again = datapath::run(backup_config(&src, s3.config("roundtrip"), "rt/1")).await;
    assert!(
        matches!(again, Err(BackupError::AlreadyExists { .. })),
        "{again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_stopped_mid_upload_fails_and_leaves_no_manifest() {
    let (src, mut s3) = tokio::join!(Mariadb::start(11), Minio::start());
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
    let dst = Mariadb::start(12).await;
    let r = load::run(restore_config(&dst, s3.config("bkt"), "stop/1")).await;
    assert!(matches!(r, Err(RestoreError::NoManifest { .. })), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_killed_mid_dump_fails_and_aborts_uploads() {
    let (mut src, s3) = tokio::join!(Mariadb::start(21), Minio::start());
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
async fn wrong_credentials_and_missing_bucket_fail_clearly() {
    let (src, s3) = tokio::join!(Mariadb::start(31), Minio::start());
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
    let (src, dst, s3) = tokio::join!(Mariadb::start(41), Mariadb::start(42), Minio::start());
    s3.create_bucket("bkt").await;
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
    let (src, dst, s3) = tokio::join!(Mariadb::start(51), Mariadb::start(52), Minio::start());
    s3.create_bucket("bkt").await;
    fixtures::load(&mut src.conn().await, fixtures::EVERY_TYPE).await;
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
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restore_job_turns_local_infile_on_only_while_loading_and_skips_service_accounts() {
    let (src, dst, s3) = tokio::join!(Mariadb::start(61), Mariadb::start(62), Minio::start());
    s3.create_bucket("job").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, fixtures::EVERY_TYPE).await;
    c.query_drop("CREATE USER 'innodb_repl'@'%' IDENTIFIED BY 'the-old-clusters-password'")
        .await
        .unwrap();
    let m = datapath::run(backup_config(&src, s3.config("job"), "job/1"))
        .await
        .expect("backup");

    let mut d = dst.conn().await;
    d.query_drop("SET GLOBAL local_infile = OFF").await.unwrap();
    let mut cfg = restore_config(&dst, s3.config("job"), "job/1");
    cfg.skip_accounts = vec!["innodb_repl".into(), "innodb_admin".into()];
    load::run(cfg).await.expect("restore with local_infile off");

    let on: Option<i64> = d.query_first("SELECT @@GLOBAL.local_infile").await.unwrap();
    assert_eq!(on, Some(0), "local_infile is off again after the restore");
    let users: Vec<String> = d
        .query("SELECT DISTINCT User FROM mysql.user ORDER BY User")
        .await
        .unwrap();
    assert!(users.iter().any(|u| u == "app"), "{users:?}");
    assert!(
        !users.iter().any(|u| u == "innodb_repl"),
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

/// `innodb-operator backup|restore` against the S3 server `s3`, as a Job runs them.
async fn cli(s3: &Minio, db: &Mariadb, args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_innodb-operator"))
        .args(args)
        .args([
            "--s3-endpoint",
            &s3.endpoint(),
            "--bucket",
            "tls",
            "--path-style",
        ])
        .args(["--port", &db.port.to_string(), "--user", "root"])
        .env("AWS_ACCESS_KEY_ID", harness::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", harness::SECRET_KEY)
        .env("MYSQL_PASSWORD", "rootpw")
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
    let (src, dst, s3) = tokio::join!(Mariadb::start(71), Mariadb::start(72), Minio::start_tls());
    s3.create_bucket("tls").await;
    let mut c = src.conn().await;
    fixtures::load(&mut c, fixtures::EVERY_TYPE).await;
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
