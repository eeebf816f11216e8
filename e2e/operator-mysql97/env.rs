//! One cluster of real members managed by the operator binary, with what the tests watch and
//! ask: its status, the pods' role labels, the rw Service's endpoints, each member's own view
//! over its socket as root, and the application's writes checked on every ONLINE member.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use mysql_async::prelude::Queryable;
use serde_json::json;

use crate::kubelet::{self, Kubelet};
use crate::roles::Roles;
use crate::support::operator::Operator;
use crate::writer::{self, Writer};
use crate::{realmysql, support};

/// Generous bounds: the machine is shared and slow; the measured times are printed.
pub const BOOTSTRAP_LIMIT: Duration = Duration::from_secs(300);
pub const STEP: Duration = Duration::from_secs(120);
pub const APP_PASSWORD: &str = "app-Secret-9.7";

/// One cluster of real members managed by the operator, with what the test watches.
pub struct Env {
    pub name: String,
    pub ns: String,
    pub admin: Client,
    pub roles: Roles,
    pub kubelet: Kubelet,
    pub operator: Operator,
    pub root_password: String,
    /// What the application's sessions verify (the cluster's CA, from its TLS Secret).
    pub app_tls: writer::AppTls,
    /// cert-manager, when the spec names its issuer (running until the test ends).
    pub _cert_manager: Option<support::cert_manager::CertManager>,
    pub started: Instant,
    pub timings: Vec<(String, Duration)>,
}

