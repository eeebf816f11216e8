//! Scenarios on a running cluster with the application's writer going: an errant transaction
//! on a member out of the group, a member configured for another group, a member paused past
//! the expel timeout, switchovers (one measured, one while another member is cut off), quorum
//! lost and forced back by the user, an outage whose least complete member answers first, and
//! scaling 3 → 5 → 3. Each waits for what the operator must do and fails with what everything
//! says when it does not happen; the writer's invariants are checked at the end of the test.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::env::{Env, STEP};
use crate::writer::{self, Writer};

const SWITCHOVER: &str = "innodb-operator.io/switchover-to";
const FORCE_QUORUM: &str = "innodb-operator.io/force-quorum-from";
/// A row id the writer never reaches: the errant transaction's.
const ERRANT_ROW: u64 = 1_000_000_001;

/// Whether `view` (rows of host, state, role) lists the member of pod `pod`.
fn lists(view: &[Vec<Option<String>>], pod: &str) -> Option<(String, String)> {
    view.iter()
        .find(|r| {
            r[0].as_deref()
                .is_some_and(|h| h == pod || h.starts_with(&format!("{pod}.")))
        })
        .map(|r| {
            (
                r[1].clone().unwrap_or_default(),
                r[2].clone().unwrap_or_default(),
            )
        })
}

/// The secondaries' ordinals, as labelled.
fn secondaries(env: &Env) -> Vec<u32> {
    let primary = env.primary();
    let mut out: Vec<u32> = env
        .members()
        .iter()
        .map(|m| m.0)
        .filter(|&o| o != primary)
        .collect();
    out.sort();
    out
}

fn pod(env: &Env, ordinal: u32) -> String {
    format!("{}-{ordinal}", env.name)
}

