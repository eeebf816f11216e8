//! Every statement of `src/topology/SQL.md` against a real MySQL 9.7 group: members run from the
//! operator's own StatefulSet pod spec by the `e2e/realmysql` harness (one network namespace per
//! member, volumes and users as the spec says), driven by the operator's own `SqlOps` through
//! `gather` and `execute`. After each step the operator's observation is compared with what the
//! servers say of themselves. Needs root and the root filesystem of
//! `e2e/lib/install-mysql97.sh`; under `CI=true` a missing one is a failure.

#[path = "../realmysql/mod.rs"]
mod realmysql;

mod ca_change;
// Shared with the real-node tier, which also selects the packets of one pod.
#[allow(dead_code)]
#[path = "../support/capture.rs"]
mod capture;
mod group;
mod moved;
// Shared with the data-path tier: the S3 server a backup over TLS goes to.
#[allow(dead_code)]
#[path = "../support/minio.rs"]
mod minio;
mod objects;
mod scale;
mod tls;
mod verified;
mod xcom_cert;
mod xnotices;

use std::time::{Duration, Instant};

use innodb_operator::topology::ops::Operation;
use innodb_operator::xproto::notice::GrEventKind;

use group::{Group, describe, online_as, status};

/// Generous bounds: the machine is shared and slow; the measured times are printed.
const STEP: Duration = Duration::from_secs(90);

/// Measured durations, printed at the end.
#[derive(Default)]
struct Timings(Vec<(String, Duration)>);

impl Timings {
    fn add(&mut self, what: &str, d: Duration) {
        eprintln!("TIMING {what}: {:.1} s", d.as_secs_f64());
        self.0.push((what.to_string(), d));
    }
}

impl Drop for Timings {
    fn drop(&mut self) {
        for (what, d) in &self.0 {
            eprintln!("TIMING {what:<55} {:>6.1} s", d.as_secs_f64());
        }
    }
}

async fn uuid_of(g: &Group, ordinal: u32) -> String {
    g.observe()
        .await
        .state(ordinal)
        .map(|s| s.server_uuid.clone())
        .unwrap_or_else(|| panic!("member {ordinal} unobserved"))
}

/// The fresh members: reachable with the operator's account (created by the init-time
/// statements), 9.7 with Group Replication and clone, no transaction of their own.
async fn check_fresh_members(g: &Group) {
    let (observed, took) = g
        .wait_until("every member answers the operator", STEP, |o| {
            o.members.iter().all(|m| m.state().is_some())
        })
        .await;
    eprintln!("members answer {took:?} after their pods started");
    for m in &observed.members {
        let s = m.state().expect("observed");
        let caps = &s.capabilities;
        assert_eq!((caps.version.major, caps.version.minor), (9, 7), "{caps:?}");
        assert!(
            caps.group_replication && caps.clone && caps.communication_stack,
            "{caps:?}"
        );
        assert!(
            s.gtid_executed.is_empty(),
            "member {}: the init-time account statements must not be transactions: {}",
            m.ordinal,
            s.gtid_executed
        );
        assert_eq!(status(&observed, m.ordinal), "OFFLINE");
        g.assert_believes_truth(&observed, m.ordinal).await;
    }
}

async fn bootstrap(g: &Group, t: &mut Timings, label: &str) {
    let started = Instant::now();
    g.run(Operation::Bootstrap { seed: 0 })
        .await
        .expect("bootstrap");
    let (observed, _) = g
        .wait_until("member 0 is the ONLINE primary", STEP, |o| {
            online_as(o, 0, true, 1)
        })
        .await;
    t.add(
        &format!("{label}: bootstrap (START to ONLINE primary)"),
        started.elapsed(),
    );
    g.assert_believes_truth(&observed, 0).await;
    let state = observed.state(0).expect("observed");
    assert!(!state.super_read_only, "the primary is writable");
    let users = g.root_query(0, "SELECT user FROM mysql.user").await;
    for account in [
        &g.ops.accounts.recovery,
        &g.ops.accounts.router,
        &g.ops.accounts.backup,
    ] {
        assert!(
            users.iter().flatten().any(|u| *u == account.user),
            "bootstrap created {}: {users:?}",
            account.user
        );
    }
    let bootstrap_flag = g
        .root_query(0, "SELECT @@group_replication_bootstrap_group")
        .await;
    assert_eq!(
        bootstrap_flag,
        vec![Some("0".to_string())],
        "bootstrap_group is left OFF"
    );
}

