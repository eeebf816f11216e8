//! The `MySQLCluster` reconcile: dereference → validate → build → apply → observe → status.
//! Each step is a module; this one only strings them together and reports what happened.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod observe;
pub mod status;
pub mod validate;

#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::api::{MySQLCluster, MySQLClusterStatus};
use crate::controller::Context;
use apply::{ApplyError, FIELD_MANAGER};
use build::names::Names;
use dereference::DereferenceError;
use observe::ObserveError;
use status::Observed;

/// How often a settled cluster is looked at again even when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(300);
/// How soon a cluster that is still converging is looked at again.
pub const CONVERGING: Duration = Duration::from_secs(10);

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading MySQLCluster {name}: {source}")]
    Get {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Dereference(#[from] DereferenceError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Schedules(#[from] crate::backups::schedules::ScheduleStepError),
    #[error("writing the status of MySQLCluster {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ReconcileError {
    /// Label of the failures metric.
    pub fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Get { .. } => "get",
            ReconcileError::Dereference(_) => "dereference",
            ReconcileError::Apply(ApplyError::Conflict { .. }) => "conflict",
            ReconcileError::Apply(_) => "apply",
            ReconcileError::Observe(_) => "observe",
            ReconcileError::Schedules(_) => "schedules",
            ReconcileError::Status { .. } => "status",
        }
    }
}

/// Reconciles one cluster, known to the watch by its metadata only: the full object is read
/// here so that one malformed object cannot break the watch of all the others.
#[instrument(skip_all, fields(cluster = %meta.name_any(), namespace = meta.namespace().unwrap_or_default()))]
pub async fn reconcile(
    meta: Arc<PartialObjectMeta<MySQLCluster>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let name = meta.name_any();
    let Some(ns) = meta.namespace() else {
        return Ok(Action::await_change());
    };
    let api: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = match api.get_opt(&name).await {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(Action::await_change()),
        Err(kube::Error::SerdeError(e)) => {
            report_malformed(&ctx, &api, &meta, &e.to_string()).await;
            return Ok(Action::await_change());
        }
        Err(source) => return Err(ReconcileError::Get { name, source }),
    };
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector delete the children.
        return Ok(Action::await_change());
    }
    let deref = dereference::dereference(&ctx.client, &cluster).await?;
    let names = Names::new(&name, &ns);
    let mut observed = Observed {
        generation: cluster.metadata.generation,
        group_name: deref.group_name.to_string(),
        desired_instances: cluster.spec.instances,
        router_desired: cluster.spec.router.instances,
        ..Default::default()
    };
    let outcome = match validate::validate(&cluster, &deref, &ctx.config.cluster_domain) {
        Err(invalid) => {
            warn!(error = %invalid, "invalid spec");
            publish(
                &ctx,
                &cluster,
                EventType::Warning,
                invalid.reason(),
                "Validate",
                &invalid.to_string(),
            )
            .await;
            observed.error = Some((invalid.reason().to_string(), invalid.to_string()));
            None
        }
        Ok(valid) => {
            let desired = build::build(&valid, &deref.existing_accounts, &mut rand::rng());
            let uid = cluster.uid().unwrap_or_default();
            match apply::apply(&ctx.client, &names, &uid, &desired).await {
                Ok(outcome) => Some(outcome),
                Err(e) => {
                    publish(
                        &ctx,
                        &cluster,
                        EventType::Warning,
                        "ApplyFailed",
                        "Apply",
                        &e.to_string(),
                    )
                    .await;
                    observed.error = Some(("ApplyFailed".to_string(), e.to_string()));
                    write_status(&ctx, &api, &cluster, &observed).await?;
                    return Err(e.into());
                }
            }
        }
    };
    if let Some(outcome) = &outcome {
        ctx.metrics.api_writes(outcome.writes() as u64);
        observed.changed = outcome.writes() > 0;
        if !outcome.created_secrets.is_empty() {
            let msg = format!(
                "created credentials Secrets {}",
                outcome.created_secrets.join(", ")
            );
            publish(
                &ctx,
                &cluster,
                EventType::Normal,
                "CredentialsCreated",
                "Create",
                &msg,
            )
            .await;
        }
        if !outcome.applied.is_empty() {
            let msg = format!("applied {}", outcome.applied.join(", "));
            info!(%msg);
            publish(&ctx, &cluster, EventType::Normal, "Applied", "Apply", &msg).await;
        }
        if !outcome.pruned.is_empty() {
            let msg = format!(
                "deleted {}, no longer needed by the spec",
                outcome.pruned.join(", ")
            );
            publish(&ctx, &cluster, EventType::Normal, "Pruned", "Delete", &msg).await;
        }
    }
    let mut next_schedule = None;
    if observed.error.is_none() {
        let schedules =
            crate::backups::schedules::run(&ctx.client, &cluster, chrono::Utc::now()).await?;
        for name in &schedules.created {
            let msg = format!("created scheduled Backup {name}");
            publish(
                &ctx,
                &cluster,
                EventType::Normal,
                "BackupScheduled",
                "Create",
                &msg,
            )
            .await;
        }
        if !schedules.deleted.is_empty() {
            let msg = format!("retention deleted Backups {}", schedules.deleted.join(", "));
            publish(
                &ctx,
                &cluster,
                EventType::Normal,
                "BackupsExpired",
                "Delete",
                &msg,
            )
            .await;
        }
        for invalid in &schedules.invalid {
            publish(
                &ctx,
                &cluster,
                EventType::Warning,
                "InvalidSchedule",
                "Schedule",
                invalid,
            )
            .await;
        }
        ctx.metrics
            .api_writes((schedules.created.len() + schedules.deleted.len()) as u64);
        next_schedule = schedules.next_in;
    }
    let workloads = observe::observe(&ctx.client, &names).await?;
    observed.pods = workloads.pods;
    observed.statefulset_rolled_out = workloads.statefulset_rolled_out;
    observed.router_ready = workloads.router_ready;
    let settled = write_status(&ctx, &api, &cluster, &observed).await?;
    let wait = if observed.error.is_some() {
        return Ok(Action::await_change());
    } else if settled {
        RESYNC
    } else {
        CONVERGING
    };
    // Wake up for the next scheduled backup, a second after it is due.
    let wait = next_schedule.map_or(wait, |n| wait.min(n + Duration::from_secs(1)));
    Ok(Action::requeue(wait))
}

