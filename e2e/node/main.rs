//! The real-node tier: everything of a user's first day, on one real node of this machine
//! (`testenv.sh up --node`: kubelet, containerd, runc, the bridge CNI plugin, kube-proxy,
//! CoreDNS) with images built here (`e2e/lib/build-images.sh`: the operator, MySQL 9.7.4 and
//! Router from Debian's packages). No harness plays any part of Kubernetes:
//!
//! - `helm install` of the chart: the operator's two replicas run as pods and one leads;
//! - `kubectl apply` of `config/samples/mysqlcluster-local.yaml` in a namespace enforcing the
//!   restricted Pod Security Standard, `kubectl wait --for=condition=Ready`: three members ONLINE
//!   (asked of the servers themselves), two routers Ready;
//! - DNS: the SRV records of the routers and the members through CoreDNS; a client in a pod finds
//!   the routers with `mysql --dns-srv-name`; the `C` and `C-ro` Services (kube-proxy) reach the
//!   primary and a secondary, `C-router-lb` the Router's read-write and read-only ports;
//! - failures through the whole stack while an application account commits numbered rows
//!   through the `C-router-lb` Service: the primary's mysqld killed (`kill -9` in its
//!   container), the primary's pod deleted, the node going down hard and coming back (every
//!   member restarts: a complete outage the operator reboots the group from). After each the
//!   cluster is Ready again with three members ONLINE; afterwards every acknowledged row is on
//!   every member and no two pods were ever labelled primary.
//!
//! Needs root, the node's binaries and images (`e2e/lib/install-testenv.sh --node`); under
//! `CI=true` a missing one is a failure. The measured times are printed (`--nocapture`).

// Shared with the operator-level real-MySQL tier, which uses all of them.
#[allow(dead_code)]
#[path = "../operator-mysql97/roles.rs"]
mod roles;
#[path = "../support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "../operator-mysql97/writer.rs"]
mod writer;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mysql_async::prelude::Queryable;

use roles::Roles;
use support::ControlPlane;
use writer::Writer;

const NS: &str = "shop";
const CLUSTER: &str = "orders";
const OPERATOR_NS: &str = "innodb-operator";
const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/samples/mysqlcluster-local.yaml"
);
const MEMBERS: usize = 3;
const APP_PASSWORD: &str = "app-Secret-node";
/// Generous bounds for a shared 2-core machine; the measured times are printed.
const READY_LIMIT: Duration = Duration::from_secs(600);
const STEP: Duration = Duration::from_secs(300);

/// The sample cluster on the real node, and what the test watches.
struct Env {
    cp: &'static ControlPlane,
    admin: Client,
    roles: Roles,
    root_password: String,
    timings: Vec<(String, Duration)>,
}

/// `kubectl ARGS` (the release's own kubectl) against the node's control plane: its stdout, or
/// a message with its stderr.
fn kubectl(cp: &ControlPlane, args: &[&str]) -> Result<String, String> {
    run(cp.command("kubectl").args(args))
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{:?} failed ({}): {}{}",
            cmd.get_args().collect::<Vec<_>>(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `query` on `addr` as `user`; every column as text.
async fn sql(
    addr: SocketAddr,
    user: &str,
    password: &str,
    query: &str,
) -> Result<Vec<Vec<String>>, String> {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false);
    let work = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| e.to_string())?;
        let rows: Vec<mysql_async::Row> = conn.query(query).await.map_err(|e| e.to_string())?;
        let _ = conn.disconnect().await;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                (0..r.len())
                    .map(|i| {
                        r.take::<Option<String>, _>(i)
                            .flatten()
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .collect())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| format!("{addr}: no answer in 10 s"))?
}

