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
//! timeout set back) bring the group back to three ONLINE members.
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

const STEP: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    tokio::task::block_in_place(|| g.members.restart_container(old)).expect("container restart");
    g.converge("three ONLINE members, expel timeout 5", STEP, all_online)
        .await;
    Round {
        asked,
        suspected,
        elected,
        writable,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds: u32 = std::env::var("FAILOVER_REAL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let Some(mut g) = bench_group::start(
        "bench-failover",
        "{version: '9.7.4', instances: 3, groupCommunicationStack: MYSQL}",
    ) else {
        return;
    };
    g.converge("three ONLINE members", STEP, all_online).await;
    let p = primary(&g).await;
    g.root_exec(p, "CREATE DATABASE bench").await;
    g.root_exec(
        p,
        "CREATE TABLE bench.failover (id BIGINT AUTO_INCREMENT PRIMARY KEY, round INT NOT NULL)",
    )
    .await;
    let mut results: Vec<(Mode, Round)> = Vec::new();
    for round in 0..rounds {
        for mode in [Mode::GroupDefaults, Mode::ExpelOnProof] {
            let r = failover(&mut g, mode, round).await;
            eprintln!(
                "round {round} {:<34} asked {:>7} suspected {:>7} elected {:>7.0} ms writable {:>7.0} ms",
                mode.name(),
                r.asked.map_or("-".into(), |d| format!("{:.0}", ms(d))),
                r.suspected.map_or("-".into(), |d| format!("{:.0}", ms(d))),
                ms(r.elected),
                ms(r.writable),
            );
            results.push((mode, r));
        }
    }
    println!("kill -9 of the primary on real MySQL 9.7.4, 3 members, {rounds} rounds each (s):");
    println!(
        "{:<36} {:>22} {:>22} {:>22}",
        "", "suspected p50/p99", "elected p50/p99/max", "writable p50/p99/max"
    );
    let mut p = std::collections::BTreeMap::new();
    for mode in [Mode::GroupDefaults, Mode::ExpelOnProof] {
        let of = |f: &dyn Fn(&Round) -> Option<Duration>| -> Vec<Duration> {
            results
                .iter()
                .filter(|(m, _)| *m == mode)
                .filter_map(|(_, r)| f(r))
                .collect()
        };
        let suspected = summary(of(&|r| r.suspected));
        let elected = summary(of(&|r| Some(r.elected)));
        let writable = summary(of(&|r| Some(r.writable)));
        println!(
            "{:<36} {:>10.2} / {:<9.2} {:>7.2} / {:.2} / {:<6.2} {:>7.2} / {:.2} / {:<6.2}",
            mode.name(),
            suspected.0,
            suspected.1,
            elected.0,
            elected.1,
            elected.2,
            writable.0,
            writable.1,
            writable.2
        );
        if mode == Mode::ExpelOnProof {
            let asked = summary(of(&|r| r.asked));
            println!(
                "{:<36} operator asked for expel timeout 0 after p50 {:.2} s / p99 {:.2} s",
                "", asked.0, asked.1
            );
        }
        p.insert(mode.name(), writable);
    }
    let (d, e) = (p[Mode::GroupDefaults.name()], p[Mode::ExpelOnProof.name()]);
    println!(
        "writes accepted again: expel on proof is {:.1}x faster at p50, {:.1}x at p99",
        d.0 / e.0,
        d.1 / e.1
    );
}
