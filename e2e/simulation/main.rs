//! Deterministic simulation of Group Replication under the topology state machine.
//!
//! `ten_thousand_schedules_hold_every_invariant` runs `SIM_SCHEDULES` (default 10,000) seeded
//! schedules; a failing seed prints the command that replays it with a trace
//! (`SIM_SEED=<seed> cargo test --test simulation -- --nocapture`).
//! `a_broken_rule_is_caught` drives the simulator with a decision function that wraps the real
//! `decide` and bootstraps while a member does not answer, and expects a violation.
//! `restore_schedules_hold_every_invariant` runs `SIM_RESTORE_SCHEDULES` (default 2,000) schedules
//! of clusters created from a backup (replay: `SIM_RESTORE_SEED=<seed> cargo test --test
//! simulation restore_schedules -- --nocapture`); `a_group_started_before_the_restore_is_caught`
//! runs them with a `decide` that ignores the restore gate and expects a violation.

mod restore;
mod schedule;
mod simops;
mod world;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use innodb_operator::cluster::plan;
use innodb_operator::topology::diagnose::{Health, diagnose};
use innodb_operator::topology::expel::ExpelTimeout;
use innodb_operator::topology::observe::{MemberStatus, Reach, Silence};
use innodb_operator::topology::{Decision, Observed, Operation};

use schedule::{DecideFn, Outcome};

/// One schedule: `schedule::run` or `schedule::run_restore`.
type RunFn = fn(u64, &DecideFn, bool) -> Result<Outcome, String>;

/// Runs `seeds` on every core; returns the outcomes and the failures (sorted by seed).
fn run_many(
    seeds: std::ops::Range<u64>,
    decide: &DecideFn,
    one: RunFn,
) -> (Vec<Outcome>, Vec<(u64, String)>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicU64::new(seeds.start);
    let results = std::sync::Mutex::new((Vec::new(), Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        break;
                    }
                    let result = one(seed, decide, false);
                    let mut r = results.lock().expect("results lock");
                    match result {
                        Ok(outcome) => r.0.push(outcome),
                        Err(e) => r.1.push((seed, e)),
                    }
                }
            });
        }
    });
    let (outcomes, mut failures) = results.into_inner().expect("results lock");
    failures.sort_by_key(|(seed, _)| *seed);
    (outcomes, failures)
}

/// What a batch of schedules gives: its size, seconds, outcomes and failures.
type Batch = (u64, f64, Vec<Outcome>, Vec<(u64, String)>);

/// A batch of seeded schedules of `one` with the real `decide`: when `seed_var` is set, replays
/// that seed with its trace and returns `None`; else runs `count_var` (default `default_count`)
/// schedules and returns the count, seconds, outcomes and failures.
fn replay_or_run(seed_var: &str, count_var: &str, default_count: u64, one: RunFn) -> Option<Batch> {
    if let Ok(seed) = std::env::var(seed_var) {
        let seed: u64 = seed.parse().expect("the seed is a number");
        let outcome = one(seed, &schedule::real, true);
        println!("seed {seed}: {outcome:?}");
        assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
        return None;
    }
    let count: u64 = std::env::var(count_var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_count);
    let started = Instant::now();
    let (outcomes, failures) = run_many(0..count, &schedule::real, one);
    Some((count, started.elapsed().as_secs_f64(), outcomes, failures))
}

/// Prints the first 20 failures (each names its replay seed) and fails if there is any.
fn assert_none_broke(failures: &[(u64, String)], count: u64, what: &str) {
    for (_, failure) in failures.iter().take(20) {
        eprintln!("{failure}");
    }
    assert!(
        failures.is_empty(),
        "{} of {count} {what} broke an invariant",
        failures.len()
    );
}

