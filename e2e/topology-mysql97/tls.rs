//! TLS on a real group with the operator's CA: the members require it of every client, the
//! group and recovery verify each other with it, the operator's sessions and a backup (its
//! coordinator and row readers) trust only it and check the member's name, a capture of the pod
//! network sees no row in cleartext (replication, a client, a backup, a clone), a certificate
//! renewed and reloaded (`ALTER INSTANCE RELOAD TLS`) while a writer runs loses no write, and
//! the CA changed (`ca_change.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use innodb_operator::certs::issue;
use innodb_operator::cluster::build::tls_secrets::{
    self, FoundSecret, FoundTls, NOT_AFTER_ANNOTATION,
};
use innodb_operator::objects::MYSQL_PORT;
use innodb_operator::objects::tls::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
use innodb_operator::topology::mysql::SessionTls;
use innodb_operator::topology::observe::Endpoint;
use innodb_operator::topology::ops::{MemberOps, OpsError};
use jiff::Timestamp;
use mysql_async::prelude::Queryable;

use innodb_operator::datapath::wire::WireConn;
use innodb_operator::datapath::{self, BackupConfig, MysqlConfig, MysqlTls};
use innodb_operator::objects::accounts::Account;

use crate::capture::{Capture, contains};
use crate::group::Group;
use crate::minio::Minio;
use crate::realmysql::net;
use crate::verified::{Written, admin_opts, app_sessions, on_every_member, spawn_writer, verified};
use crate::{Timings, bootstrap, fresh_group_with, join};

const NOT_AFTER: &str = "SELECT VARIABLE_VALUE FROM performance_schema.global_status \
                         WHERE VARIABLE_NAME = 'Ssl_server_not_after'";

/// A value no member sends in cleartext if every link is encrypted.
const MARKER: &str = "iopMARK5d1c7e";

fn ca_pem(g: &Group) -> Vec<u8> {
    g.built.member_ca().expect("the operator CA")
}

/// Every member requires TLS; the group and recovery verify the peer's name.
async fn members_require_verified_tls(g: &Group) {
    for m in g.members.members() {
        let row = g
            .root_query(
                m.ordinal,
                "SELECT CONCAT_WS(',', @@require_secure_transport, @@group_replication_ssl_mode, \
                 @@group_replication_recovery_ssl_verify_server_cert, \
                 @@group_replication_recovery_use_ssl)",
            )
            .await;
        assert_eq!(
            row,
            vec![Some("1,VERIFY_IDENTITY,1,1".to_string())],
            "member {}",
            m.ordinal
        );
    }
    // A client without TLS is refused (ER_SECURE_TRANSPORT_REQUIRED) ...
    let e = mysql_async::Conn::new(admin_opts(g, 0))
        .await
        .expect_err("a cleartext session is refused");
    assert!(
        matches!(&e, mysql_async::Error::Server(s) if s.code == 3159)
            || e.to_string().contains("insecure transport"),
        "{e}"
    );
    // ... and one that verifies is served over TLS.
    let mut conn = mysql_async::Conn::new(verified(g, 0, ca_pem(g)))
        .await
        .expect("a verified session");
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .unwrap();
    assert!(
        cipher
            .as_ref()
            .is_some_and(|(_, v)| v.starts_with("TLSv1.")),
        "{cipher:?}"
    );
}

/// The operator's sessions refuse a member whose certificate is another CA's, or that does not
/// name the host the operator expects.
async fn operator_sessions_verify(g: &Group) {
    let now = Timestamp::now();
    let other = issue::new_ca("another CA", now, &mut rand::rng()).unwrap();
    let member = &g.members.member(0);
    let endpoint = g.input().endpoint(0);
    let wrong_ca = innodb_operator::topology::mysql::SqlOps {
        tls: SessionTls::Verify {
            ca_pem: other.cert_pem.into_bytes(),
        },
        ..g.ops.clone()
    };
    let e = wrong_ca.observe(&endpoint).await.expect_err("another CA");
    assert!(
        matches!(&e, OpsError::Untrusted { reason, .. } if reason.contains("UnknownIssuer") || reason.contains("BadSignature")),
        "{e}"
    );
    // The member reached by its IP as its name: the certificate names its DNS name only.
    let by_ip = Endpoint::named(0, member.ip.clone(), MYSQL_PORT as u16);
    let e = g.ops.observe(&by_ip).await.expect_err("the wrong name");
    assert!(
        matches!(&e, OpsError::Untrusted { reason, .. } if reason.contains("NotValidForName")),
        "{e}"
    );
    g.ops
        .observe(&endpoint)
        .await
        .expect("the right CA and name");
}

