//! Footprint of the operator on a real control plane: for 1, 10 and 100 MySQLClusters, the
//! operator's peak RSS (and what a member adds to it) and CPU seconds, the time until every
//! cluster is reconciled (a Ready condition for its current generation), how long its reconciles
//! worked, the apiserver's ClusterIP allocations and the CPU it and etcd used meanwhile, and the
//! operator's API writes per minute once settled.
//!
//!   cargo bench --bench footprint                 # sizes 1,10,100, 60 s steady window
//!   FOOTPRINT_SIZES=1,10 FOOTPRINT_STEADY_SECS=30 cargo bench --bench footprint
//!   TESTENV_NODES=6 FOOTPRINT_SIZES=1,10,100,1000 cargo bench --bench footprint
//!
//! 1,000 clusters are 4,000 pods: kwok's nodes take 1,000 each, so give it more than the 3
//! default nodes. `FOOTPRINT_DEADLINE_SECS` (900) bounds each size's wait.
//!
//! Needs the control-plane binaries (`e2e/testenv/testenv.sh build`).

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::json;
use support::chart::{RELEASE_NS, chart, operator};
use support::{ControlPlane, control_plane};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident set (KiB) and CPU seconds (user + system) of a process, from /proc.
fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    (hwm, cpu_secs(pid))
}

/// CPU seconds (user + system) of a process so far, from /proc.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may contain spaces): utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks as f64 / 100.0
}

/// The pid of one of the control plane's components ("kube-apiserver", "etcd").
fn component_pid(cp: &ControlPlane, name: &str) -> u32 {
    let file = cp.dir.join("pids").join(format!("{name}.pid"));
    std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pid in {}", file.display()))
}

/// The operator's writes into `ns` so far, each as "verb resource[/subresource]".
fn operator_writes(cp: &ControlPlane, user: &str, ns: &str) -> Vec<String> {
    cp.audit_writes()
        .into_iter()
        .filter(|e| e.user.username == user)
        .filter_map(|e| {
            let r = e.object_ref?;
            (r.namespace.as_deref() == Some(ns)).then(|| {
                let sub = r.subresource.map(|s| format!("/{s}")).unwrap_or_default();
                format!("{} {}{sub}", e.verb, r.resource)
            })
        })
        .collect()
}

/// "3x patch mysqlclusters/status, 1x create events" for a list of writes.
fn summary(writes: &[String]) -> String {
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for w in writes {
        *counts.entry(w).or_default() += 1;
    }
    counts
        .iter()
        .map(|(w, n)| format!("{n}x {w}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the apiserver counted so far.
#[derive(Clone, Copy, Default)]
struct Apiserver {
    /// ClusterIP allocations and the seconds they took. Its allocator holds one lock across each
    /// allocation, the create of the IPAddress object included (`MetaAllocator` in Kubernetes
    /// 1.36), so however many clients create Services at once, new ClusterIPs come one at a
    /// time: the seconds are a floor on their time.
    allocations: f64,
    allocation_secs: f64,
    /// Requests of ServiceAccounts (flow schema `service-accounts`): the operator's, as the
    /// control plane's own components use the admin certificate.
    operator_requests: f64,
}

impl Apiserver {
    async fn read(admin: &kube::Client) -> Apiserver {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = admin
            .request_text(request)
            .await
            .expect("the apiserver's /metrics");
        let total = |name: &str, label: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name) && l.contains(label))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let allocation = "kube_apiserver_clusterip_allocator_allocation_duration_seconds";
        Apiserver {
            allocations: total(&format!("{allocation}_count"), ""),
            allocation_secs: total(&format!("{allocation}_sum"), ""),
            operator_requests: total(
                "apiserver_flowcontrol_dispatched_requests_total",
                "flow_schema=\"service-accounts\"",
            ),
        }
    }

    fn since(self, before: Apiserver) -> Apiserver {
        Apiserver {
            allocations: self.allocations - before.allocations,
            allocation_secs: self.allocation_secs - before.allocation_secs,
            operator_requests: self.operator_requests - before.operator_requests,
        }
    }
}

async fn reconciled(api: &Api<DynamicObject>) -> usize {
    let Ok(list) = api.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|c| {
            let status = c.data.get("status");
            let current =
                status.and_then(|s| s["observedGeneration"].as_i64()) == c.metadata.generation;
            let ready = status
                .and_then(|s| s["conditions"].as_array())
                .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready"));
            current && ready
        })
        .count()
}

