//! Failover latency on the real control plane: from a Group Replication role change, announced
//! by a notice on the members' X protocol ports, until the rw Service's EndpointSlice selects the
//! new primary — through the operator binary of this build (installed by the chart, running as
//! its ServiceAccount), the real kube-apiserver, and kube-controller-manager's EndpointSlice
//! controller.
//!
//! The members are fakes on the pods' IPs (kwok gives the pods addresses in 198.18.0.0/15; the
//! benchmark adds them to `lo`, which needs CAP_NET_ADMIN): each answers the operator's SQL reads
//! from one simulated group (opensrv-mysql) and speaks the X protocol with PLAIN and Group
//! Replication notices, both over TLS with the certificate a member pod mounts: the cluster's TLS
//! Secret, signed by the CA the operator made (its sessions trust that CA only). The group's name
//! is the one in the cluster's my.cnf, and the InnoDB Cluster metadata reads as the operator keeps
//! it, so its metadata pass writes nothing. Rounds cycle through a switchover (all members stay ONLINE), a failover
//! (the primary's pod is gone and refuses connections) and a partition (connections to the
//! primary hang); the others elect the next member, and the old primary comes back by
//! auto-rejoin before the next round.
//!
//! Then, in the same run, leader failover rounds (`leader.rs`): `kill -9` of the leading operator
//! replica while a standby waits, until the standby's first reconcile and its relabel of a
//! primary elected meanwhile.
//!
//!   cargo bench --bench failover_control_plane                 # 40 rounds + 10 leader rounds
//!   FAILOVER_ROUNDS=10 FAILOVER_LEADER_ROUNDS=2 cargo bench --profile dev --bench failover_control_plane
//!
//! Needs the control-plane binaries (`e2e/testenv/testenv.sh build`).

#[path = "../../support/mod.rs"]
mod support;
// Shared with the X protocol tests, which use the rest of it.
#[allow(dead_code)]
#[path = "../../xproto/server.rs"]
mod xserver;

mod group;
mod leader;
mod sql_face;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use innodb_operator::cluster::build::mycnf::MYCNF_KEY;
use innodb_operator::cluster::dereference::group_name_in_mycnf;
use innodb_operator::xproto::messages::GroupReplicationChange;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::watch;

use group::{Group, Registration, Status};
use xserver::{Behavior, FakeXServer, TestPki};

const CLUSTER: &str = "bench";
const MEMBERS: usize = 3;
const ROUND_LIMIT: Duration = Duration::from_secs(30);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Values seen by a watch, each with the instant it arrived.
struct Timeline<T> {
    events: Mutex<Vec<(Instant, T)>>,
    count: watch::Sender<usize>,
}

impl<T: Clone> Timeline<T> {
    fn new() -> Arc<Self> {
        Arc::new(Timeline {
            events: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        })
    }

    fn push(&self, value: T) {
        let mut events = self.events.lock().unwrap();
        events.push((Instant::now(), value));
        self.count.send_replace(events.len());
    }

    fn latest(&self) -> Option<T> {
        self.events.lock().unwrap().last().map(|(_, v)| v.clone())
    }

    /// Every value seen so far.
    fn all(&self) -> Vec<T> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// When the first value at or after `since` satisfied `pred`; `Err(what)` when none did
    /// within [`ROUND_LIMIT`].
    async fn first(
        &self,
        since: Instant,
        what: &str,
        pred: impl Fn(&T) -> bool,
    ) -> Result<Instant, String> {
        let mut seen = self.count.subscribe();
        let deadline = tokio::time::Instant::from_std(since + ROUND_LIMIT);
        loop {
            let hit = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|(at, v)| *at >= since && pred(v))
                .map(|(at, _)| *at);
            if let Some(at) = hit {
                return Ok(at);
            }
            if tokio::time::timeout_at(deadline, seen.changed())
                .await
                .is_err()
            {
                return Err(format!("{what}: not within {} s", ROUND_LIMIT.as_secs()));
            }
        }
    }
}

/// Follows objects of kind `K` selected by `labels`, pushing `view(all objects)` on each change.
fn follow<K, T>(
    api: Api<K>,
    labels: &str,
    timeline: Arc<Timeline<T>>,
    view: impl Fn(&[Arc<K>]) -> T + Send + 'static,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    T: Clone + PartialEq + Send + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().labels(labels)),
    )
    .default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut listed = false;
        while let Some(event) = stream.next().await {
            listed |= matches!(event, Ok(watcher::Event::InitDone));
            if event.is_ok() && listed {
                let value = view(&store.state());
                if timeline.latest().as_ref() != Some(&value) {
                    timeline.push(value);
                }
            }
        }
    });
}

