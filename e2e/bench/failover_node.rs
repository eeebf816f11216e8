//! Failover through the whole stack on the real node: the sample cluster of `config/samples/
//! mysqlcluster-local.yaml` (the operator from its chart, MySQL 9.7.4 and Router pods), an
//! application committing numbered rows through the `C-router-lb` Service, and rounds of the
//! two failures a user meets most, side by side in one run, interleaved:
//! - *mysqld killed*: `kill -9` of the primary's mysqld inside its container (kubelet restarts
//!   the container);
//! - *pod deleted*: `kubectl delete pod` of the primary (its mysqld shuts down cleanly, the
//!   StatefulSet makes a new pod).
//!
//! Parts of each failover, from the cut:
//! - *elected*: a survivor's `performance_schema` shows another member ONLINE as primary (Group
//!   Replication's detection, expel and election; the operator's expel on proof shortens it);
//! - *relabelled*: the new primary's pod carries the primary label (the operator);
//! - *writable*: the first row committed through the Router Service after the cut (kube-proxy,
//!   Router's routing to the labelled primary, the application's reconnect);
//! - *ready*: the cluster is Ready with three members ONLINE again.
//!
//! Once per run: `kubectl apply` of the sample → Ready.
//!
//!   cargo bench --profile dev --bench failover_node                 # 10 rounds of each
//!   FAILOVER_NODE_ROUNDS=20 cargo bench --profile dev --bench failover_node
//!
//! Needs root and the node (`e2e/lib/install-testenv.sh --node`).

// Shared with the real-node tier (e2e/node), which uses all of it.
#[allow(dead_code)]
#[path = "../node/env.rs"]
mod env;
#[allow(dead_code)]
#[path = "../operator-mysql97/roles.rs"]
mod roles;
#[path = "../support/mod.rs"]
mod support;
#[allow(dead_code)]
#[path = "../operator-mysql97/writer.rs"]
mod writer;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use env::{Env, NS, STEP, until};
use writer::Writer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    MysqldKilled,
    PodDeleted,
}

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::MysqldKilled => "mysqld killed (kill -9 in its container)",
            Failure::PodDeleted => "pod deleted (kubectl delete pod)",
        }
    }
}

#[derive(Debug)]
struct Round {
    elected: Duration,
    relabelled: Duration,
    writable: Duration,
    ready: Duration,
}

async fn round(env: &mut Env, w: &Writer, failure: Failure) -> Round {
    let old = env.healthy().await.expect("healthy before the round");
    let survivors: Vec<IpAddr> = env
        .members()
        .await
        .into_iter()
        .filter(|m| m.0 != old)
        .map(|m| m.1)
        .collect();
    let cut = Instant::now();
    match failure {
        Failure::MysqldKilled => env.kill_mysqld(&old),
        Failure::PodDeleted => env
            .kubectl(&["-n", NS, "delete", "pod", &old, "--wait=false"])
            .map(drop)
            .unwrap_or_else(|e| panic!("{}: {e}", failure.name())),
    }
    let mut elected = None;
    let mut relabelled = None;
    let mut writable = None;
    while elected.is_none() || relabelled.is_none() || writable.is_none() {
        assert!(
            cut.elapsed() < STEP,
            "{}: elected {elected:?}, relabelled {relabelled:?}, writable {writable:?} after {STEP:?}\n{}",
            failure.name(),
            env.describe()
        );
        if elected.is_none() && new_primary_seen(env, &survivors, &old).await {
            elected = Some(cut.elapsed());
        }
        if relabelled.is_none() {
            let labelled = env.roles.primaries();
            if labelled.len() == 1 && labelled[0] != old {
                relabelled = Some(cut.elapsed());
            }
        }
        if writable.is_none() {
            writable = w.accepted_again_after(cut).map(|at| at - cut);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until("Ready, three members ONLINE", STEP, async || {
        env.healthy().await
    })
    .await;
    Round {
        elected: elected.expect("elected"),
        relabelled: relabelled.expect("relabelled"),
        writable: writable.expect("writable"),
        ready: cut.elapsed(),
    }
}

/// A survivor sees a member other than `old` as its group's ONLINE primary.
async fn new_primary_seen(env: &Env, survivors: &[IpAddr], old: &str) -> bool {
    for ip in survivors {
        let q = "SELECT MEMBER_HOST FROM performance_schema.replication_group_members \
                 WHERE MEMBER_ROLE = 'PRIMARY' AND MEMBER_STATE = 'ONLINE'";
        if let Ok(rows) = env.root(*ip, q).await
            && rows.iter().any(|r| !r[0].starts_with(&format!("{old}.")))
        {
            return true;
        }
    }
    false
}

fn percentile(mut v: Vec<Duration>, p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: usize = std::env::var("FAILOVER_NODE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let Some(mut env) = Env::start().await else {
        eprintln!("failover_node: the node is not built; run e2e/lib/install-testenv.sh --node");
        std::process::exit(1);
    };
    let w = env.start_writer().await;

    let mut results: Vec<(Failure, Round)> = Vec::new();
    for i in 0..rounds {
        for failure in [Failure::MysqldKilled, Failure::PodDeleted] {
            let r = round(&mut env, &w, failure).await;
            eprintln!(
                "round {i} {}: elected {:.2} s, relabelled {:.2} s, writable {:.2} s, ready {:.1} s",
                failure.name(),
                r.elected.as_secs_f64(),
                r.relabelled.as_secs_f64(),
                r.writable.as_secs_f64(),
                r.ready.as_secs_f64()
            );
            results.push((failure, r));
        }
    }
    let acked = w.stop().await;

    println!("\nfailover through the whole stack on the real node, {rounds} rounds of each");
    println!("(seconds from the cut; p50 / p99)");
    println!(
        "{:<44} {:>13} {:>13} {:>13} {:>13}",
        "failure", "elected", "relabelled", "writable", "ready"
    );
    let mut p50_writable = Vec::new();
    for failure in [Failure::MysqldKilled, Failure::PodDeleted] {
        let of: Vec<&Round> = results
            .iter()
            .filter(|r| r.0 == failure)
            .map(|r| &r.1)
            .collect();
        let col = |f: fn(&Round) -> Duration| {
            let v: Vec<Duration> = of.iter().map(|r| f(r)).collect();
            format!(
                "{:.2} / {:.2}",
                percentile(v.clone(), 0.5),
                percentile(v, 0.99)
            )
        };
        println!(
            "{:<44} {:>13} {:>13} {:>13} {:>13}",
            failure.name(),
            col(|r| r.elected),
            col(|r| r.relabelled),
            col(|r| r.writable),
            col(|r| r.ready)
        );
        p50_writable.push(percentile(of.iter().map(|r| r.writable).collect(), 0.5));
    }
    println!(
        "pod deleted / mysqld killed, writable p50: {:.2}x",
        p50_writable[1] / p50_writable[0]
    );
    if let Some((what, d)) = env
        .timings
        .iter()
        .find(|t| t.0.starts_with("kubectl apply"))
    {
        println!("{what}: {:.1} s", d.as_secs_f64());
    }
    println!(
        "{} rows acknowledged through the Router Service",
        acked.len()
    );
}
