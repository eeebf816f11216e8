//! Failover through the whole stack on the real node: the sample cluster of `config/samples/
//! mysqlcluster-local.yaml` (the operator from its chart, MySQL 9.7.4 and Router pods), an
//! application committing numbered rows through the `C-router-lb` Service, and rounds of the
//! failures a user meets most and of a switchover, interleaved, under each routing mode of the
//! routers (`spec.router.mode`), side by side in one run:
//! - *mysqld killed*: `kill -9` of the primary's mysqld inside its container (kubelet restarts
//!   the container);
//! - *pod deleted*: `kubectl delete pod` of the primary (its preStop hook holds mysqld while the
//!   operator switches over; the StatefulSet makes a new pod);
//! - *switchover*: the `innodb-operator.io/switchover-to` annotation naming a secondary;
//! - routing *static* (the `C` Service, which follows the operator's role labels) and
//!   *metadataCache* (Router follows the group itself, through the metadata the operator keeps
//!   and Group Replication's notices).
//!
//! Parts of each round, from the cut:
//! - *elected*: a survivor's `performance_schema` shows another member ONLINE as primary (Group
//!   Replication's detection, expel and election; the operator's expel on proof shortens it);
//! - *relabelled*: the new primary's pod carries the primary label (the operator);
//! - *writable*: the first row committed through the Router Service after the first failed
//!   statement (zero when none failed);
//! - *pause*: the longest time without a commit between the cut and *ready*;
//! - *ready*: the cluster is Ready with three members ONLINE again.
//!
//!   cargo bench --profile dev --bench failover_node                 # 5 rounds of each
//!   FAILOVER_NODE_ROUNDS=10 cargo bench --profile dev --bench failover_node
//!   FAILOVER_NODE_ROUTING=metadataCache cargo bench --profile dev --bench failover_node  # one mode
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

use env::{CLUSTER, Env, NS, STEP, until};
use innodb_operator::api::cluster::SWITCHOVER_ANNOTATION;
use writer::Writer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    MysqldKilled,
    PodDeleted,
    Switchover,
}

const FAILURES: [Failure; 3] = [
    Failure::MysqldKilled,
    Failure::PodDeleted,
    Failure::Switchover,
];

impl Failure {
    fn name(self) -> &'static str {
        match self {
            Failure::MysqldKilled => "mysqld killed (kill -9 in its container)",
            Failure::PodDeleted => "pod deleted (kubectl delete pod)",
            Failure::Switchover => "switchover (annotation)",
        }
    }
}

/// How the routers find the primary (`spec.router.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routing {
    /// Static routes to the `C` Service, which follows the operator's role labels.
    Static,
    /// Router follows the group through the metadata and Group Replication's notices.
    MetadataCache,
}

const ROUTINGS: [Routing; 2] = [Routing::Static, Routing::MetadataCache];

/// A round whose writes paused longer than this prints what the writer saw and the routers'
/// log.
const SHOW_OUTCOMES: Duration = Duration::from_secs(2);

impl Routing {
    fn mode(self) -> &'static str {
        match self {
            Routing::Static => "static",
            Routing::MetadataCache => "metadataCache",
        }
    }
}

#[derive(Debug)]
struct Round {
    elected: Duration,
    relabelled: Duration,
    /// The first commit after the first failed statement (zero when none failed).
    writable: Duration,
    /// The longest time without a commit from the cut until Ready.
    pause: Duration,
    ready: Duration,
}