#[test]
fn ten_thousand_schedules_hold_every_invariant() {
    let Some((count, elapsed, outcomes, failures)) =
        replay_or_run("SIM_SEED", "SIM_SCHEDULES", 10_000, schedule::run)
    else {
        return;
    };
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    println!(
        "{count} schedules in {elapsed:.1}s ({:.0}/s): {} failed, {} ended in a justified stop; \
         {} operator ticks, {} operations, {} faults, {} acknowledged writes, {:.1} simulated hours",
        count as f64 / elapsed,
        failures.len(),
        outcomes.iter().filter(|o| o.justified_stop).count(),
        sum(|o| o.ticks),
        sum(|o| o.operations),
        sum(|o| o.faults),
        sum(|o| o.writes),
        sum(|o| o.sim_ms) as f64 / 3_600_000.0,
    );
    assert!(
        sum(|o| o.faults) > count,
        "the schedules must inject faults"
    );
    assert!(sum(|o| o.operations) > count, "the operator must act");
    assert_none_broke(&failures, count, "schedules");
}

/// The real `decide`, except that it also bootstraps when no member is in a group although
/// some member does not answer — the rule "bootstrap only when every pod is reachable" broken.
fn bootstrap_despite_unreachable(observed: &Observed) -> Decision {
    let mut decision = schedule::real(observed);
    let diagnosis = diagnose(observed);
    if decision.operation == Operation::None
        && diagnosis.health == Health::Offline
        && !diagnosis.unreachable.is_empty()
        && let Some(seed) = observed
            .members
            .iter()
            .filter_map(|m| match &m.reach {
                Reach::Reachable(s) => Some((s.transactions().count(), m.ordinal)),
                _ => None,
            })
            .max()
            .map(|(_, o)| o)
    {
        decision.operation = Operation::Bootstrap { seed };
    }
    decision
}

/// Runs `seeds` schedules of `one` with a broken `decide`; prints how many caught it and returns
/// the failures and the first failure's first line (its replay line names the real `decide`, so
/// only the first line applies).
fn mutation(
    name: &str,
    seeds: std::ops::Range<u64>,
    decide: &DecideFn,
    one: RunFn,
) -> (Vec<(u64, String)>, String) {
    let (outcomes, failures) = run_many(seeds, decide, one);
    let first = failures
        .first()
        .and_then(|(_, f)| f.lines().next())
        .unwrap_or_default()
        .to_string();
    println!(
        "mutation '{name}': {} of {} schedules caught it; first: {first}",
        failures.len(),
        failures.len() + outcomes.len()
    );
    (failures, first)
}

#[test]
fn a_broken_rule_is_caught() {
    let (failures, first) = mutation(
        "bootstrap while a member is unreachable",
        0..2_000,
        &bootstrap_despite_unreachable,
        schedule::run,
    );
    assert!(
        !failures.is_empty(),
        "the simulator did not notice bootstraps from incomplete members"
    );
    assert!(
        failures
            .iter()
            .any(|(_, f)| f.contains("bootstrap from member")
                || f.contains("split brain")
                || f.contains("acknowledged")),
        "the violations should be the unsafe bootstrap: {first}"
    );
}

/// The real `decide`, except that a member that merely does not answer (cut off, paused) counts
/// as proof that it is gone: the group is told to expel without the grace on silence alone.
fn expel_on_silence(observed: &Observed) -> Decision {
    let mut decision = schedule::real(observed);
    let silent = observed.members.iter().any(|m| {
        matches!(
            m.reach,
            Reach::Unreachable {
                silence: Silence::NoAnswer,
                ..
            }
        )
    });
    if decision.expel_timeout.is_none() && silent {
        let members: Vec<u32> = observed
            .members
            .iter()
            .filter(|m| {
                m.state().is_some_and(|s| {
                    s.own_status() == MemberStatus::Online && s.expel_timeout != Some(0)
                })
            })
            .map(|m| m.ordinal)
            .collect();
        if !members.is_empty() {
            decision.expel_timeout = Some(ExpelTimeout {
                members,
                seconds: 0,
                gone: vec![],
            });
        }
    }
    decision
}

/// The real `decide`, except that a shortened expel timeout is never set back.
fn expel_never_restored(observed: &Observed) -> Decision {
    let mut decision = schedule::real(observed);
    decision
        .expel_timeout
        .take_if(|c| c.seconds == observed.input.expel_timeout);
    decision
}

