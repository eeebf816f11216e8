//! The restore step of the reconcile (clusters with `spec.restoreFrom`): reads the restore Job,
//! asks [`super::restore_plan::plan`] what is next, and creates the Job when it is time. The Job is
//! owned by the cluster, so it goes with it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use tracing::info;

use super::restore_plan::{self, Plan, RestoreInput, RestoreLocation};
use crate::api::MySQLCluster;
use crate::api::cluster::{MySQLClusterStatus, RestorePhase};
use crate::backup_controller::{self, BackupError, job};
use crate::context::Context;
use crate::objects::names::Names;
use crate::topology::Observed;

/// A read or write of the restore step that failed; the reconcile is retried.
#[derive(Debug, thiserror::Error)]
pub enum RestoreStepError {
    #[error("reading the restore Job {name}: {source}")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating the restore Job {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("reading the result of the restore Job: {0}")]
    Result(#[from] BackupError),
}

/// Whether the status shows a member that was in a group: the group was started before.
pub(crate) fn group_started(status: Option<&MySQLClusterStatus>) -> bool {
    status.is_some_and(|s| {
        s.primary.is_some()
            || s.members
                .iter()
                .any(|m| m.state == "ONLINE" || m.state == "RECOVERING")
    })
}

/// Whether there is nothing to restore because the cluster's data exists: the status says a
/// group ran, or the members say so ([`restore_plan::data_exists`]) when the status was lost.
pub fn nothing_to_restore(status: Option<&MySQLClusterStatus>, members: &Observed) -> bool {
    group_started(status) || restore_plan::data_exists(members)
}

/// Plans the restore of `cluster` and creates its Job when the plan says so; `members` is what
/// the members said in this reconcile.
pub async fn run(
    ctx: &Context,
    cluster: &MySQLCluster,
    location: Option<&Result<RestoreLocation, restore_plan::Unresolved>>,
    members: &Observed,
    now: &Time,
) -> Result<Plan, RestoreStepError> {
    let name = cluster.name_any();
    let ns = cluster.namespace().unwrap_or_default();
    let names = Names::new(&name, &ns);
    let job_name = job::restore_job_name(&name);
    let old = cluster.status.as_ref().and_then(|s| s.restore.as_ref());
    let finished = old.and_then(|r| r.phase) == Some(RestorePhase::Succeeded);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job = match &cluster.spec.restore_from {
        Some(_) if !finished => {
            jobs.get_opt(&job_name)
                .await
                .map_err(|source| RestoreStepError::Read {
                    name: job_name.clone(),
                    source,
                })?
        }
        _ => None,
    };
    let view = match &job {
        Some(j) => Some(backup_controller::job_view(ctx, &ns, &job_name, j).await?),
        None => None,
    };
    let first_member = names.pod(0);
    let plan = restore_plan::plan(&RestoreInput {
        requested: cluster.spec.restore_from.as_ref(),
        location,
        old,
        job_name: &job_name,
        job: view.as_ref(),
        job_created: job
            .as_ref()
            .and_then(|j| j.metadata.creation_timestamp.as_ref()),
        first_member: &first_member,
        first_member_ready: restore_plan::first_member_ready(members, old),
        group_started: nothing_to_restore(cluster.status.as_ref(), members),
        cluster: &name,
        now,
    });
    if plan.create_job
        && let Some(Ok(location)) = location
    {
        let input = job::JobInput {
            mode: job::Mode::Restore,
            image: ctx.config.image.clone(),
            cluster: name.clone(),
            namespace: ns.clone(),
            host: names.pod_fqdn(0, &ctx.config.cluster_domain),
            storage: location.storage.clone(),
            prefix: location.prefix.clone(),
        };
        match jobs
            .create(&PostParams::default(), &job::restore_job(cluster, &input))
            .await
        {
            Ok(_) => {
                ctx.metrics.api_writes(1);
                info!(job = %job_name, source = %location.source, "restore Job created");
            }
            // Created by an earlier reconcile whose status write was lost: it is the one.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(source) => {
                return Err(RestoreStepError::Create {
                    name: job_name,
                    source,
                });
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::cluster::MemberStatus;

    fn member(state: &str) -> MemberStatus {
        MemberStatus {
            name: "orders-1".into(),
            role: String::new(),
            state: state.into(),
        }
    }

    #[test]
    fn only_a_status_with_a_primary_or_a_member_in_a_group_says_the_group_ran() {
        assert!(!group_started(None));
        let mut s = MySQLClusterStatus {
            members: vec![member("OFFLINE"), member("PodReady"), member("UNREACHABLE")],
            ..Default::default()
        };
        assert!(!group_started(Some(&s)));
        for state in ["ONLINE", "RECOVERING"] {
            s.members = vec![member("OFFLINE"), member(state)];
            assert!(group_started(Some(&s)), "{state}");
        }
        s.members.clear();
        s.primary = Some("orders-0".into());
        assert!(group_started(Some(&s)));
    }
}