/// Writes the status when it differs from the current one; returns whether the cluster is
/// settled (Ready and not progressing).
async fn write_status(
    ctx: &Context,
    api: &Api<MySQLCluster>,
    cluster: &MySQLCluster,
    observed: &Observed,
) -> Result<bool, ReconcileError> {
    let now = Time(jiff::Timestamp::now());
    let new = status::status(observed, cluster.status.as_ref(), &now);
    let settled = new.phase.as_deref() == Some("Ready")
        && !crate::api::conditions::is_true(&new.conditions, crate::api::conditions::PROGRESSING);
    if cluster.status.as_ref() != Some(&new) {
        patch_status(ctx, api, &cluster.name_any(), &new).await?;
    }
    Ok(settled)
}

async fn patch_status(
    ctx: &Context,
    api: &Api<MySQLCluster>,
    name: &str,
    status: &MySQLClusterStatus,
) -> Result<(), ReconcileError> {
    let patch = json!({
        "apiVersion": MySQLCluster::api_version(&()),
        "kind": MySQLCluster::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| ReconcileError::Status {
        name: name.to_string(),
        source,
    })?;
    ctx.metrics.api_writes(1);
    Ok(())
}

/// A stored object that does not match the operator's types (e.g. written under an older
/// schema): say so in its status and an Event, and leave it alone until it changes.
async fn report_malformed(
    ctx: &Context,
    api: &Api<MySQLCluster>,
    meta: &PartialObjectMeta<MySQLCluster>,
    error: &str,
) {
    let message = format!(
        "the object cannot be read by this operator version: {error}; fix the spec and apply it again"
    );
    warn!(%message, "malformed MySQLCluster");
    let observed = Observed {
        generation: meta.metadata.generation,
        error: Some(("InvalidObject".to_string(), message.clone())),
        ..Default::default()
    };
    let mut st = status::status(&observed, None, &Time(jiff::Timestamp::now()));
    st.group_name = None;
    if let Err(e) = patch_status(ctx, api, &meta.name_any(), &st).await {
        warn!(error = %e, "could not report the malformed object in its status");
    }
    let reference = meta.object_ref(&());
    publish_ref(
        ctx,
        &reference,
        EventType::Warning,
        "InvalidObject",
        "Read",
        &message,
    )
    .await;
}

async fn publish(
    ctx: &Context,
    cluster: &MySQLCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    publish_ref(ctx, &cluster.object_ref(&()), type_, reason, action, note).await;
}

async fn publish_ref(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: action.to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, reference).await {
        warn!(error = %e, reason, "could not publish an Event");
    }
}
