//! The real-node tier: everything of a user's first day, on one real node of this machine
//! (`testenv.sh up --node`: kubelet, containerd, runc, the bridge CNI plugin, kube-proxy,
//! kube-router's firewall, CoreDNS) with images built here (`e2e/lib/build-images.sh`: the operator, MySQL 9.7.4 and
//! Router from Debian's packages). No harness plays any part of Kubernetes:
//!
//! - `helm install` of the chart: the operator's two replicas run as pods and one leads;
//! - `kubectl apply` of `config/samples/mysqlcluster-local.yaml` in a namespace enforcing the
//!   restricted Pod Security Standard, `kubectl wait --for=condition=Ready`: three members ONLINE
//!   (asked of the servers themselves), two routers Ready;
//! - DNS: the SRV records of the routers and the members through CoreDNS; a client in a pod finds
//!   the routers with `mysql --dns-srv-name`; the `C` and `C-ro` Services (kube-proxy) reach the
//!   primary and a secondary, `C-router-lb` the Router's read-write and read-only ports;
//! - `spec.networkPolicy` enforced by kube-router's firewall: clients that are none of the
//!   cluster's pods reach a member's 3306 and 33060 before the policies and not after; only the
//!   client `routerFrom` admits reaches a Router; everything below runs with the policies on,
//!   which are turned off at the end (`netpol.rs`);
//! - failures through the whole stack while an application account commits numbered rows
//!   through the `C-router-lb` Service: the primary's mysqld killed (`kill -9` in its
//!   container), the primary's pod deleted, the node going down hard and coming back (every
//!   member restarts: a complete outage the operator reboots the group from). After each the
//!   cluster is Ready again with three members ONLINE; afterwards every acknowledged row is on
//!   every member and no two pods were ever labelled primary;
//! - the operator stopped and the primary's mysqld killed: the routers (metadata-cache mode, the
//!   sample's default) move writes to the new primary by themselves, with the labels untouched;
//! - a rolling `spec.mycnf` change and scale 3 -> 5 -> 3 under the same writes;
//! - a `Backup` (its Job pod streams to MinIO on the node's address) -> `Succeeded`, a capture of
//!   the pod bridge while it runs holding the Job's traffic with the member and no marker row in
//!   cleartext, and a cluster with `restoreFrom` it -> Ready with the rows acknowledged before
//!   the backup began;
//! - no secret in any pod's log, Event, custom resource or ConfigMap;
//! - the cluster deleted: its volume claims are kept.
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

mod backup;
mod env;
mod leaks;
mod netpol;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use env::{CLUSTER, Env, MEMBERS, NS, OPERATOR_NS, STEP, run, sql, until};
use kube::ResourceExt;
use writer::Writer;

