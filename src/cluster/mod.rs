//! The `MySQLCluster` reconcile: [`gather`] the observations once, compute one [`plan`] from them
//! (pure), and carry it out here: the restore Job, the one topology operation, apply, labels,
//! schedules, status. Each step is a module; this one only strings them together and reports
//! what happened.

pub(crate) mod apply;
pub mod build;
pub mod dereference;
pub(crate) mod gather;
pub(crate) mod metadata_step;
pub mod plan;
pub mod restore_plan;
pub(crate) mod restore_step;
pub mod status;
pub mod topology_step;
pub mod validate;
pub(crate) mod workloads;

#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, info, info_span, instrument, warn};

use crate::api::{MySQLCluster, MySQLClusterStatus};
use crate::context::Context;
use crate::events::{self, Reason};
use crate::objects::FIELD_MANAGER;
use apply::ApplyError;
use dereference::DereferenceError;
use gather::Observations;
use plan::Plan;
use restore_step::RestoreStepError;
use status::StatusInput;
use topology_step::TopologyError;
use workloads::ObserveError;

/// How often a settled cluster is looked at again even when nothing changed.
pub(crate) const RESYNC: Duration = Duration::from_secs(300);
/// How soon a cluster that is still converging is looked at again.
pub(crate) const CONVERGING: Duration = Duration::from_secs(10);
/// How often a cluster whose first member is being restored is looked at.
pub(crate) const RESTORE_POLL: Duration = Duration::from_secs(5);

/// Why a reconcile failed; it is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
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
    Topology(#[from] TopologyError),
    #[error(transparent)]
    Restore(#[from] RestoreStepError),
    #[error(transparent)]
    Schedules(#[from] crate::backup_controller::schedule_step::ScheduleStepError),
    #[error("writing the status of MySQLCluster {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl ReconcileError {
    /// Label of the failures metric.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ReconcileError::Get { .. } => "get",
            ReconcileError::Dereference(_) => "dereference",
            ReconcileError::Apply(ApplyError::Conflict { .. }) => "conflict",
            ReconcileError::Apply(_) => "apply",
            ReconcileError::Observe(_) => "observe",
            ReconcileError::Topology(_) => "topology",
            ReconcileError::Restore(_) => "restore",
            ReconcileError::Schedules(_) => "schedules",
            ReconcileError::Status { .. } => "status",
        }
    }
}

/// Reconciles one cluster, known to the watch by its metadata only: the full object is read
/// when the observations are gathered, so that one malformed object cannot break the watch of
/// all the others. Gather, plan, carry out: each a span of its own.
#[instrument(skip_all, fields(cluster = %meta.name_any(), namespace = meta.namespace().unwrap_or_default()))]
pub(crate) async fn reconcile(
    meta: Arc<PartialObjectMeta<MySQLCluster>>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let Some(obs) = gather::gather(&ctx, &meta).await? else {
        return Ok(Action::await_change());
    };
    let plan = info_span!("plan").in_scope(|| {
        plan::plan(
            &obs,
            &ctx.config,
            &crate::topology::decide,
            &mut rand::rng(),
        )
    });
    carry_out(&ctx, &obs, plan)
        .instrument(info_span!("carry_out"))
        .await
}

