//! A deterministic model of Group Replication members and their pods.
//!
//! Time is simulated milliseconds. Members hold GTID sets (executed and received), a Group
//! Replication state with their own copy of the view, a network side (partitions) and a pod
//! state. `settle` applies Group Replication's rules at the current time: views sync within a
//! connected component that has quorum, silent members are expelled after the delay measured on
//! real MySQL 9.7 for the members' expel timeout ([`expel_after_ms`]), a new primary is elected
//! (lowest server_uuid among equal versions and weights), expelled members auto-rejoin when they
//! can reach the group again.

use std::collections::{BTreeMap, BTreeSet};

use innodb_operator::topology::gtid::{GtidSet, Uuid};
use innodb_operator::topology::observe::Role;

/// The group name: every group transaction's GTID source.
pub const GROUP: Uuid = Uuid::from_u128(0xcccc_cccc_cccc_cccc_cccc_cccc_cccc_cccc);
/// `group_replication_member_expel_timeout` of a member whose mysqld (re)started: the my.cnf
/// value, the server's default.
pub const DEFAULT_EXPEL_TIMEOUT_S: u32 = 5;

/// From a member's silence to its expulsion (the new primary is elected at once after), for the
/// smallest expel timeout among the members that suspect it. Measured on MySQL 9.7.4 here after
/// `kill -9` of the primary: 6.3–6.9 s with timeout 0, 21.6–22.0 s with the default 5 (both
/// stacks). Linear between those two points; other values were not measured.
pub fn expel_after_ms(timeout_s: u32) -> u64 {
    6_500 + 3_060 * u64::from(timeout_s)
}