impl Env {
    /// A namespace, the operator watching it, the harness's kubelet, and the MySQLCluster
    /// `name` with `spec` applied; `None` when the tier is skipped (outside CI only).
    pub async fn start(name: &str, spec: serde_json::Value) -> Option<Env> {
        let rootfs = realmysql::rootfs()?;
        let cp = support::control_plane()?;
        let (admin, ns) = cp.namespace(&format!("real-{name}")).await;
        let operator = support::chart::operator(cp, &admin, &ns).await;
        let kubelet = Kubelet::start(&rootfs, cp.admin_config().await, &ns, name);
        let roles = Roles::watch(admin.clone(), &ns, name);
        // A spec that names a cert-manager issuer gets cert-manager and a CA Issuer of that name.
        let issuer = spec["tls"]["issuerRef"]["name"].as_str();
        let cert_manager = match issuer {
            Some(issuer) => {
                let cm = support::cert_manager::CertManager::start(cp, &admin).await;
                support::cert_manager::ca_issuer(&admin, &ns, issuer).await;
                Some(cm)
            }
            None => None,
        };
        let tls_secret = match issuer {
            Some(_) => format!("{name}-member-tls"),
            None => format!("{name}-tls"),
        };
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
            String::from_utf8(secret_key(&admin, &ns, &format!("{name}-root"), "password").await?)
                .ok()
        })
        .await;
        let ca_pem = wait(&format!("{name}: the cluster CA"), STEP, async || {
            secret_key(&admin, &ns, &tls_secret, "ca.crt").await
        })
        .await;
        let app_tls = writer::AppTls {
            ca_pem,
            name: format!("{name}.{ns}.svc"),
        };
        Some(Env {
            name: name.to_string(),
            ns,
            admin,
            roles,
            kubelet,
            operator,
            root_password,
            app_tls,
            _cert_manager: cert_manager,
            started,
            timings: Vec::new(),
        })
    }

    pub fn time(&mut self, what: &str, d: Duration) {
        eprintln!("TIMING {}: {what}: {:.1} s", self.name, d.as_secs_f64());
        self.timings.push((what.to_string(), d));
    }

    pub async fn phase(&self) -> Option<String> {
        let c = clusters(&self.admin, &self.ns).get(&self.name).await.ok()?;
        c.data["status"]["phase"].as_str().map(str::to_string)
    }

    /// The ready addresses of the rw Service's EndpointSlices.
    pub async fn rw_addresses(&self) -> Vec<String> {
        let slices = Api::<EndpointSlice>::namespaced(self.admin.clone(), &self.ns)
            .list(
                &ListParams::default().labels(&format!("kubernetes.io/service-name={}", self.name)),
            )
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        support::ready_addresses(&slices)
    }

    pub fn ordinal(&self, pod: &str) -> u32 {
        pod.rsplit('-')
            .next()
            .and_then(|o| o.parse().ok())
            .expect("member pod name")
    }

    /// The member pods running now: (ordinal, pod name, IP).
    pub fn members(&self) -> Vec<(u32, String, String)> {
        let pods = self.kubelet.pods();
        pods.running
            .iter()
            .filter(|(_, r)| r.kind == kubelet::Kind::Member)
            .map(|(n, r)| (r.ordinal, n.clone(), r.ip.clone()))
            .collect()
    }

    /// The running Router pod's ordinal in the harness and its IP.
    fn router_pod(&self) -> (u32, String) {
        let pods = self.kubelet.pods();
        let (_, r) = pods
            .running
            .iter()
            .find(|(_, r)| r.kind == kubelet::Kind::Router)
            .expect("a router pod runs");
        (r.ordinal, r.ip.clone())
    }

    /// The Router pod's classic read-write port.
    pub fn router(&self) -> SocketAddr {
        SocketAddr::new(self.router_pod().1.parse().expect("pod IP"), 6446)
    }

    /// Runs `command` in the Router pod (as `kubectl exec` would) and waits up to `limit`;
    /// its output, or why it failed with that output.
    pub async fn exec_router(
        &self,
        name: &str,
        command: Vec<String>,
        limit: Duration,
    ) -> Result<String, String> {
        let ordinal = self.router_pod().0;
        let (mut child, log) = self.kubelet.pods().routers.exec(ordinal, name, command)?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                break child.wait().map_err(|e| e.to_string())?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if status.success() {
            Ok(output)
        } else {
            Err(format!("{name} ended with {status}:\n{output}"))
        }
    }

    /// `sql` as root over member `ordinal`'s socket (the test's own access), as text.
    pub async fn root(&self, ordinal: u32, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        self.root_session(ordinal, &[sql]).await
    }

    /// `statements` in order in one root session over member `ordinal`'s socket; the rows of
    /// the last one, as text.
    pub async fn root_session(
        &self,
        ordinal: u32,
        statements: &[&str],
    ) -> Result<Vec<Vec<Option<String>>>, String> {
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
            let mut rows: Vec<mysql_async::Row> = Vec::new();
            for sql in statements {
                rows = conn.query(*sql).await.map_err(|e| format!("{sql}: {e}"))?;
            }
            let _ = conn.disconnect().await;
            Ok(realmysql::text_rows(rows))
        };
        tokio::time::timeout(Duration::from_secs(30), work)
            .await
            .map_err(|_| "no answer in 30 s".to_string())?
    }

    /// Member `ordinal`'s group as it sees it: (host, state, role) of every member listed.
    pub async fn view(&self, ordinal: u32) -> Result<Vec<Vec<Option<String>>>, String> {
        self.root(
            ordinal,
            "SELECT MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE FROM performance_schema.replication_group_members",
        )
        .await
    }

    /// The status condition `type_`: (status is True, reason, message).
    pub async fn condition(&self, type_: &str) -> Option<(bool, String, String)> {
        let c = clusters(&self.admin, &self.ns).get(&self.name).await.ok()?;
        let found = c.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)?
            .clone();
        Some((
            found["status"] == "True",
            found["reason"].as_str()?.to_string(),
            found["message"].as_str().unwrap_or_default().to_string(),
        ))
    }

    /// A JSON merge patch of the MySQLCluster (its spec, its annotations).
    pub async fn patch(&self, patch: serde_json::Value) {
        clusters(&self.admin, &self.ns)
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("{}: patch {patch}: {e}", self.name));
    }

    /// Sets annotation `key` of the MySQLCluster (removes it with `None`).
    pub async fn annotate(&self, key: &str, value: Option<&str>) {
        self.patch(json!({"metadata": {"annotations": {key: value}}}))
            .await;
    }

    /// Whether annotation `key` is on the MySQLCluster.
    pub async fn annotated(&self, key: &str) -> bool {
        clusters(&self.admin, &self.ns)
            .get(&self.name)
            .await
            .is_ok_and(|c| c.metadata.annotations.is_some_and(|a| a.contains_key(key)))
    }

    /// Member `ordinal`'s own state in its group (`OFFLINE` when it is in none, `None` when it
    /// does not answer).
    pub async fn state(&self, ordinal: u32) -> Option<String> {
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
    pub async fn describe(&self) -> String {
        let mut out = format!(
            "phase {:?}; Ready {:?}; labels {:?}; rw Service selects {:?}\n",
            self.phase().await,
            self.condition("Ready").await,
            self.roles.labels(),
            self.rw_addresses().await
        );
        for (o, name, ip) in self.members() {
            let group = self.view(o).await;
            out += &format!("  {name} at {ip}: {group:?}\n");
        }
        out
    }

    /// Polls until `done` holds (panics after `limit` with what everything says).
    pub async fn until(
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

    /// Waits until `w` commits again through the Router after its writes failed at or after
    /// `since`; when that first commit was acknowledged.
    pub async fn first_commit_after(&self, w: &Writer, since: Instant, what: &str) -> Instant {
        self.until(what, STEP, async |_| {
            w.accepted_again_after(since).is_some()
        })
        .await;
        w.accepted_again_after(since)
            .expect("a commit after the failed writes")
    }

    /// The cluster is what a user calls healthy: status Ready, `size` members ONLINE in one
    /// group, exactly one pod labelled primary, and the rw Service selects that pod alone.
    pub async fn healthy(&self, size: usize) -> bool {
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
    pub fn primary(&self) -> u32 {
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
    pub async fn create_application(&self) {
        let primary = self.primary();
        for sql in writer::setup_statements(APP_PASSWORD) {
            self.root(primary, &sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    /// Starts the application's writer through the Router and waits for its first rows.
    pub async fn start_writer(&self) -> Writer {
        let router = self.router();
        let w = Writer::start(router, APP_PASSWORD, &self.app_tls);
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
    pub async fn check_writes(&mut self, acked: &[u64]) {
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
            let mut conn = mysql_async::Conn::new(writer::opts(addr, APP_PASSWORD, &self.app_tls))
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

pub fn clusters(client: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

/// `key` of Secret `name`, once it exists.
async fn secret_key(admin: &Client, ns: &str, name: &str, key: &str) -> Option<Vec<u8>> {
    let secret = Api::<Secret>::namespaced(admin.clone(), ns)
        .get_opt(name)
        .await
        .ok()??;
    Some(secret.data?.remove(key)?.0)
}

pub async fn wait<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
