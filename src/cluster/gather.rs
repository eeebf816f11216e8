//! The reconcile's observations, gathered once before anything is decided: the cluster object,
//! what it refers to (dereference), its workloads, the spec validated against them, what every
//! member says over SQL (once every credentials Secret exists) and the restore Job. Reads only;
//! the one thing it sets is which members the X protocol monitor watches.

use std::sync::Arc;

use kube::api::PartialObjectMeta;
use kube::{Api, ResourceExt};
use tracing::instrument;

use super::dereference::{self, Dereferenced};
use super::restore_step::{self, RestoreJob};
use super::validate::{self, ValidCluster, ValidationError};
use super::workloads::{self, Workloads};
use super::{ReconcileError, build, report_malformed, topology_step};
use crate::api::MySQLCluster;
use crate::context::Context;
use crate::objects::accounts::Account;
use crate::objects::names::Names;
use crate::topology::mysql::SqlOps;
use crate::topology::{ClusterInput, Observed};

/// Everything one reconcile knows before it decides.
#[derive(Debug)]
pub(crate) struct Observations {
    pub(crate) cluster: MySQLCluster,
    pub(crate) names: Names,
    pub(crate) deref: Dereferenced,
    pub(crate) workloads: Workloads,
    /// The spec validated against what runs (validation is pure, but what the members are asked
    /// depends on it).
    pub(crate) valid: Result<ValidCluster, ValidationError>,
    /// What the members said; `None` while the spec is invalid or before every credentials
    /// Secret exists.
    pub(crate) members: Option<Members>,
    /// The restore Job, when a restore was asked for, is not over, and the Job exists.
    pub(crate) restore_job: Option<RestoreJob>,
    pub(crate) now: jiff::Timestamp,
}

/// The members as observed, and the SQL operations (with the cluster's credentials) that the
/// plan's one operation runs through.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) ops: SqlOps,
    pub(crate) observed: Observed,
}

/// The observations of the cluster `meta` names; `None` when there is nothing to reconcile (it
/// is gone, being deleted, or cannot be read as a `MySQLCluster`, which is then reported).
#[instrument(skip_all)]
pub(crate) async fn gather(
    ctx: &Context,
    meta: &Arc<PartialObjectMeta<MySQLCluster>>,
) -> Result<Option<Observations>, ReconcileError> {
    let name = meta.name_any();
    let Some(ns) = meta.namespace() else {
        return Ok(None);
    };
    let api: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster = match api.get_opt(&name).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            ctx.forget(&ns, &name);
            return Ok(None);
        }
        Err(kube::Error::SerdeError(e)) => {
            report_malformed(ctx, &api, meta, &e.to_string()).await;
            return Ok(None);
        }
        Err(source) => return Err(ReconcileError::Get { name, source }),
    };
    if cluster.metadata.deletion_timestamp.is_some() {
        // Owner references let the garbage collector delete the children.
        ctx.forget(&ns, &name);
        return Ok(None);
    }
    let (deref, secrets) = dereference::dereference(&ctx.client, &cluster).await?;
    let names = Names::new(&name, &ns);
    let workloads = workloads::observe(&ctx.client, &ctx.pods, &names).await?;
    let deployed = workloads
        .statefulset
        .as_ref()
        .and_then(build::statefulset::deployed);
    let valid = validate::validate(
        &cluster,
        &deref,
        deployed.as_ref(),
        &ctx.config.cluster_domain,
    );
    let now = jiff::Timestamp::now();
    let mut members = None;
    let mut restore_job = None;
    if let Ok(valid) = &valid
        && deref.existing_accounts.len() == Account::ALL.len()
        && valid.member_certificate_exists(&deref)
    {
        let ops = topology_step::sql_ops(&ctx.client, &secrets, valid).await?;
        let input = topology_step::cluster_input(
            valid,
            &cluster,
            &workloads.pods,
            workloads.statefulset.as_ref(),
            deref.member_certificate_end,
            deref.previous_ca_trusted,
            now,
        );
        members = Some(gather_members(ctx, &names, input, ops).await?);
        restore_job = restore_step::read_job(ctx, &cluster).await?;
    }
    Ok(Some(Observations {
        cluster,
        names,
        deref,
        workloads,
        valid,
        members,
        restore_job,
        now,
    }))
}

/// What every member says, and which members the X protocol monitor watches.
async fn gather_members(
    ctx: &Context,
    names: &Names,
    input: ClusterInput,
    ops: SqlOps,
) -> Result<Members, ReconcileError> {
    ctx.monitor_targets(
        &names.namespace,
        &names.cluster,
        topology_step::monitor_targets(&input, &ops),
    );
    let observed = crate::topology::observe(&ops, input).await;
    Ok(Members { ops, observed })
}
