//! One seeded schedule: a cluster is created, faults interleave with client writes and operator
//! ticks, then faults stop and the cluster must be Ready again. Invariants are checked after
//! every step.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::executor::block_on;
use innodb_operator::cluster::plan;
use innodb_operator::topology::gtid::{GtidSet, Uuid};
use innodb_operator::topology::observe::{
    ClonePolicy, ClusterInput, PodInfo, PodPhase, RestoreGate, Role,
};
use innodb_operator::topology::{self, ActionRecord, Decision, Observed, Operation, decide, ops};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::restore::RestoreSim;
use crate::simops::SimOps;
use crate::world::{DEFAULT_EXPEL_TIMEOUT_S, GROUP, Gr, Pod, World};

/// After an election, the rw Service must select the new primary within this bound.
pub const LABEL_BOUND_MS: u64 = 3_000;
/// A new cluster must be Ready within this bound.
pub const SETUP_BOUND_MS: u64 = 60_000;
/// A new cluster created from a backup must be Ready (or report a failed restore) within this
/// bound: the restore Job waits up to 10 min for member 0, then loads for up to 2 min, and the
/// user may retry twice.
pub const RESTORE_SETUP_BOUND_MS: u64 = 3_600_000;
/// A failed restore must stay reported, with no group started, this long before a schedule ends.
pub const FAILURE_WATCH_MS: u64 = 120_000;
/// After the last fault, the cluster must be Ready again within this bound.
pub const LIVENESS_BOUND_MS: u64 = 300_000;
/// Anti-flapping window the simulated cluster uses.
const FLAP_WINDOW: Duration = Duration::from_secs(30);

pub type DecideFn = dyn Fn(&Observed) -> Decision + Sync;

/// What a schedule did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub ticks: u64,
    pub writes: u64,
    pub faults: u64,
    pub operations: u64,
    /// Election → rw Service selects the new primary, in simulated ms.
    pub label_latencies_ms: Vec<u64>,
    /// Ended in a stop the operator correctly refused to resolve alone (errant transactions).
    pub justified_stop: bool,
    pub sim_ms: u64,
    /// Schedules that started from a backup: restore Jobs created, failed, retried by the
    /// user; status writes lost; and whether the schedule ended on a reported failed restore.
    pub restore_jobs: u64,
    pub restore_failures: u64,
    pub restore_retries: u64,
    pub lost_status_writes: u64,
    pub recreations: u64,
    pub jobs_over_data: u64,
    pub restore_failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Setup,
    Faults { until: u64 },
    Heal { since: u64 },
}

struct Run<'a> {
    seed: u64,
    decide: &'a DecideFn,
    rng: SmallRng,
    world: Mutex<World>,
    naming: ClusterInput,
    instances: u32,
    clone_policy: ClonePolicy,
    history: Vec<ActionRecord>,
    switchover: Option<(u32, u64)>,
    next_tick: u64,
    operator_down_until: u64,
    pending_labels: Option<(u64, BTreeMap<u32, Option<Role>>)>,
    next_write: u64,
    next_fault: u64,
    partition_until: u64,
    phase: Phase,
    /// The primary of the group with quorum, since when, and whether its label was seen.
    primary: Option<(u32, u64, bool)>,
    bad_secondary_since: BTreeMap<u32, u64>,
    last: Option<Decision>,
    outcome: Outcome,
    trace: Option<Vec<String>>,
    /// The cluster is created from a backup.
    restore: Option<RestoreSim>,
}

/// Runs schedule `seed` with the given decision function.
pub fn run(seed: u64, decide: &DecideFn, trace: bool) -> Result<Outcome, String> {
    run_with(seed, decide, trace, false)
}

/// Runs schedule `seed` of a cluster created from a backup: its pods start at random times,
/// the restore Job loads member 0 under faults (member 0 restarting, the Job failing, operator
/// restarts, lost status writes), and only then may the group start.
pub fn run_restore(seed: u64, decide: &DecideFn, trace: bool) -> Result<Outcome, String> {
    run_with(seed, decide, trace, true)
}