/// The ready addresses of the rw Service's EndpointSlices.
fn ready_addresses(slices: &[Arc<EndpointSlice>]) -> Vec<String> {
    support::ready_addresses(slices.iter().map(|s| s.as_ref()))
}

/// Pod name → role label.
fn role_labels(pods: &[Arc<Pod>]) -> BTreeMap<String, Option<String>> {
    pods.iter()
        .map(|p| {
            let role = p.labels().get("innodb-operator.io/role").cloned();
            (p.name_any(), role)
        })
        .collect()
}

/// Addresses added to `lo` for the fake members; removed when dropped.
struct LoopbackAddresses(Vec<IpAddr>);

impl LoopbackAddresses {
    fn add(ips: &[IpAddr]) -> Self {
        let mut added = LoopbackAddresses(Vec::new());
        for ip in ips {
            let out = Command::new("ip")
                .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .output()
                .expect("run `ip` (Debian package iproute2)");
            assert!(
                out.status.success()
                    || String::from_utf8_lossy(&out.stderr).contains("File exists"),
                "cannot add the pod address {ip} to lo (needs root / CAP_NET_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            added.0.push(*ip);
        }
        added
    }
}

impl Drop for LoopbackAddresses {
    fn drop(&mut self) {
        for ip in &self.0 {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
                .output();
        }
    }
}

/// The MySQLClusters of `ns`.
fn clusters(admin: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    );
    Api::namespaced_with(admin.clone(), ns, &resource)
}

async fn wait_for<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The member pods' IPs, once every pod runs and has one.
async fn pod_ips(client: &Client, ns: &str) -> Vec<IpAddr> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        "member pods running with an IP",
        Duration::from_secs(120),
        async || {
            (0..MEMBERS)
                .map(async |i| {
                    let pod = pods.get_opt(&format!("{CLUSTER}-{i}")).await.ok()??;
                    pod.status?.pod_ip?.parse().ok()
                })
                .collect::<futures::future::JoinAll<_>>()
                .await
                .into_iter()
                .collect::<Option<Vec<IpAddr>>>()
        },
    )
    .await
}

/// The values of `keys` in the Secret `name`, once the operator has created it.
async fn secret_texts<const N: usize>(
    client: &Client,
    ns: &str,
    name: &str,
    keys: [&str; N],
) -> [String; N] {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("the Secret {name}"),
        Duration::from_secs(60),
        async || {
            let data = secrets.get_opt(name).await.ok()??.data?;
            let text = |k: &str| {
                data.get(k)
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            };
            keys.iter()
                .map(|k| text(k))
                .collect::<Option<Vec<_>>>()?
                .try_into()
                .ok()
        },
    )
    .await
}

/// The group name in the members' my.cnf (the operator's ConfigMap `C-config`).
async fn group_name(client: &Client, ns: &str) -> String {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    wait_for(
        "the members' my.cnf with a group name",
        Duration::from_secs(60),
        async || {
            let data = maps
                .get_opt(&format!("{CLUSTER}-config"))
                .await
                .ok()??
                .data?;
            let name = group_name_in_mycnf(data.get(MYCNF_KEY)?)?;
            Some(name.to_string())
        },
    )
    .await
}

/// What a member's pod mounts of the TLS Secret the operator made (`C-tls`, signed by its CA
/// `C-ca`): the X protocol's identity and the SQL port's.
async fn member_tls(client: &Client, ns: &str) -> (TestPki, Arc<sql_face::ServerConfig>) {
    let [ca, cert, key] = secret_texts(
        client,
        ns,
        &format!("{CLUSTER}-tls"),
        ["ca.crt", "tls.crt", "tls.key"],
    )
    .await;
    (
        TestPki::from_pem(&ca, &cert, &key),
        sql_face::tls_config(&cert, &key),
    )
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The primary moves; every member stays ONLINE.
    Switchover,
    /// The primary's pod is gone: its addresses refuse connections.
    Failover,
    /// The primary is cut off: connections to it open but nothing answers.
    Partition,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Switchover, Kind::Failover, Kind::Partition];
}

struct Sample {
    kind: Kind,
    /// Notice → the new primary's pod labelled `primary` (the operator's part).
    label: Duration,
    /// Notice → the rw Service's EndpointSlice holds exactly the new primary.
    endpoints: Duration,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut values: Vec<Duration>) {
    values.sort_unstable();
    println!(
        "  {name:<44} n={:<3} p50 {:>6.0} ms  p90 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms",
        values.len(),
        percentile(&values, 0.5),
        percentile(&values, 0.9),
        percentile(&values, 0.99),
        percentile(&values, 1.0)
    );
}

