//! A true InnoDB Cluster on real MySQL 9.7: the operator writes and keeps the metadata schema,
//! and the real MySQL Router 9.7 of the cluster's Deployment runs in metadata-cache mode from the
//! configuration the operator wrote. Checked: `mysqlrouter --bootstrap` succeeds against the
//! cluster the operator made; the Router pod's probes (its REST API) pass in the pod and the API
//! refuses a request without credentials; after every scenario (one check, [`after`]) the schema says what
//! the group is (every member's server UUID at its stable name, the group name, the operator's
//! router row) and the Router sends rw to the primary and ro to a secondary. Scenarios, under
//! the application's writes through the Router: the primary killed **while the operator is
//! down** (killed first: no relabel, no Service change) still moves writes to the new primary
//! through the Router, and a new operator replica heals the group afterwards; a switchover with
//! the operator running; a member leaving and joining (a secondary's volume lost: it comes back
//! as a new server, with a new UUID, cloned); a complete outage rebooted by the operator. The
//! writer asks `@@super_read_only` on every new connection and a probe opens a new rw
//! connection every 100 ms: neither lands on a read-only member outside a role change; every
//! acknowledged write is on every member at the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::env::{APP_PASSWORD, BOOTSTRAP_LIMIT, Env, STEP};
use crate::writer::{self, AppTls};

/// The operator's router row (`topology::metadata::OPERATOR_ROUTER_ID`).
const ROUTER_ID: &str = "1000000";
const SWITCHOVER: &str = "innodb-operator.io/switchover-to";

/// Whether the metadata on member `at` says what its group is: the cluster row carries the
/// group's name, one instance row per member (UUID and `host:port`), the router row exists.
async fn metadata_matches(env: &Env, at: u32) -> Result<(), String> {
    let q = |sql: &'static str| async move { env.root(at, sql).await };
    let members = q(
        "SELECT LOWER(MEMBER_ID), CONCAT(MEMBER_HOST, ':', MEMBER_PORT) \
         FROM performance_schema.replication_group_members ORDER BY 1",
    )
    .await?;
    let rows = q("SELECT LOWER(i.mysql_server_uuid), i.address FROM \
         mysql_innodb_cluster_metadata.v2_instances i JOIN \
         mysql_innodb_cluster_metadata.v2_gr_clusters c ON c.cluster_id = i.cluster_id \
         WHERE c.group_name = @@group_replication_group_name ORDER BY 1")
    .await?;
    if members != rows {
        return Err(format!("group {members:?} but metadata {rows:?}"));
    }
    let router = q(
        "SELECT router_name FROM mysql_innodb_cluster_metadata.v2_routers \
         WHERE router_id = 1000000",
    )
    .await?;
    if router.len() != 1 {
        return Err(format!("router row {ROUTER_ID}: {router:?}"));
    }
    Ok(())
}

/// The check after every scenario: the metadata matches the group, and the Router sends rw to
/// the primary and ro to a secondary.
async fn after(env: &Env, scenario: &str) {
    let at = env.primary();
    let what = format!("the metadata matches the group after {scenario}");
    env.until(&what, STEP, async |e| metadata_matches(e, at).await.is_ok())
        .await;
    routes_follow_roles(env).await;
    eprintln!(
        "{}: {what}; rw reaches the primary, ro a secondary",
        env.name
    );
}

/// `@@super_read_only` and `@@server_uuid` over a new connection to `addr`.
async fn whoami(addr: SocketAddr, tls: &AppTls) -> Result<(bool, String), String> {
    let work = async {
        let mut conn = mysql_async::Conn::new(writer::opts(addr, APP_PASSWORD, tls))
            .await
            .map_err(|e| e.to_string())?;
        let row: Option<(String, String)> = conn
            .query_first("SELECT @@super_read_only, @@server_uuid")
            .await
            .map_err(|e| e.to_string())?;
        let _ = conn.disconnect().await;
        let (ro, uuid) = row.ok_or("no row")?;
        Ok((ro == "1", uuid.to_lowercase()))
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| "no answer in 5 s".to_string())?
}

