//! The status from what was observed and planned, as a pure function ([`super::plan`] fills its
//! input, the driver writes it). The conditions say what a user needs to know; the phase sums
//! them up in one word.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::cluster::{
    ActionStatus, MemberRole, MemberStatus, MySQLClusterStatus, ReportedState, RestorePhase,
    RestoreStatus,
};
use crate::api::conditions::{
    self, AVAILABLE, DEGRADED, Desired, NO_PRIMARY, PROGRESSING, READY, SPEC_WARNING,
};
use crate::cluster::validate::SpecWarning;
use crate::topology::Role;

/// Why `Ready` is false while every member is: the Routers are not.
const ROUTERS_NOT_READY: &str = "RoutersNotReady";
/// The reason of a condition that reports nothing wrong.
const AS_EXPECTED: &str = "AsExpected";

/// One member pod as seen by the API (and, once the topology step runs, by Group Replication).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    pub(crate) name: String,
    /// The pod's ordinal in the StatefulSet.
    pub(crate) ordinal: Option<u32>,
    /// Pod phase: Pending, Running, ...
    pub(crate) phase: String,
    /// The pod's Ready condition.
    pub(crate) ready: bool,
    /// The role its label gives it, if any.
    pub(crate) role: Option<Role>,
    /// Group Replication member state when known (ONLINE, RECOVERING, ...).
    pub(crate) member_state: Option<ReportedState>,
}

/// Everything the status is computed from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusInput {
    pub generation: Option<i64>,
    pub group_name: String,
    pub(crate) desired_instances: i32,
    pub pods: Vec<PodView>,
    /// The StatefulSet has rolled out its current spec to every pod.
    pub(crate) statefulset_rolled_out: bool,
    pub(crate) router_desired: i32,
    pub(crate) router_ready: i32,
    /// A problem that stops the reconcile (invalid spec, failed write): reason and message.
    pub error: Option<(String, String)>,
    /// What the valid spec runs with but a user should know.
    pub warnings: Vec<SpecWarning>,
    /// The operator wrote something in this reconcile.
    pub changed: bool,
    /// What the Group Replication state machine reported, when it ran.
    pub topology: Option<TopologyView>,
    /// The restore of `spec.restoreFrom`, when one was asked for.
    pub restore: Option<RestoreStatus>,
}

/// The topology step's report for the status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyView {
    /// All five condition types.
    pub(crate) conditions: Vec<Desired>,
    pub(crate) members: Vec<MemberStatus>,
    pub(crate) primary: Option<String>,
    pub(crate) history: Vec<ActionStatus>,
}

/// A role as the status stores it.
pub(crate) fn member_role(role: Role) -> MemberRole {
    match role {
        Role::Primary => MemberRole::Primary,
        Role::Secondary => MemberRole::Secondary,
    }
}

fn member_state(p: &PodView) -> ReportedState {
    match p.member_state {
        Some(s) => s,
        None if p.ready => ReportedState::PodReady,
        None => match p.phase.as_str() {
            "Pending" => ReportedState::PodPending,
            "Running" => ReportedState::PodRunning,
            "Succeeded" => ReportedState::PodSucceeded,
            "Failed" => ReportedState::PodFailed,
            _ => ReportedState::PodUnknown,
        },
    }
}

fn is_online(p: &PodView) -> bool {
    match p.member_state {
        Some(s) => s == ReportedState::Online,
        None => p.ready,
    }
}

/// The conditions for `o`: the topology's when it ran (with the router tier folded into
/// Ready), else what the pods say.
pub(crate) fn conditions(o: &StatusInput) -> Vec<Desired> {
    match (&o.topology, &o.error) {
        (Some(t), None) => topology_conditions(o, t),
        _ => pod_conditions(o),
    }
}

/// Progressing while the operator writes the spec.
fn reconciling() -> Desired {
    Desired::new(
        PROGRESSING,
        true,
        "Reconciling",
        "the operator is applying the spec",
    )
}

fn topology_conditions(o: &StatusInput, t: &TopologyView) -> Vec<Desired> {
    let routers_ready = o.router_ready >= o.router_desired;
    t.conditions
        .iter()
        .map(|c| {
            if c.type_ == READY && c.status && !routers_ready {
                Desired::new(
                    READY,
                    false,
                    ROUTERS_NOT_READY,
                    format!("{}/{} routers ready", o.router_ready, o.router_desired),
                )
            } else if c.type_ == PROGRESSING && o.changed && !c.status {
                reconciling()
            } else {
                c.clone()
            }
        })
        .collect()
}

