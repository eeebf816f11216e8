//! Footprint of the operator on a real control plane: for 1, 10 and 100 MySQLClusters, the
//! operator's peak RSS and CPU seconds, the time until every cluster is reconciled (a Ready
//! condition for its current generation), and its API writes per minute once settled.
//!
//!   cargo bench --bench footprint                 # sizes 1,10,100, 60 s steady window
//!   FOOTPRINT_SIZES=1,10 FOOTPRINT_STEADY_SECS=30 cargo bench --bench footprint
//!
//! Needs the control-plane binaries (`e2e/testenv/testenv.sh build`).

#[path = "../support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

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
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may contain spaces): utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    (hwm, ticks as f64 / 100.0)
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
    reconcile_secs: f64,
    settled_secs: f64,
    peak_rss_mib: f64,
    cpu_secs: f64,
    writes_per_min: f64,
    initial_writes: usize,
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
    let start = Instant::now();
    for i in 0..clusters {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
            "metadata": {"name": format!("c{i:03}")},
            "spec": {"instances": MEMBERS, "router": {"instances": ROUTERS}}
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj)
            .await
            .expect("create cluster");
    }
    let deadline = start + Duration::from_secs(600);
    while reconciled(&api).await < clusters {
        assert!(
            Instant::now() < deadline,
            "{clusters} clusters not reconciled in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let reconcile_secs = start.elapsed().as_secs_f64();
    // Steady state starts when every pod runs (the status no longer has news to report).
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let want = clusters * (MEMBERS + ROUTERS);
    while running_pods(&pods).await < want {
        assert!(
            Instant::now() < deadline,
            "{want} pods not Running in 600 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settled_secs = start.elapsed().as_secs_f64();
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
        reconcile_secs,
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
        "| clusters | all reconciled (s) | all pods Running (s) | writes until settled | peak RSS (MiB) | CPU (s) | steady writes/min |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.1} | {:.1} | {} | {:.1} | {:.2} | {:.1} |",
            r.clusters,
            r.reconcile_secs,
            r.settled_secs,
            r.initial_writes,
            r.peak_rss_mib,
            r.cpu_secs,
            r.writes_per_min
        );
    }
}
