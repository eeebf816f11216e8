//! Backups on the real node: a `Backup` runs its Job pod, which streams the cluster from a
//! secondary (while the writer commits) to a real S3 server (MinIO on the node's address, reached
//! from the pod through the CNI bridge) and succeeds; a new cluster with `restoreFrom` that Backup
//! becomes Ready: the backup is restored into its first member, which starts the group, and the
//! second joins by clone; each holds every row acknowledged before the backup began and none that
//! was never written. A capture on the node's pod bridge while the Job runs holds its traffic with
//! the member it reads (at least the size of the marker rows written before) and not one marker
//! in cleartext: the Job reads over verified TLS.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::env::{CLUSTER, Env, NS, POD_BRIDGE, STEP, sql, until};
use crate::support::capture::{Capture, contains};
use crate::support::minio::{ACCESS_KEY, Minio, SECRET_KEY};
use crate::writer::{self, Writer};

const BUCKET: &str = "mysql-backups";
const BACKUP: &str = "orders-on-the-node";
const RESTORED: &str = "orders-restored";
/// The restored cluster's members: the first restored from the backup, the second joins by clone.
const RESTORED_INSTANCES: u32 = 2;
/// A value written before the backup, which the Job reads from a member and must never see on
/// the wire in cleartext.
const MARKER: &str = "iopNodeMark4b9e";
/// Rows holding the marker, each [`MARKER_ROW_BYTES`] long at least: the Job reads that much
/// over the member's SQL port.
const MARKER_ROWS: usize = 1000;
const MARKER_ROW_BYTES: usize = 200;