async fn join(g: &Group, t: &mut Timings, ordinal: u32, size: usize, label: &str) {
    let started = Instant::now();
    g.run(Operation::Join {
        member: ordinal,
        restart: false,
    })
    .await
    .expect("join");
    let (observed, _) = g
        .wait_until(
            &format!("member {ordinal} is an ONLINE secondary"),
            STEP,
            |o| online_as(o, ordinal, false, size),
        )
        .await;
    t.add(label, started.elapsed());
    g.assert_believes_truth(&observed, ordinal).await;
}

/// Writes a few transactions on `primary` (so joins have something to recover).
async fn write(g: &Group, primary: u32, round: u32) {
    g.root_exec(primary, "CREATE DATABASE IF NOT EXISTS iop_test")
        .await;
    g.root_exec(
        primary,
        "CREATE TABLE IF NOT EXISTS iop_test.t (id INT PRIMARY KEY, v VARCHAR(20))",
    )
    .await;
    g.root_exec(
        primary,
        &format!("INSERT INTO iop_test.t VALUES ({round}, 'round {round}')"),
    )
    .await;
}

async fn same_transactions(g: &Group, a: u32, b: u32) {
    let (ta, tb) = (g.truth(a).await, g.truth(b).await);
    assert_eq!(
        ta.gtid_executed, tb.gtid_executed,
        "members {a} and {b} hold the same transactions"
    );
}

const CLONE_STATUS: &str =
    "SELECT STATE, BEGIN_TIME, ERROR_NO, ERROR_MESSAGE FROM performance_schema.clone_status";

