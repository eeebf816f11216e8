//! Failover on real MySQL 9.7.4 Group Replication: `kill -9` of the primary's mysqld, then how
//! long until the survivors elect a new primary and it accepts a write — with the group's
//! defaults (what Group Replication does alone, and what an operator that leaves the group to
//! itself gives) side by side with the operator's expel on proof (`src/topology/expel.rs`), in
//! the same run, rounds interleaved.
//!
//! Parts of each failover, from the survivors' own `performance_schema`:
//! - *asked*: the operator told the survivors to expel without grace (expel on proof only);
//! - *suspected*: the old primary shows UNREACHABLE in a survivor's view (the failure detector);
//! - *elected*: a survivor shows a new ONLINE primary (expel + election);
//! - *writable*: the new primary accepts an INSERT (as root over its socket: the server itself,
//!   without Router or Service routing, which the operator-level tier measures).
//!
//! Between rounds the kubelet's part (container restart) and the operator's (rejoin, expel
//! timeout set back) bring the group back to three ONLINE members: *rejoined* is that time,
//! from the container's restart (distributed recovery and the group's connections are opened
//! again then).
//!
//! TLS's cost: two groups run side by side, rounds interleaved. One is configured as the
//! operator configures it (group communication and recovery over TLS verified against the
//! cluster CA, `require_secure_transport=ON`); the other is the same group with TLS taken off
//! its members' traffic before it first starts (`SET PERSIST` of the three settings, which
//! outranks the generated my.cnf: a bench-only baseline, not a mode the operator offers).
//! Each round also times a switchover (`group_replication_set_as_primary`, the operator's
//! statement) until a survivor's view shows the new primary. The bench checks its premise: the
//! recovery account's connections are `SSL/TLS` on one group and plain `TCP/IP` on the other.
//!
//!   cargo bench --profile dev --bench failover_real                 # 10 rounds of each
//!   FAILOVER_REAL_ROUNDS=20 cargo bench --bench failover_real
//!
//! Needs root and the root filesystem of `e2e/lib/install-mysql97.sh`.

mod bench_group;
#[path = "../topology-mysql97/group.rs"]
#[allow(dead_code)]
mod group;
#[path = "../topology-mysql97/objects.rs"]
#[allow(dead_code)]
mod objects;
#[path = "../realmysql/mod.rs"]
mod realmysql;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;

use group::Group;
use innodb_operator::objects::accounts::Account;
use innodb_operator::topology::ops::Operation;

const STEP: Duration = Duration::from_secs(120);

/// How the members of a group talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Transport {
    /// As the operator configures them: TLS, verified against the cluster CA.
    Verified,
    /// The bench's baseline: TLS off on group communication and recovery.
    Cleartext,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Verified => "TLS verified",
            Transport::Cleartext => "cleartext",
        }
    }

    /// The `CONNECTION_TYPE` of the recovery account's connections to a member.
    fn connection_type(self) -> &'static str {
        match self {
            Transport::Verified => "SSL/TLS",
            Transport::Cleartext => "TCP/IP",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    GroupDefaults,
    ExpelOnProof,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::GroupDefaults => "group defaults (expel timeout 5 s)",
            Mode::ExpelOnProof => "operator, expel on proof",
        }
    }
}

