//! The `Backup` controller: one Job per Backup, status from what the Job reports, and the
//! stored objects deleted with the Backup when its policy says so. Schedules (Backups created
//! on a cron) are a step of the cluster reconcile: see [`schedule_step`].

pub mod decide;
pub mod job;
pub(crate) mod schedule_plan;
pub(crate) mod schedule_step;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::api::{Backup, BackupPhase, BackupStatus, DeletionPolicy, MySQLCluster, S3Storage};
use crate::context::Context;
use crate::credentials::SecretText;
use crate::datapath::s3::{Bucket, CaBundle, S3Config};
use crate::objects::FIELD_MANAGER;
use crate::objects::names::Names;
use crate::objects::tls::TlsSource;
use decide::{JobView, Step};

/// Finalizer that deletes a Backup's stored objects before the Backup goes (policy Delete).
pub(crate) const FINALIZER: &str = "innodb-operator.io/backup-objects";
/// How often a running backup is looked at.
pub(crate) const POLL: Duration = Duration::from_secs(15);

/// Why a Backup reconcile failed; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("reading or writing {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting the stored objects of the backup at {location}: {message}")]
    DeleteObjects { location: String, message: String },
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl BackupError {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            BackupError::Kube { .. } => "backup_kube",
            BackupError::DeleteObjects { .. } => "backup_delete_objects",
            BackupError::Finalizer(_) => "backup_finalizer",
        }
    }
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> BackupError {
    let what = what.into();
    move |source| BackupError::Kube { what, source }
}