fn run_with(seed: u64, decide: &DecideFn, trace: bool, restore: bool) -> Result<Outcome, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let instances = [1, 3, 3, 3, 5, 5, 7][rng.random_range(0..7)];
    let clone_policy = [
        ClonePolicy::Never,
        ClonePolicy::EmptyOnly,
        ClonePolicy::ReplaceErrant,
    ][rng.random_range(0..3)];
    let naming = naming(instances, clone_policy);
    let mut world = World::new(instances);
    let restore = restore.then(|| {
        let sim = RestoreSim::new(&mut rng);
        world.backup = Some(sim.backup.clone());
        // The pods start in any order: members other than 0 may be up long before it.
        for m in world.members.values_mut() {
            m.pod = Pod::Down {
                until: rng.random_range(0..30_000),
            };
        }
        sim
    });
    let next_fault = if restore.is_some() {
        rng.random_range(500..10_000)
    } else {
        u64::MAX
    };
    let mut run = Run {
        seed,
        decide,
        rng,
        world: Mutex::new(world),
        naming,
        instances,
        clone_policy,
        history: vec![],
        switchover: None,
        next_tick: 0,
        operator_down_until: 0,
        pending_labels: None,
        next_write: 1_000,
        next_fault,
        partition_until: u64::MAX,
        phase: Phase::Setup,
        primary: None,
        bad_secondary_since: BTreeMap::new(),
        last: None,
        outcome: Outcome::default(),
        trace: trace.then(Vec::new),
        restore,
    };
    let result = run.go();
    if let Some(lines) = &run.trace {
        for line in lines {
            eprintln!("{line}");
        }
    }
    result.map(|()| run.outcome)
}

