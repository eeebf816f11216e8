//! Joining a member that holds nothing, on real MySQL 9.7.4 with a data set of `CLONE_BENCH_MIB`
//! (default 1 GiB): by clone (what the operator does for an empty member, `clonePolicy:
//! EmptyOnly`) side by side with Group Replication's incremental recovery (the donor's binary log
//! replayed), in the same run, on the same group.
//!
//! Parts of the clone: *copy* (`CLONE INSTANCE` until the recipient's mysqld has restarted on
//! the donor's data, as the operator runs it) and *join* (`START GROUP_REPLICATION` until ONLINE,
//! the transactions written after the snapshot). Incremental recovery is one part: *join* until
//! ONLINE.
//!
//!   cargo bench --profile dev --bench clone_join
//!   CLONE_BENCH_MIB=256 cargo bench --profile dev --bench clone_join
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

use std::time::{Duration, Instant};

use innodb_operator::topology::Operation;

use group::{Group, online_as};

/// Bytes of one row's text (64-character SHA-2 digests repeated).
const ROW_BYTES: u64 = 960;
/// Rows of one loading statement: one group transaction of ~9 MiB.
const BATCH_ROWS: u64 = 10_000;
/// How long one join or clone may take before the bench gives up.
const LIMIT: Duration = Duration::from_secs(1800);

/// Loads `mib` MiB of rows into `bench.t` on `primary`; returns the MiB of row data loaded.
async fn load(g: &Group, primary: u32, mib: u64) -> f64 {
    g.root_exec(primary, "CREATE DATABASE bench").await;
    g.root_exec(
        primary,
        "CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, pad VARCHAR(1024) NOT NULL)",
    )
    .await;
    // Doubling from one row, then batches of BATCH_ROWS. (9.7.4 has no MD5(): the name is taken
    // for a stored function of the current schema, ERROR 1046 without one.)
    let pad = format!("REPEAT(SHA2(RAND(), 256), {})", ROW_BYTES / 64);
    g.root_exec(
        primary,
        &format!("INSERT INTO bench.t (pad) VALUES ({pad})"),
    )
    .await;
    let (target, mut rows) = ((mib << 20).div_ceil(ROW_BYTES), 1u64);
    while rows < target {
        let batch = rows.min(BATCH_ROWS).min(target - rows);
        g.root_exec(
            primary,
            &format!("INSERT INTO bench.t (pad) SELECT {pad} FROM bench.t LIMIT {batch}"),
        )
        .await;
        rows += batch;
    }
    let size = g
        .root_query(primary, "SELECT SUM(LENGTH(pad)) / 1048576 FROM bench.t")
        .await;
    size.first()
        .cloned()
        .flatten()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Starts Group Replication on `member` and waits until it is an ONLINE secondary of `size`.
async fn join(g: &Group, member: u32, size: usize) -> Duration {
    let started = Instant::now();
    g.run(Operation::Join {
        member,
        restart: false,
    })
    .await
    .expect("START GROUP_REPLICATION");
    g.wait_until(
        &format!("member {member} ONLINE after its join"),
        LIMIT,
        |o| online_as(o, member, false, size),
    )
    .await;
    started.elapsed()
}

/// Clones `donor` into `member` as the operator does, until its mysqld has restarted on the
/// donor's data.
async fn clone(g: &Group, member: u32, donor: u32) -> Duration {
    let donor_set = g.truth(donor).await.gtid_executed;
    let started = Instant::now();
    g.run(Operation::Clone { member, donor })
        .await
        .expect("CLONE INSTANCE");
    g.wait_until(
        &format!("member {member} restarted on a clone of member {donor}"),
        LIMIT,
        |o| {
            o.state(member)
                .is_some_and(|s| !s.cloning && donor_set.is_subset(&s.gtid_executed))
        },
    )
    .await;
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mib: u64 = std::env::var("CLONE_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let Some(g) = bench_group::start(
        "bench-clone",
        "{version: '9.7.4', instances: 3, groupCommunicationStack: MYSQL}",
    ) else {
        return;
    };
    g.wait_until("every member answers", LIMIT, |o| {
        (0..3).all(|m| o.state(m).is_some())
    })
    .await;
    g.run(Operation::Bootstrap { seed: 0 })
        .await
        .expect("bootstrap");
    g.wait_until("member 0 the ONLINE primary", LIMIT, |o| {
        online_as(o, 0, true, 1)
    })
    .await;
    let loading = Instant::now();
    let size = load(&g, 0, mib).await;
    let loaded = loading.elapsed();
    eprintln!("loaded {size:.0} MiB in {loaded:?}");

    let incremental = join(&g, 1, 2).await;
    eprintln!("incremental recovery: ONLINE after {incremental:?}");
    let copy = clone(&g, 2, 0).await;
    let after_clone = join(&g, 2, 3).await;
    eprintln!("clone: restarted on the copy after {copy:?}, ONLINE {after_clone:?} later");
    for o in 1..3 {
        let rows = g.root_query(o, "SELECT COUNT(*) FROM bench.t").await;
        let primary = g.root_query(0, "SELECT COUNT(*) FROM bench.t").await;
        assert_eq!(rows, primary, "member {o} holds the primary's rows");
    }

    let total_clone = copy + after_clone;
    let mibps = |d: Duration| size / d.as_secs_f64();
    println!(
        "an empty member joining a group holding {size:.0} MiB (one table, ~1 KiB rows), real \
         MySQL 9.7.4 (s):"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>9}",
        "", "copy", "join", "total", "MiB/s"
    );
    println!(
        "{:<34} {:>8} {:>8.1} {:>8.1} {:>9.1}",
        "incremental (binary log replayed)",
        "-",
        incremental.as_secs_f64(),
        incremental.as_secs_f64(),
        mibps(incremental)
    );
    println!(
        "{:<34} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
        "clone (the operator's way)",
        copy.as_secs_f64(),
        after_clone.as_secs_f64(),
        total_clone.as_secs_f64(),
        mibps(total_clone)
    );
    println!(
        "clone / incremental: {:.2}x the time (loading the data took {:.1} s)",
        total_clone.as_secs_f64() / incremental.as_secs_f64(),
        loaded.as_secs_f64()
    );
}