#[test]
fn expel_on_proof_mutations_are_caught() {
    let (failures, first) = mutation(
        "expel without the grace on silence alone",
        0..1_000,
        &expel_on_silence,
        schedule::run,
    );
    assert!(
        failures.iter().any(|(_, f)| f.contains("expel timeout")),
        "the simulator did not notice a shortened expel timeout without proof: {first}"
    );
    let (failures, first) = mutation(
        "never set the expel timeout back",
        0..1_000,
        &expel_never_restored,
        schedule::run,
    );
    assert!(
        !failures.is_empty(),
        "the simulator did not notice an expel timeout left at 0: {first}"
    );
}

/// The real `decide`, except that clients are never admitted back to a member.
fn never_admit(observed: &Observed) -> Decision {
    let mut decision = schedule::real(observed);
    decision.admit.clear();
    decision
}

/// The real `decide`, except that every member that answers offline is admitted, in the group or
/// not.
fn admit_any(observed: &Observed) -> Decision {
    let mut decision = schedule::real(observed);
    decision.admit = observed
        .members
        .iter()
        .filter(|m| m.state().is_some_and(|s| s.offline_mode))
        .map(|m| m.ordinal)
        .collect();
    decision
}

#[test]
fn admit_mutations_are_caught() {
    let (failures, first) = mutation(
        "never admit clients again",
        0..300,
        &never_admit,
        schedule::run,
    );
    assert!(
        !failures.is_empty(),
        "the simulator did not notice members left offline: {first}"
    );
    let (failures, first) = mutation(
        "admit clients to members out of the group",
        0..1_000,
        &admit_any,
        schedule::run,
    );
    assert!(
        failures.iter().any(|(_, f)| f.contains("clients admitted")),
        "the simulator did not notice clients admitted out of the group: {first}"
    );
}

/// A scripted schedule: the majority dies for good; the operator reports QuorumLost and does
/// nothing until the user names the surviving partition; then the group serves writes again and
/// the dead members rejoin when they come back.
#[test]
fn quorum_is_forced_only_on_the_users_order() {
    use innodb_operator::topology::{ClonePolicy, ops};
    use std::sync::Mutex;
    use world::{Pod, World};

    let world = Mutex::new(World::new(3));
    let naming = schedule::naming(3, ClonePolicy::EmptyOnly);
    let mut history = Vec::new();
    let mut now = 0;
    let mut tick = |world: &Mutex<World>, now: u64, force: Option<Vec<u32>>| {
        let mut input = schedule::cluster_input(&world.lock().unwrap(), &naming, now);
        input.history = std::mem::take(&mut history);
        input.force_quorum_from = force;
        let sim = simops::SimOps {
            world,
            naming: &naming,
        };
        let observed =
            futures::executor::block_on(ops::gather(&sim, input, ops::Patience::Everyone));
        let planned = plan::topology(observed, None, &schedule::real);
        let decision = planned.decision;
        futures::executor::block_on(innodb_operator::topology::carry_out(
            &sim,
            &planned.observed,
            &decision,
        ))
        .operation
        .expect("the operation succeeds");
        history = planned.history;
        let mut w = world.lock().unwrap();
        for (o, m) in w.members.iter_mut() {
            m.label = decision.labels.get(o).copied().flatten();
        }
        w.now = now + 100;
        w.settle();
        decision
    };
    let quorum_lost = |d: &Decision| {
        d.conditions
            .iter()
            .any(|c| c.type_ == "QuorumLost" && c.status)
    };
    // A healthy group of three with some writes.
    for _ in 0..100 {
        tick(&world, now, None);
        now += 200;
        world.lock().unwrap().client_write();
    }
    assert!(
        world
            .lock()
            .unwrap()
            .quorum_component()
            .is_some_and(|c| c.members.len() == 3)
    );
    // Members 1 and 2 die for good.
    for o in [1, 2] {
        let mut w = world.lock().unwrap();
        w.mm(o).pod = Pod::Down { until: u64::MAX };
    }
    for _ in 0..300 {
        let d = tick(&world, now, None);
        now += 200;
        assert!(
            !matches!(
                d.operation,
                Operation::ForceQuorum { .. } | Operation::Bootstrap { .. }
            ),
            "never forced or rebooted without the user: {:?}",
            d.operation
        );
        assert!(
            world.lock().unwrap().client_write().is_none(),
            "no quorum, no commit"
        );
    }
    let d = tick(&world, now, None);
    assert!(quorum_lost(&d), "QuorumLost is reported");
    assert!(
        d.events
            .iter()
            .any(|e| e.warning && e.message.contains("force-quorum-from=0"))
    );
    // The user names member 0's partition.
    let d = tick(&world, now, Some(vec![0]));
    assert_eq!(
        d.operation,
        Operation::ForceQuorum {
            via: 0,
            members: vec![0]
        }
    );
    assert!(d.force_quorum_consumed);
    now += 200;
    let acked_before = world.lock().unwrap().max_acked;
    assert!(
        world.lock().unwrap().client_write().is_some(),
        "writes resume"
    );
    assert!(world.lock().unwrap().max_acked > acked_before);
    // The dead members come back and rejoin; no invariant broke on the way.
    for o in [1, 2] {
        world.lock().unwrap().mm(o).pod = Pod::Down { until: now + 1_000 };
    }
    for _ in 0..600 {
        tick(&world, now, None);
        now += 200;
    }
    let w = world.lock().unwrap();
    let group = w.quorum_component().expect("a group with quorum");
    assert_eq!(group.members.len(), 3, "every member is back: {group:?}");
    assert_eq!(w.components().iter().filter(|c| c.quorum).count(), 1);
    assert!(w.violations.is_empty(), "{:?}", w.violations);
}

