//! The operator itself against real MySQL 9.7 members: the operator binary of this build (run
//! with the chart's ServiceAccount) on the real control plane (`e2e/testenv`: kube-apiserver,
//! etcd, kube-controller-manager, scheduler, kwok nodes), and real members and a real MySQL
//! Router at the kwok pods' IPs, run by the harness's kubelet (`kubelet.rs`) from the pods the
//! StatefulSet and Deployment controllers create. An application account writes numbered rows
//! through the Router during the scenarios; afterwards every acknowledged row is on every ONLINE
//! member, every ONLINE member accepts the application's connections, and no two pods were ever
//! labelled primary. Scenarios: bootstrap from nothing on the MYSQL and on the XCOM stack; the
//! primary killed (`kill -9`, its container started again as a kubelet does); a complete outage
//! (every member killed, back one by one in random order: the operator reboots the group).
//!
//! Needs root, the control-plane binaries (`e2e/testenv/testenv.sh build`) and the MySQL 9.7
//! root filesystem (`e2e/lib/install-mysql97.sh`); under `CI=true` a missing one is a failure.
//! Run with `--test-threads=1` (each test runs a cluster of real servers).

#[path = "../realmysql/mod.rs"]
mod realmysql;
#[path = "../support/mod.rs"]
mod support;

mod kubelet;
mod proxy;
mod roles;
mod writer;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use mysql_async::prelude::Queryable;
use serde_json::json;

use kubelet::Kubelet;
use roles::Roles;
use support::operator::Operator;
use writer::Writer;

/// Generous bounds: the machine is shared and slow; the measured times are printed.
const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(120);
const APP_PASSWORD: &str = "app-Secret-9.7";

/// One cluster of real members managed by the operator, with what the test watches.
struct Env {
    name: String,
    ns: String,
    admin: Client,
    roles: Roles,
    kubelet: Kubelet,
    operator: Operator,
    root_password: String,
    started: Instant,
    timings: Vec<(String, Duration)>,
}

impl Env {
    /// A namespace, the operator watching it, the harness's kubelet, and the MySQLCluster
    /// `name` with `spec` applied; `None` when the tier is skipped (outside CI only).
    async fn start(name: &str, spec: serde_json::Value) -> Option<Env> {
        let rootfs = realmysql::rootfs()?;
        let cp = support::control_plane()?;
        let (admin, ns) = cp.namespace(&format!("real-{name}")).await;
        let operator = support::chart::operator(cp, &admin, &ns).await;
        let kubelet = Kubelet::start(&rootfs, cp.admin_config().await, &ns, name);
        let roles = Roles::watch(admin.clone(), &ns, name);
        let cluster: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("cluster object");
        let started = Instant::now();
        clusters(&admin, &ns)
            .create(&PostParams::default(), &cluster)
            .await
            .expect("create the MySQLCluster");
        let root_password = wait(&format!("{name}: the root Secret"), STEP, async || {
            let secret = Api::<Secret>::namespaced(admin.clone(), &ns)
                .get_opt(&format!("{name}-root"))
                .await
                .ok()??;
            String::from_utf8(secret.data?.get("password")?.0.clone()).ok()
        })
        .await;
        Some(Env {
            name: name.to_string(),
            ns,
            admin,
            roles,
            kubelet,
            operator,
            root_password,
            started,
            timings: Vec::new(),
        })
    }

    fn time(&mut self, what: &str, d: Duration) {
        eprintln!("TIMING {}: {what}: {:.1} s", self.name, d.as_secs_f64());
        self.timings.push((what.to_string(), d));
    }

    async fn phase(&self) -> Option<String> {
        let c = clusters(&self.admin, &self.ns).get(&self.name).await.ok()?;
        c.data["status"]["phase"].as_str().map(str::to_string)
    }

    /// The ready addresses of the rw Service's EndpointSlices.
    async fn rw_addresses(&self) -> Vec<String> {
        let slices = Api::<EndpointSlice>::namespaced(self.admin.clone(), &self.ns)
            .list(
                &ListParams::default().labels(&format!("kubernetes.io/service-name={}", self.name)),
            )
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        support::ready_addresses(&slices)
    }

    fn ordinal(&self, pod: &str) -> u32 {
        pod.rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .expect("member pod name")
    }

