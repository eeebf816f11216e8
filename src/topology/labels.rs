//! The role label each pod should carry: it decides which pods the `C` (primary) and `C-ro`
//! (secondaries) Services select. Pure.

use std::collections::BTreeMap;

use super::diagnose::Diagnosis;
use super::observe::{MemberStatus, Observed, PodPhase, Role};

/// Desired value of the role label per existing pod (`None`: no label).
///
/// With a group that has quorum, its ONLINE primary is `primary` and its ONLINE secondaries are
/// `secondary`; a member not ONLINE (or that says of itself it is not) carries no label. Without
/// such a group no pod carries a label, except that a running pod the operator could not ask
/// keeps its label while the picture is uncertain (the operator may be the one cut off).
pub fn desired(observed: &Observed, diagnosis: &Diagnosis) -> BTreeMap<u32, Option<Role>> {
    observed
        .input
        .pods
        .iter()
        .map(|pod| {
            let asked = observed.state(pod.ordinal);
            let label = match &diagnosis.group {
                Some(group) => {
                    let self_online = asked.is_none_or(|s| s.own_status() == MemberStatus::Online);
                    group
                        .row(pod.ordinal)
                        .filter(|r| r.state == MemberStatus::Online && self_online)
                        .map(|_| {
                            if group.primary == Some(pod.ordinal) {
                                Role::Primary
                            } else {
                                Role::Secondary
                            }
                        })
                }
                None if asked.is_none()
                    && pod.phase == PodPhase::Running
                    && diagnosis.uncertain =>
                {
                    pod.role_label
                }
                None => None,
            };
            (pod.ordinal, label)
        })
        .collect()
}
