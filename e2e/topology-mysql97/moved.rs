//! A member's pod gone and created again at a new address under the same name, as a
//! StatefulSet's pod is (a new pod IP, the same DNS name): deleted (mysqld stopped, its
//! connections closed), or its node lost (cut off, then killed: its peers' connections to the old
//! address are never closed by it). While it is away its name does not resolve (a lookup in a
//! survivor's pod fails at once, as with the cluster DNS) and the survivors stay ONLINE to each
//! other; back, the operator rejoins it, a commit on the primary reaches it at its new address,
//! and no member sees another one other than ONLINE afterwards.
//!
//! Measured (9.7.4, both stacks): rejoin 5.4–5.5 s after a deletion, 18.5–25.4 s after a lost
//! node: a survivor keeps its connection to the old address (nothing closed it) until XCom's
//! rule for a one-sided link fires (the rejoining member's pings reach it: "Shutting down an
//! outgoing connection ... bi-directional connection"), then dials the name again and reaches the
//! new address. XCom keeps no address of its own: each dial resolves the name.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::group::{Group, online_as};
use crate::realmysql::members::{GonePod, Removal};
use crate::{STEP, Timings};

/// How long the survivors are watched while the pod is away, and everyone once it is back.
const WATCH: Duration = Duration::from_secs(20);
/// A lookup of a name nobody holds: answered at once by a cluster DNS (20 s when the pods asked
/// the host's resolver, which the pod network does not reach).
const LOOKUP_LIMIT: Duration = Duration::from_secs(3);

/// Three members on `stack`; member 2's pod deleted and created again at a new address, then
/// member 1's node lost and its pod created again at a new address.
pub async fn scenario(name: &str, stack: &str) {
    let mut t = Timings::default();
    let Some(mut g) = crate::fresh_group(name, stack, 3, &mut t).await else {
        return;
    };
    crate::bootstrap(&g, &mut t, stack).await;
    crate::write(&g, 0, 1).await;
    crate::join(&g, &mut t, 1, 2, &format!("{stack}: join")).await;
    crate::join(&g, &mut t, 2, 3, &format!("{stack}: join")).await;
    back_at_a_new_address(&mut g, &mut t, 2, Removal::Deleted, 10).await;
    back_at_a_new_address(&mut g, &mut t, 1, Removal::NodeLost, 20).await;
}

