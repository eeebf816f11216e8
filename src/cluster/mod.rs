//! The `MySQLCluster` reconcile: dereference → validate → build → apply → observe → status.
//! Each step is a module; this one only strings them together and reports what happened.

pub(crate) mod apply;
pub mod build;
pub mod dereference;
pub mod restore_plan;
pub mod restore_step;
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
use tracing::{info, instrument, warn};

use crate::api::cluster::{FORCE_QUORUM_ANNOTATION, SWITCHOVER_ANNOTATION};
use crate::api::{MySQLCluster, MySQLClusterStatus};
use crate::context::Context;
use crate::events::{self, Reason};
use crate::objects::FIELD_MANAGER;
use crate::objects::names::Names;
use apply::ApplyError;
use dereference::DereferenceError;
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
/// here so that one malformed object cannot break the watch of all the others.
#[instrument(skip_all, fields(cluster = %meta.name_any(), namespace = meta.namespace().unwrap_or_default()))]
pub(crate) async fn reconcile(
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
        Ok(None) => {
            ctx.forget(&ns, &name);
            return Ok(Action::await_change());
        }
        Err(kube::Error::SerdeError(e)) => {
            report_malformed(&ctx, &api, &meta, &e.to_string()).await;
            return Ok(Action::await_change());
        }
        Err(source) => return Err(ReconcileError::Get { name, source }),
    };
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector delete the children.
        ctx.forget(&ns, &name);
        return Ok(Action::await_change());
    }
    let deref = dereference::dereference(&ctx.client, &cluster).await?;
    let names = Names::new(&name, &ns);
    let mut observed = StatusInput {
        generation: cluster.metadata.generation,
        group_name: deref.group_name.to_string(),
        desired_instances: cluster.spec.instances,
        router_desired: cluster.spec.router.instances,
        ..Default::default()
    };
    let workloads = workloads::observe(&ctx.client, &names).await?;
    let mut requeue = CONVERGING;
    let deployed = workloads
        .statefulset
        .as_ref()
        .and_then(build::statefulset::deployed);
    let valid = match validate::validate(
        &cluster,
        &deref,
        deployed.as_ref(),
        &ctx.config.cluster_domain,
    ) {
        Ok(v) => {
            for w in &v.warnings {
                warn!(warning = %w, "spec warning");
                let reason = Reason::SpecWarning(w.reason());
                publish(&ctx, &cluster, reason, &w.to_string()).await;
            }
            observed.warnings = v.warnings.clone();
            Some(v)
        }
        Err(invalid) => {
            warn!(error = %invalid, "invalid spec");
            let reason = Reason::InvalidSpec(invalid.reason());
            publish(&ctx, &cluster, reason, &invalid.to_string()).await;
            observed.error = Some((invalid.reason().to_string(), invalid.to_string()));
            None
        }
    };
    let mut restore_poll = None;
    if let Some(mut valid) = valid {
        // The Group Replication topology: one tick, then what it asks of Kubernetes.
        let decision =
            if deref.existing_accounts.len() == crate::objects::accounts::Account::ALL.len() {
                let now = jiff::Timestamp::now();
                let ops = topology_step::sql_ops(&ctx.client, &names).await?;
                let input = topology_step::cluster_input(
                    &valid,
                    &cluster,
                    &workloads.pods,
                    workloads.statefulset.as_ref(),
                    now,
                );
                ctx.monitor_targets(&ns, &name, topology_step::monitor_targets(&input, &ops));
                let mut members = crate::topology::observe(&ops, input).await;
                // A cluster created from a backup: the restore into its first member gates the
                // group's first start (what the members hold tells whether there is anything to
                // restore when the status was lost).
                let restore =
                    restore_step::run(&ctx, &cluster, deref.restore.as_ref(), &members, &Time(now))
                        .await?;
                if let Some(event) = &restore.event {
                    publish(&ctx, &cluster, event.reason.clone(), &event.message).await;
                }
                observed.restore = restore.status;
                if restore.gate != crate::topology::RestoreGate::Open {
                    // A restore takes minutes to hours: look less often at a member that is loading.
                    restore_poll = Some(RESTORE_POLL);
                }
                members.input.restore = restore.gate;
                let tick = crate::topology::act(&ops, members).await;
                if let Err(e) = &tick.outcome {
                    let note = format!("{} failed: {e}", tick.decision.operation.name());
                    publish(&ctx, &cluster, Reason::OperationFailed, &note).await;
                }
                Some((tick.decision, tick.history))
            } else {
                None
            };
        if let Some((decision, _)) = &decision {
            valid.statefulset_replicas = decision.statefulset_replicas.max(1) as i32;
        }
        let desired = build::build(&valid, &deref.existing_accounts, &mut rand::rng());
        let uid = cluster.uid().unwrap_or_default();
        let outcome = match apply::apply(&ctx.client, &names, &uid, &desired).await {
            Ok(outcome) => outcome,
            Err(e) => {
                publish(&ctx, &cluster, Reason::ApplyFailed, &e.to_string()).await;
                let reason = Reason::ApplyFailed.as_str().to_string();
                observed.error = Some((reason, e.to_string()));
                observed.pods = workloads.pod_views();
                write_status(&ctx, &api, &cluster, &observed).await?;
                return Err(e.into());
            }
        };
        report_outcome(&ctx, &cluster, &outcome).await;
        let mut writes = outcome.writes();
        if let Some((decision, history)) = decision {
            writes += carry_out(&ctx, &cluster, &workloads, &decision).await?;
            requeue = requeue
                .min(decision.requeue)
                .max(restore_poll.unwrap_or_default());
            observed.topology = Some(topology_step::topology_view(&decision, &history));
        }
        ctx.metrics.api_writes(writes as u64);
        observed.changed = writes > 0;
        let schedules = crate::backup_controller::schedule_step::run(
            &ctx.client,
            &cluster,
            jiff::Timestamp::now(),
        )
        .await?;
        report_schedules(&ctx, &cluster, &schedules).await;
        if let Some(next) = schedules.next_in {
            // Wake up for the next scheduled backup, a second after it is due.
            requeue = requeue.min(next + Duration::from_secs(1));
        }
    }
    observed.pods = workloads.pod_views();
    observed.statefulset_rolled_out = workloads.rolled_out();
    observed.router_ready = workloads.router_ready;
    let settled = write_status(&ctx, &api, &cluster, &observed).await?;
    if observed.error.is_some() {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(if settled {
        requeue.max(CONVERGING).min(RESYNC)
    } else {
        requeue
    }))
}