const MEMBERS: usize = 3;
/// Clusters created at once.
const CREATORS: usize = 16;
const ROUTERS: usize = 1;

async fn running_pods(pods: &Api<Pod>) -> usize {
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .count()
}

struct Row {
    clusters: usize,
    created_secs: f64,
    /// Seconds until every cluster was reconciled, or how many were by the deadline.
    reconciled_by: Result<f64, usize>,
    /// Seconds the reconciles worked (summed over the ones at work at once).
    busy_secs: f64,
    /// Reconciles a cluster until then.
    reconciles_per_cluster: f64,
    /// CPU seconds the apiserver and etcd used until then.
    apiserver_cpu_secs: f64,
    etcd_cpu_secs: f64,
    /// The operator's API requests per reconcile until then (its reads, and its watches and
    /// lease renewals too: they weigh at small sizes).
    requests_per_reconcile: f64,
    /// What the apiserver counted for this size until then.
    apiserver: Apiserver,
    /// Until every pod ran; `None` when they did not by the deadline.
    settled_secs: Option<f64>,
    peak_rss_mib: f64,
    cpu_secs: f64,
    writes_per_min: f64,
    initial_writes: usize,
}

/// Creates `clusters` MySQLClusters, CREATORS at a time, as many clients would: one after the
/// other, the 1,000 creates alone took 72-114 s of a loaded apiserver's round trips.
async fn create_clusters(api: &Api<DynamicObject>, clusters: usize) {
    futures::stream::iter(0..clusters)
        .map(|i| {
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
                "metadata": {"name": format!("c{i:03}")},
                "spec": {"instances": MEMBERS, "router": {"instances": ROUTERS}}
            }))
            .unwrap();
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &obj)
                    .await
                    .expect("create cluster")
            }
        })
        .buffer_unordered(CREATORS)
        .for_each(|_| async {})
        .await;
}

