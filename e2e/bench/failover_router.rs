//! The Router's two routing modes side by side on the operator-level real tier (the operator
//! binary on the local control plane, real MySQL 9.7.4 members and a real Router 9.7.4 run by
//! the harness's kubelet, `e2e/operator-mysql97`): one cluster with `spec.router.mode: static`
//! (routes through the rw Service, which follows the operator's role label through
//! EndpointSlices and the harness's kube-proxy) and one with `metadataCache` (Router follows the
//! group itself), both up for the whole run, rounds interleaved, the operator running.
//!
//! Each round, on one cluster at a time, with the application's writer going through the
//! cluster's Router:
//! - *failover*: `kill -9` of the primary's mysqld → the first commit accepted through the Router
//!   after the writes failed;
//! - *switchover*: the annotation set → the longest time without a commit through the Router
//!   until the new primary is labelled and the cluster healthy.
//!
//! `failover_real` measures the group alone (no operator binary, Router or Service): this one is
//! the whole path an application sees.
//!
//!   cargo bench --profile dev --bench failover_router              # 5 rounds of each
//!   FAILOVER_ROUTER_ROUNDS=10 cargo bench --profile dev --bench failover_router
//!
//! Needs root, the control plane (`e2e/testenv/testenv.sh build`) and the MySQL 9.7 root
//! filesystem (`e2e/lib/install-mysql97.sh`).

#[path = "../operator-mysql97/env.rs"]
#[allow(dead_code)]
mod env;
#[path = "../operator-mysql97/kubelet.rs"]
#[allow(dead_code)]
mod kubelet;
#[path = "../operator-mysql97/proxy.rs"]
mod proxy;
#[path = "../realmysql/mod.rs"]
mod realmysql;
#[path = "../operator-mysql97/roles.rs"]
#[allow(dead_code)]
mod roles;
#[path = "../support/mod.rs"]
mod support;
#[path = "../operator-mysql97/writer.rs"]
#[allow(dead_code)]
mod writer;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use env::{BOOTSTRAP_LIMIT, Env, STEP};

const SWITCHOVER: &str = "innodb-operator.io/switchover-to";
const MODES: [&str; 2] = ["static", "metadataCache"];
const KINDS: [&str; 2] = ["failover", "switchover"];

/// kill -9 of the primary → the first commit through the Router after the writes failed.
async fn failover(env: &mut Env, w: &writer::Writer) -> Duration {
    let old = env.primary();
    let killed = Instant::now();
    env.kubelet.pods().members.kill(old, libc::SIGKILL);
    let first = env
        .first_commit_after(w, killed, "a write is accepted again through the Router")
        .await;
    env.until("the cluster is healthy again", STEP * 2, async |e| {
        e.healthy(3).await
    })
    .await;
    first - killed
}

/// The switchover annotation → the longest write pause until the cluster is healthy with the
/// new primary labelled.
async fn switchover(env: &mut Env, w: &writer::Writer) -> Duration {
    let target = (env.primary() + 1) % 3;
    let pod = format!("{}-{target}", env.name);
    let asked = Instant::now();
    env.annotate(SWITCHOVER, Some(&target.to_string())).await;
    env.until("the switchover is done", STEP, async |e| {
        e.roles.primaries() == [pod.clone()] && e.healthy(3).await && !e.annotated(SWITCHOVER).await
    })
    .await;
    let before = w.acked().len();
    env.until("a write after the switchover", STEP, async |_| {
        w.acked().len() > before
    })
    .await;
    w.longest_pause(asked, Instant::now())
}

/// p50 and p99 of `v`, in seconds.
fn p50_p99(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64()
    };
    (at(0.50), at(0.99))
}

async fn cluster(name: &str, mode: &str) -> Env {
    let spec = json!({"instances": 3, "router": {"instances": 1, "mode": mode}});
    let env = Env::start(name, spec)
        .await
        .expect("the real tier runs here");
    env.until("the cluster is healthy", BOOTSTRAP_LIMIT, async |e| {
        e.healthy(3).await
    })
    .await;
    env.create_application().await;
    env
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: u32 = std::env::var("FAILOVER_ROUTER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .try_init();
    let mut clusters = [
        cluster("brs", MODES[0]).await,
        cluster("brm", MODES[1]).await,
    ];
    let mut results: BTreeMap<(&str, &str), Vec<Duration>> = BTreeMap::new();
    for round in 0..rounds {
        for (mode, env) in MODES.iter().zip(clusters.iter_mut()) {
            // Each writer numbers its rows from 1.
            let primary = env.primary();
            env.root(primary, &format!("DELETE FROM {}", writer::TABLE))
                .await
                .expect("the previous round's rows deleted");
            let w = env.start_writer().await;
            let f = failover(env, &w).await;
            let s = switchover(env, &w).await;
            w.stop().await;
            eprintln!(
                "round {round} {mode:<14} failover -> first commit {:>6.2} s, switchover pause \
                 {:>6.2} s",
                f.as_secs_f64(),
                s.as_secs_f64()
            );
            results.entry((mode, KINDS[0])).or_default().push(f);
            results.entry((mode, KINDS[1])).or_default().push(s);
        }
    }
    println!(
        "the Router's routing modes on real MySQL 9.7.4 + Router 9.7.4, operator running, \
         {rounds} rounds each (s, p50 / p99):"
    );
    for kind in KINDS {
        let [(s50, s99), (m50, m99)] = MODES.map(|m| p50_p99(results[&(m, kind)].clone()));
        println!(
            "{kind:<11} static {s50:>6.2} / {s99:<6.2} metadataCache {m50:>6.2} / {m99:<6.2} \
             ratio static/metadataCache p50 {:.2}, p99 {:.2}",
            s50 / m50,
            s99 / m99
        );
    }
}
