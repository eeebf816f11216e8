//! The load's pure checks: server family, verification, load order inputs.

use super::verify::verified_rows;
use aws_sdk_s3::primitives::ByteStream;

use super::*;
use crate::datapath::chunk::KeyRange;

#[test]
fn a_backup_restores_into_its_own_server_family_only() {
    use GtidFlavor::{Mariadb, Mysql};
    let gtid = |flavor, set: &str| Gtid {
        flavor,
        set: set.into(),
        binlog_file: None,
        binlog_position: None,
    };
    let maria = gtid(Mariadb, "0-1-42");
    assert!(check_family(&maria, Some(Mariadb), true).is_ok());
    // MariaDB's SQL modes and password plugins fail on MySQL 9.7 half-way: refused first,
    // with or without the GTID set.
    for apply in [true, false] {
        let err = check_family(&maria, Some(Mysql), apply).unwrap_err();
        assert!(err.to_string().contains("same server family"), "{err}");
    }
    assert!(check_family(&gtid(Mysql, "u:1-5"), Some(Mariadb), false).is_err());
    // A target without GTIDs takes the rows when the GTID set is not applied.
    let err = check_family(&maria, None, true).unwrap_err();
    assert!(err.to_string().contains("--skip-gtid"), "{err}");
    assert!(check_family(&maria, None, false).is_ok());
    assert!(check_family(&gtid(Mysql, ""), None, true).is_ok());
}

#[test]
fn skipped_accounts_are_not_restored_on_any_host() {
    let account = |user: &str, host: &str| super::super::schema::Account {
        user: user.into(),
        host: host.into(),
        create: String::new(),
        grants: vec![],
    };
    let accounts = vec![
        account("app", "%"),
        account("innodb_repl", "%"),
        account("innodb_repl", "localhost"),
        account("reporting", "10.%"),
    ];
    let skip = vec!["innodb_repl".to_string(), "innodb_router".to_string()];
    let kept: Vec<(&str, &str)> = restorable(&accounts, &skip)
        .map(|a| (a.user.as_str(), a.host.as_str()))
        .collect();
    assert_eq!(kept, vec![("app", "%"), ("reporting", "10.%")]);
    assert_eq!(restorable(&accounts, &[]).count(), 4);
}

/// One frame as a backup writes it (with its content checksum).
fn frame(raw: &[u8]) -> Vec<u8> {
    super::super::dump::frame_compressor(1)
        .unwrap()
        .compress(raw)
        .unwrap()
}

fn chunk_for(raw: &[u8], object: &[u8]) -> ChunkEntry {
    ChunkEntry {
        object: "o".into(),
        range: KeyRange::ALL,
        rows: 0,
        raw_bytes: raw.len() as u64,
        raw_xxh3: manifest::xxh3_hex(xxhash_rust::xxh3::xxh3_64(raw)),
        object_bytes: object.len() as u64,
    }
}

async fn drain(object: Vec<u8>, chunk: ChunkEntry) -> (Vec<u8>, Option<String>) {
    let verdict = Arc::new(Mutex::new(None));
    let mut s = Box::pin(verified_rows(
        ByteStream::from(object),
        chunk,
        verdict.clone(),
    ));
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(b) => out.extend_from_slice(&b),
            Err(_) => break,
        }
    }
    let v = verdict.lock().unwrap().clone();
    (out, v)
}

#[tokio::test]
async fn intact_objects_stream_their_rows() {
    let raw = b"1\ta\n2\t\\N\n".repeat(10_000);
    let object = frame(&raw);
    let (out, verdict) = drain(object.clone(), chunk_for(&raw, &object)).await;
    assert_eq!(verdict, None);
    assert_eq!(out, raw);
}

#[tokio::test]
async fn objects_of_several_frames_stream_all_their_rows() {
    let (a, b) = (b"1\tx\n".repeat(70_000), b"2\ty\n".repeat(3));
    let mut object = frame(&a);
    object.extend(frame(&b));
    let raw = [a, b].concat();
    let (out, verdict) = drain(object.clone(), chunk_for(&raw, &object)).await;
    assert_eq!(verdict, None);
    assert_eq!(out, raw);
    // cut in the middle of the second frame
    let cut = object[..object.len() - 2].to_vec();
    let (_, verdict) = drain(cut, chunk_for(&raw, &object)).await;
    assert!(verdict.is_some());
}

#[tokio::test]
async fn flipped_and_truncated_objects_are_reported() {
    let raw = b"1\ta\n".repeat(50_000);
    let object = frame(&raw);
    let entry = chunk_for(&raw, &object);
    let mut flipped = object.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let (_, verdict) = drain(flipped, entry.clone()).await;
    assert!(verdict.is_some(), "flip detected");
    let truncated = object[..object.len() - 3].to_vec();
    let (_, verdict) = drain(truncated, entry).await;
    assert!(verdict.unwrap().contains("stored object is"));
}

#[tokio::test]
async fn rows_that_differ_from_what_was_compressed_are_reported() {
    // The stored object matches the manifest (it was damaged before it was hashed): the
    // frame's content checksum still catches it.
    let raw = b"7\tseven\n".repeat(20_000);
    let mut object = frame(&raw);
    let end = object.len();
    object[end - 1] ^= 0x55; // the last byte of the frame's XXH64 checksum
    let (_, verdict) = drain(object.clone(), chunk_for(&raw, &object)).await;
    let verdict = verdict.expect("a checksum mismatch is reported");
    assert!(verdict.contains("checksum"), "{verdict}");
}

#[tokio::test]
async fn an_object_of_another_chunk_is_reported() {
    // Same sizes, intact frames, other rows (an object swapped or overwritten in the bucket).
    let (ours, theirs) = (b"1\tone\n".repeat(9_000), b"2\ttwo\n".repeat(9_000));
    let object = frame(&theirs);
    let mut entry = chunk_for(&ours, &object);
    entry.raw_bytes = theirs.len() as u64;
    let (_, verdict) = drain(object, entry).await;
    assert!(verdict.expect("reported").contains("XXH3"));
}
