//! The group's membership settings follow `spec.instances` without restarting anyone. Pure.
//!
//! Two settings name every member: `group_replication_group_seeds` (where a member that starts
//! Group Replication looks for the group) and, on the XCOM stack, `group_replication_ip_allowlist`
//! (whose connections XCom admits; the MYSQL stack ignores it). The my.cnf carries them for a
//! member's next start, but they are left out of the configuration hash that rolls the pods:
//! before, every change of `spec.instances` replaced every member's pod, twice per scale up and
//! down, the primary after a switchover (found on the real node, where the test's check between
//! two of those replacements failed).
//!
//! Instead the operator sets them with `SET GLOBAL` on every member that says otherwise, beside
//! the operation and before it: both can be changed while Group Replication runs (the allowlist
//! since 8.0.24, WL#14563), a new allowlist applies to the next incoming connection, and a new
//! member joining at the same tick is therefore admitted by the members already in the group.
//! They name every ordinal up to the larger of `spec.instances` and the highest pod still there,
//! so members that are leaving after a scale-down keep being admitted until their pods are gone.

use super::event::Event;
use super::observe::{ClusterInput, MemberState, Observed};
use crate::api::cluster::CommunicationStack;

/// What the members' `group_replication_group_seeds` and `group_replication_ip_allowlist` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Every member's group communication address, `host:port`, comma-separated.
    pub seeds: String,
    /// XCOM: every member's host name, comma-separated. `None` on the MYSQL stack, which ignores
    /// the allowlist (the my.cnf leaves it at `AUTOMATIC`).
    pub allowlist: Option<String>,
}

impl Settings {
    /// For the members of these host names on `stack`.
    pub fn of(hosts: &[String], stack: CommunicationStack) -> Settings {
        let port = stack.local_address_port();
        Settings {
            seeds: hosts
                .iter()
                .map(|h| format!("{h}:{port}"))
                .collect::<Vec<_>>()
                .join(","),
            allowlist: (stack == CommunicationStack::XCOM).then(|| hosts.join(",")),
        }
    }

    /// Whether the member says otherwise (a member without the plugin says nothing: no change).
    fn differs(&self, state: &MemberState) -> bool {
        let Some(seeds) = state.group_seeds.as_deref() else {
            return false;
        };
        seeds != self.seeds
            || self
                .allowlist
                .as_ref()
                .is_some_and(|want| state.ip_allowlist.as_ref() != Some(want))
    }
}

/// What the members must say now: every ordinal below the larger of `spec.instances` and the
/// highest pod's ordinal plus one (pods beyond `spec.instances` are members still leaving).
pub fn wanted(input: &ClusterInput) -> Settings {
    let beyond = input.pods.iter().map(|p| p.ordinal + 1).max().unwrap_or(0);
    let hosts: Vec<String> = (0..input.instances.max(beyond))
        .map(|o| input.host(o))
        .collect();
    Settings::of(&hosts, input.stack)
}

/// The members that answer, have the Group Replication plugin, are not being cloned (a clone
/// restarts the server, which reads the my.cnf), and say other settings than [`wanted`];
/// ascending.
pub fn decide(observed: &Observed) -> Vec<u32> {
    let want = wanted(&observed.input);
    observed
        .members
        .iter()
        .filter(|m| m.state().is_some_and(|s| !s.cloning && want.differs(s)))
        .map(|m| m.ordinal)
        .collect()
}