/// An errant transaction on a secondary taken out of the group (the user stops its Group
/// Replication and writes on it): the operator never joins it back and says so
/// (`MemberNeedsAttention`); once the user sets `clonePolicy: ReplaceErrant`, it is re-cloned
/// from the group, ONLINE again, and the errant row is gone everywhere.
pub async fn errant_member(env: &mut Env) {
    let target = secondaries(env)[0];
    let pod = pod(env, target);
    let insert = format!("INSERT INTO {} (id) VALUES ({ERRANT_ROW})", writer::TABLE);
    env.root_session(
        target,
        &[
            "STOP GROUP_REPLICATION",
            "SET GLOBAL super_read_only = OFF",
            &insert,
            "SET GLOBAL super_read_only = ON",
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{pod}: an errant transaction: {e}"));
    let took = env
        .until(
            "the Ready condition says MemberNeedsAttention about the errant member",
            STEP,
            async |e| {
                matches!(e.condition("Ready").await,
                    Some((false, reason, message)) if reason == "MemberNeedsAttention"
                        && message.contains(&pod))
            },
        )
        .await;
    env.time("errant transaction: MemberNeedsAttention", took);
    eprintln!("{}: {:?}", env.name, env.condition("Ready").await);
    // Never joined: it stays out of the group while the policy forbids replacing its data.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(10) {
        let state = env.state(target).await;
        assert_eq!(
            state.as_deref(),
            Some("OFFLINE"),
            "{pod}, which has an errant transaction, was joined\n{}",
            env.describe().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let patched = Instant::now();
    env.patch(json!({"spec": {"clonePolicy": "ReplaceErrant"}}))
        .await;
    env.until(
        "the errant member is re-cloned and the cluster healthy",
        STEP * 2,
        async |e| e.healthy(3).await,
    )
    .await;
    env.time(
        "errant transaction: ReplaceErrant set to healthy (re-cloned)",
        patched.elapsed(),
    );
    let count = format!(
        "SELECT COUNT(*) FROM {} WHERE id = {ERRANT_ROW}",
        writer::TABLE
    );
    for (o, name, _) in env.members() {
        let rows = env
            .root(o, &count)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            rows[0][0].as_deref(),
            Some("0"),
            "{name} still has the errant row after the re-clone"
        );
    }
}

/// A secondary paused (`SIGSTOP`) until the group expels it, then continued: the operator
/// takes it back, and it serves the application's account like any other member.
pub async fn paused_member(env: &mut Env, w: &Writer) {
    let primary = env.primary();
    let target = secondaries(env)[0];
    let pod = pod(env, target);
    env.kubelet.pods().members.kill(target, libc::SIGSTOP);
    let paused = Instant::now();
    let expelled = env
        .until("the group expels the paused member", STEP, async |e| {
            e.view(primary)
                .await
                .is_ok_and(|v| !v.is_empty() && lists(&v, &pod).is_none())
        })
        .await;
    env.time("SIGSTOP secondary: expelled by the group", expelled);
    tokio::time::sleep(Duration::from_secs(2)).await;
    env.kubelet.pods().members.kill(target, libc::SIGCONT);
    let continued = Instant::now();
    env.until(
        "the continued member is back and the cluster healthy",
        STEP * 2,
        async |e| e.healthy(3).await,
    )
    .await;
    env.time(
        "SIGSTOP secondary: continued to back ONLINE, healthy",
        continued.elapsed(),
    );
    eprintln!(
        "{}: paused {:.1} s in all",
        env.name,
        (continued - paused).as_secs_f64()
    );
    env.check_writes(&w.acked()).await;
}

/// Sets the switchover annotation to `target` and waits until it is the labelled primary of a
/// healthy group of `size` and the operator removed the annotation; returns when the labels
/// were right.
async fn switch_to(env: &Env, target: u32, size: usize, what: &str) -> Instant {
    env.annotate(SWITCHOVER, Some(&target.to_string())).await;
    let pod = pod(env, target);
    env.until(what, STEP, async |e| {
        e.roles.primaries() == [pod.clone()] && e.healthy(size).await
    })
    .await;
    let done = Instant::now();
    env.until(
        "the operator removes the switchover annotation",
        STEP,
        async |e| !e.annotated(SWITCHOVER).await,
    )
    .await;
    done
}

/// A switchover by annotation, measured (the longest time without a commit through the
/// Router); then another while a third member is cut off (its link down).
pub async fn switchovers(env: &mut Env, w: &Writer) {
    let target = secondaries(env)[0];
    let asked = Instant::now();
    let done = switch_to(env, target, 3, "the switchover is done").await;
    env.time(
        "switchover: annotated to new primary labelled",
        done - asked,
    );
    let pause = w.longest_pause(asked, done);
    env.time("switchover: write unavailability through the Router", pause);
    for (from, to, n, what) in w.outcomes_since(asked) {
        eprintln!(
            "{}: writer {from:>6.1} s .. {to:>6.1} s after the annotation: {n:>5} x {what}",
            env.name
        );
    }
    let [a, b] = secondaries(env)[..] else {
        panic!("two secondaries");
    };
    let cut_pod = pod(env, b);
    let primary = env.primary();
    env.kubelet
        .pods()
        .members
        .link_down(b)
        .unwrap_or_else(|e| panic!("cut {cut_pod} off: {e}"));
    env.until(
        "the group sees the cut-off member UNREACHABLE",
        STEP,
        async |e| {
            e.view(primary)
                .await
                .is_ok_and(|v| lists(&v, &cut_pod).is_some_and(|(state, _)| state == "UNREACHABLE"))
        },
    )
    .await;
    let asked = Instant::now();
    env.annotate(SWITCHOVER, Some(&a.to_string())).await;
    let a_pod = pod(env, a);
    let took = env
        .until(
            "the switchover is done while a member is cut off",
            STEP,
            async |e| {
                e.roles.primaries() == [a_pod.clone()]
                    && e.view(a).await.is_ok_and(|v| {
                        lists(&v, &a_pod).is_some_and(|(s, r)| s == "ONLINE" && r == "PRIMARY")
                    })
            },
        )
        .await;
    env.time(
        "switchover while a member is cut off: new primary labelled",
        took,
    );
    eprintln!(
        "{}: the cut-off member then: {:?}",
        env.name,
        env.view(a).await
    );
    env.kubelet
        .pods()
        .members
        .link_up(b)
        .unwrap_or_else(|e| panic!("connect {cut_pod} again: {e}"));
    let back = Instant::now();
    env.until(
        "the cut-off member is back and the cluster healthy",
        STEP * 2,
        async |e| e.healthy(3).await && !e.annotated(SWITCHOVER).await,
    )
    .await;
    env.time(
        "switchover while a member is cut off: link up to healthy",
        back.elapsed(),
    );
    let _ = asked;
}

/// Two of three members cut off (their links down): the survivor has no quorum. The operator
/// reports `QuorumLost` and does nothing by itself; the cut-off members are then gone for good
/// (killed while cut off) and the user annotates the force-quorum order: the survivor's group
/// goes on alone and takes writes; the others come back and join.
pub async fn quorum_lost(env: &mut Env, w: &Writer) {
    let survivor = secondaries(env)[0];
    let cut: Vec<u32> = env
        .members()
        .iter()
        .map(|m| m.0)
        .filter(|&o| o != survivor)
        .collect();
    for &o in &cut {
        env.kubelet
            .pods()
            .members
            .link_down(o)
            .unwrap_or_else(|e| panic!("cut member {o} off: {e}"));
    }
    let took = env
        .until("the QuorumLost condition is True", STEP, async |e| {
            e.condition("QuorumLost").await.is_some_and(|c| c.0)
        })
        .await;
    env.time("quorum lost: 2 of 3 cut off to QuorumLost", took);
    eprintln!("{}: {:?}", env.name, env.condition("QuorumLost").await);
    // Nothing automatic: the survivor stays in its view of three, without quorum.
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(10) {
        let view = env.view(survivor).await.unwrap_or_default();
        assert!(
            view.len() == 3 && env.condition("QuorumLost").await.is_some_and(|c| c.0),
            "{}: the group's membership changed without the user's order: {view:?}\n{}",
            env.name,
            env.describe().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    {
        let mut pods = env.kubelet.pods();
        for &o in &cut {
            pods.held.insert(o);
            pods.members.kill(o, libc::SIGKILL);
        }
    }
    let before = w.acked().len();
    let ordered = Instant::now();
    env.annotate(FORCE_QUORUM, Some(&survivor.to_string()))
        .await;
    let s_pod = pod(env, survivor);
    env.until(
        "the survivor's group goes on alone and takes writes through the Router",
        STEP,
        async |e| {
            w.acked().len() > before
                && e.roles.primaries() == [s_pod.clone()]
                && e.view(survivor).await.is_ok_and(|v| v.len() == 1)
        },
    )
    .await;
    env.time(
        "quorum lost: force-quorum annotation to writes accepted",
        ordered.elapsed(),
    );
    env.until(
        "the operator removes the force-quorum annotation",
        STEP,
        async |e| !e.annotated(FORCE_QUORUM).await,
    )
    .await;
    {
        let mut pods = env.kubelet.pods();
        for &o in &cut {
            pods.members
                .link_up(o)
                .unwrap_or_else(|e| panic!("connect member {o} again: {e}"));
            pods.held.remove(&o);
        }
    }
    let back = Instant::now();
    env.until(
        "the members cut off are back and the cluster healthy",
        STEP * 2,
        async |e| e.healthy(3).await,
    )
    .await;
    env.time(
        "quorum lost: cut-off members back to healthy",
        back.elapsed(),
    );
}

/// Exactly one pod labelled primary, and its group lists `size` members, all ONLINE.
async fn online(env: &Env, size: usize) -> bool {
    let Ok([primary]) = <[String; 1]>::try_from(env.roles.primaries()) else {
        return false;
    };
    let view = env.view(env.ordinal(&primary)).await.unwrap_or_default();
    view.len() == size && view.iter().all(|r| r[1].as_deref() == Some("ONLINE"))
}

/// Scale 3 → 5 (the new members join by clone) and back to 3: the members beyond 3 leave the
/// group before their pods go. The first three members' pods are never replaced: a change of
/// `instances` changes only the group's seeds (and XCOM's allowlist), which the operator sets on
/// running members (`topology::membership`); before, it replaced every member's pod twice.
///
/// "Left before the pod went" is read from each removed member's own error log: its Group
/// Replication was stopped before mysqld was told to shut down. (The group's view is no proof:
/// a pod stopped gracefully leaves the group in mysqld's shutdown anyway, and on this 2-core
/// machine a live, lagging member was once suspected UNREACHABLE for a moment while it was
/// still serving; such sightings are printed, not counted.)
pub async fn scale(env: &mut Env) {
    let uids = |env: &Env| -> Vec<(String, String)> {
        let pods = env.kubelet.pods();
        let mut uids: Vec<(String, String)> = pods
            .running
            .iter()
            .filter(|(_, r)| r.kind == crate::kubelet::Kind::Member && r.ordinal < 3)
            .map(|(n, r)| (n.clone(), r.uid.clone()))
            .collect();
        uids.sort();
        uids
    };
    let kept = uids(env);
    assert_eq!(
        kept.len(),
        3,
        "three members run before the scale: {kept:?}"
    );
    let asked = Instant::now();
    env.patch(json!({"spec": {"instances": 5}})).await;
    env.until("five members are ONLINE", STEP * 3, async |e| {
        online(e, 5).await
    })
    .await;
    env.time("scale 3 -> 5: five members ONLINE", asked.elapsed());
    let asked = Instant::now();
    env.patch(json!({"spec": {"instances": 3}})).await;
    env.until(
        "three members are left ONLINE, the others' pods gone",
        STEP * 3,
        async |e| {
            let Some(primary) = e.roles.primaries().first().map(|p| e.ordinal(p)) else {
                return false;
            };
            let view = e.view(primary).await.unwrap_or_default();
            let running = e.members();
            for o in [3, 4] {
                if let Some((state, _)) = lists(&view, &pod(e, o))
                    && state == "UNREACHABLE"
                {
                    let live = running.iter().any(|(r, _, _)| *r == o);
                    eprintln!(
                        "{}: the group lists {} UNREACHABLE (its pod running: {live})",
                        e.name,
                        pod(e, o)
                    );
                }
            }
            running.len() == 3 && online(e, 3).await
        },
    )
    .await;
    env.time(
        "scale 5 -> 3: three members ONLINE, pods gone",
        asked.elapsed(),
    );
    assert_eq!(
        uids(env),
        kept,
        "the first three members' pods were replaced by the scale"
    );
    for o in [3, 4] {
        let name = pod(env, o);
        let path = env.kubelet.pods().members.kept_log(&name, "mysql");
        let log =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            left_before_shutdown(&log),
            Some(true),
            "{name} did not leave the group before its pod was stopped (its last Group \
             Replication state change before mysqld's shutdown, from {}):\n{}",
            path.display(),
            log.lines()
                .filter(|l| l.contains("group_replication") || l.contains("SHUTDOWN"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// From a member's error log: was its Group Replication stopped (and not started again) before
/// the last shutdown mysqld was asked for? `None` when the log shows no shutdown.
fn left_before_shutdown(log: &str) -> Option<bool> {
    let lines: Vec<&str> = log.lines().collect();
    let shutdown = lines
        .iter()
        .rposition(|l| l.contains("[MY-013172]") && l.contains("Received SHUTDOWN"))?;
    let last_change = lines[..shutdown].iter().rev().find_map(|l| {
        if l.contains("'group_replication' has been stopped") {
            Some(true)
        } else if l.contains("'group_replication' is starting")
            || l.contains("'group_replication' has been started")
        {
            Some(false)
        } else {
            None
        }
    });
    Some(last_change == Some(true))
}

/// A secondary configured for another group (its Group Replication stopped and another group
/// name persisted with `SET PERSIST`, which outranks the operator's my.cnf): the operator
/// neither joins nor starts it and says why (`MemberNeedsAttention`); once the user sets the
/// cluster's group name back, it joins.
pub async fn foreign_group_name(env: &mut Env) {
    let primary = env.primary();
    let target = secondaries(env)[0];
    let pod = pod(env, target);
    let ours = env
        .root(primary, "SELECT @@GLOBAL.group_replication_group_name")
        .await
        .ok()
        .and_then(|r| r.first()?.first()?.clone())
        .expect("the group's name");
    let other = "0dd0dd00-0000-4000-8000-00000000beef";
    env.root_session(
        target,
        &[
            "STOP GROUP_REPLICATION",
            &format!("SET PERSIST group_replication_group_name = '{other}'"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{pod}: another group's name: {e}"));
    let took = env
        .until(
            "the Ready condition says MemberNeedsAttention about the other group's name",
            STEP,
            async |e| {
                matches!(e.condition("Ready").await,
                    Some((false, reason, message)) if reason == "MemberNeedsAttention"
                        && message.contains(&pod) && message.contains(other))
            },
        )
        .await;
    env.time("another group's name: MemberNeedsAttention", took);
    eprintln!("{}: {:?}", env.name, env.condition("Ready").await);
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(10) {
        let state = env.state(target).await;
        let view = env.view(primary).await.unwrap_or_default();
        assert!(
            state.as_deref() == Some("OFFLINE") && lists(&view, &pod).is_none(),
            "{pod}, configured for another group, was started or joined ({state:?})\n{}",
            env.describe().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fixed = Instant::now();
    env.root_session(
        target,
        &[
            "RESET PERSIST group_replication_group_name",
            &format!("SET GLOBAL group_replication_group_name = '{ours}'"),
        ],
    )
    .await
    .unwrap_or_else(|e| panic!("{pod}: the group's name back: {e}"));
    env.until(
        "the member joins once its group name is the cluster's",
        STEP,
        async |e| e.healthy(3).await,
    )
    .await;
    env.time("another group's name: set back to healthy", fixed.elapsed());
}

/// A complete outage in which the least complete member comes back first: one secondary is
/// killed, the group takes more writes, then the other two are killed. While only the first
/// one answers, nothing may start the group (it lacks acknowledged rows); once every member
/// answers, the group reboots from one that holds every row, and the first one joins.
pub async fn least_complete_back_first(env: &mut Env, w: &Writer) {
    let behind = secondaries(env)[0];
    let others: Vec<u32> = env
        .members()
        .iter()
        .map(|m| m.0)
        .filter(|&o| o != behind)
        .collect();
    {
        let mut pods = env.kubelet.pods();
        pods.held.insert(behind);
        pods.members.kill(behind, libc::SIGKILL);
    }
    let before = w.acked().len();
    env.until("the two others take 200 more rows", STEP, async |_| {
        w.acked().len() > before + 200
    })
    .await;
    {
        let mut pods = env.kubelet.pods();
        for &o in &others {
            pods.held.insert(o);
            pods.members.kill(o, libc::SIGKILL);
        }
        pods.held.remove(&behind);
    }
    let outage = Instant::now();
    env.until("the least complete member answers", STEP, async |e| {
        e.state(behind).await.is_some()
    })
    .await;
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(10) {
        let state = env.state(behind).await;
        assert!(
            matches!(state.as_deref(), Some("OFFLINE") | None),
            "{}: the group was started on {} while members holding more were unreachable \
             ({state:?})\n{}",
            env.name,
            pod(env, behind),
            env.describe().await
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    {
        let mut pods = env.kubelet.pods();
        for o in &others {
            pods.held.remove(o);
        }
    }
    env.until(
        "the group reboots from a complete member and is healthy",
        STEP * 2,
        async |e| e.healthy(3).await,
    )
    .await;
    env.time(
        "least complete member back first: outage to healthy",
        outage.elapsed(),
    );
    env.check_writes(&w.acked()).await;
}

#[cfg(test)]
mod tests {
    use super::left_before_shutdown;

    // Lines of a removed member's error log in a real run (grf-3, scaled away).
    const STOPPED: &str = "2026-12-07T02:23:42.915031Z 78 [System] [MY-011650] [Repl] Plugin group_replication reported: 'Plugin 'group_replication' is stopping.'";
    const LEFT: &str = "2026-12-07T02:23:46.036039Z 78 [System] [MY-011651] [Repl] Plugin group_replication reported: 'Plugin 'group_replication' has been stopped.'";
    const STARTED: &str = "2026-12-07T02:23:37.226852Z 12 [System] [MY-014010] [Repl] Plugin group_replication reported: 'Plugin 'group_replication' has been started.'";
    const SHUTDOWN: &str = "2026-12-07T02:23:49.764226Z 0 [System] [MY-013172] [Server] Received SHUTDOWN from user <via user signal>. Shutting down mysqld (Version: 9.7.4-2).";

    #[test]
    fn a_member_that_left_before_its_shutdown_is_told_from_one_that_left_in_it() {
        let left_first = [STARTED, STOPPED, LEFT, SHUTDOWN].join("\n");
        assert_eq!(left_before_shutdown(&left_first), Some(true));
        // mysqld leaves the group itself while shutting down: the stop is after the signal.
        let left_in_shutdown = [STARTED, SHUTDOWN, STOPPED, LEFT].join("\n");
        assert_eq!(left_before_shutdown(&left_in_shutdown), Some(false));
        // Stopped once, started again, then shut down.
        let restarted = [STOPPED, LEFT, STARTED, SHUTDOWN].join("\n");
        assert_eq!(left_before_shutdown(&restarted), Some(false));
        assert_eq!(left_before_shutdown(&[STARTED, LEFT].join("\n")), None);
    }
}