async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Env {
    fn time(&mut self, what: &str, d: Duration) {
        eprintln!("node: {what}: {:.1} s", d.as_secs_f64());
        self.timings.push((what.to_string(), d));
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        kubectl(self.cp, args)
    }

    async fn service_ip(&self, name: &str) -> IpAddr {
        let svc = Api::<Service>::namespaced(self.admin.clone(), NS)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Service {name}: {e}"));
        svc.spec
            .and_then(|s| s.cluster_ip)
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("Service {name} has no cluster IP"))
    }

    /// The member pods' names and addresses (running ones only).
    async fn members(&self) -> Vec<(String, IpAddr)> {
        let pods = Api::<Pod>::namespaced(self.admin.clone(), NS)
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=database"
            )))
            .await
            .expect("list member pods");
        pods.items
            .iter()
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
                Some((p.name_any(), ip))
            })
            .collect()
    }

    async fn root(&self, ip: IpAddr, query: &str) -> Result<Vec<Vec<String>>, String> {
        sql(
            SocketAddr::new(ip, 3306),
            "root",
            &self.root_password,
            query,
        )
        .await
    }

    /// Every member ONLINE in one group, asked of each server, with exactly the pod the group
    /// calls primary labelled primary; the primary's name.
    async fn healthy(&self) -> Option<String> {
        let members = self.members().await;
        if members.len() != MEMBERS {
            return None;
        }
        let mut primary = None;
        for (_, ip) in &members {
            let rows = self
                .root(
                    *ip,
                    "SELECT MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE \
                     FROM performance_schema.replication_group_members",
                )
                .await
                .ok()?;
            let online = rows.iter().filter(|r| r[1] == "ONLINE").count();
            if online != MEMBERS || rows.len() != MEMBERS {
                return None;
            }
            primary = rows
                .iter()
                .find(|r| r[2] == "PRIMARY")
                .map(|r| r[0].split('.').next().unwrap_or_default().to_string());
        }
        let primary = primary?;
        (self.roles.primaries() == vec![primary.clone()]).then_some(primary)
    }

    /// Ready condition and three members ONLINE; the time it took from `since`.
    async fn ready_again(&mut self, what: &str, since: Instant) -> String {
        let primary = until(what, STEP, async || self.healthy().await).await;
        self.kubectl(&[
            "-n",
            NS,
            "wait",
            &format!("mysqlcluster/{CLUSTER}"),
            "--for=condition=Ready",
            "--timeout=300s",
        ])
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", self.describe()));
        self.time(what, since.elapsed());
        primary
    }

    fn describe(&self) -> String {
        let pods = self
            .kubectl(&["-n", NS, "get", "mysqlcluster,pods", "-o", "wide"])
            .unwrap_or_else(|e| e);
        let events = self
            .kubectl(&["-n", NS, "get", "events", "--sort-by=.lastTimestamp"])
            .unwrap_or_else(|e| e);
        let operator = self
            .kubectl(&[
                "-n",
                OPERATOR_NS,
                "logs",
                "deployment/innodb-operator",
                "--tail=40",
            ])
            .unwrap_or_else(|e| e);
        format!("{pods}\n{events}\noperator (last lines):\n{operator}")
    }

    /// Writes accepted again through the Router after `cut`, or a failure with the whole state.
    async fn writes_back(&mut self, what: &str, w: &Writer, cut: Instant) {
        let back = until(what, STEP, async || w.accepted_again_after(cut)).await;
        self.time(what, back - cut);
    }
}