pub async fn backup_and_restore(env: &mut Env, w: &Writer) {
    let s3 = Minio::start_on(node_ip(env)).await;
    s3.create_bucket(BUCKET).await;
    env.kubectl(&[
        "-n",
        NS,
        "create",
        "secret",
        "generic",
        "s3-credentials",
        &format!("--from-literal=AWS_ACCESS_KEY_ID={ACCESS_KEY}"),
        &format!("--from-literal=AWS_SECRET_ACCESS_KEY={SECRET_KEY}"),
    ])
    .unwrap_or_else(|e| panic!("create the S3 credentials Secret: {e}"));
    let storage = format!(
        r#"{{"bucket":"{BUCKET}","prefix":"node","region":"us-east-1","endpoint":"{}","forcePathStyle":true,"credentialsSecret":{{"name":"s3-credentials"}}}}"#,
        s3.endpoint()
    );
    env.patch_spec(&format!(r#"{{"backup":{{"storage":{storage}}}}}"#));

    write_markers(env).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = Capture::start(POD_BRIDGE, "tcp port 3306", dir.path().join("backup.pcap"));
    let before: BTreeSet<u64> = w.acked().into_iter().collect();
    let cut = Instant::now();
    env.apply(&format!(
        "apiVersion: innodb-operator.io/v1alpha1\nkind: Backup\nmetadata:\n  name: {BACKUP}\n\
             spec:\n  clusterName: {CLUSTER}\n"
    ));
    // The Job pod's address, noted while it runs (a finished pod's may be gone from its status).
    let mut job_ips = BTreeSet::new();
    let phase = until("the Backup finished", STEP, async || {
        job_ips.extend(job_pod_ips(env));
        let phase = backup_field(env, "{.status.phase}").ok()?;
        matches!(phase.as_str(), "Succeeded" | "Failed").then_some(phase)
    })
    .await;
    job_ips.extend(job_pod_ips(env));
    assert_eq!(
        phase,
        "Succeeded",
        "the Backup failed:\n{}\n{}",
        backup_state(env),
        env.describe()
    );
    env.time(
        "Backup applied -> Succeeded (Job pod to MinIO)",
        cut.elapsed(),
    );
    let captured = capture.stop();
    let hosts: Vec<String> = job_ips.iter().map(|ip| format!("host {ip}")).collect();
    assert!(!hosts.is_empty(), "the backup Job's pod has an address");
    let job_bytes = captured.select(&hosts.join(" or ")).len();
    eprintln!(
        "node: capture on {POD_BRIDGE} during the backup: {} bytes on port 3306, {job_bytes} of \
         them to and from the Job pod ({job_ips:?})",
        captured.bytes.len()
    );
    assert!(
        job_bytes > MARKER_ROWS * MARKER_ROW_BYTES,
        "the capture holds the Job's reading of the member: {job_bytes} bytes, fewer than the \
         marker rows' {} alone",
        MARKER_ROWS * MARKER_ROW_BYTES
    );
    assert!(
        !contains(&captured.bytes, MARKER),
        "the marker crossed the pod network in cleartext during the backup"
    );
    let source = backup_field(env, "{.status.source}").unwrap_or_default();
    let role = env
        .kubectl(&[
            "-n",
            NS,
            "get",
            "pod",
            &source,
            "-o",
            "jsonpath={.metadata.labels.innodb-operator\\.io/role}",
        ])
        .unwrap_or_else(|e| panic!("the role of the backup's source {source:?}: {e}"));
    assert_eq!(
        role.trim(),
        "secondary",
        "the backup is taken from a secondary, not from {source:?}"
    );
    let objects = s3
        .client()
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix("node/")
        .send()
        .await
        .expect("list the bucket");
    let keys: Vec<&str> = objects.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        keys.iter().any(|k| k.ends_with("/manifest.json")),
        "no manifest in the bucket under node/: {keys:?}\n{}",
        backup_state(env)
    );

    let cut = Instant::now();
    env.apply(&restored_cluster());
    let wait = env.kubectl(&[
        "-n",
        NS,
        "wait",
        &format!("mysqlcluster/{RESTORED}"),
        "--for=condition=Ready",
        &format!("--timeout={}s", STEP.as_secs()),
    ]);
    if let Err(e) = wait {
        panic!(
            "the restored cluster never became Ready: {e}\n{}",
            env.describe()
        );
    }
    env.time(
        "restoreFrom the Backup -> Ready (restore, bootstrap, a clone join)",
        cut.elapsed(),
    );
    let actions = env
        .kubectl(&[
            "-n",
            NS,
            "get",
            "mysqlcluster",
            RESTORED,
            "-o",
            "jsonpath={.status.recentActions}",
        ])
        .unwrap_or_else(|e| panic!("the restored cluster's actions: {e}"));
    let actions: Vec<serde_json::Value> = serde_json::from_str(&actions).unwrap_or_default();
    assert!(
        actions
            .iter()
            .any(|a| a["kind"] == "Clone" && a["ordinal"] == 1),
        "the restored cluster's second member joined by clone: {actions:?}"
    );
    let written: BTreeSet<u64> = w.acked().into_iter().collect();
    let max_tried = written.last().copied().unwrap_or_default() + 1;
    for ordinal in 0..RESTORED_INSTANCES {
        let restored = restored_rows(env, ordinal).await;
        let lost: Vec<&u64> = before.difference(&restored).collect();
        assert!(
            lost.is_empty(),
            "rows acknowledged before the backup began are missing from {RESTORED}-{ordinal}: \
             {lost:?}"
        );
        assert!(
            restored.iter().all(|id| *id <= max_tried),
            "{RESTORED}-{ordinal} holds rows the writer never wrote (max tried {max_tried})"
        );
        eprintln!(
            "node: {RESTORED}-{ordinal} holds {} rows ({} acknowledged before the backup began)",
            restored.len(),
            before.len()
        );
    }
    env.kubectl(&[
        "-n",
        NS,
        "delete",
        "mysqlcluster",
        RESTORED,
        "--timeout=300s",
    ])
    .unwrap_or_else(|e| panic!("delete the restored cluster: {e}"));
}

/// [`MARKER_ROWS`] rows holding [`MARKER`] in the application's schema (written on the primary),
/// on every member before the backup starts.
async fn write_markers(env: &Env) {
    let members = env.members().await;
    let primary = env.healthy().await.expect("healthy before the backup");
    let primary_ip = members
        .iter()
        .find(|m| m.0 == primary)
        .expect("the primary pod")
        .1;
    for q in [
        "CREATE TABLE app.marker (id INT PRIMARY KEY, v VARCHAR(255) NOT NULL)".to_string(),
        format!(
            "INSERT INTO app.marker WITH RECURSIVE n(i) AS \
             (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MARKER_ROWS}) \
             SELECT i, CONCAT('{MARKER}-', i, '-', REPEAT('m', {MARKER_ROW_BYTES})) FROM n"
        ),
    ] {
        env.root(primary_ip, &q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    until("the marker rows on every member", STEP, async || {
        for (_, ip) in &members {
            let rows = env
                .root(*ip, "SELECT COUNT(*) FROM app.marker")
                .await
                .ok()?;
            (rows[0][0] == MARKER_ROWS.to_string()).then_some(())?;
        }
        Some(())
    })
    .await;
}

/// The addresses the backup Job's pods have now.
fn job_pod_ips(env: &Env) -> Vec<String> {
    env.kubectl(&[
        "-n",
        NS,
        "get",
        "pods",
        "-l",
        &format!("job-name=backup-{BACKUP}"),
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ])
    .unwrap_or_default()
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// The node's InternalIP: where the host's MinIO listens for the pods.
fn node_ip(env: &Env) -> IpAddr {
    let ip = env
        .kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={.items[0].status.addresses[?(@.type=="InternalIP")].address}"#,
        ])
        .unwrap_or_else(|e| panic!("the node's address: {e}"));
    ip.trim()
        .parse()
        .unwrap_or_else(|e| panic!("the node's address {ip:?}: {e}"))
}

/// One member, no routers, restored from [`BACKUP`], on the sample's images and sizes.
fn restored_cluster() -> String {
    let sample = std::fs::read_to_string(crate::env::SAMPLE).expect("read the sample");
    let mut doc: serde_json::Value = serde_yaml::from_str(&sample).expect("the sample's YAML");
    doc["metadata"]["name"] = RESTORED.into();
    let spec = &mut doc["spec"];
    spec["instances"] = RESTORED_INSTANCES.into();
    spec["router"]["instances"] = 0.into();
    spec["restoreFrom"] = serde_json::json!({ "backup": BACKUP });
    serde_json::to_string(&doc).expect("JSON")
}

/// The ids in the writer's table on the restored cluster's member `ordinal`.
async fn restored_rows(env: &Env, ordinal: u32) -> BTreeSet<u64> {
    let ip = env
        .kubectl(&[
            "-n",
            NS,
            "get",
            "pod",
            &format!("{RESTORED}-{ordinal}"),
            "-o",
            "jsonpath={.status.podIP}",
        ])
        .unwrap_or_else(|e| panic!("the restored member's address: {e}"));
    let ip: IpAddr = ip.trim().parse().expect("pod IP");
    let password = env.password(&format!("{RESTORED}-root")).await;
    sql(
        SocketAddr::new(ip, 3306),
        &env.cluster_tls(RESTORED).await,
        "root",
        &password,
        &format!("SELECT id FROM {}", writer::TABLE),
    )
    .await
    .unwrap_or_else(|e| panic!("read the restored rows: {e}"))
    .iter()
    .filter_map(|r| r[0].parse().ok())
    .collect()
}

/// A field of the Backup (`kubectl get -o jsonpath=PATH`).
fn backup_field(env: &Env, path: &str) -> Result<String, String> {
    env.kubectl(&[
        "-n",
        NS,
        "get",
        "backup",
        BACKUP,
        "-o",
        &format!("jsonpath={path}"),
    ])
}

/// The Backup's status and its Job pod's log, for a failure's message.
fn backup_state(env: &Env) -> String {
    let status = backup_field(env, "{.status}").unwrap_or_else(|e| e);
    let log = env
        .kubectl(&[
            "-n",
            NS,
            "logs",
            &format!("job/backup-{BACKUP}"),
            "--tail=40",
        ])
        .unwrap_or_else(|e| e);
    format!("Backup status: {status}\nJob log:\n{log}")
}