/// Secondary `moved` removed (`how`) and created again at a new address; `round` numbers the
/// rows written meanwhile. Member 0 is the primary.
async fn back_at_a_new_address(
    g: &mut Group,
    t: &mut Timings,
    moved: u32,
    how: Removal,
    round: u32,
) {
    let survivors: Vec<u32> = (0..3).filter(|&o| o != moved).collect();
    let primary = survivors[0];
    let uuid = crate::uuid_of(g, moved).await;
    let gone = tokio::task::block_in_place(|| g.members.remove_pod(moved, how))
        .unwrap_or_else(|e| panic!("member {moved}'s pod removed: {e}"));
    g.members
        .set_hosts(&g.members.member_hosts())
        .expect("the cluster DNS without the removed pod");
    eprintln!(
        "member {moved} ({how:?}) at {} gone: its container {:?}",
        gone.ip, gone.status
    );
    let (status, took) = tokio::task::block_in_place(|| lookup_in_pod(g, primary, &gone.fqdn));
    assert!(
        took < LOOKUP_LIMIT && status.is_some_and(|s| !s.success()),
        "in member {primary}'s pod, the removed pod's name {} must fail to resolve at once: \
         {status:?} after {took:?}",
        gone.fqdn
    );
    t.add(&format!("{how:?}: the gone name's lookup fails"), took);
    let leaving = format!("member {moved} is out of the survivors' view");
    let (flaps, (_, left)) = tokio::join!(
        unsteady(g, &survivors, WATCH),
        g.wait_until(&leaving, STEP, |o| {
            survivors
                .iter()
                .all(|&s| o.state(s).is_some_and(|s| s.group.len() == 2))
        },)
    );
    assert!(
        flaps.is_empty(),
        "the survivors {survivors:?} did not stay ONLINE to each other while member {moved} \
         was away ({how:?}):\n{}\n{}",
        flaps.join("\n"),
        g.members.logs()
    );
    t.add(&format!("{how:?}: gone member out of the view"), left);
    crate::write(g, primary, round).await;
    let back = Instant::now();
    create_again(g, &gone);
    let ip = g.members.member(moved).ip.clone();
    assert_ne!(ip, gone.ip, "the pod created again has a new address");
    g.wait_until(&format!("member {moved} answers at {ip}"), STEP, |o| {
        o.state(moved).is_some()
    })
    .await;
    assert_eq!(
        crate::uuid_of(g, moved).await,
        uuid,
        "the data directory was kept"
    );
    crate::join(g, t, moved, 3, &format!("{how:?}: rejoin at a new address")).await;
    t.add(
        &format!("{how:?}: pod created again + rejoin"),
        back.elapsed(),
    );
    // The others reach it at its new address: a commit on the primary arrives there.
    crate::write(g, primary, round + 1).await;
    let committed = Instant::now();
    let select = format!("SELECT v FROM iop_test.t WHERE id = {}", round + 1);
    while !g
        .root_try(moved, &select)
        .await
        .is_ok_and(|rows| !rows.is_empty())
    {
        assert!(
            committed.elapsed() < Duration::from_secs(30),
            "a commit on member {primary} did not reach member {moved} at {ip}:\n{}",
            g.members.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.add(
        &format!("{how:?}: a commit on the primary reaches the new address"),
        committed.elapsed(),
    );
    let flaps = unsteady(g, &[0, 1, 2], WATCH).await;
    assert!(
        flaps.is_empty(),
        "after member {moved} came back at {ip} ({how:?}), a member saw another one other \
         than ONLINE:\n{}\n{}",
        flaps.join("\n"),
        g.members.logs()
    );
    let observed = g.observe().await;
    assert!(
        online_as(&observed, primary, true, 3),
        "member {primary} is still the primary of 3"
    );
}

/// The pod of `gone` created again (a new address), the cluster DNS updated, the pod started.
fn create_again(g: &mut Group, gone: &GonePod) {
    tokio::task::block_in_place(|| {
        g.members
            .add_member(
                gone.ordinal,
                gone.name.clone(),
                gone.fqdn.clone(),
                gone.source.clone(),
            )
            .and_then(|()| g.members.set_hosts(&g.members.member_hosts()))
            .and_then(|()| g.members.start(gone.ordinal))
            .unwrap_or_else(|e| panic!("{} created again: {e}", gone.name))
    });
}

/// `getent hosts name` in member `ordinal`'s pod: how it ended (`None`: still running after
/// twice the limit, then killed) and how long it took.
fn lookup_in_pod(g: &Group, ordinal: u32, name: &str) -> (Option<ExitStatus>, Duration) {
    let started = Instant::now();
    let (mut child, _log) = g
        .members
        .exec(
            ordinal,
            "lookup",
            vec!["getent".into(), "hosts".into(), name.into()],
        )
        .expect("getent in the pod");
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if started.elapsed() > LOOKUP_LIMIT * 2 {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, started.elapsed())
}

/// Samples, every 0.5 s for `span`, each of `members`' own view of the group (as root): every
/// moment one of them lists another of them other than ONLINE, or does not answer.
async fn unsteady(g: &Group, members: &[u32], span: Duration) -> Vec<String> {
    let hosts: Vec<(u32, String)> = members
        .iter()
        .map(|&o| (o, g.members.member(o).fqdn.clone()))
        .collect();
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < span {
        let at = started.elapsed().as_secs_f64();
        for &o in members {
            let view = g
                .root_try(
                    o,
                    "SELECT MEMBER_HOST, MEMBER_STATE FROM performance_schema.replication_group_members",
                )
                .await;
            match view {
                Err(e) => seen.push(format!("{at:>5.1} s: member {o} does not answer: {e}")),
                Ok(rows) => {
                    for (other, host) in &hosts {
                        let state = rows
                            .iter()
                            .find(|r| r[0].as_deref() == Some(host.as_str()))
                            .and_then(|r| r[1].clone());
                        if state.as_deref() != Some("ONLINE") {
                            seen.push(format!(
                                "{at:>5.1} s: member {o} sees member {other} as {state:?}"
                            ));
                        }
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    seen
}