/// Reconciles one Backup.
#[instrument(skip_all, fields(backup = %backup.name_any(), namespace = backup.namespace().unwrap_or_default()))]
pub(crate) async fn reconcile(
    backup: Arc<Backup>,
    ctx: Arc<Context>,
) -> Result<Action, BackupError> {
    let ns = backup.namespace().unwrap_or_default();
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &ns);
    if backup.spec.deletion_policy == DeletionPolicy::Retain
        && !backup.finalizers().iter().any(|f| f == FINALIZER)
    {
        return run(&backup, &ctx).await;
    }
    finalizer::finalizer(&api, FINALIZER, backup, |event| async {
        match event {
            FinalizerEvent::Apply(b) => run(&b, &ctx).await,
            FinalizerEvent::Cleanup(b) => cleanup(&b, &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => BackupError::Finalizer(other.to_string()),
    })
}

/// Moves a Backup one step along its lifecycle.
async fn run(backup: &Backup, ctx: &Context) -> Result<Action, BackupError> {
    let ns = backup.namespace().unwrap_or_default();
    let name = backup.name_any();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let job_name = job::job_name(&name);
    let existing = jobs
        .get_opt(&job_name)
        .await
        .map_err(kube_err(format!("Job {job_name}")))?;
    let view = match &existing {
        Some(j) => Some(job_view(ctx, &ns, &job_name, j).await?),
        None => None,
    };
    let phase = backup.status.as_ref().and_then(|s| s.phase);
    match decide::next_step(phase, view.as_ref()) {
        Step::Done => Ok(Action::await_change()),
        Step::Wait => Ok(Action::requeue(POLL)),
        Step::CreateJob => create_job(backup, ctx, &jobs).await,
        Step::Succeed {
            size_bytes,
            gtid_set,
        } => {
            let mut status = backup.status.clone().unwrap_or_default();
            status.phase = Some(BackupPhase::Succeeded);
            status.size_bytes = Some(size_bytes as i64);
            status.gtid_set = Some(gtid_set);
            status.completion_time = Some(now());
            status.message =
                Some("backup complete: manifest, checksums and GTID set are stored".to_string());
            write_status(ctx, backup, status).await?;
            info!("backup succeeded");
            Ok(Action::await_change())
        }
        Step::Fail(message) => {
            fail(ctx, backup, message).await?;
            Ok(Action::await_change())
        }
    }
}

/// Long (82 lines) on purpose: the reads, the source member, the Job and the status write of one
/// new backup, in order.
async fn create_job(
    backup: &Backup,
    ctx: &Context,
    jobs: &Api<Job>,
) -> Result<Action, BackupError> {
    let ns = backup.namespace().unwrap_or_default();
    let clusters: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let cluster_name = &backup.spec.cluster_name;
    let Some(cluster) = clusters
        .get_opt(cluster_name)
        .await
        .map_err(kube_err(format!("MySQLCluster {cluster_name}")))?
    else {
        pending(
            ctx,
            backup,
            format!("waiting for MySQLCluster {cluster_name} to exist"),
        )
        .await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    };
    let storage = backup
        .spec
        .storage
        .clone()
        .or_else(|| cluster.spec.backup.as_ref().map(|b| b.storage.clone()));
    let Some(storage) = storage else {
        fail(
            ctx,
            backup,
            format!("no storage: set spec.storage on the Backup or spec.backup.storage on MySQLCluster {cluster_name}"),
        )
        .await?;
        return Ok(Action::await_change());
    };
    let members = cluster
        .status
        .as_ref()
        .map(|s| s.members.clone())
        .unwrap_or_default();
    let Some((source, ordinal)) = decide::pick_source(&members) else {
        pending(
            ctx,
            backup,
            format!("waiting for an ONLINE member of {cluster_name}"),
        )
        .await?;
        return Ok(Action::requeue(POLL));
    };
    let names = Names::new(cluster_name, &ns);
    let prefix = storage.backup_prefix(&ns, cluster_name, &backup.name_any());
    let input = job::JobInput {
        mode: job::Mode::Backup,
        image: ctx.config.image.clone(),
        cluster: cluster_name.clone(),
        namespace: ns.clone(),
        host: names.pod_fqdn(ordinal, &ctx.config.cluster_domain),
        // The Secret the members mount: the CA that verifies them is in it.
        tls_secret: TlsSource::of(&cluster.spec.tls).member_secret(&names),
        storage: storage.clone(),
        prefix: prefix.clone(),
    };
    match jobs
        .create(&PostParams::default(), &job::backup_job(backup, &input))
        .await
    {
        Ok(_) => ctx.metrics.api_writes(1),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(source) => return Err(kube_err("the backup Job")(source)),
    }
    let status = BackupStatus {
        phase: Some(BackupPhase::Running),
        location: Some(storage.url(&prefix)),
        storage: Some(storage.clone()),
        prefix: Some(prefix.clone()),
        source: Some(source.clone()),
        start_time: Some(now()),
        message: Some(format!("backing up {source}")),
        ..Default::default()
    };
    write_status(ctx, backup, status).await?;
    info!(%source, "backup Job created");
    Ok(Action::requeue(POLL))
}

/// The Job as the decision needs it, with the result its pod reported.
pub(crate) async fn job_view(
    ctx: &Context,
    ns: &str,
    job_name: &str,
    job: &Job,
) -> Result<JobView, BackupError> {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status.conditions.unwrap_or_default();
    let is = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    let condition_message = conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
        .and_then(|c| c.message.clone().or(c.reason.clone()));
    let succeeded = is("Complete");
    let failed = is("Failed");
    let mut result = None;
    if succeeded || failed {
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        let list = pods
            .list(&ListParams::default().labels(&format!("job-name={job_name}")))
            .await
            .map_err(kube_err("the Job's pods"))?;
        result = list.items.iter().find_map(|p| {
            p.status
                .as_ref()?
                .container_statuses
                .as_ref()?
                .iter()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
        });
    }
    Ok(JobView {
        succeeded,
        failed,
        condition_message,
        result,
    })
}

async fn pending(ctx: &Context, backup: &Backup, message: String) -> Result<(), BackupError> {
    let mut status = backup.status.clone().unwrap_or_default();
    if status.phase == Some(BackupPhase::Pending)
        && status.message.as_deref() == Some(message.as_str())
    {
        return Ok(());
    }
    status.phase = Some(BackupPhase::Pending);
    status.message = Some(message);
    write_status(ctx, backup, status).await
}

async fn fail(ctx: &Context, backup: &Backup, message: String) -> Result<(), BackupError> {
    warn!(%message, "backup failed");
    let mut status = backup.status.clone().unwrap_or_default();
    status.phase = Some(BackupPhase::Failed);
    status.completion_time = Some(now());
    status.message = Some(message);
    write_status(ctx, backup, status).await
}

async fn write_status(
    ctx: &Context,
    backup: &Backup,
    status: BackupStatus,
) -> Result<(), BackupError> {
    let api: Api<Backup> =
        Api::namespaced(ctx.client.clone(), &backup.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": Backup::api_version(&()),
        "kind": Backup::kind(&()),
        "status": status,
    });
    api.patch_status(
        &backup.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(kube_err("the Backup status"))?;
    ctx.metrics.api_writes(1);
    Ok(())
}

/// Deletes the stored objects of a Backup whose policy is Delete.
async fn cleanup(backup: &Backup, ctx: &Context) -> Result<Action, BackupError> {
    let Some(location) = backup.status.as_ref().and_then(|s| s.location.clone()) else {
        return Ok(Action::await_change());
    };
    let ns = backup.namespace().unwrap_or_default();
    let Some((storage, prefix)) = stored_at(backup, ctx, &ns).await? else {
        warn!(%location, "the storage of this backup is no longer known; its objects are left in place");
        return Ok(Action::await_change());
    };
    let config = s3_config(ctx, &ns, &storage).await?;
    let delete_err = |message: String| BackupError::DeleteObjects {
        location: location.clone(),
        message,
    };
    let bucket = Bucket::open(&config)
        .await
        .map_err(|e| delete_err(e.to_string()))?;
    let deleted = bucket
        .delete_prefix(&prefix)
        .await
        .map_err(|e| delete_err(e.to_string()))?;
    info!(%location, deleted, "deleted the backup's stored objects");
    Ok(Action::await_change())
}

/// Where a Backup's objects are: the storage and prefix its status recorded when its Job was
/// created; for a Backup from an older version, which recorded only `location`, its own storage
/// or its cluster's as the spec says now, and the prefix derived from them.
async fn stored_at(
    backup: &Backup,
    ctx: &Context,
    ns: &str,
) -> Result<Option<(S3Storage, String)>, BackupError> {
    let status = backup.status.as_ref();
    if let Some((storage, prefix)) = status.and_then(|s| s.storage.clone().zip(s.prefix.clone())) {
        return Ok(Some((storage, prefix)));
    }
    let storage = match &backup.spec.storage {
        Some(s) => Some(s.clone()),
        None => {
            let clusters: Api<MySQLCluster> = Api::namespaced(ctx.client.clone(), ns);
            clusters
                .get_opt(&backup.spec.cluster_name)
                .await
                .map_err(kube_err("the Backup's cluster"))?
                .and_then(|c| c.spec.backup.map(|b| b.storage))
        }
    };
    Ok(storage.map(|storage| {
        let prefix = storage.backup_prefix(ns, &backup.spec.cluster_name, &backup.name_any());
        (storage, prefix)
    }))
}

/// S3 settings for `storage`, with the access key read from its Secret.
async fn s3_config(ctx: &Context, ns: &str, storage: &S3Storage) -> Result<S3Config, BackupError> {
    let (mut id, mut key) = (String::new(), String::new());
    if let Some(creds) = &storage.credentials_secret {
        let data = SecretText::read(&ctx.client, ns, &creds.name)
            .await
            .map_err(kube_err(format!("Secret {}", creds.name)))?;
        id = data.get(&creds.access_key_id_key).unwrap_or_default();
        key = data.get(&creds.secret_access_key_key).unwrap_or_default();
    }
    let ca = match &storage.ca_secret {
        Some(r) => {
            let data = SecretText::read(&ctx.client, ns, &r.name)
                .await
                .map_err(kube_err(format!("Secret {}", r.name)))?;
            // A missing key is an empty bundle: opening the bucket names it.
            Some(CaBundle {
                origin: format!("key {} of Secret {}", r.key, r.name),
                pem: data.get(&r.key).unwrap_or_default().into_bytes(),
            })
        }
        None => None,
    };
    Ok(S3Config {
        endpoint: storage.endpoint.clone(),
        region: storage.region.clone(),
        bucket: storage.bucket.clone(),
        path_style: storage.force_path_style,
        access_key_id: id,
        secret_access_key: key,
        max_attempts: 5,
        ca,
    })
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}