/// The backup account's data-path configuration for member `ordinal`: its address, verified
/// as a backup Job verifies it (the cluster's CA, the member's DNS name).
fn backup_mysql(g: &Group, ordinal: u32) -> MysqlConfig {
    let backup = g.built.credentials(Account::Backup);
    let member = g.members.member(ordinal);
    MysqlConfig {
        host: member.ip.clone(),
        port: MYSQL_PORT as u16,
        user: backup.user,
        password: backup.password,
        tls: MysqlTls::Verify {
            ca_pem: String::from_utf8(ca_pem(g)).unwrap(),
            server_name: member.fqdn.clone(),
        },
    }
}

/// A backup of `ordinal`'s `iop_test` into `s3` as `prefix`.
fn backup_config(mysql: MysqlConfig, s3: &Minio, prefix: &str) -> BackupConfig {
    BackupConfig {
        mysql,
        s3: s3.config("tls"),
        prefix: prefix.into(),
        workers: 2,
        part_size: 5 << 20,
        parts_in_flight: 1,
        chunk_bytes: 16 << 20,
        zstd_level: 1,
        databases: vec!["iop_test".into()],
        wait_for_server: std::time::Duration::ZERO,
    }
}

/// A backup of a member over TLS with the cluster's CA: the row reader's session is encrypted,
/// the backup holds the rows; in cleartext the member refuses it.
async fn backup_over_verified_tls(g: &Group, s3: &Minio, ordinal: u32) {
    let mysql = backup_mysql(g, ordinal);
    let mut reader = WireConn::connect(&mysql)
        .await
        .expect("the row reader over verified TLS");
    let mut rows = reader
        .query("SHOW SESSION STATUS LIKE 'Ssl_version'")
        .await
        .unwrap();
    let row = rows.next().await.unwrap().expect("a row");
    let version = row.fields().nth(1).unwrap().unwrap().map(<[u8]>::to_vec);
    assert!(
        version.as_deref().is_some_and(|v| v.starts_with(b"TLSv1.")),
        "{version:?}"
    );
    while rows.next().await.unwrap().is_some() {}
    reader.close().await;
    let m = datapath::run(backup_config(mysql.clone(), s3, "tls/1"))
        .await
        .expect("a backup over verified TLS");
    assert!(m.summary().rows >= 1, "the backup read rows: {m:?}");
    let cleartext = MysqlConfig {
        tls: MysqlTls::Cleartext,
        ..mysql
    };
    let err = datapath::run(backup_config(cleartext, s3, "tls/2"))
        .await
        .expect_err("a cleartext backup is refused");
    assert!(
        err.to_string().contains("3159") || err.to_string().contains("insecure transport"),
        "{err}"
    );
}