    /// The member pods running now: (ordinal, pod name, IP).
    fn members(&self) -> Vec<(u32, String, String)> {
        let pods = self.kubelet.pods();
        pods.running
            .iter()
            .filter(|(_, r)| r.kind == kubelet::Kind::Member)
            .map(|(n, r)| (r.ordinal, n.clone(), r.ip.clone()))
            .collect()
    }

    /// The Router pod's classic read-write port.
    fn router(&self) -> SocketAddr {
        let pods = self.kubelet.pods();
        let (_, r) = pods
            .running
            .iter()
            .find(|(_, r)| r.kind == kubelet::Kind::Router)
            .expect("a router pod runs");
        SocketAddr::new(r.ip.parse().expect("pod IP"), 6446)
    }

    /// `sql` as root over member `ordinal`'s socket (the test's own access), as text.
    async fn root(&self, ordinal: u32, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        let socket = self
            .kubelet
            .pods()
            .members
            .volume_path(ordinal, "run")
            .join("mysqld.sock");
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(socket.display().to_string()))
            .user(Some("root"))
            .pass(Some(self.root_password.clone()));
        let work = async {
            let mut conn = mysql_async::Conn::new(opts)
                .await
                .map_err(|e| e.to_string())?;
            let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(|e| e.to_string())?;
            let _ = conn.disconnect().await;
            Ok(realmysql::text_rows(rows))
        };
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .map_err(|_| "no answer in 10 s".to_string())?
    }

    /// Member `ordinal`'s own state in its group (`OFFLINE` when it is in none, `None` when it
    /// does not answer).
    async fn state(&self, ordinal: u32) -> Option<String> {
        let rows = self
            .root(
                ordinal,
                "SELECT IFNULL((SELECT MEMBER_STATE FROM performance_schema.replication_group_members \
                 WHERE MEMBER_ID = @@server_uuid), 'OFFLINE')",
            )
            .await
            .ok()?;
        rows.first()?.first()?.clone()
    }

    /// What the servers, the labels, the Service and the status say, for a failure message.
    async fn describe(&self) -> String {
        let mut out = format!(
            "phase {:?}; labels {:?}; rw Service selects {:?}\n",
            self.phase().await,
            self.roles.labels(),
            self.rw_addresses().await
        );
        for (o, name, ip) in self.members() {
            let group = self
                .root(
                    o,
                    "SELECT MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE FROM performance_schema.replication_group_members",
                )
                .await;
            out += &format!("  {name} at {ip}: {group:?}\n");
        }
        out
    }

    /// Polls until `done` holds (panics after `limit` with what everything says).
    async fn until(
        &self,
        what: &str,
        limit: Duration,
        done: impl AsyncFn(&Env) -> bool,
    ) -> Duration {
        let started = Instant::now();
        loop {
            if done(self).await {
                return started.elapsed();
            }
            if started.elapsed() > limit {
                panic!(
                    "{}: timed out after {limit:?} waiting until {what}:\n{}",
                    self.name,
                    self.describe().await
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The cluster is what a user calls healthy: status Ready, `size` members ONLINE in one
    /// group, exactly one pod labelled primary, and the rw Service selects that pod alone.
    async fn healthy(&self, size: usize) -> bool {
        if self.phase().await.as_deref() != Some("Ready") {
            return false;
        }
        let Ok([primary]) = <[String; 1]>::try_from(self.roles.primaries()) else {
            return false;
        };
        let Some(ip) = self.roles.ip(&primary) else {
            return false;
        };
        if self.rw_addresses().await != vec![ip] {
            return false;
        }
        let rows = self
            .root(
                self.ordinal(&primary),
                "SELECT MEMBER_STATE, MEMBER_ROLE, MEMBER_ID = @@server_uuid FROM performance_schema.replication_group_members",
            )
            .await
            .unwrap_or_default();
        let online = rows
            .iter()
            .filter(|r| r[0].as_deref() == Some("ONLINE"))
            .count();
        let self_primary = rows
            .iter()
            .any(|r| r[1].as_deref() == Some("PRIMARY") && r[2].as_deref() == Some("1"));
        online == size && rows.len() == size && self_primary
    }

    /// The primary pod's ordinal, as labelled.
    fn primary(&self) -> u32 {
        let Ok([p]) = <[String; 1]>::try_from(self.roles.primaries()) else {
            panic!(
                "{}: not exactly one pod labelled primary: {:?}",
                self.name,
                self.roles.labels()
            );
        };
        self.ordinal(&p)
    }

    /// The application's schema and account, created through the primary.
    async fn create_application(&self) {
        let primary = self.primary();
        for sql in writer::setup_statements(APP_PASSWORD) {
            self.root(primary, &sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// Starts the application's writer through the Router and waits for its first rows.
    async fn start_writer(&self) -> Writer {
        let router = self.router();
        let w = Writer::start(router, APP_PASSWORD);
        let started = Instant::now();
        while w.acked().len() < 20 {
            assert!(
                started.elapsed() < STEP,
                "{}: the writer got no 20 rows through the Router at {router} in {STEP:?} \
                 ({:?})\n{}",
                self.name,
                w.failures_since(started),
                self.describe().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        w
    }

    /// The writer's invariants: every acknowledged row is on every ONLINE member, every ONLINE
    /// member takes the application account's connections, no two pods were ever labelled
    /// primary.
    async fn check_writes(&mut self, acked: &[u64]) {
        assert!(!acked.is_empty(), "the writer had rows acknowledged");
        let acked: BTreeSet<u64> = acked.iter().copied().collect();
        let started = Instant::now();
        for (o, name, ip) in self.members() {
            if self.state(o).await.as_deref() != Some("ONLINE") {
                eprintln!("{name} is not ONLINE: its rows are not checked");
                continue;
            }
            // A secondary applies what the group certified a little later.
            loop {
                let rows = self
                    .root(o, &format!("SELECT id FROM {}", writer::TABLE))
                    .await
                    .unwrap_or_else(|e| panic!("{name}: read the rows: {e}"));
                let have: BTreeSet<u64> = rows
                    .iter()
                    .filter_map(|r| r[0].as_deref()?.parse().ok())
                    .collect();
                let missing: Vec<u64> = acked.difference(&have).copied().collect();
                if missing.is_empty() {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "{}: {name} lacks {} acknowledged rows (first {:?})",
                    self.name,
                    missing.len(),
                    &missing[..missing.len().min(10)]
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let addr = SocketAddr::new(ip.parse().expect("pod IP"), 3306);
            let mut conn = mysql_async::Conn::new(writer::opts(addr, APP_PASSWORD))
                .await
                .unwrap_or_else(|e| panic!("{name}: the application account cannot connect: {e}"));
            let n: Option<u64> = conn
                .query_first(format!("SELECT COUNT(*) FROM {}", writer::TABLE))
                .await
                .unwrap_or_else(|e| panic!("{name}: the application account cannot read: {e}"));
            assert!(n.unwrap_or(0) as usize >= acked.len());
            let _ = conn.disconnect().await;
        }
        let most = self.roles.most_primaries();
        assert!(
            most.len() <= 1,
            "{}: pods {most:?} were labelled primary at once",
            self.name
        );
        eprintln!(
            "{}: {} acknowledged rows on every ONLINE member, at most one primary labelled",
            self.name,
            acked.len()
        );
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // The control plane's directory goes with the test process; the operator's log stays.
        let kept = std::env::temp_dir().join(format!("iop-operator-mysql97-{}.log", self.name));
        if std::fs::copy(&self.operator.log, &kept).is_ok() {
            eprintln!(
                "{}: the operator's log is kept in {}",
                self.name,
                kept.display()
            );
        }
        if std::thread::panicking() {
            eprintln!(
                "===== {}: the harness's kubelet =====\n{}",
                self.name,
                self.kubelet.pods_events()
            );
            eprintln!(
                "===== {}: the operator's log ({}) =====\n{}",
                self.name,
                self.operator.log.display(),
                tail(&self.operator.log_text(), 300)
            );
        }
        for (what, d) in &self.timings {
            eprintln!(
                "TIMING {:<12} {what:<60} {:>6.1} s",
                self.name,
                d.as_secs_f64()
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn clusters(client: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn wait<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn spec(stack: &str, instances: u32) -> serde_json::Value {
    json!({
        "instances": instances,
        "groupCommunicationStack": stack,
        "router": {"instances": 1},
    })
}

/// Scenario 1: bootstrap from nothing; the others join; Ready, one primary labelled and
/// selected by the rw Service.
async fn bootstrap(env: &mut Env, size: usize) {
    let took = env
        .until("the cluster is healthy", BOOTSTRAP_LIMIT, async |e| {
            e.healthy(size).await
        })
        .await;
    let since_created = env.started.elapsed();
    env.time("bootstrap: MySQLCluster created to healthy", since_created);
    eprintln!(
        "{} healthy ({took:?} of waiting)\n{}",
        env.name,
        env.describe().await
    );
}

/// Scenario 2: kill -9 of the primary with the writer running: a new primary elected and
/// labelled, writes accepted again through the Router, the old primary back as a secondary.
async fn kill_primary(env: &mut Env, w: &Writer) {
    let old = env.primary();
    let old_pod = format!("{}-{old}", env.name);
    let killed = Instant::now();
    env.kubelet.pods().members.kill(old, libc::SIGKILL);
    let labelled = env
        .until(
            "another pod is labelled primary",
            STEP,
            async |e| matches!(e.roles.primaries().as_slice(), [p] if *p != old_pod),
        )
        .await;
    env.time("kill -9 primary: new primary labelled", labelled);
    env.until(
        "a write is accepted again through the Router",
        STEP,
        async |_| w.accepted_again_after(killed).is_some(),
    )
    .await;
    let first = w
        .accepted_again_after(killed)
        .expect("a write after the kill");
    env.time(
        "kill -9 primary: first commit accepted again through the Router",
        first - killed,
    );
    for (from, to, n, what) in w.outcomes_since(killed) {
        eprintln!(
            "{}: writer {from:>6.1} s .. {to:>6.1} s after the kill: {n:>5} x {what}",
            env.name
        );
    }
    let back = env
        .until(
            "the old primary is back and the cluster healthy",
            STEP * 2,
            async |e| e.healthy(3).await,
        )
        .await;
    env.time(
        "kill -9 primary: old primary back, cluster healthy",
        killed.elapsed(),
    );
    let _ = back;
}

/// Scenario 3: a complete outage (every member killed at once, as in a power loss) with the
/// writer running; the members come back one by one in random order, and the operator reboots
/// the group from the member with the GTID superset.
async fn complete_outage(env: &mut Env) {
    use rand::seq::SliceRandom;
    let mut ordinals: Vec<u32> = env.members().iter().map(|m| m.0).collect();
    {
        let mut pods = env.kubelet.pods();
        pods.held.extend(ordinals.iter().copied());
        for &o in &ordinals {
            pods.members.kill(o, libc::SIGKILL);
        }
    }
    let stopped = Instant::now();
    ordinals.shuffle(&mut rand::rng());
    eprintln!(
        "{}: every member killed; back in the order {ordinals:?}",
        env.name
    );
    for o in &ordinals {
        tokio::time::sleep(Duration::from_secs(3)).await;
        env.kubelet.pods().held.remove(o);
    }
    env.until("the group is rebooted and healthy", STEP * 2, async |e| {
        e.healthy(3).await
    })
    .await;
    env.time("complete outage: kill to healthy again", stopped.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_stack_bootstrap_primary_killed_and_complete_outage_under_writes() {
    let Some(mut env) = Env::start("gr", spec("MYSQL", 3)).await else {
        return;
    };
    bootstrap(&mut env, 3).await;
    env.create_application().await;
    let w = env.start_writer().await;
    kill_primary(&mut env, &w).await;
    complete_outage(&mut env).await;
    let before = w.acked().len();
    env.until("writes are accepted after the reboot", STEP, async |_| {
        w.acked().len() > before
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = w.stop().await;
    env.check_writes(&acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xcom_stack_bootstrap_under_writes() {
    // kwok's pod network, 198.18.0.0/15, is outside RFC 1918: the allowlist AUTOMATIC refused
    // every member there; the operator now allowlists the members by name.
    let spec = spec("XCOM", 3);
    let Some(mut env) = Env::start("grx", spec).await else {
        return;
    };
    bootstrap(&mut env, 3).await;
    env.create_application().await;
    let w = env.start_writer().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = w.stop().await;
    env.check_writes(&acked).await;
}