struct Members {
    group: Arc<Mutex<Group>>,
    ips: Vec<IpAddr>,
    x: Vec<Option<FakeXServer>>,
    user: String,
    password: String,
    /// The members' certificate, from the cluster's TLS Secret.
    pki: TestPki,
}

impl Members {
    async fn start_x(&mut self, i: usize) {
        let addr = SocketAddr::new(self.ips[i], 33060);
        let (user, password, pki) = (&self.user, &self.password, self.pki.clone());
        self.x[i] = Some(FakeXServer::start_on(addr, Behavior::Normal, user, password, pki).await);
    }

    /// Sends notices from every member still ONLINE; returns how many sessions received them.
    fn announce(&self, kinds: &[GroupReplicationChange]) -> usize {
        let (online, view) = {
            let g = self.group.lock().unwrap();
            (g.online(), g.view_id())
        };
        let mut delivered = 0;
        for i in online {
            if let Some(x) = &self.x[i] {
                for kind in kinds {
                    delivered += x.push_notice(*kind as u32, &view);
                }
            }
        }
        delivered
    }

    /// Waits until the operator's monitor holds a notice session on every ONLINE member.
    async fn monitored(&self) {
        let online = self.group.lock().unwrap().online();
        for i in online {
            let x = self.x[i].as_ref().expect("an ONLINE member serves X");
            x.wait_for("the operator's notice session", |s| s.notice_sessions >= 1)
                .await;
        }
    }
}

/// Fails the benchmark with what the operator logged as a warning or error.
fn fail(operator: &support::operator::Operator, what: String) -> ! {
    let log = operator.log_text();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| !l.contains("xproto::monitor"))
        .collect();
    let tail = &problems[problems.len().saturating_sub(30)..];
    panic!(
        "{what}\noperator warnings and errors (last {}):\n{}",
        tail.len(),
        tail.join("\n")
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(bench());
}