async fn round(env: &mut Env, w: &Writer, failure: Failure) -> Round {
    let old = until("healthy before the round", STEP, async || {
        env.healthy().await
    })
    .await;
    let old_uid = env.member_uids().await.remove(&old);
    let members = env.members().await;
    let survivors: Vec<IpAddr> = members.iter().filter(|m| m.0 != old).map(|m| m.1).collect();
    let cut = Instant::now();
    match failure {
        Failure::MysqldKilled => env.kill_mysqld(&old),
        Failure::PodDeleted => env
            .kubectl(&["-n", NS, "delete", "pod", &old, "--wait=false"])
            .map(drop)
            .unwrap_or_else(|e| panic!("{}: {e}", failure.name())),
        Failure::Switchover => {
            let target = members
                .iter()
                .map(|m| &m.0)
                .filter(|m| **m != old)
                .min()
                .expect("a secondary");
            let ordinal = target.rsplit('-').next().expect("an ordinal");
            env.kubectl(&[
                "-n",
                NS,
                "annotate",
                "mysqlcluster",
                CLUSTER,
                &format!("{SWITCHOVER_ANNOTATION}={ordinal}"),
            ])
            .map(drop)
            .unwrap_or_else(|e| panic!("{}: {e}", failure.name()))
        }
    }
    let mut elected = None;
    let mut relabelled = None;
    while elected.is_none() || relabelled.is_none() {
        assert!(
            cut.elapsed() < STEP,
            "{}: elected {elected:?}, relabelled {relabelled:?} after {STEP:?}\n{}",
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A deleted pod is in the group until its preStop hook lets mysqld go: ready means its
    // replacement is ONLINE.
    until("Ready, three members ONLINE", STEP, async || {
        let replaced =
            failure != Failure::PodDeleted || env.member_uids().await.get(&old) != old_uid.as_ref();
        if replaced { env.healthy().await } else { None }
    })
    .await;
    let ready = Instant::now();
    let failed = w.failures_since(cut).0 > 0;
    let writable_at = if failed {
        until("writes accepted again", STEP, async || {
            w.accepted_again_after(cut)
        })
        .await
    } else {
        cut
    };
    let pause = w.longest_pause(cut, ready.max(writable_at));
    if pause > SHOW_OUTCOMES {
        eprintln!(
            "  {}: what the writer saw (s after the cut):",
            failure.name()
        );
        for (from, to, n, what) in w.outcomes_since(cut) {
            eprintln!("    {from:.2}-{to:.2} x{n}: {what}");
        }
        let since = format!("--since={}s", cut.elapsed().as_secs() + 2);
        let routers = env.kubectl(&[
            "-n",
            NS,
            "logs",
            "-l",
            "app.kubernetes.io/component=router",
            "--prefix",
            &since,
        ]);
        eprintln!("  the routers' log:\n{}", routers.unwrap_or_else(|e| e));
    }
    Round {
        elected: elected.expect("elected"),
        relabelled: relabelled.expect("relabelled"),
        writable: writable_at - cut,
        pause,
        ready: ready - cut,
    }
}

/// The routers in `routing` mode: the spec patched, the Router Deployment rolled out, and
/// writes accepted through the new routers.
async fn route_by(env: &mut Env, w: &Writer, routing: Routing) {
    let asked = Instant::now();
    env.patch_spec(&format!(r#"{{"router":{{"mode":"{}"}}}}"#, routing.mode()));
    // The operator's next reconcile changes the Deployment; then it rolls out.
    until("the router Deployment changed", STEP, async || {
        let mode = env
            .kubectl(&[
                "-n",
                NS,
                "get",
                "deployment",
                &format!("{CLUSTER}-router"),
                "-o",
                "jsonpath={.spec.template.spec.containers[0].command}",
            ])
            .ok()?;
        let metadata = mode.contains("start-router.sh");
        (metadata == (routing == Routing::MetadataCache)).then_some(())
    })
    .await;
    env.kubectl(&[
        "-n",
        NS,
        "rollout",
        "status",
        &format!("deployment/{CLUSTER}-router"),
        &format!("--timeout={}s", STEP.as_secs()),
    ])
    .unwrap_or_else(|e| panic!("routers in {} mode: {e}", routing.mode()));
    let before = w.acked().len();
    until("writes through the new routers", STEP, async || {
        (w.acked().len() > before).then_some(())
    })
    .await;
    env.time(
        &format!("routers -> {} mode, rolled out", routing.mode()),
        asked.elapsed(),
    );
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
        .unwrap_or(5);
    let Some(mut env) = Env::start().await else {
        eprintln!("failover_node: the node is not built; run e2e/lib/install-testenv.sh --node");
        std::process::exit(1);
    };
    let w = env.start_writer().await;

    // FAILOVER_NODE_ROUTING=static or metadataCache runs one mode only.
    let only = std::env::var("FAILOVER_NODE_ROUTING").ok();
    let routings: Vec<Routing> = ROUTINGS
        .into_iter()
        .filter(|r| only.as_deref().is_none_or(|m| m == r.mode()))
        .collect();
    let mut results: Vec<(Routing, Failure, Round)> = Vec::new();
    for &routing in &routings {
        route_by(&mut env, &w, routing).await;
        for i in 0..rounds {
            for failure in FAILURES {
                let r = round(&mut env, &w, failure).await;
                eprintln!(
                    "{} round {i} {}: elected {:.2} s, relabelled {:.2} s, writable {:.2} s, \
                     pause {:.2} s, ready {:.1} s",
                    routing.mode(),
                    failure.name(),
                    r.elected.as_secs_f64(),
                    r.relabelled.as_secs_f64(),
                    r.writable.as_secs_f64(),
                    r.pause.as_secs_f64(),
                    r.ready.as_secs_f64()
                );
                results.push((routing, failure, r));
            }
        }
    }
    let acked = w.stop().await;

    println!("\nfailover through the whole stack on the real node, {rounds} rounds of each");
    println!("(seconds from the cut; p50 / p99; pause: the longest time without a commit)");
    println!(
        "{:<14} {:<42} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "routers", "failure", "elected", "relabelled", "writable", "pause", "ready"
    );
    let of = |routing: Routing, failure: Failure| -> Vec<&Round> {
        results
            .iter()
            .filter(|r| r.0 == routing && r.1 == failure)
            .map(|r| &r.2)
            .collect()
    };
    for &routing in &routings {
        for failure in FAILURES {
            let rs = of(routing, failure);
            let col = |f: fn(&Round) -> Duration| {
                let v: Vec<Duration> = rs.iter().map(|r| f(r)).collect();
                format!(
                    "{:.2} / {:.2}",
                    percentile(v.clone(), 0.5),
                    percentile(v, 0.99)
                )
            };
            println!(
                "{:<14} {:<42} {:>12} {:>12} {:>12} {:>12} {:>12}",
                routing.mode(),
                failure.name(),
                col(|r| r.elected),
                col(|r| r.relabelled),
                col(|r| r.writable),
                col(|r| r.pause),
                col(|r| r.ready)
            );
        }
    }
    for failure in FAILURES
        .into_iter()
        .filter(|_| routings.len() == ROUTINGS.len())
    {
        let p50 = |routing| percentile(of(routing, failure).iter().map(|r| r.pause).collect(), 0.5);
        println!(
            "{}: pause p50, metadataCache / static: {:.2}x",
            failure.name(),
            p50(Routing::MetadataCache) / p50(Routing::Static)
        );
    }
    for (what, d) in &env.timings {
        println!("{what}: {:.1} s", d.as_secs_f64());
    }
    println!(
        "{} rows acknowledged through the Router Service",
        acked.len()
    );
}