/// Long (88 lines) on purpose: the five conditions from the pods, one short block each.
fn pod_conditions(o: &StatusInput) -> Vec<Desired> {
    let online = o.pods.iter().filter(|p| is_online(p)).count() as i32;
    let primary = o
        .pods
        .iter()
        .find(|p| p.role == Some(Role::Primary) && p.ready);
    let router_ok = o.router_ready >= o.router_desired;
    let all_online = online >= o.desired_instances;
    let progressing =
        !o.statefulset_rolled_out || o.changed || (o.pods.len() as i32) != o.desired_instances;

    let mut out = Vec::new();
    if let Some((reason, message)) = &o.error {
        out.push(Desired::new(READY, false, reason, message.clone()));
        out.push(Desired::new(DEGRADED, true, reason, message.clone()));
    } else {
        let (ready, reason, msg) = if all_online && router_ok && primary.is_some() {
            (
                true,
                "AllMembersOnline",
                format!("{online}/{} members online", o.desired_instances),
            )
        } else if !all_online {
            (
                false,
                "MembersNotOnline",
                format!("{online}/{} members online", o.desired_instances),
            )
        } else if primary.is_none() {
            (
                false,
                NO_PRIMARY,
                "no member is labelled primary yet".to_string(),
            )
        } else {
            (
                false,
                ROUTERS_NOT_READY,
                format!("{}/{} routers ready", o.router_ready, o.router_desired),
            )
        };
        out.push(Desired::new(READY, ready, reason, msg));
        let degraded = !all_online && !progressing;
        out.push(Desired::new(
            DEGRADED,
            degraded,
            if degraded { "MembersDown" } else { AS_EXPECTED },
            if degraded {
                format!(
                    "{} of {} members are not online: see the members in status and the pods' logs",
                    o.desired_instances - online,
                    o.desired_instances
                )
            } else {
                String::new()
            },
        ));
    }
    out.push(match primary {
        Some(p) => Desired::new(
            AVAILABLE,
            true,
            "PrimaryReady",
            format!("{} accepts writes", p.name),
        ),
        None => Desired::new(
            AVAILABLE,
            false,
            NO_PRIMARY,
            "no ready primary: writes are not accepted",
        ),
    });
    out.push(if progressing {
        reconciling()
    } else {
        Desired::new(PROGRESSING, false, "Reconciled", "the spec is applied")
    });
    out
}