// One run through phases that share the fake members, the watches and the operator: the
// role-change rounds, the leader rounds, then the checks and the report.
async fn bench() {
    let rounds: usize = env_or("FAILOVER_ROUNDS", 40);
    let Some(cp) = support::control_plane() else {
        return;
    };
    let (admin, ns) = cp.namespace("failover-bench").await;
    let operator = support::chart::operator(cp, &admin, &ns).await;

    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
        "metadata": {"name": CLUSTER},
        "spec": {"instances": MEMBERS, "router": {"instances": 1}}
    }))
    .unwrap();
    clusters(&admin, &ns)
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create the MySQLCluster");

    let ips = pod_ips(&admin, &ns).await;
    let [user, password] = secret_texts(
        &admin,
        &ns,
        &format!("{CLUSTER}-admin"),
        ["username", "password"],
    )
    .await;
    let (pki, sql_tls) = member_tls(&admin, &ns).await;
    let _addresses = LoopbackAddresses::add(&ips);
    let hosts = (0..MEMBERS)
        .map(|i| format!("{CLUSTER}-{i}.{CLUSTER}-instances.{ns}.svc.cluster.local"))
        .collect();
    let registration = Registration {
        cluster_name: CLUSTER.into(),
        router_name: format!("{CLUSTER}-router"),
        router_address: format!("{CLUSTER}-router.{ns}.svc.cluster.local"),
    };
    let name = group_name(&admin, &ns).await;
    let group = Arc::new(Mutex::new(Group::new(name, registration, hosts)));
    let mut members = Members {
        group: group.clone(),
        ips: ips.clone(),
        x: (0..MEMBERS).map(|_| None).collect(),
        user,
        password,
        pki,
    };
    let mut sql = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        sql.push(
            sql_face::serve(
                SocketAddr::new(*ip, 3306),
                i,
                group.clone(),
                sql_tls.clone(),
            )
            .await,
        );
        members.start_x(i).await;
    }

    let endpoints = Timeline::new();
    follow(
        Api::<EndpointSlice>::namespaced(admin.clone(), &ns),
        &format!("kubernetes.io/service-name={CLUSTER}"),
        endpoints.clone(),
        ready_addresses,
    );
    let labels = Timeline::new();
    follow(
        Api::<Pod>::namespaced(admin.clone(), &ns),
        &format!("app.kubernetes.io/instance={CLUSTER}"),
        labels.clone(),
        role_labels,
    );

    let pod = |i: usize| format!("{CLUSTER}-{i}");
    let primary_is = |i: usize| {
        let name = pod(i);
        move |l: &BTreeMap<String, Option<String>>| {
            l.get(&name).cloned().flatten().as_deref() == Some("primary")
        }
    };
    let serves = |i: usize| {
        let ip = ips[i].to_string();
        move |a: &Vec<String>| a.len() == 1 && a[0] == ip
    };
    let start = Instant::now() - ROUND_LIMIT / 2;
    endpoints
        .first(start, "the rw Service selects member 0 at first", serves(0))
        .await
        .unwrap_or_else(|e| fail(&operator, e));
    members.monitored().await;
    println!(
        "cluster ready, operator monitoring {MEMBERS} members; {rounds} rounds (operator: {})",
        support::operator::BINARY
    );

    let mut samples = Vec::new();
    for round in 0..rounds {
        let kind = Kind::ALL[round % Kind::ALL.len()];
        let (old, new) = {
            let mut g = group.lock().unwrap();
            match kind {
                Kind::Switchover => {
                    let (old, new) = (g.primary, g.next_primary());
                    g.set_primary(new);
                    (old, new)
                }
                Kind::Failover => g.fail_primary(Status::Down),
                Kind::Partition => g.fail_primary(Status::Partitioned),
            }
        };
        if kind != Kind::Switchover {
            members.x[old] = None; // its notice session drops
        }
        let notices = match kind {
            Kind::Switchover => vec![GroupReplicationChange::MemberRoleChange],
            Kind::Failover | Kind::Partition => vec![
                GroupReplicationChange::MembershipViewChange,
                GroupReplicationChange::MemberRoleChange,
            ],
        };
        let t0 = Instant::now();
        let delivered = members.announce(&notices);
        assert!(
            delivered > 0,
            "round {round}: no notice session to deliver to"
        );
        let labelled = labels
            .first(
                t0,
                &format!("round {round}: {} labelled primary", pod(new)),
                primary_is(new),
            )
            .await
            .unwrap_or_else(|e| fail(&operator, e));
        let selected = endpoints
            .first(
                t0,
                &format!("round {round}: rw Service selects {}", pod(new)),
                serves(new),
            )
            .await
            .unwrap_or_else(|e| fail(&operator, e));
        samples.push(Sample {
            kind,
            label: labelled - t0,
            endpoints: selected - t0,
        });
        if kind != Kind::Switchover {
            group.lock().unwrap().rejoin(old);
            members.start_x(old).await;
            members.announce(&[GroupReplicationChange::MembershipViewChange]);
            let back = pod(old);
            labels
                .first(
                    Instant::now() - ROUND_LIMIT / 2,
                    &format!("{back} back as secondary"),
                    |l| l.get(&back).cloned().flatten().as_deref() == Some("secondary"),
                )
                .await
                .unwrap_or_else(|e| fail(&operator, e));
        }
        members.monitored().await;
    }
    let (leader_samples, operator) = leader::rounds(
        cp,
        &admin,
        &ns,
        &members,
        &labels,
        operator,
        env_or("FAILOVER_LEADER_ROUNDS", 10),
    )
    .await;

    let most = endpoints.all().iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        most <= 1,
        "the rw Service selected {most} pods at once (two primaries?)"
    );
    println!(
        "role change (X notice) -> rw Service EndpointSlice selects the new primary \
         (real kube-apiserver and kube-controller-manager, the operator binary of this build):"
    );
    for kind in Kind::ALL {
        let of = |f: fn(&Sample) -> Duration| {
            samples
                .iter()
                .filter(|s| s.kind == kind)
                .map(f)
                .collect::<Vec<_>>()
        };
        report(
            &format!("{kind:?}: notice -> pod labelled"),
            of(|s| s.label),
        );
        report(
            &format!("{kind:?}: notice -> EndpointSlice"),
            of(|s| s.endpoints),
        );
    }
    report(
        "all: notice -> EndpointSlice (target p99 <= 1000 ms)",
        samples.iter().map(|s| s.endpoints).collect(),
    );
    if !leader_samples.is_empty() {
        println!(
            "kill -9 of the leading replica, a standby waiting (lease duration {} s, renew \
             deadline {} s), at the moment the spec changes and the group elects another primary:",
            support::operator::LEASE_DURATION,
            support::operator::LEASE_RENEW_DEADLINE
        );
        report(
            "leader killed -> standby's first reconcile",
            leader_samples.iter().map(|s| s.reconcile).collect(),
        );
        report(
            "leader killed -> new primary labelled",
            leader_samples.iter().map(|s| s.relabel).collect(),
        );
    }
    // After the report, so that a failed run still shows what it measured.
    let unexpected = group.lock().unwrap().unexpected.clone();
    assert!(
        unexpected.is_empty(),
        "the operator sent statements the fake members do not know: {unexpected:?}"
    );
    println!("  the rw Service never selected more than {most} pod; 0 unexpected statements");
    for task in sql {
        task.abort();
    }
    assert!(
        operator.stop().await,
        "the operator did not stop cleanly on SIGTERM"
    );
}
