//! The restore's reads and writes (clusters with `spec.restoreFrom`): the restore Job is read
//! with the other observations ([`read_job`]) and created when the plan says so
//! ([`create_job`]). The Job is owned by the cluster, so it goes with it.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use tracing::info;

use crate::api::MySQLCluster;
use crate::api::cluster::RestorePhase;
use crate::backup_controller::decide::JobView;
use crate::backup_controller::{self, BackupError, job};
use crate::context::Context;

/// A read or write of the restore step that failed; the reconcile is retried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreStepError {
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

/// The restore Job as read.
#[derive(Clone, Debug)]
pub(crate) struct RestoreJob {
    pub(crate) view: JobView,
    pub(crate) created: Option<Time>,
}

/// The restore Job of a cluster with `spec.restoreFrom` whose restore is not over.
pub(crate) async fn read_job(
    ctx: &Context,
    cluster: &MySQLCluster,
) -> Result<Option<RestoreJob>, RestoreStepError> {
    let old = cluster.status.as_ref().and_then(|s| s.restore.as_ref());
    let finished = old.and_then(|r| r.phase) == Some(RestorePhase::Succeeded);
    if cluster.spec.restore_from.is_none() || finished {
        return Ok(None);
    }
    let ns = cluster.namespace().unwrap_or_default();
    let job_name = job::restore_job_name(&cluster.name_any());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(found) = jobs
        .get_opt(&job_name)
        .await
        .map_err(|source| RestoreStepError::Read {
            name: job_name.clone(),
            source,
        })?
    else {
        return Ok(None);
    };
    let view = backup_controller::job_view(ctx, &ns, &job_name, &found)
        .await
        .map_err(RestoreStepError::Result)?;
    Ok(Some(RestoreJob {
        view,
        created: found.metadata.creation_timestamp.clone(),
    }))
}

/// Creates the restore Job the plan asks for; `source` names the backup (for the log).
pub(crate) async fn create_job(
    ctx: &Context,
    job: &Job,
    source: &str,
) -> Result<(), RestoreStepError> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => {
            ctx.metrics.api_writes(1);
            info!(job = %name, %source, "restore Job created");
            Ok(())
        }
        // Created by an earlier reconcile whose status write was lost: it is the one.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(source) => Err(RestoreStepError::Create { name, source }),
    }
}