pub fn uuid(ordinal: u32) -> String {
    format!("00000000-0000-0000-0000-{:012}", ordinal + 1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pod {
    Running,
    /// Crashed, deleted or restarting: back (with its data) at `until`.
    Down {
        until: u64,
    },
    /// Scaled away (the data volume stays).
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gr {
    Off,
    Error,
    In {
        group: u64,
        view: BTreeSet<u32>,
        view_id: u64,
        primary: Option<u32>,
        recovering_until: Option<u64>,
    },
}

#[derive(Debug, Clone)]
pub struct SimMember {
    pub uuid: String,
    pub pod: Pod,
    /// Graceful termination under way: mysqld runs until then, then the pod is recreated.
    pub deleting_until: Option<u64>,
    pub executed: GtidSet,
    pub received: GtidSet,
    pub gr: Gr,
    /// Network side; members talk only within a side.
    pub side: u8,
    pub slow_until: u64,
    /// The operator cannot reach the member until then.
    pub blocked_until: u64,
    /// Clone under way: done at `.0`, with the donor's set `.1`.
    pub cloning: Option<(u64, GtidSet)>,
    /// Role label on the pod.
    pub label: Option<Role>,
    pub update_pending: bool,
    /// Holds part of a backup's databases, loaded without GTIDs by a restore that did not finish.
    pub partial: bool,
    /// `group_replication_member_expel_timeout` (back to the default when mysqld restarts).
    pub expel_timeout_s: u32,
    /// Group Replication has run on this data directory: mysqld starts `offline_mode` (the run
    /// script's `--offline-mode=ON`).
    pub been_in_group: bool,
    /// `offline_mode`: on at the start of a mysqld that has been in a group and when the member
    /// leaves the group by failure (the exit action, `OFFLINE_MODE` since 8.4); off only by the
    /// operator.
    pub offline: bool,
}

impl SimMember {
    fn new(ordinal: u32, pod: Pod) -> Self {
        SimMember {
            uuid: uuid(ordinal),
            pod,
            deleting_until: None,
            executed: GtidSet::new(),
            received: GtidSet::new(),
            gr: Gr::Off,
            side: 0,
            slow_until: 0,
            blocked_until: 0,
            cloning: None,
            label: None,
            update_pending: false,
            partial: false,
            expel_timeout_s: DEFAULT_EXPEL_TIMEOUT_S,
            been_in_group: false,
            offline: false,
        }
    }

    pub fn running(&self) -> bool {
        self.pod == Pod::Running
    }

    pub fn transactions(&self) -> GtidSet {
        self.executed.union(&self.received)
    }

    pub fn group(&self) -> Option<u64> {
        match self.gr {
            Gr::In { group, .. } => Some(group),
            _ => None,
        }
    }

    pub fn online(&self, now: u64) -> bool {
        matches!(&self.gr, Gr::In { recovering_until, .. } if recovering_until.is_none_or(|t| t <= now))
    }
}

/// A connected component of one group's running members.
#[derive(Debug, Clone)]
pub struct Component {
    pub group: u64,
    pub members: Vec<u32>,
    pub view: BTreeSet<u32>,
    pub view_id: u64,
    pub primary: Option<u32>,
    pub quorum: bool,
}

#[derive(Debug, Default)]
pub struct World {
    pub now: u64,
    pub members: BTreeMap<u32, SimMember>,
    next_group: u64,
    next_view: u64,
    absent_since: BTreeMap<(u64, u32), u64>,
    /// Every acknowledged (group-committed) transaction.
    pub acked: GtidSet,
    pub max_acked: u64,
    /// Broken invariants found inside operations (bootstrap seed, GTID reuse).
    pub violations: Vec<String>,
    /// Set when a view or the primary changes: the X protocol monitor's notice.
    pub notice: bool,
    /// Time the operator spends in the current tick (gather latency, timeouts).
    pub cost_ms: u64,
    /// The GTID set of the backup the cluster was created from (`spec.restoreFrom`).
    pub backup: Option<GtidSet>,
}

impl World {
    pub fn new(instances: u32) -> Self {
        let mut world = World {
            next_group: 1,
            next_view: 1,
            ..World::default()
        };
        for o in 0..instances {
            world.members.insert(o, SimMember::new(o, Pod::Running));
        }
        world
    }

    pub fn m(&self, o: u32) -> &SimMember {
        &self.members[&o]
    }

    pub fn mm(&mut self, o: u32) -> &mut SimMember {
        self.members.get_mut(&o).expect("member exists")
    }

    /// Whether two members can talk.
    pub fn linked(&self, a: u32, b: u32) -> bool {
        let (ma, mb) = (self.m(a), self.m(b));
        ma.running() && mb.running() && ma.side == mb.side
    }

    /// Components of every group, by network side.
    pub fn components(&self) -> Vec<Component> {
        let mut by_key: BTreeMap<(u64, u8), Vec<u32>> = BTreeMap::new();
        for (&o, m) in &self.members {
            if let (true, Some(g)) = (m.running(), m.group()) {
                by_key.entry((g, m.side)).or_default().push(o);
            }
        }
        by_key
            .into_iter()
            .map(|((group, _), members)| {
                let (view, view_id, primary) = members
                    .iter()
                    .filter_map(|&o| match &self.m(o).gr {
                        Gr::In {
                            view,
                            view_id,
                            primary,
                            ..
                        } => Some((view.clone(), *view_id, *primary)),
                        _ => None,
                    })
                    .max_by_key(|(_, id, _)| *id)
                    .expect("component members are in the group");
                let present = members.iter().filter(|o| view.contains(o)).count();
                Component {
                    group,
                    quorum: present * 2 > view.len(),
                    members,
                    view,
                    view_id,
                    primary,
                }
            })
            .collect()
    }

    pub fn quorum_component(&self) -> Option<Component> {
        self.components().into_iter().find(|c| c.quorum)
    }

    fn elect(&self, candidates: impl Iterator<Item = u32>) -> Option<u32> {
        candidates
            .filter(|&o| self.m(o).online(self.now))
            .min_by(|&a, &b| self.m(a).uuid.cmp(&self.m(b).uuid))
    }

    /// Installs a view (and primary) on every member of `members` that takes part.
    fn install(&mut self, group: u64, members: &[u32], view: &BTreeSet<u32>, primary: Option<u32>) {
        self.next_view += 1;
        let view_id = self.next_view;
        for &o in members {
            if let Gr::In {
                group: g,
                view: v,
                view_id: id,
                primary: p,
                ..
            } = &mut self.mm(o).gr
                && *g == group
            {
                *v = view.clone();
                *id = view_id;
                *p = primary;
            }
        }
        self.notice = true;
    }

    /// Applies Group Replication's rules at `now`.
    pub fn settle(&mut self) {
        let now = self.now;
        // Graceful termination: mysqld stops Group Replication (a clean leave), then the pod is
        // recreated.
        let terminated: Vec<u32> = self
            .members
            .iter()
            .filter(|(_, m)| m.deleting_until.is_some_and(|t| t <= now))
            .map(|(&o, _)| o)
            .collect();
        for o in terminated {
            if self.m(o).running() {
                let _ = self.leave(o);
            }
            let m = self.mm(o);
            m.deleting_until = None;
            // Recreated from the StatefulSet's current revision.
            m.update_pending = false;
            m.pod = Pod::Down { until: now + 3_000 };
            m.gr = Gr::Off;
            m.cloning = None;
        }
        let mut pods_changed = false;
        for m in self.members.values_mut() {
            let was_running = m.running();

            if let Some((until, data)) = &m.cloning
                && *until <= now
            {
                m.executed = data.clone();
                m.received = data.clone();
                m.partial = false;
                m.cloning = None;
                m.pod = Pod::Down { until: now + 3_000 };
                m.gr = Gr::Off;
            }
            if let Pod::Down { until } = m.pod
                && until <= now
            {
                m.pod = Pod::Running;
                m.gr = Gr::Off;
                m.expel_timeout_s = DEFAULT_EXPEL_TIMEOUT_S;
                m.offline = m.been_in_group;
            }
            if !m.running() {
                m.gr = Gr::Off;
                m.cloning = None;
            }
            if m.slow_until <= now {
                let received = std::mem::take(&mut m.received);
                m.executed.extend(&received);
                m.received = received;
            }
            pods_changed |= was_running != m.running();
        }
        // The X protocol monitor loses or regains its session: it wakes the operator.
        self.notice |= pods_changed;
        for c in self.components() {
            if c.quorum {
                self.settle_component(c);
            } else {
                // Connected members agree on the latest configuration they know of; one that
                // learns it was expelled cannot rejoin without quorum and ends in ERROR.
                for &o in &c.members {
                    if !c.view.contains(&o) {
                        self.fail_out(o);
                    } else if let Gr::In {
                        view,
                        view_id,
                        primary,
                        ..
                    } = &mut self.mm(o).gr
                    {
                        *view = c.view.clone();
                        *view_id = c.view_id;
                        *primary = c.primary;
                    }
                }
            }
        }
    }

    /// The member leaves its group by failure: ERROR, and the exit action turns `offline_mode` on.
    fn fail_out(&mut self, o: u32) {
        let m = self.mm(o);
        m.gr = Gr::Error;
        m.offline = true;
    }

    /// `SET GLOBAL offline_mode = OFF` on `o`. Only a member ONLINE in the group with quorum may
    /// serve clients: anything else is recorded as a violation.
    pub fn admit_clients(&mut self, o: u32) -> Result<(), String> {
        if !self.m(o).running() {
            return Err("not running".into());
        }
        let in_group = self
            .quorum_component()
            .is_some_and(|c| c.members.contains(&o) && c.view.contains(&o));
        if !in_group || !self.m(o).online(self.now) {
            self.violations.push(format!(
                "t={}ms: clients admitted to member {o}, which is not ONLINE in the group with \
                 quorum ({:?})",
                self.now,
                self.m(o).gr
            ));
        }
        self.mm(o).offline = false;
        Ok(())
    }

    fn settle_component(&mut self, c: Component) {
        let now = self.now;
        let mut view = c.view.clone();
        let mut primary = c.primary;
        let mut changed = false;
        // Expelled members that reach the group again auto-rejoin (or fail into ERROR).
        let group_set = self.group_set(&c.members, &view);
        for &o in &c.members {
            if !view.contains(&o) {
                if self.m(o).transactions().is_subset(&group_set) {
                    view.insert(o);
                    changed = true;
                    if let Gr::In {
                        recovering_until, ..
                    } = &mut self.mm(o).gr
                    {
                        *recovering_until = Some(now + 2_000);
                    }
                } else {
                    self.fail_out(o);
                }
            }
            self.absent_since.remove(&(c.group, o));
        }
        // Silent members are expelled.
        let silent: Vec<u32> = view
            .iter()
            .copied()
            .filter(|o| !c.members.contains(o))
            .collect();
        for o in silent {
            let since = *self.absent_since.entry((c.group, o)).or_insert(now);
            if now >= self.expel_deadline(c.group, since) {
                view.remove(&o);
                self.absent_since.remove(&(c.group, o));
                changed = true;
                if primary == Some(o) {
                    primary = None;
                }
            }
        }
        let members: Vec<u32> = c
            .members
            .iter()
            .copied()
            .filter(|o| matches!(self.m(*o).gr, Gr::In { .. }))
            .collect();
        if primary.is_none() {
            primary = self.elect(members.iter().copied().filter(|o| view.contains(o)));
            changed |= primary.is_some();
        }
        if changed
            || c.members
                .iter()
                .any(|&o| self.view_id(o) != Some(c.view_id))
        {
            self.install(c.group, &members, &view, primary);
        }
        // Virtual synchrony inside the component: members online get every transaction.
        let set = self.group_set(&members, &view);
        for &o in &members {
            let m = self.mm(o);
            if let Gr::In {
                recovering_until, ..
            } = &mut m.gr
                && recovering_until.is_some_and(|t| t <= now)
            {
                *recovering_until = None;
                m.received.extend(&set);
            }
            if view.contains(&o) {
                m.received.extend(&set);
                if m.slow_until <= now {
                    let received = std::mem::take(&mut m.received);
                    m.executed.extend(&received);
                    m.received = received;
                }
            }
        }
    }

    /// When a member of `group` silent since `since` is expelled: the running members of the
    /// group suspect it, and the smallest expel timeout among them decides (a new value takes
    /// effect during a suspicion already under way, as measured).
    fn expel_deadline(&self, group: u64, since: u64) -> u64 {
        let timeout = self
            .members
            .values()
            .filter(|m| m.running() && m.group() == Some(group))
            .map(|m| m.expel_timeout_s)
            .min()
            .unwrap_or(DEFAULT_EXPEL_TIMEOUT_S);
        since + expel_after_ms(timeout)
    }

    /// `SET GLOBAL group_replication_member_expel_timeout` on `o`. Shortening it is only allowed
    /// with proof that some member of `o`'s view is gone (its mysqld not running, or restarted
    /// and out of the group): anything else is recorded as a violation.
    pub fn set_expel_timeout(&mut self, o: u32, seconds: u32) -> Result<(), String> {
        if !self.m(o).running() {
            return Err("not running".into());
        }
        if seconds < DEFAULT_EXPEL_TIMEOUT_S
            && let Gr::In { group, view, .. } = &self.m(o).gr
        {
            let gone = view
                .iter()
                .any(|&v| !self.m(v).running() || self.m(v).group() != Some(*group));
            if !gone {
                self.violations.push(format!(
                    "expel timeout of member {o} set to {seconds} s while every member of its view \
                     {view:?} runs in the group"
                ));
            }
        }
        self.mm(o).expel_timeout_s = seconds;
        Ok(())
    }

    fn view_id(&self, o: u32) -> Option<u64> {
        match self.m(o).gr {
            Gr::In { view_id, .. } => Some(view_id),
            _ => None,
        }
    }

    /// Transactions of the members of a component's view (recovering ones hold what they
    /// queued).
    pub fn group_set(&self, members: &[u32], view: &BTreeSet<u32>) -> GtidSet {
        members
            .iter()
            .filter(|o| view.contains(o) && self.m(**o).group().is_some())
            .fold(GtidSet::new(), |acc, &o| {
                acc.union(&self.m(o).transactions())
            })
    }

    /// A client commit on the primary of the group with quorum.
    /// Returns the GTID number and the members that received it.
    pub fn client_write(&mut self) -> Option<(u64, Vec<u32>)> {
        let c = self.quorum_component()?;
        let p = c
            .primary
            .filter(|p| c.members.contains(p) && self.m(*p).online(self.now))?;
        let set = self.group_set(&c.members, &c.view);
        let seq = set.last(GROUP) + 1;
        if seq <= self.max_acked {
            self.violations.push(format!(
                "t={}ms: the group on {p} assigns {GROUP}:{seq} again although transactions up to {} \
                 were acknowledged: acknowledged transactions were lost",
                self.now, self.max_acked
            ));
        }
        // Every member of the view in the component takes part in consensus; recovering ones
        // queue the transaction.
        let mut got = Vec::new();
        for &o in c.members.iter().filter(|o| c.view.contains(o)) {
            let now = self.now;
            let m = self.mm(o);
            {
                got.push(o);
                m.received.insert(GROUP, seq);
                if m.slow_until <= now {
                    m.executed.insert(GROUP, seq);
                }
            }
        }
        self.acked.insert(GROUP, seq);
        self.max_acked = self.max_acked.max(seq);
        Some((seq, got))
    }

    /// The earliest future time at which something changes by itself.
    pub fn next_deadline(&self) -> u64 {
        let mut next = u64::MAX;
        for m in self.members.values() {
            let mut consider = |t: u64| {
                if t > self.now {
                    next = next.min(t);
                }
            };
            if let Pod::Down { until } = m.pod {
                consider(until);
            }
            if let Some(t) = m.deleting_until {
                consider(t);
            }
            if let Some((t, _)) = &m.cloning {
                consider(*t);
            }
            if let Gr::In {
                recovering_until: Some(t),
                ..
            } = m.gr
            {
                consider(t);
            }
            consider(m.slow_until);
            consider(m.blocked_until);
        }
        for (&(group, _), &since) in &self.absent_since {
            let deadline = self.expel_deadline(group, since);
            if deadline > self.now {
                next = next.min(deadline);
            }
        }
        next
    }

    // ---- operations (what the operator's SQL would do) ----

    pub fn bootstrap(&mut self, o: u32) -> Result<(), String> {
        if !self.m(o).running() {
            return Err("not running".into());
        }
        if self.m(o).group().is_some() {
            return Err("group replication is running".into());
        }
        let seed = self.m(o).transactions();
        if let Some(backup) = &self.backup
            && (self.m(o).partial || !backup.is_subset(&seed))
        {
            self.violations.push(format!(
                "t={}ms: bootstrap from member {o}, which does not hold the restored backup {backup} \
                 (it holds {seed}{})",
                self.now,
                if self.m(o).partial {
                    " and part of the backup's databases"
                } else {
                    ""
                }
            ));
        }
        for (&other, m) in self.members.iter().filter(|(_, m)| m.pod != Pod::Absent) {
            let lacks = m.transactions().subtract(&seed);
            if other != o && !lacks.is_empty() {
                self.violations.push(format!(
                    "t={}ms: bootstrap from member {o}, which lacks {lacks} held by member {other}",
                    self.now
                ));
            }
        }
        self.next_group += 1;
        let group = self.next_group;
        self.mm(o).been_in_group = true;
        self.mm(o).gr = Gr::In {
            group,
            view: BTreeSet::from([o]),
            view_id: 0,
            primary: Some(o),
            recovering_until: None,
        };
        self.install(group, &[o], &BTreeSet::from([o]), Some(o));
        Ok(())
    }

    pub fn join(&mut self, o: u32, restart: bool) -> Result<(), String> {
        if !self.m(o).running() || self.m(o).cloning.is_some() {
            return Err("not running".into());
        }
        match self.m(o).gr {
            Gr::In { .. } => return Err("group replication is already running".into()),
            Gr::Error if !restart => return Err("member is in ERROR; stop it first".into()),
            _ => {}
        }
        self.mm(o).gr = Gr::Off;
        let Some(c) = self
            .components()
            .into_iter()
            .find(|c| c.quorum && c.members.iter().any(|&x| self.linked(x, o)))
        else {
            return Err("no group with quorum reachable from the seeds (timeout)".into());
        };
        if c.view.contains(&o) {
            return Err("a member with this server_uuid is already in the group".into());
        }
        let set = self.group_set(&c.members, &c.view);
        if !self.m(o).transactions().is_subset(&set) {
            return Err("the member has transactions not present in the group".into());
        }
        if self.m(o).partial {
            self.violations.push(format!(
                "t={}ms: member {o} joins the group holding part of a backup's databases that no \
                 transaction of the group describes",
                self.now
            ));
        }
        let mut view = c.view.clone();
        view.insert(o);
        self.mm(o).been_in_group = true;
        self.mm(o).gr = Gr::In {
            group: c.group,
            view: view.clone(),
            view_id: 0,
            primary: c.primary,
            recovering_until: Some(self.now + 2_000),
        };
        let mut members = c.members.clone();
        members.push(o);
        self.install(c.group, &members, &view, c.primary);
        Ok(())
    }

    pub fn clone_from(&mut self, o: u32, donor: u32) -> Result<(), String> {
        if !self.m(o).running() || self.m(o).group().is_some() || self.m(o).cloning.is_some() {
            return Err("recipient must run without group replication".into());
        }
        if !self.linked(o, donor) {
            return Err("donor not reachable".into());
        }
        if self.m(donor).partial {
            self.violations.push(format!(
                "t={}ms: member {o} clones member {donor}, which holds a half-restored backup",
                self.now
            ));
        }
        let data = self.m(donor).executed.clone();
        let until = self.now + 5_000;
        self.mm(o).cloning = Some((until, data));
        Ok(())
    }

    pub fn leave(&mut self, o: u32) -> Result<(), String> {
        if !self.m(o).running() {
            return Err("not running".into());
        }
        let component = self
            .components()
            .into_iter()
            .find(|c| c.members.contains(&o));
        self.mm(o).gr = Gr::Off;
        if let Some(c) = component.filter(|c| c.quorum) {
            let mut view = c.view.clone();
            view.remove(&o);
            let rest: Vec<u32> = c.members.iter().copied().filter(|&x| x != o).collect();
            let primary = if c.primary == Some(o) {
                self.elect(rest.iter().copied().filter(|x| view.contains(x)))
            } else {
                c.primary
            };
            self.install(c.group, &rest, &view, primary);
        }
        Ok(())
    }

    pub fn set_primary(&mut self, via: u32, target: u32) -> Result<(), String> {
        let Some(c) = self
            .components()
            .into_iter()
            .find(|c| c.quorum && c.members.contains(&via))
        else {
            return Err("the member is not in a group with quorum".into());
        };
        if !c.members.contains(&target)
            || !c.view.contains(&target)
            || !self.m(target).online(self.now)
        {
            return Err("the target is not an ONLINE member".into());
        }
        // As MySQL 9.7.4 (ERROR 1123): not while a member of the view is unreachable from this
        // side or still joining.
        if c.view
            .iter()
            .any(|x| !c.members.contains(x) || !self.m(*x).online(self.now))
        {
            return Err("all members in the group must be reachable and none joining".into());
        }
        self.install(c.group, &c.members, &c.view, Some(target));
        Ok(())
    }

    pub fn force_members(&mut self, via: u32, members: &BTreeSet<u32>) -> Result<(), String> {
        let Some(c) = self
            .components()
            .into_iter()
            .find(|c| c.members.contains(&via))
        else {
            return Err("group replication is not running".into());
        };
        let in_component: Vec<u32> = c
            .members
            .iter()
            .copied()
            .filter(|o| members.contains(o))
            .collect();
        let primary = c
            .primary
            .filter(|p| members.contains(p))
            .or_else(|| self.elect(in_component.iter().copied()));
        self.install(c.group, &in_component, members, primary);
        Ok(())
    }

    // ---- pods ----

    pub fn ensure_pod(&mut self, o: u32) {
        let now = self.now;
        let m = self
            .members
            .entry(o)
            .or_insert_with(|| SimMember::new(o, Pod::Absent));
        if m.pod == Pod::Absent {
            m.pod = Pod::Down { until: now + 3_000 };
        }
    }

    pub fn remove_pod(&mut self, o: u32) {
        if let Some(m) = self.members.get_mut(&o) {
            m.pod = Pod::Absent;
            m.update_pending = false;
            m.gr = Gr::Off;
            m.label = None;
            m.deleting_until = None;
            m.cloning = None;
        }
    }
}