/// The `SpecWarning` condition, and a `Degraded` one for a warning that means the cluster does not
/// run what the spec asks (unless something else already degrades it).
fn warning_conditions(warnings: &[SpecWarning], desired: &mut [Desired]) -> Desired {
    if let Some(w) = warnings.iter().find(|w| w.degrades())
        && let Some(d) = desired
            .iter_mut()
            .find(|d| d.type_ == DEGRADED && !d.status)
    {
        *d = Desired::new(DEGRADED, true, w.reason(), w.to_string());
    }
    match warnings {
        [] => Desired::new(SPEC_WARNING, false, AS_EXPECTED, ""),
        [first, ..] => Desired::new(
            SPEC_WARNING,
            true,
            first.reason(),
            warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}

/// One word for the conditions (and the restore of a cluster created from a backup).
pub(crate) fn phase(
    o: &StatusInput,
    desired: &[Desired],
    restore: Option<&RestoreStatus>,
) -> &'static str {
    let is = |t: &str| desired.iter().any(|d| d.type_ == t && d.status);
    let restore = restore.and_then(|r| r.phase);
    if o.error.is_some() || restore == Some(RestorePhase::Failed) {
        "Failed"
    } else if matches!(restore, Some(RestorePhase::Pending | RestorePhase::Running)) {
        "Restoring"
    } else if is(READY) {
        "Ready"
    } else if o.pods.iter().all(|p| !p.ready) && !is(crate::api::conditions::AVAILABLE) {
        "Pending"
    } else if is(DEGRADED) {
        "Degraded"
    } else {
        "Initializing"
    }
}

/// The full status for `o`, merged with `old` so unchanged conditions keep their times.
pub fn status(o: &StatusInput, old: Option<&MySQLClusterStatus>, now: &Time) -> MySQLClusterStatus {
    let mut desired = conditions(o);
    let warning = warning_conditions(&o.warnings, &mut desired);
    desired.push(warning);
    // Before the restore step ran (e.g. an invalid spec), the restore as last recorded.
    let restore = o
        .restore
        .clone()
        .or_else(|| old.and_then(|s| s.restore.clone()));
    desired.extend(super::restore_plan::condition(restore.as_ref()));
    let old_conditions = old.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let (mut members, primary, recent_actions) = match &o.topology {
        Some(t) => (t.members.clone(), t.primary.clone(), t.history.clone()),
        None => (
            o.pods
                .iter()
                .map(|p| MemberStatus {
                    name: p.name.clone(),
                    ordinal: p.ordinal.map(|o| o as i32),
                    role: p.role.map(member_role),
                    state: member_state(p),
                })
                .collect(),
            o.pods
                .iter()
                .find(|p| p.role == Some(Role::Primary))
                .map(|p| p.name.clone()),
            old.map(|s| s.recent_actions.clone()).unwrap_or_default(),
        ),
    };
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let online_instances = match &o.topology {
        Some(_) => members
            .iter()
            .filter(|m| m.state == ReportedState::Online)
            .count() as i32,
        None => o.pods.iter().filter(|p| is_online(p)).count() as i32,
    };
    MySQLClusterStatus {
        phase: Some(phase(o, &desired, restore.as_ref()).to_string()),
        conditions: conditions::merge(old_conditions, &desired, o.generation, now),
        primary,
        online_instances,
        members,
        group_name: Some(o.group_name.clone()),
        recent_actions,
        observed_generation: o.generation,
        restore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_written_by_an_older_version_still_reads() {
        let old: MySQLClusterStatus = serde_json::from_value(serde_json::json!({
            "members": [
                {"name": "c-0", "role": "PRIMARY", "state": "ONLINE"},
                {"name": "c-1", "role": "", "state": "OFFLINE"},
                {"name": "c-2", "state": "PodPending"},
                {"name": "c-3", "state": "Pod"}
            ],
            "recentActions": [
                {"ordinal": 1, "kind": "Dance", "at": "2026-11-23T10:00:00Z"},
                {"ordinal": 2, "kind": "Clone", "at": "2026-11-23T10:00:00Z"}
            ]
        }))
        .unwrap();
        let states: Vec<_> = old.members.iter().map(|m| m.state).collect();
        assert_eq!(
            states,
            [
                ReportedState::Online,
                ReportedState::Offline,
                ReportedState::PodPending,
                ReportedState::PodUnknown
            ]
        );
        // An action of a kind this version does not know is dropped, not the object.
        assert_eq!(
            old.recent_actions,
            [ActionStatus {
                ordinal: 2,
                kind: crate::api::cluster::ActionKind::Clone,
                at: "2026-11-23T10:00:00Z".into()
            }]
        );
        let roles: Vec<_> = old.members.iter().map(|m| (m.ordinal, m.role)).collect();
        assert_eq!(
            roles,
            [
                (None, Some(MemberRole::Primary)),
                (None, None),
                (None, None),
                (None, None)
            ]
        );
        let written = serde_json::to_value(&old.members[1]).unwrap();
        assert_eq!(
            written,
            serde_json::json!({"name": "c-1", "state": "OFFLINE"})
        );
        let bad = serde_json::from_value::<MySQLClusterStatus>(serde_json::json!({
            "members": [{"name": "c-0", "role": "LEADER", "state": "ONLINE"}]
        }));
        assert!(bad.is_err());
    }

    fn pod(name: &str, ready: bool, role: Option<&str>) -> PodView {
        PodView {
            name: name.into(),
            ordinal: name.rsplit('-').next().and_then(|o| o.parse().ok()),
            phase: "Running".into(),
            ready,
            role: role.and_then(Role::from_label),
            member_state: None,
        }
    }

    fn observed(pods: Vec<PodView>) -> StatusInput {
        StatusInput {
            generation: Some(3),
            group_name: "g".into(),
            desired_instances: 3,
            pods,
            statefulset_rolled_out: true,
            router_desired: 2,
            router_ready: 2,
            error: None,
            warnings: vec![],
            changed: false,
            topology: None,
            restore: None,
        }
    }

    fn now() -> Time {
        Time("2026-11-23T00:00:00Z".parse().unwrap())
    }

    #[test]
    fn healthy_cluster_is_ready_and_available() {
        let o = observed(vec![
            pod("c-0", true, Some("primary")),
            pod("c-1", true, Some("secondary")),
            pod("c-2", true, Some("secondary")),
        ]);
        let s = status(&o, None, &now());
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(s.primary.as_deref(), Some("c-0"));
        assert_eq!(s.online_instances, 3);
        assert!(conditions::is_true(&s.conditions, READY));
        assert!(conditions::is_true(&s.conditions, AVAILABLE));
        assert!(!conditions::is_true(&s.conditions, DEGRADED));
        assert!(!conditions::is_true(&s.conditions, PROGRESSING));
        assert_eq!(s.members[0].role, Some(MemberRole::Primary));
        assert_eq!(s.members[0].ordinal, Some(0));
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn member_down_after_rollout_is_degraded() {
        let o = observed(vec![
            pod("c-0", true, Some("primary")),
            pod("c-1", true, Some("secondary")),
            pod("c-2", false, None),
        ]);
        let s = status(&o, None, &now());
        assert_eq!(s.phase.as_deref(), Some("Degraded"));
        assert!(conditions::is_true(&s.conditions, DEGRADED));
        assert!(conditions::is_true(&s.conditions, AVAILABLE));
        assert_eq!(s.members[2].state, ReportedState::PodRunning);
    }

    #[test]
    fn new_cluster_is_pending_and_progressing() {
        let mut o = observed(vec![pod("c-0", false, None)]);
        o.statefulset_rolled_out = false;
        o.changed = true;
        let s = status(&o, None, &now());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert!(conditions::is_true(&s.conditions, PROGRESSING));
        assert!(!conditions::is_true(&s.conditions, DEGRADED));
        assert!(!conditions::is_true(&s.conditions, AVAILABLE));
    }

    #[test]
    fn a_restore_shows_in_the_phase_and_its_own_condition() {
        let mut o = observed(vec![pod("c-0", true, None)]);
        o.restore = Some(RestoreStatus {
            phase: Some(RestorePhase::Running),
            message: Some("restoring s3://b/p/ into c-0".into()),
            ..Default::default()
        });
        let s = status(&o, None, &now());
        assert_eq!(s.phase.as_deref(), Some("Restoring"));
        let c = s.conditions.iter().find(|c| c.type_ == "Restored").unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "RestoreRunning")
        );
        assert_eq!(s.restore, o.restore);
        // Steps that do not reach the restore (an invalid spec) keep the recorded one.
        let kept = status(&observed(vec![]), Some(&s), &now());
        assert_eq!(kept.restore, o.restore);
        o.restore.as_mut().unwrap().phase = Some(RestorePhase::Failed);
        assert_eq!(status(&o, None, &now()).phase.as_deref(), Some("Failed"));
        o.restore.as_mut().unwrap().phase = Some(RestorePhase::Succeeded);
        let done = status(&o, None, &now());
        assert_ne!(done.phase.as_deref(), Some("Restoring"));
        assert!(conditions::is_true(&done.conditions, "Restored"));
    }

    #[test]
    fn error_fails_the_cluster_with_its_reason() {
        let mut o = observed(vec![]);
        o.error = Some(("InvalidMycnf".into(), "spec.mycnf sets server_id".into()));
        let s = status(&o, None, &now());
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let degraded = s.conditions.iter().find(|c| c.type_ == DEGRADED).unwrap();
        assert_eq!(degraded.reason, "InvalidMycnf");
        assert!(degraded.message.contains("server_id"));
    }

    #[test]
    fn group_member_state_wins_over_pod_readiness() {
        let mut p = pod("c-1", true, None);
        p.member_state = Some(ReportedState::Recovering);
        let o = observed(vec![pod("c-0", true, Some("primary")), p]);
        let s = status(&o, None, &now());
        assert_eq!(s.online_instances, 1);
        assert_eq!(s.members[1].state, ReportedState::Recovering);
    }

    #[test]
    fn topology_report_drives_the_status_and_routers_gate_ready() {
        let mut o = observed(vec![pod("c-0", true, Some("primary"))]);
        o.topology = Some(TopologyView {
            conditions: vec![
                Desired::new(READY, true, "AllOnline", "3/3 members online"),
                Desired::new(AVAILABLE, true, "PrimaryOnline", "c-0"),
                Desired::new(PROGRESSING, false, "Stable", ""),
                Desired::new(DEGRADED, false, "AsExpected", ""),
                Desired::new(crate::api::conditions::QUORUM_LOST, false, "HasQuorum", ""),
            ],
            members: vec![MemberStatus {
                name: "c-0".into(),
                ordinal: Some(0),
                role: Some(MemberRole::Primary),
                state: ReportedState::Online,
            }],
            primary: Some("c-0".into()),
            history: vec![],
        });
        let s = status(&o, None, &now());
        assert_eq!(s.phase.as_deref(), Some("Ready"));
        assert_eq!(s.online_instances, 1);
        assert_eq!(
            s.conditions.len(),
            6,
            "the five topology conditions and SpecWarning"
        );
        o.router_ready = 1;
        let s = status(&o, None, &now());
        let ready = s.conditions.iter().find(|c| c.type_ == READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "RoutersNotReady")
        );
    }
}