/// Opens a new connection to the Router's rw port every 100 ms and keeps every answer that came
/// from a read-only member.
struct RwProbe {
    stop: Arc<AtomicBool>,
    /// When a new rw connection reached a read-only member, and its UUID.
    wrong: Arc<Mutex<Vec<(Instant, String)>>>,
    answers: Arc<Mutex<usize>>,
    task: tokio::task::JoinHandle<()>,
}

impl RwProbe {
    fn start(addr: SocketAddr, tls: AppTls) -> RwProbe {
        let stop = Arc::new(AtomicBool::new(false));
        let wrong = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(0));
        let started = Instant::now();
        let task = {
            let (stop, wrong, answers) = (stop.clone(), wrong.clone(), answers.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if let Ok((read_only, uuid)) = whoami(addr, &tls).await {
                        *answers.lock().unwrap() += 1;
                        if read_only {
                            let at = started.elapsed().as_secs_f64();
                            eprintln!("rw probe: {at:.1} s: reached read-only {uuid}");
                            wrong.lock().unwrap().push((Instant::now(), uuid));
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        RwProbe {
            stop,
            wrong,
            answers,
            task,
        }
    }

    async fn stop(self) -> (usize, Vec<(Instant, String)>) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let answers = *self.answers.lock().unwrap();
        let wrong = self.wrong.lock().unwrap().clone();
        (answers, wrong)
    }
}

async fn uuid_of(env: &Env, ordinal: u32) -> String {
    env.root(ordinal, "SELECT LOWER(@@server_uuid)")
        .await
        .expect("uuid")[0][0]
        .clone()
        .expect("a uuid")
}

/// rw reaches the primary, ro a secondary, through the Router's metadata cache.
async fn routes_follow_roles(env: &Env) {
    let primary = uuid_of(env, env.primary()).await;
    let rw = env.router();
    let ro = SocketAddr::new(rw.ip(), 6447);
    env.until(
        "rw reaches the primary and ro a secondary",
        STEP,
        async |_| {
            matches!(whoami(rw, &env.app_tls).await, Ok((false, ref u)) if *u == primary)
                && matches!(whoami(ro, &env.app_tls).await, Ok((true, ref u)) if *u != primary)
        },
    )
    .await;
}

/// The primary killed while the operator is down: nothing relabels the pods or moves the rw
/// Service, so only the Router's metadata cache can move the writes. (A paused operator is no
/// substitute: it finds its lease lost when it wakes and exits, to be restarted as a standby.)
/// Returns the window of the role change: the kill to the first commit after it.
async fn kill_primary_while_the_operator_is_stopped(
    env: &mut Env,
    w: &writer::Writer,
) -> (Instant, Instant) {
    let old = env.primary();
    let old_uuid = uuid_of(env, old).await;
    env.operator.signal("KILL");
    let killed = Instant::now();
    env.kubelet.pods().members.kill(old, libc::SIGKILL);
    eprintln!(
        "{}: primary {old} ({old_uuid}) killed, the operator down",
        env.name
    );
    let first = env
        .first_commit_after(
            w,
            killed,
            "a write is accepted again through the Router, the operator stopped",
        )
        .await;
    env.time(
        "metadata cache, operator stopped: kill -9 primary -> first commit through the Router",
        first - killed,
    );
    let labels = env.roles.primaries();
    assert_eq!(
        labels,
        vec![format!("{}-{old}", env.name)],
        "the stopped operator relabelled nothing: writes moved through the Router alone"
    );
    let cp = crate::support::control_plane().expect("the control plane runs");
    env.operator = crate::support::chart::operator(cp, &env.admin, &env.ns).await;
    env.until(
        "the old primary is back and the cluster healthy",
        STEP * 2,
        async |e| e.healthy(3).await,
    )
    .await;
    env.time(
        "metadata cache: kill -9 primary -> cluster healthy (operator stopped for the failover)",
        killed.elapsed(),
    );
    (killed, first)
}

/// A switchover the user asks for (the annotation), with the operator running; measured as
/// the longest time without a commit through the Router. Returns the window of the role change:
/// the request to the first commit once the new primary is labelled.
async fn switchover(env: &mut Env, w: &writer::Writer) -> (Instant, Instant) {
    let target = (env.primary() + 1) % 3;
    let pod = format!("{}-{target}", env.name);
    let asked = Instant::now();
    env.annotate(SWITCHOVER, Some(&target.to_string())).await;
    eprintln!("{}: switchover to {target} asked", env.name);
    env.until("the switchover is done", STEP, async |e| {
        e.roles.primaries() == [pod.clone()] && e.healthy(3).await && !e.annotated(SWITCHOVER).await
    })
    .await;
    let before = w.acked().len();
    env.until(
        "a write is accepted after the switchover",
        STEP,
        async |_| w.acked().len() > before,
    )
    .await;
    let done = Instant::now();
    env.time(
        "metadata cache: switchover -> longest write pause through the Router",
        w.longest_pause(asked, done),
    );
    (asked, done)
}

/// `mysqlrouter --bootstrap` against the cluster the operator made, run in the Router pod with
/// root (an account that may create users): it succeeds and registers itself in the metadata.
async fn router_bootstrap(env: &Env) {
    let primary = env.roles.ip(&format!("{}-{}", env.name, env.primary()));
    let primary = primary.expect("the primary's IP");
    let host = "bootstrap-check";
    let command = vec![
        "mysqlrouter".to_string(),
        "--bootstrap".to_string(),
        format!("root:{}@{primary}:3306", env.root_password),
        "--directory".to_string(),
        "/tmp/bootstrap".to_string(),
        "--report-host".to_string(),
        host.to_string(),
    ];
    let started = Instant::now();
    let output = env
        .exec_router("bootstrap", command, Duration::from_secs(120))
        .await
        .unwrap_or_else(|e| panic!("mysqlrouter --bootstrap against the operator's cluster: {e}"));
    let configured = format!("configured for the InnoDB Cluster '{}'", env.name);
    assert!(output.contains(&configured), "{output}");
    let rows = env
        .root(
            env.primary(),
            "SELECT COUNT(*) FROM mysql_innodb_cluster_metadata.v2_routers \
             WHERE address = 'bootstrap-check'",
        )
        .await
        .expect("the router rows");
    assert_eq!(rows[0][0].as_deref(), Some("1"), "{output}");
    eprintln!(
        "{}: mysqlrouter --bootstrap succeeded in {:.1} s",
        env.name,
        started.elapsed().as_secs_f64()
    );
}

/// The Router pod's probes (the REST API on its loopback, behind the realm the operator
/// configured) run in the pod as the kubelet would: readiness and liveness pass; the same API
/// without the credentials is refused (401).
async fn rest_probes(env: &Env) {
    let run = |args: &[&str]| {
        let mut command = vec![
            "bash".to_string(),
            "/etc/mysqlrouter/probe-router.sh".into(),
        ];
        command.extend(args.iter().map(|a| a.to_string()));
        command
    };
    let limit = Duration::from_secs(10);
    for (name, args) in [("readiness", &[][..]), ("liveness", &["live"][..])] {
        env.exec_router(name, run(args), limit)
            .await
            .unwrap_or_else(|e| panic!("the Router's {name} probe: {e}"));
    }
    let anonymous = "exec 3<>/dev/tcp/127.0.0.1/8443; printf 'GET /api/20190715/router/status \
                     HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3; \
                     head -c 12 <&3";
    let reply = env
        .exec_router(
            "anonymous",
            vec!["bash".into(), "-c".into(), anonymous.into()],
            limit,
        )
        .await
        .unwrap_or_else(|e| panic!("the REST API without credentials: {e}"));
    assert!(
        reply.contains("HTTP/1.1 401"),
        "the REST API answered without credentials: {reply}"
    );
    eprintln!(
        "{}: the Router's REST probes pass; without credentials 401",
        env.name
    );
}

/// A member leaving and joining: a secondary's volume lost (its pod stopped, its claim gone,
/// the pod started again on an empty one), so it comes back as a new server with a new UUID
/// and joins by clone; the metadata drops the old instance row and adds the new one.
async fn member_replaced(env: &mut Env) {
    let primary = env.primary();
    let target = env
        .members()
        .iter()
        .map(|m| m.0)
        .find(|&o| o != primary)
        .expect("a secondary");
    let old = uuid_of(env, target).await;
    {
        let mut pods = env.kubelet.pods();
        pods.held.insert(target);
        pods.members.kill(target, libc::SIGKILL);
    }
    let lost = Instant::now();
    env.until("the secondary's container stopped", STEP, async |e| {
        !e.kubelet.pods().members.is_running(target)
    })
    .await;
    {
        let mut pods = env.kubelet.pods();
        let data = pods.members.volume_path(target, "data");
        std::fs::remove_dir_all(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
        pods.members
            .recreate_pod(target)
            .unwrap_or_else(|e| panic!("member {target} on an empty volume: {e}"));
        pods.held.remove(&target);
    }
    eprintln!("{}: member {target} ({old}) lost its volume", env.name);
    env.until(
        "the member is back with a new UUID, ONLINE in the group, the cluster healthy",
        STEP * 2,
        async |e| {
            // Until the group expels the old incarnation it still lists it ONLINE.
            let Ok(new) = e.root(target, "SELECT LOWER(@@server_uuid)").await else {
                return false;
            };
            let new = new[0][0].clone().unwrap_or_default();
            let online = e
                .root(
                    e.primary(),
                    "SELECT LOWER(MEMBER_ID) FROM performance_schema.replication_group_members \
                     WHERE MEMBER_STATE = 'ONLINE'",
                )
                .await
                .unwrap_or_default();
            let listed = |u: &str| online.iter().any(|r| r[0].as_deref() == Some(u));
            new != old && listed(&new) && !listed(&old) && e.healthy(3).await
        },
    )
    .await;
    env.time(
        "volume lost: member back as a new server, cluster healthy",
        lost.elapsed(),
    );
}

/// The complete outage of `crate::complete_outage` (every member killed, back one by one);
/// returns its window.
async fn outage(env: &mut Env) -> (Instant, Instant) {
    let from = Instant::now();
    crate::complete_outage(env).await;
    (from, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_cache_router_follows_the_group_through_every_scenario() {
    let spec = json!({
        "instances": 3,
        "router": {"instances": 1, "mode": "metadataCache"},
    });
    let Some(mut env) = Env::start("grm", spec).await else {
        return;
    };
    env.until("the cluster is healthy", BOOTSTRAP_LIMIT, async |e| {
        e.healthy(3).await
    })
    .await;
    let created = env.started.elapsed();
    env.time("bootstrap: MySQLCluster created to healthy", created);
    env.create_application().await;
    after(&env, "the bootstrap").await;
    router_bootstrap(&env).await;
    rest_probes(&env).await;
    let w = env.start_writer().await;
    let probe = RwProbe::start(env.router(), env.app_tls.clone());
    let mut role_changes = vec![kill_primary_while_the_operator_is_stopped(&mut env, &w).await];
    after(&env, "the failover").await;
    role_changes.push(switchover(&mut env, &w).await);
    after(&env, "the switchover").await;
    member_replaced(&mut env).await;
    after(&env, "a member left and joined").await;
    role_changes.push(outage(&mut env).await);
    after(&env, "the complete outage").await;
    let before = w.acked().len();
    env.until("writes are accepted after the reboot", STEP, async |_| {
        w.acked().len() > before
    })
    .await;
    let (answers, wrong) = probe.stop().await;
    assert!(answers > 50, "the rw probe got only {answers} answers");
    let (connections, writer_wrong) = w.read_only_connections();
    // Measured on Router 9.7.4: during a switchover the old primary turns read-only a moment
    // before Router hears of the new role, and a new rw connection can land on it then (its
    // writes fail with the read-only error; none is accepted by a non-primary); after a kill -9
    // the restarted server answers read-only at the old primary's address until it is
    // expelled. Outside a role change, never.
    let during = |at: Instant| {
        role_changes
            .iter()
            .any(|(from, to)| at >= *from && at <= *to)
    };
    let outside: Vec<Instant> = wrong
        .iter()
        .map(|w| w.0)
        .chain(writer_wrong.iter().copied())
        .filter(|at| !during(*at))
        .collect();
    assert!(
        outside.is_empty(),
        "rw connections reached read-only members outside a role change: probe {wrong:?}, \
         writer {writer_wrong:?}"
    );
    eprintln!(
        "{}: rw probe: {answers} connections, {} reached a read-only member; writer: \
         {connections} connections, {} read-only; each during a role change",
        env.name,
        wrong.len(),
        writer_wrong.len()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = w.stop().await;
    env.check_writes(&acked).await;
}