impl Run<'_> {
    fn log(&mut self, now: u64, line: impl FnOnce() -> String) {
        if let Some(lines) = &mut self.trace {
            lines.push(format!("[{:>7}ms] {}", now, line()));
        }
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().expect("world lock")
    }

    fn fail(&self, now: u64, what: String) -> String {
        let (var, test) = if self.restore.is_some() {
            ("SIM_RESTORE_SEED", "restore_schedules")
        } else {
            ("SIM_SEED", "ten_thousand")
        };
        format!(
            "seed {} violated an invariant at t={now}ms: {what}\n  replay: {var}={} cargo test --test simulation {test} -- --nocapture",
            self.seed, self.seed
        )
    }

    fn go(&mut self) -> Result<(), String> {
        loop {
            let tick_at = self.next_tick.max(self.operator_down_until);
            let labels_at = self.pending_labels.as_ref().map_or(u64::MAX, |(t, _)| *t);
            let restore_at = self
                .restore
                .as_ref()
                .map_or(u64::MAX, |r| r.next_deadline());
            let phase_at = match self.phase {
                Phase::Setup => self.setup_bound(),
                Phase::Faults { until } => until,
                Phase::Heal { since } => since + LIVENESS_BOUND_MS,
            };
            let now = [
                tick_at,
                labels_at,
                self.next_write,
                self.next_fault,
                self.partition_until,
                self.w().next_deadline(),
                restore_at,
                phase_at,
            ]
            .into_iter()
            .min()
            .expect("non-empty");
            {
                let mut w = self.w();
                w.now = now;
                w.settle();
            }
            self.restore_job(now);
            if now >= self.partition_until {
                self.partition_until = u64::MAX;
                let mut w = self.w();
                for m in w.members.values_mut() {
                    m.side = 0;
                }
                w.notice = true;
                drop(w);
                self.log(now, || "partition healed".into());
            }
            if labels_at <= now
                && let Some((_, labels)) = self.pending_labels.take()
            {
                let mut w = self.w();
                for (o, m) in w.members.iter_mut() {
                    if m.pod != Pod::Absent {
                        m.label = labels.get(o).copied().flatten();
                    }
                }
            }
            if self.next_write <= now {
                let write = self.w().client_write();
                if let Some((seq, got)) = write {
                    self.outcome.writes += 1;
                    self.log(now, || format!("write {seq} acknowledged by {got:?}"));
                }
                self.next_write = now + self.rng.random_range(300..2_000);
            }
            if self.next_fault <= now {
                self.fault(now);
                let gap = if self.restore.is_some() && self.phase == Phase::Setup {
                    10_000..90_000
                } else {
                    1_000..15_000
                };
                self.next_fault = now + self.rng.random_range(gap);
            }
            if tick_at <= now {
                self.tick(now);
            }
            {
                let mut w = self.w();
                w.settle();
                if std::mem::take(&mut w.notice) && now >= self.operator_down_until {
                    drop(w);
                    let wake = now + self.rng.random_range(10..100);
                    self.next_tick = self.next_tick.min(wake);
                }
            }
            self.check(now)?;
            if let Some(done) = self.advance_phase(now)? {
                self.outcome.sim_ms = now;
                if let Some(r) = &self.restore {
                    self.outcome.restore_jobs = r.jobs;
                    self.outcome.restore_failures = r.failures;
                    self.outcome.restore_retries = r.retries;
                    self.outcome.lost_status_writes = r.lost_writes;
                    self.outcome.recreations = r.recreations;
                    self.outcome.jobs_over_data = r.jobs_over_data;
                }
                return done;
            }
        }
    }

    fn advance_phase(&mut self, now: u64) -> Result<Option<Result<(), String>>, String> {
        let ready = self.ready(now);
        let failure_watched = self.phase == Phase::Setup && self.restore_failure_watched(now)?;
        match self.phase {
            Phase::Setup if ready => {
                let until = now + self.rng.random_range(20_000..120_000);
                self.phase = Phase::Faults { until };
                self.next_fault = now + self.rng.random_range(500..5_000);
                self.log(now, || format!("ready; faults until {until}ms"));
            }
            Phase::Setup if failure_watched => {
                self.outcome.restore_failed = true;
                return Ok(Some(Ok(())));
            }
            Phase::Setup if now >= self.setup_bound() => {
                return Err(self.fail(
                    now,
                    format!(
                        "a new cluster was not Ready within {}ms",
                        self.setup_bound()
                    ),
                ));
            }
            Phase::Faults { until } if now >= until => {
                self.phase = Phase::Heal { since: now };
                self.next_fault = u64::MAX;
                self.partition_until = u64::MAX;
                self.switchover = None;
                for m in self.w().members.values_mut() {
                    m.side = 0;
                    m.blocked_until = 0;
                }
                self.operator_down_until = self.operator_down_until.min(now);
                self.next_tick = self.next_tick.min(now);
                self.log(now, || "faults stop".into());
            }
            Phase::Heal { .. } if ready => return Ok(Some(Ok(()))),
            Phase::Heal { since } if now >= since + LIVENESS_BOUND_MS => {
                if self.justified_stop() {
                    self.outcome.justified_stop = true;
                    return Ok(Some(Ok(())));
                }
                let reason = self
                    .last
                    .as_ref()
                    .and_then(|d| d.conditions.iter().find(|c| c.type_ == "Ready").cloned())
                    .map(|c| format!("{}: {}", c.reason, c.message))
                    .unwrap_or_default();
                return Err(self.fail(
                    now,
                    format!("not Ready {LIVENESS_BOUND_MS}ms after the faults stopped ({reason})"),
                ));
            }
            _ => {}
        }
        Ok(None)
    }

    /// The cluster is Ready by the operator's account and by the world's truth.
    fn ready(&self, now: u64) -> bool {
        let said = self
            .last
            .as_ref()
            .is_some_and(|d| d.conditions.iter().any(|c| c.type_ == "Ready" && c.status));
        if !said || self.pending_labels.is_some() {
            return false;
        }
        let w = self.w();
        let Some(c) = w.quorum_component() else {
            return false;
        };
        let all_online = (0..self.instances)
            .all(|o| c.members.contains(&o) && c.view.contains(&o) && w.m(o).online(now));
        let labels = w.members.iter().all(|(&o, m)| {
            let want = if o >= self.instances {
                None
            } else if c.primary == Some(o) {
                Some(Role::Primary)
            } else {
                Some(Role::Secondary)
            };
            m.pod == Pod::Absent || m.label == want
        });
        let extra = w
            .members
            .iter()
            .any(|(&o, m)| o >= self.instances && m.pod != Pod::Absent);
        // A rolling update must also have finished.
        let updated = w
            .members
            .values()
            .all(|m| m.pod == Pod::Absent || !m.update_pending);
        // An expel timeout shortened for a gone member is set back.
        let expel = w
            .members
            .values()
            .all(|m| !m.running() || m.expel_timeout_s == DEFAULT_EXPEL_TIMEOUT_S);
        // Every member of the group admits clients again.
        let admitted = w.members.values().all(|m| !m.running() || !m.offline);
        all_online && labels && !extra && updated && expel && admitted
    }

    /// The only acceptable way not to recover: a member holds transactions the group never had
    /// (errant writes), and the policy or the lack of a superset forbids resolving it alone.
    fn justified_stop(&self) -> bool {
        let reason = self.last.as_ref().and_then(|d| {
            d.conditions
                .iter()
                .find(|c| c.type_ == "Degraded")
                .map(|c| c.reason.clone())
        });
        let group_only = GtidSet::from_range(GROUP, 1, u64::MAX - 1);
        let errant_exists = self
            .w()
            .members
            .values()
            .any(|m| m.pod != Pod::Absent && !m.transactions().is_subset(&group_only));
        errant_exists
            && matches!(
                reason.as_deref(),
                Some("MemberNeedsAttention" | "DivergedGtidSets")
            )
    }

    fn input(&self, now: u64) -> ClusterInput {
        ClusterInput {
            instances: self.instances,
            switchover_to: self.switchover.map(|(o, _)| o),
            clone_policy: self.clone_policy,
            history: self.history.clone(),
            ..cluster_input(&self.w(), &self.naming, now)
        }
    }

    fn tick(&mut self, now: u64) {
        self.outcome.ticks += 1;
        let input = self.input(now);
        self.w().cost_ms = 0;
        let sim = SimOps {
            world: &self.world,
            naming: &self.naming,
        };
        let observed = block_on(ops::gather(&sim, input, ops::Patience::Everyone));
        // The operator's own plan: the restore step on what the members said, its gate, then
        // the decision.
        let planned = {
            let restore = self.restore.as_ref().map(|r| r.observation(now));
            plan::topology(observed, restore.as_ref(), self.decide)
        };
        if let Some(r) = self.restore.as_mut() {
            let mut w = self.world.lock().expect("world lock");
            r.carry_out(&mut w, &planned.restore, now, &mut self.rng);
        }
        let (observed, decision) = (&planned.observed, planned.decision.clone());
        let outcome = block_on(topology::carry_out(&sim, observed, &decision));
        if decision.operation != Operation::None {
            self.outcome.operations += 1;
        }
        let op = decision.operation.clone();
        self.log(now, || {
            format!(
                "tick: {op:?} -> {} ; {}",
                outcome
                    .operation
                    .err()
                    .map_or("ok".to_string(), |e| e.to_string()),
                decision
                    .conditions
                    .iter()
                    .map(|c| format!("{}={}({})", c.type_, c.status, c.reason))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        });
        if matches!(decision.operation, Operation::Bootstrap { .. }) {
            let sets: Vec<String> = self
                .w()
                .members
                .iter()
                .map(|(o, m)| format!("{o}: {} / {} {:?}", m.executed, m.received, m.pod))
                .collect();
            self.log(now, || format!("sets at bootstrap: {sets:?}"));
        }
        self.history = planned.history.clone();
        if let Some(r) = self.restore.as_mut() {
            r.write_status(&planned, now, &mut self.rng);
        }
        let cost = self.w().cost_ms;
        self.pending_labels = Some((now + cost, decision.labels.clone()));
        {
            let mut w = self.w();
            let existing: Vec<u32> = w.members.keys().copied().collect();
            for o in 0..decision.statefulset_replicas {
                w.ensure_pod(o);
            }
            for o in existing
                .into_iter()
                .filter(|&o| o >= decision.statefulset_replicas)
            {
                if w.m(o).pod != Pod::Absent {
                    w.remove_pod(o);
                }
            }
        }
        // The lead's OnDelete rollout: delete the pod the decision names.
        if let Some(o) = decision.update_next {
            let mut w = self.w();
            if w.m(o).running() && w.m(o).deleting_until.is_none() {
                w.mm(o).deleting_until = Some(now + 1_000);
            }
        }
        if decision.switchover_complete || self.switchover.is_some_and(|(_, until)| until <= now) {
            self.switchover = None;
        }
        self.next_tick =
            now + cost.max(1) + u64::try_from(decision.requeue.as_millis()).unwrap_or(u64::MAX);
        self.last = Some(decision);
    }

    /// A random member that exists and passes `filter`; only `pin` when it is given.
    fn pick(
        &mut self,
        pin: Option<u32>,
        filter: impl Fn(&crate::world::SimMember) -> bool,
    ) -> Option<u32> {
        let candidates: Vec<u32> = self
            .w()
            .members
            .iter()
            .filter(|(o, m)| pin.is_none_or(|p| p == **o) && m.pod != Pod::Absent && filter(m))
            .map(|(&o, _)| o)
            .collect();
        (!candidates.is_empty()).then(|| candidates[self.rng.random_range(0..candidates.len())])
    }

    fn fault(&mut self, now: u64) {
        self.outcome.faults += 1;
        let (kind, pin) = if self.restore.is_some() && self.phase == Phase::Setup {
            self.restore_fault_kind()
        } else if self.restore.is_some() && self.rng.random_bool(0.05) {
            (300, None)
        } else {
            (self.rng.random_range(0..100), None)
        };
        let line = match kind {
            0..22 => {
                let down = self.rng.random_range(2_000..40_000);
                self.pick(pin, |m| m.running()).map(|o| {
                    let mut w = self.w();
                    w.mm(o).pod = Pod::Down { until: now + down };
                    w.mm(o).gr = Gr::Off;
                    w.notice = true;
                    format!("crash {o} for {down}ms")
                })
            }
            22..32 => {
                let grace = self.rng.random_range(500..8_000);
                self.pick(pin, |m| m.running() && m.deleting_until.is_none())
                    .map(|o| {
                        self.w().mm(o).deleting_until = Some(now + grace);
                        format!("delete pod {o} (grace {grace}ms)")
                    })
            }
            32..46 => {
                let len = self.rng.random_range(3_000..60_000);
                let block_operator = self.rng.random_bool(0.3);
                let sides: Vec<(u32, u8)> = {
                    let keys: Vec<u32> = self.w().members.keys().copied().collect();
                    keys.into_iter()
                        .map(|o| (o, self.rng.random_range(0..2)))
                        .collect()
                };
                let mut w = self.world.lock().expect("world lock");
                for &(o, side) in &sides {
                    w.mm(o).side = side;
                    if block_operator && side == 1 {
                        w.mm(o).blocked_until = now + len;
                    }
                }
                w.notice = true;
                self.partition_until = now + len;
                Some(format!(
                    "partition {sides:?} for {len}ms (operator cut from side 1: {block_operator})"
                ))
            }
            46..56 => {
                let len = self.rng.random_range(3_000..30_000);
                self.pick(None, |_| true).map(|o| {
                    self.w().mm(o).blocked_until = now + len;
                    format!("operator cannot reach {o} for {len}ms")
                })
            }
            56..66 => {
                let len = self.rng.random_range(5_000..60_000);
                self.pick(None, |m| m.running()).map(|o| {
                    self.w().mm(o).slow_until = now + len;
                    format!("{o} slow for {len}ms")
                })
            }
            66..74 => {
                let len = self.rng.random_range(1_000..10_000);
                self.operator_down_until = now + len;
                // A starting operator reconciles every cluster at once.
                self.next_tick = now + len;
                self.pending_labels = None;
                Some(format!("operator restarts, down {len}ms"))
            }
            74..78 => {
                let mut w = self.world.lock().expect("world lock");
                let keys: Vec<u32> = w.members.keys().copied().collect();
                let mut downs = Vec::new();
                for o in keys {
                    if w.m(o).running() {
                        let down = self.rng.random_range(5_000..30_000);
                        w.mm(o).pod = Pod::Down { until: now + down };
                        w.mm(o).gr = Gr::Off;
                        downs.push((o, down));
                    }
                }
                w.notice = true;
                Some(format!("complete outage {downs:?}"))
            }
            78..81 => self
                .pick(None, |m| {
                    m.running() && m.group().is_none() && m.cloning.is_none()
                })
                .map(|o| {
                    let mut w = self.w();
                    let uuid = Uuid::parse(&w.m(o).uuid).expect("simulated server_uuid");
                    let n = w.m(o).executed.last(uuid) + 1;
                    w.mm(o).executed.insert(uuid, n);
                    format!("errant write on {o}")
                }),
            81..92 => {
                let target = self.rng.random_range(0..self.instances);
                self.switchover = Some((target, now + 60_000));
                Some(format!("user asks for a switchover to {target}"))
            }
            300 => {
                // The StatefulSet goes with the old object: every pod is recreated.
                let mut w = self.world.lock().expect("world lock");
                for m in w.members.values_mut().filter(|m| m.pod != Pod::Absent) {
                    m.pod = Pod::Down {
                        until: now + self.rng.random_range(3_000..15_000),
                    };
                    m.gr = Gr::Off;
                    m.deleting_until = None;
                    m.cloning = None;
                }
                w.notice = true;
                drop(w);
                if let Some(r) = self.restore.as_mut() {
                    r.object_recreated();
                }
                self.history.clear();
                Some(
                    "the MySQLCluster is recreated from a copy of its spec (status and Job gone)"
                        .into(),
                )
            }
            92..96 => {
                let mut w = self.w();
                for m in w.members.values_mut().filter(|m| m.pod != Pod::Absent) {
                    m.update_pending = true;
                }
                Some("rolling update: every pod runs an old revision".to_string())
            }
            _ => {
                let instances = [1, 2, 3, 3, 4, 5, 5, 7, 9][self.rng.random_range(0..9)];
                self.instances = instances;
                Some(format!("user scales to {instances}"))
            }
        };
        if let Some(line) = line {
            self.log(now, || format!("FAULT {line}"));
        }
    }

    /// While a cluster is being restored (a fault kind of [`Run::fault`] and the member it
    /// must hit): member 0, the restore target, crashing or being deleted; any member crashing;
    /// operator restarts; complete outages.
    fn restore_fault_kind(&mut self) -> (u32, Option<u32>) {
        match self.rng.random_range(0..100) {
            0..30 => (0, Some(0)),
            30..45 => (22, Some(0)),
            45..65 => (0, None),
            65..90 => (66, None),
            _ => (74, None),
        }
    }

    fn setup_bound(&self) -> u64 {
        if self.restore.is_some() {
            RESTORE_SETUP_BOUND_MS
        } else {
            SETUP_BOUND_MS
        }
    }

    /// Moves the restore Job on, and the user's retry of a failed one.
    fn restore_job(&mut self, now: u64) {
        let Some(r) = self.restore.as_mut() else {
            return;
        };
        let mut w = self.world.lock().expect("world lock");
        let mut lines = Vec::new();
        if r.user_retry(now) {
            lines.push("the user deletes the failed restore Job to retry".to_string());
            w.notice = true;
        }
        if let Some(line) = r.advance(&mut w, now, &mut self.rng) {
            lines.push(line);
            // The Job's completion wakes the operator (it watches its Jobs).
            w.notice = true;
        }
        drop(w);
        for line in lines {
            self.log(now, || line);
        }
    }

    /// Whether a failed restore has been reported for [`FAILURE_WATCH_MS`] with no group
    /// started and no retry coming; an error when the failure is not reported as it must be.
    fn restore_failure_watched(&mut self, now: u64) -> Result<bool, String> {
        let Some(r) = self.restore.as_mut() else {
            return Ok(false);
        };
        if !r.failed() {
            r.failure_reported_since = None;
            return Ok(false);
        }
        let reported = |d: &Decision| {
            d.conditions
                .iter()
                .any(|c| c.type_ == "Degraded" && c.status && c.reason == "RestoreFailed")
        };
        let told = self.last.as_ref().is_some_and(reported)
            && r.status
                .as_ref()
                .is_some_and(|s| s.phase.as_deref() == Some("Failed"));
        if !told {
            return Ok(false);
        }
        let since = *r.failure_reported_since.get_or_insert(now);
        if r.user_reads_failure(&self.world.lock().expect("world lock"), now, &mut self.rng) {
            return Ok(false);
        }
        if r.retry_at.is_some() || now < since + FAILURE_WATCH_MS {
            return Ok(false);
        }
        let w = self.world.lock().expect("world lock");
        if let Some((o, _)) = w.members.iter().find(|(_, m)| m.group().is_some()) {
            let o = *o;
            drop(w);
            return Err(self.fail(
                now,
                format!("the restore failed but member {o} is in a group"),
            ));
        }
        let message = r
            .status
            .as_ref()
            .and_then(|s| s.restore.as_ref())
            .and_then(|s| s.message.clone())
            .unwrap_or_default();
        drop(w);
        if !message.contains("kubectl logs job/") {
            return Err(self.fail(
                now,
                format!("the failed restore's status does not say what to do: {message}"),
            ));
        }
        Ok(true)
    }

    fn check(&mut self, now: u64) -> Result<(), String> {
        let (violations, quorum_groups, group, primary_online) = {
            let mut w = self.w();
            let violations = std::mem::take(&mut w.violations);
            let comps: Vec<_> = w.components().into_iter().filter(|c| c.quorum).collect();
            let group = comps.first().map(|c| {
                let set = w.group_set(&c.members, &c.view);
                (c.clone(), set)
            });
            let primary_online = group.as_ref().and_then(|(c, _)| {
                c.primary
                    .filter(|p| c.members.contains(p) && w.m(*p).online(now))
            });
            (violations, comps.len(), group, primary_online)
        };
        if let Some(v) = violations.into_iter().next() {
            return Err(self.fail(now, v));
        }
        if quorum_groups > 1 {
            return Err(self.fail(
                now,
                format!("{quorum_groups} groups have quorum: split brain"),
            ));
        }
        let (groups, lacks) = {
            let w = self.w();
            let groups: std::collections::BTreeSet<u64> =
                w.members.values().filter_map(|m| m.group()).collect();
            // The restored backup is part of the group's data for good.
            let lacks = match (&w.backup, &group) {
                (Some(b), Some((c, set)))
                    if c.members.iter().any(|&o| w.m(o).online(now)) && !b.is_subset(set) =>
                {
                    b.subtract(set)
                }
                _ => GtidSet::new(),
            };
            (groups, lacks)
        };
        if groups.len() > 1 {
            return Err(self.fail(
                now,
                format!(
                    "members are in {} different groups {groups:?}",
                    groups.len()
                ),
            ));
        }
        if !lacks.is_empty() {
            return Err(self.fail(
                now,
                format!("the group lacks {lacks} of the restored backup"),
            ));
        }
        if let Some((c, set)) = &group {
            let w = self.w();
            let online = c.members.iter().any(|&o| w.m(o).online(now));
            let lost = if online && !w.acked.is_subset(set) {
                w.acked.subtract(set)
            } else {
                GtidSet::new()
            };
            drop(w);
            if !lost.is_empty() {
                return Err(self.fail(
                    now,
                    format!("the group with quorum lacks acknowledged transactions {lost}"),
                ));
            }
        }
        // The rw Service follows the primary.
        match (primary_online, self.primary) {
            (Some(p), Some((q, _, _))) if p == q => {}
            (Some(p), _) => self.primary = Some((p, now, false)),
            (None, _) => self.primary = None,
        }
        if let Some((p, since, seen)) = self.primary {
            let (labelled, impaired): (Vec<u32>, bool) = {
                let w = self.w();
                let labelled = w
                    .members
                    .iter()
                    .filter(|(_, m)| m.label == Some(Role::Primary))
                    .map(|(&o, _)| o)
                    .collect();
                let impaired = self.operator_down_until > now
                    || w.members.values().any(|m| m.blocked_until > now);
                (labelled, impaired)
            };
            let ok = labelled == [p];
            if impaired {
                // The operator cannot see (all of) the cluster: the bound starts when it can;
                // no latency sample from this election.
                self.primary = Some((p, now, true));
            } else if ok && !seen {
                self.primary = Some((p, since, true));
                self.outcome.label_latencies_ms.push(now - since);
            } else if !ok && now > since + LABEL_BOUND_MS {
                return Err(self.fail(
                    now,
                    format!(
                        "member {p} is the primary since t={since}ms but the rw Service selects {labelled:?}"
                    ),
                ));
            }
        }
        // The ro Service holds only ONLINE members.
        let bad: Vec<u32> = {
            let w = self.w();
            w.members
                .iter()
                .filter(|(o, m)| {
                    // A pod that does not run is in no Service's endpoints.
                    m.running()
                        && m.label == Some(Role::Secondary)
                        && !group.as_ref().is_some_and(|(c, _)| {
                            c.members.contains(o) && c.view.contains(o) && m.online(now)
                        })
                        && m.blocked_until <= now
                })
                .map(|(&o, _)| o)
                .collect()
        };
        self.bad_secondary_since.retain(|o, _| bad.contains(o));
        let impaired = self.operator_down_until > now;
        for o in bad {
            let since = self.bad_secondary_since.entry(o).or_insert(now);
            if impaired {
                *since = now;
            }
            let since = *since;
            if now > since + LABEL_BOUND_MS {
                return Err(self.fail(
                    now,
                    format!(
                        "member {o} is not ONLINE since t={since}ms but stays in the ro Service"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What the lead would fill in from the pods of the simulated StatefulSet.
pub fn cluster_input(w: &World, naming: &ClusterInput, now: u64) -> ClusterInput {
    let pods = w
        .members
        .iter()
        .filter(|(_, m)| m.pod != Pod::Absent)
        .map(|(&ordinal, m)| PodInfo {
            ordinal,
            phase: if m.running() {
                PodPhase::Running
            } else {
                PodPhase::Pending
            },
            ready: m.running(),
            deleting: m.deleting_until.is_some(),
            update_pending: m.update_pending,
            role_label: m.label,
            ip: None,
        })
        .collect();
    ClusterInput {
        pods,
        now: jiff::Timestamp::from_millisecond(i64::try_from(now).expect("sim time fits"))
            .expect("valid timestamp"),
        ..naming.clone()
    }
}

/// The group name every simulated member is configured with (the cluster's).
pub const SIM_GROUP_NAME: &str = "5a5a5a5a-0000-4000-8000-000000000001";

/// The cluster's names, as the lead fills them in.
pub fn naming(instances: u32, clone_policy: ClonePolicy) -> ClusterInput {
    ClusterInput {
        name: "db".into(),
        namespace: "sim".into(),
        cluster_domain: "cluster.local".into(),
        stack: innodb_operator::api::cluster::CommunicationStack::MYSQL,
        instances,
        pods: vec![],
        switchover_to: None,
        force_quorum_from: None,
        clone_policy,
        history: vec![],
        flap_window: FLAP_WINDOW,
        expel_timeout: DEFAULT_EXPEL_TIMEOUT_S,
        group_name: SIM_GROUP_NAME.into(),
        member_certificate_end: None,
        previous_ca_trusted: false,
        now: jiff::Timestamp::UNIX_EPOCH,
        // As in the operator: nothing starts the group before the plan's restore step has set
        // the gate (open for the clusters that start empty).
        restore: RestoreGate::not_planned(),
    }
}

/// The decision function the operator ships.
pub fn real(observed: &Observed) -> Decision {
    decide(observed)
}