/// Clusters created from a backup (issue 5): `SIM_RESTORE_SCHEDULES` (default 2,000) seeded
/// schedules in which member 0 is restored by the Job under faults before the group may start;
/// a failing seed prints its replay line (`SIM_RESTORE_SEED=<seed>`).
#[test]
fn restore_schedules_hold_every_invariant() {
    let Some((count, elapsed, outcomes, failures)) = replay_or_run(
        "SIM_RESTORE_SEED",
        "SIM_RESTORE_SCHEDULES",
        2_000,
        schedule::run_restore,
    ) else {
        return;
    };
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let failed_restores = outcomes.iter().filter(|o| o.restore_failed).count() as u64;
    println!(
        "{count} restore schedules in {elapsed:.1}s ({:.0}/s): {} failed; {} restore Jobs, {} of \
         them failed, {} user retries, {} lost status writes, {} objects recreated without their \
         status ({} Jobs created over data member 0 did not show); {} ended Ready after the restore and the fault phase, {failed_restores} on a \
         reported failed restore; {} operator ticks, {} operations, {} faults, {:.1} simulated \
         hours",
        count as f64 / elapsed,
        failures.len(),
        sum(|o| o.restore_jobs),
        sum(|o| o.restore_failures),
        sum(|o| o.restore_retries),
        sum(|o| o.lost_status_writes),
        sum(|o| o.recreations),
        sum(|o| o.jobs_over_data),
        outcomes.len() as u64 - failed_restores,
        sum(|o| o.ticks),
        sum(|o| o.operations),
        sum(|o| o.faults),
        sum(|o| o.sim_ms) as f64 / 3_600_000.0,
    );
    assert_none_broke(&failures, count, "restore schedules");
    // Every path was taken: restores that succeed, that fail and stay reported, retries.
    assert!(sum(|o| o.restore_jobs) >= count, "every schedule restores");
    assert!(
        failed_restores > 0 && failed_restores < count,
        "some restores fail"
    );
    assert!(
        sum(|o| o.restore_retries) > 0,
        "users retry failed restores"
    );
    assert!(sum(|o| o.lost_status_writes) > 0, "status writes are lost");
    assert!(sum(|o| o.recreations) > 0, "objects are recreated");
}

/// The real `decide`, except that it ignores the restore gate: the group may start before the
/// restore into member 0 succeeded.
fn ignore_the_restore_gate(observed: &Observed) -> Decision {
    let mut open = observed.clone();
    open.input.restore = innodb_operator::topology::RestoreGate::Open;
    schedule::real(&open)
}

#[test]
fn a_group_started_before_the_restore_is_caught() {
    let (failures, first) = mutation(
        "ignore the restore gate",
        0..500,
        &ignore_the_restore_gate,
        schedule::run_restore,
    );
    assert!(
        failures
            .iter()
            .any(|(_, f)| f.contains("does not hold the restored backup")),
        "the simulator did not notice a group started before the restore: {first}"
    );
}