async fn measure(cp: &ControlPlane, clusters: usize, steady: Duration) -> Row {
    let (admin, ns) = cp.namespace(&format!("bench-{clusters}")).await;
    let user = format!("system:serviceaccount:{RELEASE_NS}:{}", chart(cp));
    let op = operator(cp, &admin, &ns).await;
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), &ns, &resource);
    let before = Apiserver::read(&admin).await;
    let (apiserver_pid, etcd_pid) = (
        component_pid(cp, "kube-apiserver"),
        component_pid(cp, "etcd"),
    );
    let cpu_before = (cpu_secs(apiserver_pid), cpu_secs(etcd_pid));
    let start = Instant::now();
    create_clusters(&api, clusters).await;
    let created_secs = start.elapsed().as_secs_f64();
    let limit = env_or("FOOTPRINT_DEADLINE_SECS", 900);
    let deadline = start + Duration::from_secs(limit);
    let reconciled_by = loop {
        let done = reconciled(&api).await;
        if done == clusters {
            break Ok(start.elapsed().as_secs_f64());
        }
        if Instant::now() >= deadline {
            eprintln!("{done} of {clusters} clusters reconciled in {limit} s");
            break Err(done);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let apiserver = Apiserver::read(&admin).await.since(before);
    let apiserver_cpu_secs = cpu_secs(apiserver_pid) - cpu_before.0;
    let etcd_cpu_secs = cpu_secs(etcd_pid) - cpu_before.1;
    let metric = |name| op.metric(name);
    let busy_secs = metric("innodb_operator_reconcile_duration_seconds_sum").await;
    let reconciles = metric("innodb_operator_reconciles_total").await;
    // Steady state starts when every pod runs (the status no longer has news to report), or at
    // the deadline: kwok's nodes hold 1,000 pods each (`TESTENV_NODES`, 3 by default).
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let want = clusters * (MEMBERS + ROUTERS);
    let mut settled_secs = None;
    while Instant::now() < deadline {
        if running_pods(&pods).await >= want {
            settled_secs = Some(start.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if settled_secs.is_none() {
        eprintln!("{want} pods not Running in {limit} s: more kwok nodes? (TESTENV_NODES)");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let initial_writes = operator_writes(cp, &user, &ns).len();
    tokio::time::sleep(steady).await;
    let steady_writes = operator_writes(cp, &user, &ns).split_off(initial_writes);
    if !steady_writes.is_empty() {
        eprintln!(
            "{clusters} clusters, steady-state writes: {}",
            summary(&steady_writes)
        );
    }
    let (hwm_kib, cpu_secs) = usage(op.pid());
    drop(op);
    Row {
        clusters,
        created_secs,
        reconciled_by,
        busy_secs: busy_secs.unwrap_or_default(),
        reconciles_per_cluster: reconciles.unwrap_or_default() / clusters as f64,
        apiserver_cpu_secs,
        etcd_cpu_secs,
        requests_per_reconcile: apiserver.operator_requests / reconciles.unwrap_or(1.0).max(1.0),
        apiserver,
        settled_secs,
        peak_rss_mib: hwm_kib as f64 / 1024.0,
        cpu_secs,
        writes_per_min: steady_writes.len() as f64 * 60.0 / steady.as_secs_f64(),
        initial_writes,
    }
}

#[tokio::main]
async fn main() {
    let cp = control_plane().expect(
        "the footprint benchmark needs the control plane: run e2e/testenv/testenv.sh build",
    );
    let sizes: Vec<usize> = std::env::var("FOOTPRINT_SIZES")
        .unwrap_or_else(|_| "1,10,100".into())
        .split(',')
        .map(|s| {
            s.trim()
                .parse()
                .expect("FOOTPRINT_SIZES: comma-separated counts")
        })
        .collect();
    let steady = Duration::from_secs(env_or("FOOTPRINT_STEADY_SECS", 60));
    let mut rows = Vec::new();
    for n in sizes {
        let row = measure(cp, n, steady).await;
        eprintln!("measured {n} clusters");
        rows.push(row);
    }
    println!("operator: {}", support::operator::BINARY);
    println!(
        "| clusters | created (s) | all reconciled (s) | reconciles busy (s) | reconciles a cluster | requests a reconcile | apiserver / etcd CPU until then (s) | ClusterIPs (their allocation, s) | all pods Running (s) | writes until settled | peak RSS (MiB) | KiB per member | CPU (s) | steady writes/min |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let base = rows.first().map(|r| (r.clusters, r.peak_rss_mib));
    for r in rows {
        println!(
            "| {} | {:.1} | {} | {:.0} | {:.1} | {:.1} | {:.0} / {:.0} | {} ({:.0}) | {} | {} | {:.1} | {} | {:.2} | {:.1} |",
            r.clusters,
            r.created_secs,
            match r.reconciled_by {
                Ok(s) => format!("{s:.1}"),
                Err(done) => format!("- ({done} by the deadline)"),
            },
            r.busy_secs,
            r.reconciles_per_cluster,
            r.requests_per_reconcile,
            r.apiserver_cpu_secs,
            r.etcd_cpu_secs,
            r.apiserver.allocations,
            r.apiserver.allocation_secs,
            r.settled_secs
                .map_or_else(|| "-".to_string(), |s| format!("{s:.1}")),
            r.initial_writes,
            r.peak_rss_mib,
            per_member(base, &r),
            r.cpu_secs,
            r.writes_per_min
        );
    }
}

/// The peak RSS a member adds, from the smallest size measured to this one: "-" for that size.
fn per_member(base: Option<(usize, f64)>, r: &Row) -> String {
    match base {
        Some((clusters, rss)) if r.clusters > clusters => {
            let members = ((r.clusters - clusters) * MEMBERS) as f64;
            format!("{:.1}", (r.peak_rss_mib - rss) * 1024.0 / members)
        }
        _ => "-".to_string(),
    }
}