/// Clones `donor` into `ordinal` through the operator, then (start_on_boot is OFF) joins it.
/// The clone is done when the recipient's `clone_status` shows a new clone Completed (it
/// restarted) and the operator reads the donor's transactions there.
async fn clone_and_join(g: &Group, t: &mut Timings, ordinal: u32, donor: u32, label: &str) {
    let donor_gtids = g.truth(donor).await.gtid_executed;
    let before = g
        .root_try(ordinal, CLONE_STATUS)
        .await
        .expect("clone_status");
    let started = Instant::now();
    g.run(Operation::Clone {
        member: ordinal,
        donor,
    })
    .await
    .expect("clone starts");
    let mut saw_cloning = false;
    let limit = Duration::from_secs(180);
    let observed = loop {
        let observed = g.observe().await;
        saw_cloning |= observed.state(ordinal).is_some_and(|s| s.cloning);
        if let Ok(now) = g.root_try(ordinal, CLONE_STATUS).await
            && now != before
            && let Some(row) = now.first()
        {
            match row[0].as_deref() {
                Some("Failed") => panic!("the clone into member {ordinal} failed: {row:?}"),
                Some("Completed")
                    if observed
                        .state(ordinal)
                        .is_some_and(|s| !s.cloning && donor_gtids.is_subset(&s.gtid_executed)) =>
                {
                    break observed;
                }
                _ => {}
            }
        }
        assert!(
            started.elapsed() < limit,
            "member {ordinal} did not restart with a clone of member {donor} within {limit:?}:\n{}",
            describe(&observed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("{label}: the operator saw the clone running: {saw_cloning}");
    t.add(
        &format!("{label}: clone (statement to restarted member)"),
        started.elapsed(),
    );
    assert_eq!(
        status(&observed, ordinal),
        "OFFLINE",
        "after the clone's restart (start_on_boot=OFF) the member is out of the group"
    );
    let size = observed.state(donor).map_or(0, |s| {
        s.group
            .iter()
            .filter(|r| r.state.as_str() == "ONLINE")
            .count()
    });
    join(
        g,
        t,
        ordinal,
        size + 1,
        &format!("{label}: join after the clone"),
    )
    .await;
    t.add(
        &format!("{label}: clone + join end to end"),
        started.elapsed(),
    );
}

async fn switchover(g: &Group, t: &mut Timings, via: u32, target: u32) {
    let target_uuid = uuid_of(g, target).await;
    let started = Instant::now();
    g.run(Operation::SetPrimary {
        via,
        target,
        target_uuid,
    })
    .await
    .expect("switchover");
    let (observed, _) = g
        .wait_until(&format!("member {target} is the primary"), STEP, |o| {
            online_as(o, target, true, 3) && online_as(o, via, false, 3)
        })
        .await;
    t.add(
        "switchover (set_as_primary to new primary seen)",
        started.elapsed(),
    );
    for o in 0..3 {
        g.assert_believes_truth(&observed, o).await;
    }
}

async fn leave(g: &Group, ordinal: u32) {
    g.run(Operation::Leave { member: ordinal })
        .await
        .expect("leave");
    let (observed, _) = g
        .wait_until(&format!("member {ordinal} left"), STEP, |o| {
            status(o, ordinal) == "OFFLINE"
                && o.members
                    .iter()
                    .filter(|m| m.ordinal != ordinal)
                    .all(|m| m.state().is_some_and(|s| s.group.len() == 2))
        })
        .await;
    let state = observed.state(ordinal).expect("observed");
    eprintln!(
        "after leaving, member {ordinal} has super_read_only={}",
        state.super_read_only
    );
    for o in 0..3 {
        g.assert_believes_truth(&observed, o).await;
    }
}

/// Cuts `cut` off, forces the membership to `keep` through `keep`, heals, and brings the others
/// back the way the operator does (STOP + START for members in ERROR).
async fn force_quorum(g: &Group, t: &mut Timings, keep: u32, cut: [u32; 2]) {
    for o in cut {
        g.members.link_down(o).expect("link down");
    }
    let (observed, took) = g
        .wait_until(&format!("member {keep} loses quorum"), STEP, |o| {
            o.state(keep).is_some_and(|s| !s.has_quorum())
        })
        .await;
    t.add(
        "partition: 2 of 3 cut off to quorum lost on the third",
        took,
    );
    eprintln!("partitioned:\n{}", describe(&observed));
    let started = Instant::now();
    innodb_operator::topology::ops::execute(
        &g.ops,
        &observed,
        &Operation::ForceQuorum {
            via: keep,
            members: vec![keep],
        },
    )
    .await
    .expect("force quorum");
    t.add("force quorum: the statement", started.elapsed());
    let (observed, _) = g
        .wait_until(&format!("member {keep} alone has quorum"), STEP, |o| {
            online_as(o, keep, true, 1) && o.state(keep).is_some_and(|s| s.group.len() == 1)
        })
        .await;
    t.add(
        "force quorum (statement to a writable group of one)",
        started.elapsed(),
    );
    g.assert_believes_truth(&observed, keep).await;
    let forced = g
        .root_query(keep, "SELECT @@group_replication_force_members")
        .await;
    assert_eq!(
        forced,
        vec![Some(String::new())],
        "force_members is cleared"
    );

    for o in cut {
        g.members.link_up(o).expect("link up");
    }
    let healed = Instant::now();
    // What the cut-off members do (auto-rejoin, ERROR, a stale minority view) is up to the
    // servers; the operator's own ticks must bring them back.
    let ran = g
        .converge("3 ONLINE members again", Duration::from_secs(240), |o| {
            (0..3).all(|m| online_as(o, m, m == keep, 3))
        })
        .await;
    eprintln!("after healing the operator ran: {ran:?}");
    t.add("heal to 3 ONLINE again", healed.elapsed());
}

/// The members' `group_replication_member_expel_timeout`, as root sees it.
async fn expel_timeouts(g: &Group, members: &[u32]) -> Vec<String> {
    let mut values = Vec::new();
    for &o in members {
        let v = g
            .root_query(o, "SELECT @@GLOBAL.group_replication_member_expel_timeout")
            .await;
        values.push(v.into_iter().flatten().next().unwrap_or_default());
    }
    values
}

/// kill -9 of the primary while the operator ticks (as it does when the X protocol session to
/// the killed member drops): its address refuses connections, so the operator has the survivors
/// expel it without the 5 s grace. Measures until the survivors (their own
/// replication_group_members) show a new primary; then the kubelet restarts the container, the
/// operator rejoins it and sets the expel timeout back.
async fn kill_primary(g: &mut Group, t: &mut Timings, primary: u32) {
    let survivors: Vec<u32> = (0..3).filter(|&o| o != primary).collect();
    let old_uuid = uuid_of(g, primary).await;
    // An application's account, to see what clients see of the restarted member.
    let (app, app_password) = group::APP_USER;
    g.root_exec(
        primary,
        &format!("CREATE USER IF NOT EXISTS '{app}'@'%' IDENTIFIED BY '{app_password}'"),
    )
    .await;
    g.root_exec(
        primary,
        &format!("GRANT SELECT ON iop_test.* TO '{app}'@'%'"),
    )
    .await;
    // Members cloned earlier restarted offline (they had been in a group): ticks admit them.
    admitted_everywhere(g, "before the kill").await;
    assert_eq!(expel_timeouts(g, &[0, 1, 2]).await, ["5", "5", "5"]);
    let killed = Instant::now();
    g.members.kill(primary, libc::SIGKILL);
    let done = std::sync::atomic::AtomicBool::new(false);
    let operator = async {
        let mut shortened = None;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let observed = g.observe().await;
            let decision = g.tick(&observed).await;
            if let Some(change) = decision.expel_timeout.filter(|c| c.seconds == 0) {
                shortened.get_or_insert((killed.elapsed(), change));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shortened
    };
    let watch = async {
        let mut unreachable = None;
        let new_primary = loop {
            let truth = g.truth(survivors[0]).await;
            if unreachable.is_none()
                && truth
                    .rows
                    .iter()
                    .any(|r| r.0.eq_ignore_ascii_case(&old_uuid) && r.2 == "UNREACHABLE")
            {
                unreachable = Some(killed.elapsed());
            }
            let primary_row = truth
                .rows
                .iter()
                .find(|r| r.3 == "PRIMARY" && r.2 == "ONLINE");
            if let Some(row) = primary_row.filter(|r| !r.0.eq_ignore_ascii_case(&old_uuid)) {
                break row.0.to_ascii_lowercase();
            }
            assert!(
                killed.elapsed() < STEP,
                "no new primary {STEP:?} after kill -9: {truth:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let elected = killed.elapsed();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (unreachable, new_primary, elected)
    };
    let (shortened, (unreachable, new_primary, elected)) = tokio::join!(operator, watch);
    let (asked, change) = shortened.expect("the operator shortened the expel timeout");
    assert_eq!(change.members, survivors, "{change:?}");
    assert_eq!(
        change.gone,
        [(primary, innodb_operator::topology::expel::Gone::Refused)]
    );
    t.add("kill -9 primary: operator asks for expel timeout 0", asked);
    if let Some(u) = unreachable {
        t.add("kill -9 primary: marked UNREACHABLE", u);
    }
    t.add(
        "kill -9 primary: new primary elected (survivors' view)",
        elected,
    );
    // With the default grace the election took 21.6–22.0 s here; without it 6.3–6.9 s.
    assert!(
        elected < Duration::from_secs(15),
        "the gone primary was not expelled without the grace: elected after {elected:?}"
    );
    let other = g.truth(survivors[1]).await;
    assert!(
        other
            .rows
            .iter()
            .any(|r| r.0.eq_ignore_ascii_case(&new_primary) && r.3 == "PRIMARY"),
        "both survivors agree on the new primary: {other:?}"
    );
    let status =
        tokio::task::block_in_place(|| g.members.wait_exit(primary, Duration::from_secs(10)));
    assert!(status.is_some(), "the killed container ended");
    let restarted = Instant::now();
    tokio::task::block_in_place(|| g.members.restart_container(primary)).expect("kubelet restart");
    let (observed, _) = g
        .wait_until(
            &format!("member {primary} answers after its restart"),
            STEP,
            |o| o.state(primary).is_some(),
        )
        .await;
    // It starts offline: nothing but the operator (CONNECTION_ADMIN) reaches it until the group
    // takes it back and the operator admits clients.
    assert!(
        observed.state(primary).is_some_and(|s| s.offline_mode),
        "the restarted member starts offline:\n{}",
        describe(&observed)
    );
    let refused = g.app_try(primary, "SELECT 1").await;
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("3032")),
        "the application's account is refused by the restarted member: {refused:?}"
    );
    join(
        g,
        t,
        primary,
        3,
        "rejoin after kill -9 (container restart to ONLINE)",
    )
    .await;
    t.add(
        "kill -9 primary: container restart + rejoin",
        restarted.elapsed(),
    );
    // Once nobody is gone or suspected, the operator sets the grace back everywhere.
    g.converge("the expel timeout set back to 5", STEP, |o| {
        (0..3).all(|m| o.state(m).is_some_and(|s| s.expel_timeout == Some(5)))
    })
    .await;
    assert_eq!(expel_timeouts(g, &[0, 1, 2]).await, ["5", "5", "5"]);
    admitted_everywhere(g, "after the rejoin").await;
}

/// The operator's ticks admit clients to every member (each ONLINE), and the application's
/// account then connects to each.
async fn admitted_everywhere(g: &Group, when: &str) {
    g.converge(
        &format!("clients admitted to every member {when}"),
        STEP,
        |o| (0..3).all(|m| o.state(m).is_some_and(|s| !s.offline_mode)),
    )
    .await;
    for o in 0..3 {
        let admitted = g.app_try(o, "SELECT @@GLOBAL.offline_mode").await;
        assert_eq!(
            admitted,
            Ok(vec![vec![Some("0".to_string())]]),
            "member {o} admits the application {when}"
        );
    }
}

/// A secondary's pod deleted and created again (a rolling update): the init container runs
/// again on the kept data directory, the member keeps its identity and the operator rejoins it.
async fn recreate_secondary(g: &mut Group, t: &mut Timings) {
    let observed = g.observe().await;
    let secondary = (0..3)
        .find(|&o| online_as(&observed, o, false, 3))
        .expect("an ONLINE secondary");
    let uuid = uuid_of(g, secondary).await;
    let started = Instant::now();
    tokio::task::block_in_place(|| g.members.recreate_pod(secondary)).expect("pod recreated");
    g.wait_until(
        &format!("member {secondary} answers in its new pod"),
        STEP,
        |o| o.state(secondary).is_some(),
    )
    .await;
    assert_eq!(
        uuid_of(g, secondary).await,
        uuid,
        "the data directory was kept"
    );
    join(g, t, secondary, 3, "rejoin after the pod was recreated").await;
    t.add("pod recreated + rejoin", started.elapsed());
}

fn cluster_spec(stack: &str, instances: u32) -> String {
    format!("{{version: '9.7.4', instances: {instances}, groupCommunicationStack: {stack}}}")
}

/// The operator's warnings (e.g. a clone that failed on its own session) in the test output.
fn log_warnings() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_ansi(false)
        .with_test_writer()
        .try_init();
}

/// `instances` fresh members of a new cluster on `stack`, checked; `None` when the tier is
/// skipped (outside CI only).
async fn fresh_group(name: &str, stack: &str, instances: u32, t: &mut Timings) -> Option<Group> {
    fresh_group_with(name, &cluster_spec(stack, instances), t).await
}

/// [`fresh_group`] with the whole spec.
async fn fresh_group_with(name: &str, spec: &str, t: &mut Timings) -> Option<Group> {
    log_warnings();
    let rootfs = realmysql::rootfs()?;
    let started = Instant::now();
    let g = tokio::task::block_in_place(|| Group::start(&rootfs, name, spec));
    t.add(
        &format!("{name}: pods started (init containers, --initialize)"),
        started.elapsed(),
    );
    check_fresh_members(&g).await;
    Some(g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_on_a_real_group_mysql_stack() {
    let mut t = Timings::default();
    let Some(mut g) = fresh_group("gr-mysql", "MYSQL", 3, &mut t).await else {
        return;
    };

    bootstrap(&g, &mut t, "MYSQL stack").await;
    write(&g, 0, 1).await;
    join(&g, &mut t, 1, 2, "MYSQL stack: incremental join").await;
    same_transactions(&g, 0, 1).await;
    write(&g, 0, 2).await;
    clone_and_join(&g, &mut t, 2, 1, "empty member").await;
    same_transactions(&g, 0, 2).await;

    // The X monitor's session on a member that stays: it hears the role change of the
    // switchover, the view change of a member leaving and the state changes of its return.
    let mut notices = xnotices::subscribe(&g, 0).await;
    switchover(&g, &mut t, 0, 1).await;
    notices.expect(&[GrEventKind::RoleChange], STEP).await;
    write(&g, 1, 3).await;

    leave(&g, 2).await;
    notices.expect(&[GrEventKind::ViewChange], STEP).await;
    // A member that left has super_read_only ON: the clone must still work.
    clone_and_join(&g, &mut t, 2, 0, "member that left").await;
    notices
        .expect(&[GrEventKind::ViewChange, GrEventKind::StateChange], STEP)
        .await;
    same_transactions(&g, 1, 2).await;

    force_quorum(&g, &mut t, 1, [0, 2]).await;
    write(&g, 1, 4).await;

    kill_primary(&mut g, &mut t, 1).await;
    recreate_secondary(&mut g, &mut t).await;
    let observed = g.observe().await;
    for o in 0..3 {
        g.assert_believes_truth(&observed, o).await;
    }
}

/// `sql` as root on `ordinal` without writing it to the binary log (no transaction of its own).
async fn root_unlogged(g: &Group, ordinal: u32, sql: &str) {
    use mysql_async::prelude::Queryable;
    let mut conn = g.root(ordinal).await;
    conn.query_drop("SET SESSION sql_log_bin = 0")
        .await
        .expect("sql_log_bin");
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql} on member {ordinal}: {e}"));
}

/// The decision's `Degraded` condition.
fn degraded(observed: &innodb_operator::topology::Observed) -> (String, String) {
    let d = innodb_operator::topology::decide(observed);
    assert_eq!(
        d.operation,
        Operation::None,
        "nothing is started or changed"
    );
    let c = d
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .expect("Degraded");
    (c.reason.clone(), c.message.clone())
}

/// Bad input: a member whose server refuses the operator's account (its password changed
/// behind the operator's back) → nothing is bootstrapped, the condition names the member and
/// the server's error; once the account is right again the operator goes on.
async fn refused_account_needs_the_user(g: &Group, ordinal: u32) {
    let admin = g
        .built
        .credentials(innodb_operator::objects::accounts::Account::Admin);
    root_unlogged(
        g,
        ordinal,
        &format!(
            "ALTER USER '{}'@'%' IDENTIFIED BY 'not-the-secret'",
            admin.user
        ),
    )
    .await;
    let observed = g.observe().await;
    let (reason, message) = degraded(&observed);
    assert_eq!(reason, "MemberNeedsAttention", "{message}");
    assert!(
        message.contains("refuses the operator's account") && message.contains("ERROR 1045"),
        "{message}"
    );
    eprintln!("refused account: {message}");
    root_unlogged(
        g,
        ordinal,
        &format!(
            "ALTER USER '{}'@'%' IDENTIFIED BY '{}'",
            admin.user,
            admin.password.replace('\\', "\\\\").replace('\'', "''")
        ),
    )
    .await;
    assert!(
        g.observe().await.state(ordinal).is_some(),
        "the account works again"
    );
}

/// Bad input: a member without the Group Replication plugin → never joined, the condition says
/// which option loads it; with the plugin back the operator joins it.
async fn missing_plugin_needs_the_user(g: &Group, ordinal: u32) {
    root_unlogged(g, ordinal, "UNINSTALL PLUGIN group_replication").await;
    let observed = g.observe().await;
    let (reason, message) = degraded(&observed);
    assert_eq!(reason, "MemberNeedsAttention", "{message}");
    assert!(
        message.contains("no active group_replication plugin"),
        "{message}"
    );
    eprintln!("missing plugin: {message}");
    root_unlogged(
        g,
        ordinal,
        "INSTALL PLUGIN group_replication SONAME 'group_replication.so'",
    )
    .await;
}

/// The XCOM stack; then a certificate renewed (same CA) and rolled in under a writer, which on
/// this stack the operator does by restarting each member's Group Replication (secondaries
/// first, the primary handing over): XCom reads its certificate only when Group Replication
/// starts, which the test first shows on the real server (a reload alone changes what mysqld
/// serves, not what XCom presents). Then XCom presents the renewed certificate on every member,
/// and a member rejoins. Last, a scale-up by one that restarts nobody (see `scale`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_and_join_on_the_xcom_stack() {
    let mut t = Timings::default();
    let Some(mut g) = fresh_group("gr-xcom", "XCOM", 2, &mut t).await else {
        return;
    };
    refused_account_needs_the_user(&g, 1).await;
    bootstrap(&g, &mut t, "XCOM stack").await;
    write(&g, 0, 1).await;
    missing_plugin_needs_the_user(&g, 1).await;
    join(&g, &mut t, 1, 2, "XCOM stack: incremental join").await;
    same_transactions(&g, 0, 1).await;
    a_reload_does_not_reach_xcom(&g).await;
    tls::rotation_under_writes(&g).await;
    let renewed = g.certificate_end.lock().unwrap().expect("the renewed end");
    for o in 0..2 {
        let presented = xcom_cert::xcom_certificate_end(&g, o, 1 - o).await;
        assert_eq!(
            presented.as_second(),
            renewed.as_second(),
            "member {o}'s XCom presents the renewed certificate"
        );
    }
    g.root_exec(1, "STOP GROUP_REPLICATION").await;
    join(&g, &mut t, 1, 2, "XCOM stack: rejoin after a renewal").await;
    scale::scale_up_by_one(&mut g, &mut t).await;
}

/// The finding behind the operator's XCOM renewal, on the real server: member 1 given a renewed
/// certificate and `ALTER INSTANCE RELOAD TLS` serves it to clients while its XCom still
/// presents the one it started with. Then its files and mysqld are put back as they were.
async fn a_reload_does_not_reach_xcom(g: &Group) {
    use innodb_operator::objects::tls::{CA_CERT_KEY, TLS_CERT_KEY, TLS_KEY_KEY};
    let keys = [TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY];
    let dir = g.members.volume_path(1, "tls");
    let kept: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| std::fs::read(dir.join(k)).unwrap())
        .collect();
    let started_with = xcom_cert::xcom_certificate_end(g, 1, 0).await;
    let secret_end = g.certificate_end.lock().unwrap().expect("the Secret's end");
    assert_eq!(
        started_with.as_second(),
        secret_end.as_second(),
        "XCom presents the certificate Group Replication started with"
    );
    let renewed = tls::renewed_member_secret(g);
    let data = renewed.data.as_ref().unwrap();
    for key in keys {
        std::fs::write(dir.join(key), &data[key].0).unwrap();
    }
    g.root_exec(1, "ALTER INSTANCE RELOAD TLS").await;
    let renewed_end = innodb_operator::certs::inspect::not_after(&data[TLS_CERT_KEY].0).unwrap();
    let served = g.observe().await.state(1).and_then(|s| s.certificate_end);
    assert_eq!(
        served.map(|t| t.as_second()),
        Some(renewed_end.as_second()),
        "mysqld serves the reloaded certificate"
    );
    let presented = xcom_cert::xcom_certificate_end(g, 1, 0).await;
    eprintln!(
        "XCOM: after RELOAD TLS mysqld serves the certificate ending {renewed_end}, XCom presents \
         the one ending {presented}"
    );
    assert_eq!(
        presented.as_second(),
        started_with.as_second(),
        "XCom keeps presenting the certificate it started with after a reload"
    );
    for (key, bytes) in keys.iter().zip(kept) {
        std::fs::write(dir.join(key), bytes).unwrap();
    }
    g.root_exec(1, "ALTER INSTANCE RELOAD TLS").await;
}

/// A secondary's pod deleted, then another's node lost, each created again at a new address
/// under the same name (see `moved`), on the MYSQL stack.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_at_a_new_address_mysql_stack() {
    moved::scenario("mv-mysql", "MYSQL").await;
}

/// The same on the XCOM stack (its own connections, and an allowlist of the members' names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_back_at_a_new_address_xcom_stack() {
    moved::scenario("mv-xcom", "XCOM").await;
}