#[derive(Debug, Default)]
struct Round {
    asked: Option<Duration>,
    suspected: Option<Duration>,
    elected: Duration,
    writable: Duration,
    rejoined: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 / p99 / max of `values` in seconds.
fn summary(mut values: Vec<Duration>) -> (f64, f64, f64) {
    values.sort();
    let at = |q: f64| {
        let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
        values[i].as_secs_f64()
    };
    (at(0.50), at(0.99), values[values.len() - 1].as_secs_f64())
}

fn all_online(observed: &innodb_operator::topology::Observed) -> bool {
    (0..3u32).all(|o| {
        observed.state(o).is_some_and(|s| {
            s.own_status().as_str() == "ONLINE"
                && s.group
                    .iter()
                    .filter(|r| r.state.as_str() == "ONLINE")
                    .count()
                    == 3
                && s.expel_timeout == Some(5)
        })
    })
}

async fn primary(g: &Group) -> u32 {
    let observed = g.observe().await;
    (0..3)
        .find(|&o| group::online_as(&observed, o, true, 3))
        .expect("an ONLINE primary")
}

/// One failover: kill -9 of the primary, measured until a survivor accepts a write.
async fn failover(g: &mut Group, mode: Mode, round: u32) -> Round {
    let old = primary(g).await;
    let old_uuid = g.truth(old).await.server_uuid;
    let survivors: Vec<u32> = (0..3).filter(|&o| o != old).collect();
    let killed = Instant::now();
    g.members.kill(old, libc::SIGKILL);
    let done = AtomicBool::new(false);
    let operator = async {
        let mut asked = None;
        while mode == Mode::ExpelOnProof && !done.load(Ordering::SeqCst) {
            let observed = g.observe().await;
            let decision = g.tick(&observed).await;
            if decision.expel_timeout.is_some_and(|c| c.seconds == 0) {
                asked.get_or_insert(killed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        asked
    };
    let watch = async {
        let mut suspected = None;
        let new = loop {
            let truth = g.truth(survivors[0]).await;
            let old_row = truth
                .rows
                .iter()
                .find(|r| r.0.eq_ignore_ascii_case(&old_uuid));
            if suspected.is_none() && old_row.is_some_and(|r| r.2 == "UNREACHABLE") {
                suspected = Some(killed.elapsed());
            }
            if let Some(row) = truth.rows.iter().find(|r| {
                r.3 == "PRIMARY" && r.2 == "ONLINE" && !r.0.eq_ignore_ascii_case(&old_uuid)
            }) {
                break row.0.to_ascii_lowercase();
            }
            assert!(
                killed.elapsed() < STEP,
                "no new primary after {STEP:?}: {truth:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let elected = killed.elapsed();
        let mut new_primary = None;
        for &o in &survivors {
            if g.truth(o).await.server_uuid == new {
                new_primary = Some(o);
            }
        }
        let new_primary = new_primary.expect("the new primary is a survivor");
        let writable = loop {
            let mut conn = g.root(new_primary).await;
            let sql = format!("INSERT INTO bench.failover (round) VALUES ({round})");
            if conn.query_drop(&sql).await.is_ok() {
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < STEP,
                "the new primary never accepted a write"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        done.store(true, Ordering::SeqCst);
        (suspected, elected, writable)
    };
    let (asked, (suspected, elected, writable)) = tokio::join!(operator, watch);
    let g = &mut *g;
    if mode == Mode::ExpelOnProof {
        assert!(
            asked.is_some(),
            "the operator never shortened the expel timeout"
        );
    }
    // The kubelet restarts the container; the operator rejoins it and sets the grace back.
    tokio::task::block_in_place(|| g.members.wait_exit(old, Duration::from_secs(10)))
        .expect("the killed container ended");
    let restarted = Instant::now();
    tokio::task::block_in_place(|| g.members.restart_container(old)).expect("container restart");
    g.converge("three ONLINE members, expel timeout 5", STEP, all_online)
        .await;
    Round {
        asked,
        suspected,
        elected,
        writable,
        rejoined: restarted.elapsed(),
    }
}

/// A switchover to the next member, as the operator asks for one: until a survivor's view shows
/// the target as the ONLINE primary.
async fn switchover(g: &Group) -> Duration {
    let old = primary(g).await;
    let target = (old + 1) % 3;
    let target_uuid = g.truth(target).await.server_uuid;
    let asked = Instant::now();
    g.run(Operation::SetPrimary {
        via: old,
        target,
        target_uuid: target_uuid.clone(),
    })
    .await
    .expect("switchover");
    loop {
        let truth = g.truth((target + 1) % 3).await;
        if truth
            .rows
            .iter()
            .any(|r| r.0.eq_ignore_ascii_case(&target_uuid) && r.2 == "ONLINE" && r.3 == "PRIMARY")
        {
            return asked.elapsed();
        }
        assert!(asked.elapsed() < STEP, "no switchover after {STEP:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes TLS off the members' own traffic before the group first starts (the baseline group).
async fn take_tls_off(g: &Group) {
    for o in 0..3 {
        let since = Instant::now();
        while g.root_try(o, "SELECT 1").await.is_err() {
            assert!(
                since.elapsed() < STEP,
                "member {o} never accepted a session"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        for sql in [
            "SET PERSIST group_replication_ssl_mode = 'DISABLED'",
            "SET PERSIST group_replication_recovery_use_ssl = OFF",
            "SET PERSIST require_secure_transport = OFF",
        ] {
            g.root_exec(o, sql).await;
        }
    }
}

/// The premise: the recovery account's connections to every member (the group's own
/// connections on the MySQL stack, and distributed recovery) are of `transport`'s type.
async fn assert_transport(g: &Group, transport: Transport) {
    for o in 0..3 {
        let types = g
            .root_query(
                o,
                &format!(
                    "SELECT GROUP_CONCAT(DISTINCT CONNECTION_TYPE) FROM performance_schema.threads \
                     WHERE PROCESSLIST_USER = '{}'",
                    Account::Replication.user()
                ),
            )
            .await;
        assert_eq!(
            types.first().cloned().flatten().as_deref(),
            Some(transport.connection_type()),
            "member {o} of the {} group: the recovery account's connections are {types:?}",
            transport.name()
        );
    }
}

async fn start(name: &str, transport: Transport) -> Option<Group> {
    let g = bench_group::start(
        name,
        "{version: '9.7.4', instances: 3, groupCommunicationStack: MYSQL}",
    )?;
    if transport == Transport::Cleartext {
        take_tls_off(&g).await;
    }
    g.converge("three ONLINE members", STEP, all_online).await;
    assert_transport(&g, transport).await;
    let p = primary(&g).await;
    g.root_exec(p, "CREATE DATABASE bench").await;
    g.root_exec(
        p,
        "CREATE TABLE bench.failover (id BIGINT AUTO_INCREMENT PRIMARY KEY, round INT NOT NULL)",
    )
    .await;
    Some(g)
}

fn p50(values: &[Duration]) -> f64 {
    summary(values.to_vec()).0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: u32 = std::env::var("FAILOVER_REAL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let Some(verified) = start("bench-failover", Transport::Verified).await else {
        return;
    };
    let Some(cleartext) = start("bench-failover-clear", Transport::Cleartext).await else {
        return;
    };
    let mut groups = [
        (Transport::Verified, verified),
        (Transport::Cleartext, cleartext),
    ];
    let mut results: Vec<(Transport, Mode, Round)> = Vec::new();
    let mut switchovers: Vec<(Transport, Duration)> = Vec::new();
    for round in 0..rounds {
        for (transport, g) in &mut groups {
            for mode in [Mode::GroupDefaults, Mode::ExpelOnProof] {
                let r = failover(g, mode, round).await;
                eprintln!(
                    "round {round} {:<13} {:<34} asked {:>6} suspected {:>6} elected {:>6.0} ms writable {:>6.0} ms rejoined {:>6.0} ms",
                    transport.name(),
                    mode.name(),
                    r.asked.map_or("-".into(), |d| format!("{:.0}", ms(d))),
                    r.suspected.map_or("-".into(), |d| format!("{:.0}", ms(d))),
                    ms(r.elected),
                    ms(r.writable),
                    ms(r.rejoined),
                );
                results.push((*transport, mode, r));
            }
            let d = switchover(g).await;
            eprintln!(
                "round {round} {:<13} switchover {:>6.0} ms",
                transport.name(),
                ms(d)
            );
            switchovers.push((*transport, d));
        }
    }
    let of = |transport: Transport, mode: Mode, f: &dyn Fn(&Round) -> Option<Duration>| {
        results
            .iter()
            .filter(|(t, m, _)| *t == transport && *m == mode)
            .filter_map(|(_, _, r)| f(r))
            .collect::<Vec<Duration>>()
    };
    println!("kill -9 of the primary on real MySQL 9.7.4, 3 members, {rounds} rounds each (s):");
    println!(
        "{:<50} {:>22} {:>22} {:>22} {:>10}",
        "", "suspected p50/p99", "elected p50/p99/max", "writable p50/p99/max", "rejoined p50"
    );
    let mut writable = std::collections::BTreeMap::new();
    for transport in [Transport::Verified, Transport::Cleartext] {
        for mode in [Mode::GroupDefaults, Mode::ExpelOnProof] {
            let suspected = summary(of(transport, mode, &|r| r.suspected));
            let elected = summary(of(transport, mode, &|r| Some(r.elected)));
            let w = summary(of(transport, mode, &|r| Some(r.writable)));
            println!(
                "{:<50} {:>10.2} / {:<9.2} {:>7.2} / {:.2} / {:<6.2} {:>7.2} / {:.2} / {:<6.2} {:>10.2}",
                format!("{}, {}", transport.name(), mode.name()),
                suspected.0,
                suspected.1,
                elected.0,
                elected.1,
                elected.2,
                w.0,
                w.1,
                w.2,
                p50(&of(transport, mode, &|r| Some(r.rejoined))),
            );
            if mode == Mode::ExpelOnProof {
                let asked = summary(of(transport, mode, &|r| r.asked));
                println!(
                    "{:<50} operator asked for expel timeout 0 after p50 {:.2} s / p99 {:.2} s",
                    "", asked.0, asked.1
                );
            }
            writable.insert((transport, mode), w);
        }
    }
    for transport in [Transport::Verified, Transport::Cleartext] {
        let (d, e) = (
            writable[&(transport, Mode::GroupDefaults)],
            writable[&(transport, Mode::ExpelOnProof)],
        );
        println!(
            "{}: writes accepted again: expel on proof is {:.1}x faster at p50, {:.1}x at p99",
            transport.name(),
            d.0 / e.0,
            d.1 / e.1
        );
    }
    let switchover = |transport: Transport| {
        let v: Vec<Duration> = switchovers
            .iter()
            .filter(|(t, _)| *t == transport)
            .map(|(_, d)| *d)
            .collect();
        summary(v)
    };
    println!("TLS's cost (TLS verified / cleartext, p50; 1.00 = none):");
    for mode in [Mode::GroupDefaults, Mode::ExpelOnProof] {
        let (v, c) = (
            writable[&(Transport::Verified, mode)],
            writable[&(Transport::Cleartext, mode)],
        );
        println!(
            "  failover, {:<34} writable {:.2} / {:.2} s = {:.2}x",
            mode.name(),
            v.0,
            c.0,
            v.0 / c.0
        );
    }
    let rejoin = |t: Transport| {
        let mut all = of(t, Mode::GroupDefaults, &|r| Some(r.rejoined));
        all.extend(of(t, Mode::ExpelOnProof, &|r| Some(r.rejoined)));
        p50(&all)
    };
    let (rv, rc) = (rejoin(Transport::Verified), rejoin(Transport::Cleartext));
    println!(
        "  rejoin after the restart (recovery, the group's connections) {rv:.2} / {rc:.2} s = {:.2}x",
        rv / rc
    );
    let (sv, sc) = (
        switchover(Transport::Verified),
        switchover(Transport::Cleartext),
    );
    println!(
        "  switchover (asked to new primary in a survivor's view) {:.3} / {:.3} s = {:.2}x (p99 {:.3} / {:.3})",
        sv.0,
        sc.0,
        sv.0 / sc.0,
        sv.1,
        sc.1
    );
}