/// Carries out what the topology decision asks of Kubernetes; returns the writes made.
async fn carry_out(
    ctx: &Context,
    cluster: &MySQLCluster,
    workloads: &workloads::Workloads,
    decision: &crate::topology::Decision,
) -> Result<usize, ReconcileError> {
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let changes = topology_step::label_changes(&name, &workloads.pods, &decision.labels);
    let mut writes = topology_step::apply_labels(&ctx.client, &ns, &changes).await?;
    if let Some(ordinal) = decision.update_next {
        let pod = format!("{name}-{ordinal}");
        topology_step::replace_pod(&ctx.client, &ns, &pod).await?;
        let note = format!("replacing {pod} with the new spec");
        publish(ctx, cluster, Reason::RollingUpdate, &note).await;
        writes += 1;
    }
    if decision.switchover_complete && cluster.annotations().contains_key(SWITCHOVER_ANNOTATION) {
        topology_step::clear_annotation(&ctx.client, cluster, SWITCHOVER_ANNOTATION).await?;
        writes += 1;
    }
    if decision.force_quorum_consumed && cluster.annotations().contains_key(FORCE_QUORUM_ANNOTATION)
    {
        topology_step::clear_annotation(&ctx.client, cluster, FORCE_QUORUM_ANNOTATION).await?;
        writes += 1;
    }
    for event in ctx.new_events(&ns, &name, &decision.events) {
        let reason = Reason::Topology {
            reason: event.reason.clone(),
            warning: event.warning,
        };
        publish(ctx, cluster, reason, &event.message).await;
    }
    Ok(writes)
}

async fn report_outcome(ctx: &Context, cluster: &MySQLCluster, outcome: &apply::Outcome) {
    if !outcome.created_secrets.is_empty() {
        let msg = format!(
            "created credentials Secrets {}",
            outcome.created_secrets.join(", ")
        );
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
    api: &Api<MySQLCluster>,
    cluster: &MySQLCluster,
    observed: &StatusInput,
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