/// The chart with the image built here, into its own namespace; waits until its two replicas
/// run and one of them leads.
fn install_chart(cp: &ControlPlane) -> Result<(), String> {
    run(cp
        .command("helm")
        .args(["install", "innodb-operator", support::chart::CHART])
        .args(["--namespace", OPERATOR_NS, "--create-namespace"])
        .args(["--set", "image.repository=innodb-operator"])
        .args(["--set", "image.tag=local", "--set", "image.pullPolicy=Never"])
        .args(["--wait", "--timeout", "300s"]))
    .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_cluster_on_a_real_node() {
    let Some(cp) = support::node_control_plane() else {
        return;
    };
    let admin = cp.admin().await;

    // The operator from its chart, as pods.
    let started = Instant::now();
    install_chart(cp).unwrap_or_else(|e| panic!("helm install: {e}"));
    let leaders = kubectl(
        cp,
        &[
            "-n",
            OPERATOR_NS,
            "get",
            "lease",
            "innodb-operator",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ],
    );
    assert!(
        leaders.as_ref().is_ok_and(|h| !h.is_empty()),
        "no operator replica leads: {leaders:?}"
    );
    let operator_pods = Api::<Pod>::namespaced(admin.clone(), OPERATOR_NS)
        .list(&ListParams::default())
        .await
        .expect("list operator pods");
    assert_eq!(operator_pods.items.len(), 2, "the chart runs two replicas");

    // The sample, in a namespace that enforces the restricted Pod Security Standard.
    let mut ns = Namespace::default();
    ns.metadata.name = Some(NS.to_string());
    ns.metadata.labels = Some(
        [(
            "pod-security.kubernetes.io/enforce".to_string(),
            "restricted".to_string(),
        )]
        .into(),
    );
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create the namespace");
    let mut env = Env {
        cp,
        roles: Roles::watch(admin.clone(), NS, CLUSTER),
        admin: admin.clone(),
        root_password: String::new(),
        timings: Vec::new(),
    };
    env.time("helm install -> operator leads", started.elapsed());
    let applied = Instant::now();
    env.kubectl(&["-n", NS, "apply", "-f", SAMPLE])
        .unwrap_or_else(|e| panic!("kubectl apply: {e}"));
    let wait = env.kubectl(&[
        "-n",
        NS,
        "wait",
        &format!("mysqlcluster/{CLUSTER}"),
        "--for=condition=Ready",
        &format!("--timeout={}s", READY_LIMIT.as_secs()),
    ]);
    if let Err(e) = wait {
        panic!("the sample never became Ready: {e}\n{}", env.describe());
    }
    env.time("kubectl apply -> Ready", applied.elapsed());
    let secret = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(&format!("{CLUSTER}-root"))
        .await
        .expect("the root Secret");
    env.root_password = String::from_utf8(
        secret.data.expect("data")["password"].0.clone(),
    )
    .expect("utf-8 password");
    let primary = until("three members ONLINE", STEP, async || env.healthy().await).await;
    let routers = until("two routers Ready", STEP, async || {
        let pods = Api::<Pod>::namespaced(admin.clone(), NS)
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=router"
            )))
            .await
            .ok()?;
        let ready = pods
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        (ready == 2).then_some(ready)
    })
    .await;
    eprintln!("node: {MEMBERS} members ONLINE (primary {primary}), {routers} routers Ready");

    dns_and_services(&mut env, &primary).await;
    failures_under_writes(&mut env).await;

    eprintln!("node: timings:");
    for (what, d) in &env.timings {
        eprintln!("node:   {what}: {:.1} s", d.as_secs_f64());
    }
}

/// SRV records through CoreDNS, a client finding the routers by SRV from a pod, and each
/// Service through kube-proxy.
async fn dns_and_services(env: &mut Env, primary: &str) {
    let domain = format!("{NS}.svc.cluster.local");
    for (record, port, count) in [
        (format!("_mysql._tcp.{CLUSTER}-router.{domain}"), 6446, 2),
        (format!("_mysqlx._tcp.{CLUSTER}-instances.{domain}"), 33060, MEMBERS),
    ] {
        let out = run(Command::new("dig").args(["+short", "@10.0.0.10", &record, "SRV"]))
            .unwrap_or_else(|e| panic!("dig {record}: {e}"));
        let targets: Vec<&str> = out
            .lines()
            .filter(|l| l.split_whitespace().nth(2) == Some(&port.to_string()))
            .collect();
        assert_eq!(
            targets.len(),
            count,
            "SRV {record}: {count} targets on port {port} expected, CoreDNS answered:\n{out}"
        );
    }
    // A client in a pod (a member's container has the mysql client) finds the routers by SRV.
    let via_srv = env
        .kubectl(&[
            "-n",
            NS,
            "exec",
            &format!("{CLUSTER}-0"),
            "-c",
            "mysql",
            "--",
            "mysql",
            &format!("--dns-srv-name=_mysql._tcp.{CLUSTER}-router.{domain}"),
            "-uroot",
            &format!("-p{}", env.root_password),
            "-N",
            "-e",
            "SELECT @@hostname",
        ])
        .unwrap_or_else(|e| panic!("mysql --dns-srv-name from a pod: {e}"));
    assert_eq!(
        via_srv.trim(),
        primary,
        "the routers found by SRV lead to the primary"
    );
    // Each Service through kube-proxy, from the node.
    let query = "SELECT @@hostname, @@super_read_only";
    for (service, port, want_primary) in [
        (CLUSTER.to_string(), 3306, true),
        (format!("{CLUSTER}-ro"), 3306, false),
        (format!("{CLUSTER}-router-lb"), 6446, true),
        (format!("{CLUSTER}-router-lb"), 6447, false),
    ] {
        let addr = SocketAddr::new(env.service_ip(&service).await, port);
        let rows = sql(addr, "root", &env.root_password, query)
            .await
            .unwrap_or_else(|e| panic!("through Service {service}:{port}: {e}"));
        let (host, read_only) = (&rows[0][0], &rows[0][1]);
        assert_eq!(
            (host == primary, read_only == "0"),
            (want_primary, want_primary),
            "Service {service}:{port} reached {host} (super_read_only {read_only}); primary is {primary}"
        );
    }
}

