//! The operator itself against real MySQL 9.7 members: the operator binary of this build (run
//! with the chart's ServiceAccount) on the real control plane (`e2e/testenv`: kube-apiserver,
//! etcd, kube-controller-manager, scheduler, kwok nodes), and real members and a real MySQL
//! Router at the kwok pods' IPs, run by the harness's kubelet (`kubelet.rs`) from the pods the
//! StatefulSet and Deployment controllers create. An application account writes numbered rows
//! through the Router during the scenarios; afterwards every acknowledged row is on every ONLINE
//! member, every ONLINE member accepts the application's connections, and no two pods were ever
//! labelled primary. Scenarios: bootstrap from nothing on the MYSQL and on the XCOM stack; the
//! primary killed (`kill -9`, its container started again as a kubelet does); a complete outage
//! (every member killed, back one by one in random order: the operator reboots the group); and
//! on one more group (`faults.rs`): an errant transaction (never joined, then re-cloned under
//! `ReplaceErrant`), a member configured for another group, a member paused past the expel
//! timeout, switchovers (measured; and while a member is cut off), quorum lost and forced back
//! by the user's annotation, an outage whose least complete member answers first (nothing
//! starts until every member answers), scale 3 → 5 → 3. And (`metadata.rs`) a Router in
//! metadata-cache mode following the group through the metadata the operator keeps (also while
//! the operator is stopped, a member replaced, a complete outage), and `mysqlrouter
//! --bootstrap` against the operator's cluster.
//!
//! Needs root, the control-plane binaries (`e2e/testenv/testenv.sh build`) and the MySQL 9.7
//! root filesystem (`e2e/lib/install-mysql97.sh`); under `CI=true` a missing one is a failure.
//! Run with `--test-threads=1` (each test runs a cluster of real servers).

#[path = "../realmysql/mod.rs"]
mod realmysql;
#[path = "../support/mod.rs"]
mod support;

mod env;
mod faults;
mod kubelet;
mod metadata;
mod proxy;
mod roles;
mod writer;

use std::time::{Duration, Instant};

use serde_json::json;

use env::{BOOTSTRAP_LIMIT, Env, STEP};
use writer::Writer;

fn spec(stack: &str, instances: u32) -> serde_json::Value {
    json!({
        "instances": instances,
        "groupCommunicationStack": stack,
        "router": {"instances": 1, "mode": "static"},
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
    let first = env
        .first_commit_after(w, killed, "a write is accepted again through the Router")
        .await;
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
async fn xcom_stack_bootstrap_under_writes_with_certificates_from_cert_manager() {
    // kwok's pod network, 198.18.0.0/15, is outside RFC 1918: the allowlist AUTOMATIC refused
    // every member there; the operator now allowlists the members by name.
    let mut spec = spec("XCOM", 3);
    // The members' certificate from cert-manager (a CA Issuer of its own), not the operator's
    // CA: group communication (VERIFY_IDENTITY), recovery, the operator's sessions and the
    // application through the Router all verify what cert-manager issued.
    spec["tls"] = json!({"issuerRef": {"name": "cluster-ca"}});
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_faults_switchovers_quorum_and_scaling_under_writes() {
    let Some(mut env) = Env::start("grf", spec("MYSQL", 3)).await else {
        return;
    };
    bootstrap(&mut env, 3).await;
    env.create_application().await;
    let w = env.start_writer().await;
    faults::errant_member(&mut env).await;
    faults::foreign_group_name(&mut env).await;
    faults::paused_member(&mut env, &w).await;
    faults::switchovers(&mut env, &w).await;
    faults::quorum_lost(&mut env, &w).await;
    faults::least_complete_back_first(&mut env, &w).await;
    faults::scale(&mut env).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acked = w.stop().await;
    env.check_writes(&acked).await;
}