/// Does what the plan says, in its order; returns when to look again.
async fn carry_out(
    ctx: &Context,
    obs: &Observations,
    mut plan: Plan,
) -> Result<Action, ReconcileError> {
    let cluster = &obs.cluster;
    for (reason, message) in &plan.spec_events {
        warn!(%message, "spec {}", reason.as_str());
        publish(ctx, cluster, reason.clone(), message).await;
    }
    let mut label_writes = 0;
    if let (Some(topology), Some(members)) = (&plan.topology, &obs.members) {
        // The role labels first: they route the application's connections, and the operation
        // below can take seconds (a rejoin's START GROUP_REPLICATION took ~10 s on real 9.7,
        // and held the new primary's label back that long after a failover).
        let ns = cluster.namespace().unwrap_or_default();
        label_writes = topology_step::apply_labels(&ctx.client, &ns, &plan.kubernetes.labels)
            .instrument(info_span!("labels"))
            .await?;
        let done = run_topology(ctx, cluster, &plan, topology, members)
            .instrument(info_span!(
                "topology",
                operation = topology.decision.operation.name()
            ))
            .await?;
        if done {
            label_writes += topology_step::apply_labels(
                &ctx.client,
                &ns,
                &plan.kubernetes.labels_after_switchover,
            )
            .instrument(info_span!("labels"))
            .await?;
        }
    }
    let mut requeue = plan.requeue;
    if let Some(desired) = &plan.desired {
        let writes = apply_and_label(ctx, obs, &plan, desired)
            .instrument(info_span!("apply"))
            .await;
        let writes = match writes {
            Ok(writes) => writes + label_writes,
            Err(e) => {
                if let ReconcileError::Apply(e) = &e {
                    publish(ctx, cluster, Reason::ApplyFailed, &e.to_string()).await;
                    let reason = Reason::ApplyFailed.as_str().to_string();
                    plan.status.error = Some((reason, e.to_string()));
                    plan.status.topology = None;
                    write_status(ctx, cluster, &plan.status).await?;
                }
                return Err(e);
            }
        };
        ctx.metrics.api_writes(writes as u64);
        plan.status.changed = writes > 0;
        let schedules = crate::backup_controller::schedule_step::run(
            &ctx.client,
            cluster,
            jiff::Timestamp::now(),
        )
        .instrument(info_span!("schedules"))
        .await?;
        report_schedules(ctx, cluster, &schedules).await;
        if let Some(next) = schedules.next_in {
            // Wake up for the next scheduled backup, a second after it is due.
            requeue = requeue.min(next + Duration::from_secs(1));
        }
    }
    let settled = write_status(ctx, cluster, &plan.status).await?;
    if plan.status.error.is_some() {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(if settled {
        requeue.max(CONVERGING).min(RESYNC)
    } else {
        requeue
    }))
}

/// The restore Job the plan asks for, then the one Group Replication operation, then the InnoDB
/// Cluster metadata on the primary; whether the operation was carried out and succeeded.
async fn run_topology(
    ctx: &Context,
    cluster: &MySQLCluster,
    plan: &Plan,
    topology: &plan::TopologyPlan,
    members: &gather::Members,
) -> Result<bool, ReconcileError> {
    if let Some((job, source)) = &plan.restore_job {
        restore_step::create_job(ctx, job, source).await?;
    }
    if let Some(event) = &topology.restore.event {
        publish(ctx, cluster, event.reason.clone(), &event.message).await;
    }
    let decision = &topology.decision;
    if !ctx.permit.allows_now() {
        warn!(
            operation = decision.operation.name(),
            "this replica's lease fence has run out: no Group Replication operation is started"
        );
        return Ok(false);
    }
    let carried = crate::topology::carry_out(&members.ops, &topology.observed, decision).await;
    for failure in &carried.failed {
        publish(ctx, cluster, Reason::MemberActionFailed, failure).await;
    }
    let outcome = carried.operation;
    if let Err(e) = &outcome {
        warn!(operation = decision.operation.name(), error = %e, "topology operation failed");
        let note = format!("{} failed: {e}", decision.operation.name());
        publish(ctx, cluster, Reason::OperationFailed, &note).await;
    }
    if let Some((primary, desired)) = &plan.metadata {
        metadata_step::run(ctx, cluster, &members.ops, primary, desired)
            .instrument(info_span!("metadata"))
            .await;
    }
    Ok(outcome.is_ok())
}

/// Applies the objects, then what the topology asks of Kubernetes; returns the writes made.
async fn apply_and_label(
    ctx: &Context,
    obs: &Observations,
    plan: &Plan,
    desired: &build::Desired,
) -> Result<usize, ReconcileError> {
    let cluster = &obs.cluster;
    let uid = cluster.uid().unwrap_or_default();
    let outcome = apply::apply(&ctx.client, &obs.names, &uid, desired).await?;
    report_outcome(ctx, cluster, &outcome).await;
    let mut writes = outcome.writes();
    if let Some(topology) = &plan.topology {
        writes += change_kubernetes(ctx, cluster, &plan.kubernetes).await?;
        let (ns, name) = (&obs.names.namespace, &obs.names.cluster);
        for event in ctx.new_events(ns, name, &topology.decision.events) {
            let reason = Reason::Topology {
                reason: event.reason,
                warning: event.warning,
            };
            publish(ctx, cluster, reason, &event.message).await;
        }
    }
    Ok(writes)
}