/// The primary's mysqld killed, its pod deleted, the node down hard, under writes through the
/// Router Service; then every acknowledged row on every member.
async fn failures_under_writes(env: &mut Env) {
    let primary = env.healthy().await.expect("healthy before the failures");
    let primary_ip = env
        .members()
        .await
        .into_iter()
        .find(|m| m.0 == primary)
        .expect("the primary pod")
        .1;
    for q in writer::setup_statements(APP_PASSWORD) {
        env.root(primary_ip, &q)
            .await
            .unwrap_or_else(|e| panic!("{q}: {e}"));
    }
    let lb = SocketAddr::new(env.service_ip(&format!("{CLUSTER}-router-lb")).await, 6446);
    let w = Writer::start(lb, APP_PASSWORD);
    until("the writer's first rows", STEP, async || {
        (w.acked().len() >= 20).then_some(())
    })
    .await;

    // kill -9 of the primary's mysqld inside its container (the container's shell is pid 1).
    let cut = Instant::now();
    env.kubectl(&[
        "-n",
        NS,
        "exec",
        &primary,
        "-c",
        "mysql",
        "--",
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline)\" in mysqld*) kill -9 ${p#/proc/};; esac; done",
    ])
    .unwrap_or_else(|e| panic!("kill mysqld in {primary}: {e}"));
    env.writes_back("mysqld killed -> first commit through the Router Service", &w, cut)
        .await;
    let primary = env
        .ready_again("mysqld killed -> Ready, 3 ONLINE", cut)
        .await;

    // The primary's pod deleted.
    let cut = Instant::now();
    env.kubectl(&["-n", NS, "delete", "pod", &primary, "--wait=false"])
        .unwrap_or_else(|e| panic!("delete pod {primary}: {e}"));
    env.writes_back("pod deleted -> first commit through the Router Service", &w, cut)
        .await;
    env.ready_again("pod deleted -> Ready, 3 ONLINE", cut).await;

    // The node goes down hard and comes back: every member restarts.
    let cut = Instant::now();
    run(Command::new(support::TESTENV)
        .arg("node-restart")
        .arg(&env.cp.dir))
    .unwrap_or_else(|e| panic!("node restart: {e}"));
    env.writes_back("node restarted -> first commit through the Router Service", &w, cut)
        .await;
    env.ready_again("node restarted -> Ready, 3 ONLINE", cut).await;

    let acked = w.stop().await;
    check_rows(env, &acked).await;
}

/// Every acknowledged row on every member (all ONLINE by now); no two pods ever labelled primary.
async fn check_rows(env: &Env, acked: &[u64]) {
    assert!(!acked.is_empty(), "the writer had rows acknowledged");
    let acked: BTreeSet<u64> = acked.iter().copied().collect();
    for (name, ip) in env.members().await {
        // A secondary applies what the group certified a little later.
        let started = Instant::now();
        loop {
            let have: BTreeSet<u64> = env
                .root(ip, &format!("SELECT id FROM {}", writer::TABLE))
                .await
                .unwrap_or_else(|e| panic!("{name}: read the rows: {e}"))
                .iter()
                .filter_map(|r| r[0].parse().ok())
                .collect();
            let missing: Vec<u64> = acked.difference(&have).copied().collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{name} lacks {} acknowledged rows (first {:?})",
                missing.len(),
                &missing[..missing.len().min(10)]
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    let most = env.roles.most_primaries();
    assert!(most.len() <= 1, "pods {most:?} were labelled primary at once");
    eprintln!(
        "node: {} acknowledged rows on every member; at most one pod labelled primary",
        acked.len()
    );
}