/// A Normal Event naming the members given the settings, and how many members they name now.
pub fn event(observed: &Observed, members: &[u32]) -> Option<Event> {
    if members.is_empty() {
        return None;
    }
    let names = super::pick::names(observed, members);
    let want = wanted(&observed.input);
    let count = want.seeds.split(',').count();
    let what = if want.allowlist.is_some() {
        "seeds and allowlist"
    } else {
        "seeds"
    };
    Some(Event {
        warning: false,
        reason: "MembersNamed",
        message: format!(
            "{names}: group {what} set to the {count} members the spec names, while Group \
             Replication runs (no restart)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::observe::{Member, Reach};
    use crate::version::ServerVersion;

    fn state(seeds: Option<&str>, allowlist: Option<&str>) -> MemberState {
        MemberState {
            group_seeds: seeds.map(str::to_string),
            ip_allowlist: allowlist.map(str::to_string),
            ..MemberState::for_test(
                "00000000-0000-0000-0000-000000000001".into(),
                ServerVersion::new(9, 7, 4),
                vec![],
            )
        }
    }

    fn observed(input: ClusterInput, states: Vec<MemberState>) -> Observed {
        Observed {
            members: states
                .into_iter()
                .enumerate()
                .map(|(o, s)| Member {
                    ordinal: o as u32,
                    reach: Reach::Reachable(Box::new(s)),
                })
                .collect(),
            input,
        }
    }

    fn hosts(n: u32) -> Vec<String> {
        (0..n)
            .map(|o| format!("db-{o}.db-instances.ns.svc.cluster.local"))
            .collect()
    }

    #[test]
    fn the_settings_name_every_member_and_the_allowlist_only_on_xcom() {
        let mysql = Settings::of(&hosts(2), CommunicationStack::MYSQL);
        assert_eq!(
            mysql.seeds,
            "db-0.db-instances.ns.svc.cluster.local:3306,db-1.db-instances.ns.svc.cluster.local:3306"
        );
        assert_eq!(mysql.allowlist, None);
        let xcom = Settings::of(&hosts(2), CommunicationStack::XCOM);
        assert_eq!(
            xcom.seeds,
            "db-0.db-instances.ns.svc.cluster.local:33061,db-1.db-instances.ns.svc.cluster.local:33061"
        );
        assert_eq!(
            xcom.allowlist.as_deref(),
            Some("db-0.db-instances.ns.svc.cluster.local,db-1.db-instances.ns.svc.cluster.local")
        );
    }

    #[test]
    fn members_that_say_the_spec_change_nothing() {
        let input = ClusterInput {
            stack: CommunicationStack::XCOM,
            ..ClusterInput::for_test(3)
        };
        let want = wanted(&input);
        let same = || state(Some(&want.seeds), want.allowlist.as_deref());
        assert!(decide(&observed(input.clone(), vec![same(), same(), same()])).is_empty());
    }

    #[test]
    fn a_scale_up_sets_the_members_that_name_fewer() {
        // Three members started with instances 3; the spec now says 5, pods 3 and 4 run.
        let started = Settings::of(&hosts(3), CommunicationStack::XCOM);
        let old = || state(Some(&started.seeds), started.allowlist.as_deref());
        let input = ClusterInput {
            stack: CommunicationStack::XCOM,
            ..ClusterInput::for_test(5)
        };
        let want = wanted(&input);
        assert_eq!(want, Settings::of(&hosts(5), CommunicationStack::XCOM));
        let new = || state(Some(&want.seeds), want.allowlist.as_deref());
        let o = observed(input, vec![old(), old(), old(), new(), new()]);
        assert_eq!(decide(&o), vec![0, 1, 2]);
        let e = event(&o, &decide(&o)).expect("an Event");
        assert!(!e.warning);
        assert_eq!(
            e.message,
            "db-0, db-1, db-2: group seeds and allowlist set to the 5 members the spec names, \
             while Group Replication runs (no restart)"
        );
        assert_eq!(event(&o, &[]), None);
    }

    #[test]
    fn only_the_allowlist_differing_is_enough_on_xcom_and_ignored_on_mysql() {
        let xcom = ClusterInput {
            stack: CommunicationStack::XCOM,
            ..ClusterInput::for_test(2)
        };
        let want = wanted(&xcom);
        let stale = state(
            Some(&want.seeds),
            Some("db-0.db-instances.ns.svc.cluster.local"),
        );
        assert_eq!(decide(&observed(xcom, vec![stale.clone()])), vec![0]);
        let mysql = ClusterInput::for_test(2);
        let want = wanted(&mysql);
        let automatic = state(Some(&want.seeds), Some("AUTOMATIC"));
        assert!(decide(&observed(mysql, vec![automatic])).is_empty());
    }

    #[test]
    fn pods_still_leaving_stay_named_until_they_are_gone() {
        // spec.instances went 5 -> 3; pods 3 and 4 are still there (their members leaving).
        let mut input = ClusterInput::for_test(5);
        input.instances = 3;
        assert_eq!(
            wanted(&input),
            Settings::of(&hosts(5), CommunicationStack::MYSQL)
        );
        input.pods.truncate(3);
        assert_eq!(
            wanted(&input),
            Settings::of(&hosts(3), CommunicationStack::MYSQL)
        );
    }

    #[test]
    fn members_without_the_plugin_or_being_cloned_are_left_alone() {
        let input = ClusterInput::for_test(2);
        let cloning = MemberState {
            cloning: true,
            ..state(Some("elsewhere:3306"), None)
        };
        let o = observed(input, vec![state(None, None), cloning]);
        assert!(decide(&o).is_empty());
    }
}