/// Replaces the pod and clears the annotations the plan lists (the labels went first); returns
/// the writes made.
async fn change_kubernetes(
    ctx: &Context,
    cluster: &MySQLCluster,
    changes: &plan::KubernetesChanges,
) -> Result<usize, ReconcileError> {
    let ns = cluster.namespace().unwrap_or_default();
    let mut writes = 0;
    if let Some(pod) = &changes.replace_pod {
        topology_step::replace_pod(&ctx.client, &ns, pod).await?;
        let note = format!("replacing {pod} with the new spec");
        publish(ctx, cluster, Reason::RollingUpdate, &note).await;
        writes += 1;
    }
    for key in &changes.clear_annotations {
        topology_step::clear_annotation(&ctx.client, cluster, key).await?;
        writes += 1;
    }
    Ok(writes)
}

async fn report_outcome(ctx: &Context, cluster: &MySQLCluster, outcome: &apply::Outcome) {
    if !outcome.created_secrets.is_empty() {
        let msg = format!(
            "created credentials and certificate Secrets {}",
            outcome.created_secrets.join(", ")
        );
        publish(ctx, cluster, Reason::CredentialsCreated, &msg).await;
    }
    if !outcome.renewed_secrets.is_empty() {
        let msg = format!(
            "renewed the certificates in Secrets {}",
            outcome.renewed_secrets.join(", ")
        );
        info!(%msg);
        publish(ctx, cluster, Reason::CredentialsCreated, &msg).await;
    }
    if !outcome.applied.is_empty() {
        let msg = format!("applied {}", outcome.applied.join(", "));
        info!(%msg);
        publish(ctx, cluster, Reason::Applied, &msg).await;
    }
    if !outcome.pruned.is_empty() {
        let msg = format!(
            "deleted {}, no longer needed by the spec",
            outcome.pruned.join(", ")
        );
        publish(ctx, cluster, Reason::Pruned, &msg).await;
    }
}

async fn report_schedules(
    ctx: &Context,
    cluster: &MySQLCluster,
    schedules: &crate::backup_controller::schedule_step::ScheduleOutcome,
) {
    for name in &schedules.created {
        let msg = format!("created scheduled Backup {name}");
        publish(ctx, cluster, Reason::BackupScheduled, &msg).await;
    }
    if !schedules.deleted.is_empty() {
        let msg = format!("retention deleted Backups {}", schedules.deleted.join(", "));
        publish(ctx, cluster, Reason::BackupsExpired, &msg).await;
    }
    for invalid in &schedules.invalid {
        publish(ctx, cluster, Reason::InvalidSchedule, invalid).await;
    }
    ctx.metrics
        .api_writes((schedules.created.len() + schedules.deleted.len()) as u64);
}

/// Writes the status when it differs from the current one; returns whether the cluster is
/// settled (Ready and not progressing).
async fn write_status(
    ctx: &Context,
    cluster: &MySQLCluster,
    observed: &StatusInput,
) -> Result<bool, ReconcileError> {
    let api: Api<MySQLCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let now = Time(jiff::Timestamp::now());
    let new = status::status(observed, cluster.status.as_ref(), &now);
    let settled = new.phase.as_deref() == Some("Ready")
        && !crate::api::conditions::is_true(&new.conditions, crate::api::conditions::PROGRESSING);
    if cluster.status.as_ref() != Some(&new) {
        patch_status(ctx, &api, &cluster.name_any(), &new).await?;
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
pub(crate) async fn report_malformed(
    ctx: &Context,
    api: &Api<MySQLCluster>,
    meta: &PartialObjectMeta<MySQLCluster>,
    error: &str,
) {
    let message = format!(
        "the object cannot be read by this operator version: {error}; fix the spec and apply it again"
    );
    warn!(%message, "malformed MySQLCluster");
    let observed = StatusInput {
        generation: meta.metadata.generation,
        error: Some((Reason::InvalidObject.as_str().to_string(), message.clone())),
        ..Default::default()
    };
    let mut st = status::status(&observed, None, &Time(jiff::Timestamp::now()));
    st.group_name = None;
    // A merge patch: server-side apply would have to read the whole stored object into its
    // typed form first, which is exactly what fails for this object.
    let patch = json!({ "status": st });
    match api
        .patch_status(
            &meta.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => ctx.metrics.api_writes(1),
        Err(e) => warn!(error = %e, "could not report the malformed object in its status"),
    }
    let reference = meta.object_ref(&());
    events::publish(&ctx.recorder, &reference, Reason::InvalidObject, &message).await;
}

async fn publish(ctx: &Context, cluster: &MySQLCluster, reason: Reason, note: &str) {
    events::publish(&ctx.recorder, &cluster.object_ref(&()), reason, note).await;
}