/// How long a deleted primary's pod may take to stop: the switchover (~1 s), the preStop hook's
/// next look (0.5 s), a clean leave and shutdown (a few s); a shutdown hung on a commit in flight
/// took ~60 s.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// How long writes may stop when the primary's mysqld is killed with the operator down: Group
/// Replication's own detection, expel and election, without the operator's expel on proof
/// (21.8 s here, against 7.7 s with the operator), and the routers' next look.
const OPERATOR_DOWN_LIMIT: Duration = Duration::from_secs(45);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_cluster_on_a_real_node() {
    let Some(mut env) = Env::start().await else {
        return;
    };
    let primary = env.healthy().await.expect("healthy once Ready");
    dns_and_services(&mut env, &primary).await;
    netpol::enforced(&mut env).await;
    let w = env.start_writer().await;
    failures(&mut env, &w).await;
    failover_without_the_operator(&mut env, &w).await;
    rolling_change(&mut env, &w).await;
    scale(&mut env, &w).await;
    backup::backup_and_restore(&mut env, &w).await;
    let acked = w.stop().await;
    check_rows(&env, &acked).await;
    leaks::no_secret_leaked(&env);
    netpol::lifted(&mut env).await;
    delete_keeps_volumes(&mut env).await;

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
        (
            format!("_mysqlx._tcp.{CLUSTER}-instances.{domain}"),
            33060,
            MEMBERS,
        ),
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
        let rows = sql(addr, &env.tls, "root", &env.root_password, query)
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
/// Router Service.
async fn failures(env: &mut Env, w: &Writer) {
    let primary = env.healthy().await.expect("healthy before the failures");
    let cut = Instant::now();
    env.kill_mysqld(&primary);
    writes_back(
        env,
        "mysqld killed -> first commit through the Router Service",
        w,
        cut,
    )
    .await;
    let primary = ready_again(env, "mysqld killed -> Ready, 3 ONLINE", cut).await;

    // The primary's pod deleted while the writer commits. Its preStop hook holds mysqld's stop
    // until the operator has moved the primary away; without it the shutdown hung ~51 s on a
    // commit in flight (the pod Terminating ~60 s, the cluster Ready again only after 80-109 s).
    let uid = env
        .member_uids()
        .await
        .remove(&primary)
        .expect("the primary's pod");
    let cut = Instant::now();
    env.kubectl(&["-n", NS, "delete", "pod", &primary, "--wait=false"])
        .unwrap_or_else(|e| panic!("delete pod {primary}: {e}"));
    writes_back(
        env,
        "pod deleted -> first commit through the Router Service",
        w,
        cut,
    )
    .await;
    let gone = until("the deleted primary's pod gone", STEP, async || {
        (env.member_uids().await.get(&primary) != Some(&uid)).then(Instant::now)
    })
    .await;
    env.time("primary's pod deleted -> gone", gone - cut);
    assert!(
        gone - cut < STOP_LIMIT,
        "the deleted primary's pod took {:.1} s to stop (limit {STOP_LIMIT:?}): its mysqld stopped \
         before the switchover, with commits in flight\n{}",
        (gone - cut).as_secs_f64(),
        env.describe()
    );
    ready_again(env, "pod deleted -> Ready, 3 ONLINE", cut).await;

    // The node goes down hard and comes back: every member restarts.
    let cut = Instant::now();
    run(Command::new(support::TESTENV)
        .arg("node-restart")
        .arg(&env.cp.dir))
    .unwrap_or_else(|e| panic!("node restart: {e}"));
    writes_back(
        env,
        "node restarted -> first commit through the Router Service",
        w,
        cut,
    )
    .await;
    ready_again(env, "node restarted -> Ready, 3 ONLINE", cut).await;
}

/// The operator stopped (both replicas), then the primary's mysqld killed: the routers (the
/// sample's metadata-cache mode) follow the group's election by themselves and writes resume
/// through them while the role labels still name the dead primary; the operator back, the
/// killed member rejoins and the cluster is Ready.
async fn failover_without_the_operator(env: &mut Env, w: &Writer) {
    let primary = env
        .healthy()
        .await
        .expect("healthy before the operator stops");
    scale_operator(env, 0);
    until("the operator's pods gone", STEP, async || {
        env.kubectl(&[
            "-n",
            OPERATOR_NS,
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/instance=innodb-operator",
            "-o",
            "name",
        ])
        .ok()
        .filter(|pods| pods.trim().is_empty())
    })
    .await;
    let cut = Instant::now();
    env.kill_mysqld(&primary);
    writes_back(
        env,
        "operator down, mysqld killed -> first commit through the Router Service",
        w,
        cut,
    )
    .await;
    assert!(
        cut.elapsed() < OPERATOR_DOWN_LIMIT,
        "writes came back only after {:.1} s with the operator down",
        cut.elapsed().as_secs_f64()
    );
    assert_eq!(
        env.roles.primaries(),
        std::slice::from_ref(&primary),
        "nothing relabelled the pods: the routers found the new primary themselves"
    );
    scale_operator(env, 2);
    ready_again(env, "operator down, mysqld killed -> Ready, 3 ONLINE", cut).await;
}

fn scale_operator(env: &Env, replicas: u32) {
    env.kubectl(&[
        "-n",
        OPERATOR_NS,
        "scale",
        "deployment",
        "innodb-operator",
        &format!("--replicas={replicas}"),
    ])
    .map(drop)
    .unwrap_or_else(|e| panic!("scale the operator to {replicas}: {e}"))
}

/// A `spec.mycnf` change: every member's pod replaced, one at a time; the setting in force on
/// every member; the writes' longest pause measured.
async fn rolling_change(env: &mut Env, w: &Writer) {
    let primary_before = env.healthy().await.expect("healthy before the change");
    let before = env.member_uids().await;
    let cut = Instant::now();
    env.patch_spec(r#"{"mycnf":{"max_connections":"120"}}"#);
    let mut replaced: Vec<String> = Vec::new();
    let mut most_down = 0;
    until("every member replaced and ONLINE", STEP * 2, async || {
        let now = env.member_uids().await;
        for (name, uid) in &now {
            if before.get(name) != Some(uid) && !replaced.contains(name) {
                replaced.push(name.clone());
            }
        }
        most_down = most_down.max(env.size - env.ready_members().await);
        (replaced.len() == env.size).then_some(())?;
        env.healthy().await
    })
    .await;
    env.time(
        "spec.mycnf changed -> every member replaced, Ready",
        cut.elapsed(),
    );
    // Measured, not asserted: through the real stack a rolling change's pause (the operator's
    // PlannedSwitchover to an updated member, Router and kube-proxy following) was 2.1 and 4.1 s
    // in two runs, too close to a failover's 5.1 s to tell the two apart by time. Every
    // acknowledged row is checked at the end either way.
    let pause = w.longest_pause(cut, Instant::now()).as_secs_f64();
    for (name, ip) in env.members().await {
        let rows = env
            .root(ip, "SELECT @@max_connections")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            rows[0][0], "120",
            "{name} runs with the new max_connections"
        );
    }
    eprintln!(
        "node: rolling change (primary before: {primary_before}): replaced in order {replaced:?}, at most {most_down} member pod(s) \
         not Ready at once, writes' longest pause {pause:.2} s"
    );
    env.timings.push((
        "rolling change: writes' longest pause".to_string(),
        Duration::from_secs_f64(pause),
    ));
}

/// Scale 3 -> 5 (the new members join by clone) -> 3 (members leave the group before their
/// pods go), under writes. The first three members' pods are never replaced: a scale changes
/// only the group's seeds, which the operator sets on running members.
async fn scale(env: &mut Env, w: &Writer) {
    let kept = member_uids(env, MEMBERS).await;
    for size in [5, MEMBERS] {
        let cut = Instant::now();
        env.patch_spec(&format!(r#"{{"instances":{size}}}"#));
        env.size = size;
        ready_again(
            env,
            &format!("scaled to {size} -> Ready, {size} ONLINE"),
            cut,
        )
        .await;
        let pause = w.longest_pause(cut, Instant::now()).as_secs_f64();
        eprintln!("node: scaled to {size}; writes' longest pause {pause:.2} s");
        assert_eq!(
            member_uids(env, MEMBERS).await,
            kept,
            "scaled to {size}: the first {MEMBERS} members' pods were replaced\n{}",
            env.describe()
        );
    }
}

/// The pod UIDs of members `0..n`, by name.
async fn member_uids(env: &Env, n: usize) -> BTreeMap<String, String> {
    env.member_pods()
        .await
        .into_iter()
        .filter(|p| (0..n).any(|o| p.name_any() == format!("{CLUSTER}-{o}")))
        .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
        .collect()
}

/// `kubectl delete` of the cluster: its pods go, its volumes stay.
async fn delete_keeps_volumes(env: &mut Env) {
    let pvcs_before = env.pvcs();
    assert!(
        pvcs_before.len() >= MEMBERS,
        "volumes before: {pvcs_before:?}"
    );
    let cut = Instant::now();
    env.kubectl(&[
        "-n",
        NS,
        "delete",
        "mysqlcluster",
        CLUSTER,
        "--timeout=300s",
    ])
    .unwrap_or_else(|e| panic!("delete the cluster: {e}"));
    until("the member pods gone", STEP, async || {
        env.members().await.is_empty().then_some(())
    })
    .await;
    env.time("kubectl delete mysqlcluster -> pods gone", cut.elapsed());
    assert_eq!(env.pvcs(), pvcs_before, "every volume claim is kept");
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
                .unwrap_or_else(|e| panic!("{name}: read the rows: {e}\n{}", env.describe()))
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
    assert!(
        most.len() <= 1,
        "pods {most:?} were labelled primary at once"
    );
    eprintln!(
        "node: {} acknowledged rows on every member; at most one pod labelled primary",
        acked.len()
    );
}

/// Ready condition and three members ONLINE; the time it took from `since`.
async fn ready_again(env: &mut Env, what: &str, since: Instant) -> String {
    let primary = until(what, STEP, async || env.healthy().await).await;
    env.kubectl(&[
        "-n",
        NS,
        "wait",
        &format!("mysqlcluster/{CLUSTER}"),
        "--for=condition=Ready",
        "--timeout=300s",
    ])
    .unwrap_or_else(|e| panic!("{what}: {e}\n{}", env.describe()));
    env.time(what, since.elapsed());
    primary
}

/// Writes accepted again through the Router after `cut`, or a failure with the whole state.
async fn writes_back(env: &mut Env, what: &str, w: &Writer, cut: Instant) {
    let back = until(what, STEP, async || w.accepted_again_after(cut)).await;
    env.time(what, back - cut);
}