/// Writes a marker row on the primary (which the group carries to the secondary over the SQL
/// port), reads it back over the operator's kind of session, and backs the secondary up: the
/// capture holds the marker in none of them. A raw cleartext send of the marker proves the
/// capture would have seen one.
async fn no_cleartext_on_the_wire(g: &Group, dir: &std::path::Path, s3: &Minio) {
    let capture = sql_port_capture(dir);
    g.root_exec(
        0,
        &format!("INSERT INTO iop_test.t VALUES (900, '{MARKER}')"),
    )
    .await;
    let mut conn = mysql_async::Conn::new(verified(g, 1, ca_pem(g)))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let v: Option<String> = conn
            .query_first("SELECT v FROM iop_test.t WHERE id = 900")
            .await
            .unwrap();
        if v.as_deref() == Some(MARKER) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the row reached member 1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(conn);
    backup_over_verified_tls(g, s3, 1).await;
    // The control: the marker sent in cleartext to a member's SQL port.
    let control = format!("{}-control", MARKER);
    let addr = format!("{}:3306", g.members.member(1).ip);
    let mut raw = std::net::TcpStream::connect(&addr).expect("connect");
    std::io::Write::write_all(&mut raw, control.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(raw);
    std::thread::sleep(Duration::from_millis(300));
    let bytes = capture.stop().bytes;
    eprintln!("capture: {} bytes on port 3306", bytes.len());
    assert!(
        contains(&bytes, &control),
        "the capture sees payloads: the cleartext control is in it"
    );
    let without_control: Vec<u8> = {
        // Every occurrence of the marker must be the control's.
        let mut b = bytes.clone();
        while let Some(i) = b
            .windows(control.len())
            .position(|w| w == control.as_bytes())
        {
            b.drain(i..i + control.len());
        }
        b
    };
    assert!(
        !contains(&without_control, MARKER),
        "the marker row crossed the pod network in cleartext"
    );
}

/// The member Secret as the operator renews it when it is due (its recorded end is now).
pub(crate) fn renewed_member_secret(g: &Group) -> k8s_openapi::api::core::v1::Secret {
    let name = g.built.cluster.member_tls_secret();
    let secret = |n: &str| {
        g.built
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(n))
            .cloned()
            .map(FoundSecret::from_secret)
    };
    // As found when it is due: its recorded end is now.
    let mut member = secret(&name).expect("the member Secret");
    member
        .annotations
        .insert(NOT_AFTER_ANNOTATION.into(), Timestamp::now().to_string());
    let found = FoundTls {
        ca: secret(&g.built.cluster.names.ca_secret()),
        member: Some(member),
    };
    let writes =
        tls_secrets::tls_writes(&g.built.cluster, &found, Timestamp::now(), &mut rand::rng())
            .expect("renewal");
    writes
        .renew
        .into_iter()
        .next()
        .expect("the member certificate is due")
}

/// The application's account `app` (the operator's may not write rows), made on the primary
/// (member 0).
async fn create_app_user(g: &Group) {
    g.root_exec(0, "CREATE USER 'app'@'%' IDENTIFIED BY 'app-pw-1'")
        .await;
    g.root_exec(0, "GRANT SELECT, INSERT ON iop_test.* TO 'app'@'%'")
        .await;
}

/// The member certificate renewed (as the operator does at two thirds of its life), written
/// where the kubelet would put it while a writer commits through a verified session; the
/// operator's ticks see that the members serve another certificate than the Secret's and reload
/// them: every acknowledged write is on both members, and new sessions see the new certificate.
pub(crate) async fn rotation_under_writes(g: &Group) {
    let renewed = renewed_member_secret(g);
    let data = renewed.data.as_ref().unwrap();
    // The served certificate, as the operator reads it (Ssl_server_not_after), is the Secret's
    // (x509): no reload while nothing changed.
    let observed = g.observe().await;
    let secret_end = *g.certificate_end.lock().unwrap();
    assert!(
        secret_end.is_some(),
        "the member Secret's certificate is read"
    );
    for o in 0..2 {
        let served = observed.state(o).and_then(|s| s.certificate_end);
        assert_eq!(
            served.map(|t| t.as_second()),
            secret_end.map(|t| t.as_second()),
            "member {o} serves the Secret's certificate"
        );
    }
    assert!(
        innodb_operator::topology::decide(&observed)
            .reload_tls
            .is_empty()
    );

    create_app_user(g).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(app_sessions(g, ca_pem(g)), stop.clone(), 1000);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = g.root_query(0, NOT_AFTER).await;
    for m in g.members.members() {
        let dir = g.members.volume_path(m.ordinal, "tls");
        for key in [TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY] {
            std::fs::write(dir.join(key), &data[key].0).expect("write the renewed file");
        }
    }
    let renewed_end = innodb_operator::certs::inspect::not_after(&data[TLS_CERT_KEY].0)
        .expect("the renewed certificate");
    assert_ne!(Some(renewed_end), secret_end, "the renewal has a new end");
    *g.certificate_end.lock().unwrap() = Some(renewed_end);
    let reloaded = Instant::now();
    g.converge(
        "every member serves the renewed certificate",
        crate::STEP,
        |o| {
            (0..2).all(|m| {
                o.state(m)
                    .and_then(|s| s.certificate_end)
                    .is_some_and(|t| t.as_second() == renewed_end.as_second())
            })
        },
    )
    .await;
    eprintln!(
        "rotation: the operator's ticks reloaded both members in {:?}",
        reloaded.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let Written {
        acknowledged,
        failures,
        moved,
    } = writer.await.unwrap();
    let after = g.root_query(0, NOT_AFTER).await;
    eprintln!(
        "rotation: {} writes acknowledged, {} failed, {} taken by the other member after a \
         switchover ({moved:?}); Ssl_server_not_after {before:?} -> {after:?}",
        acknowledged.len(),
        failures.len(),
        moved.len()
    );
    assert_ne!(before, after, "the reloaded certificate is the renewed one");
    assert!(
        failures.is_empty(),
        "no session failed across the reload: {failures:?}"
    );
    assert!(acknowledged.len() > 5, "the writer ran: {acknowledged:?}");
    on_every_member(g, &acknowledged, 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_operator_ca() {
    let mut t = Timings::default();
    // Members refuse cleartext clients by default (spec.tls.allowCleartextClients: false).
    let spec = "{version: '9.7.4', instances: 2, groupCommunicationStack: MYSQL}";
    let Some(mut g) = fresh_group_with("gr-tls", spec, &mut t).await else {
        return;
    };
    members_require_verified_tls(&g).await;
    operator_sessions_verify(&g).await;
    bootstrap(&g, &mut t, "TLS").await;
    crate::write(&g, 0, 1).await;
    // The join's recovery and the group's connections verify the peer's certificate.
    join(&g, &mut t, 1, 2, "TLS: incremental join (VERIFY_IDENTITY)").await;
    let dir = tempfile::tempdir().unwrap();
    let s3 = Minio::start().await;
    s3.create_bucket("tls").await;
    no_cleartext_on_the_wire(&g, dir.path(), &s3).await;
    rotation_under_writes(&g).await;
    // The group still forms new connections after the reload: member 1 leaves and rejoins.
    g.root_exec(1, "STOP GROUP_REPLICATION").await;
    join(
        &g,
        &mut t,
        1,
        2,
        "TLS: rejoin after the certificate was reloaded",
    )
    .await;
    no_cleartext_in_a_clone(&g, &mut t, dir.path()).await;
    crate::ca_change::ca_change(&mut g, &mut t).await;
}

/// tcpdump on the pod network's bridge, TCP to and from the SQL port (group communication of
/// the MYSQL stack, recovery, clients).
fn sql_port_capture(dir: &std::path::Path) -> Capture {
    Capture::start(net::BRIDGE, "tcp port 3306", dir.join("sql-port.pcap"))
}

/// Whether a file under `dir` (at any depth) holds `needle`.
fn any_file_contains(dir: &std::path::Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if path.is_dir() {
            any_file_contains(&path, needle)
        } else {
            std::fs::read(&path).is_ok_and(|b| contains(&b, needle))
        }
    })
}

/// Member 1 re-provisioned by a clone of member 0, whose pages hold the marker row: the clone
/// travels over the donor's SQL port with `clone_ssl_*`, so the capture holds its bytes but
/// never the marker.
async fn no_cleartext_in_a_clone(g: &Group, t: &mut Timings, dir: &std::path::Path) {
    // The control: the donor's files hold the marker (a page or the redo log), so a clone
    // copying them in cleartext would put it on the wire.
    let donor_files = g.members.member(0).claims_dir();
    assert!(
        any_file_contains(&donor_files, MARKER),
        "member 0's files under {} hold the marker row",
        donor_files.display()
    );
    g.root_exec(1, "STOP GROUP_REPLICATION").await;
    let capture = sql_port_capture(dir);
    crate::clone_and_join(g, t, 1, 0, "TLS: clone of member 0 (clone_ssl_*)").await;
    let bytes = capture.stop().bytes;
    eprintln!(
        "capture: {} bytes on port 3306 during the clone",
        bytes.len()
    );
    assert!(
        bytes.len() > 8 << 20,
        "the capture holds the clone's traffic (the data files, tens of MiB)"
    );
    assert!(
        !contains(&bytes, MARKER),
        "the marker row crossed the pod network in cleartext during the clone"
    );
}
