//! The schedules step of the cluster reconcile: create the Backup a schedule has due (at most
//! one catch-up), delete what retention no longer keeps, and say when to look again.
//!
//! Scheduled Backups are not owned by the cluster: a backup must outlive the cluster it was
//! taken from, or it could not be restored after the cluster is deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use super::schedule_plan::{
    self, CLUSTER_LABEL, SCHEDULE_LABEL, SCHEDULED_AT_ANNOTATION, ScheduledBackup,
};
use crate::api::{Backup, BackupSpec, MySQLCluster};

/// What the schedules step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScheduleOutcome {
    pub(crate) created: Vec<String>,
    pub(crate) deleted: Vec<String>,
    /// Schedules whose expression cannot be used, with why.
    pub(crate) invalid: Vec<String>,
    /// Time until the next scheduled run.
    pub(crate) next_in: Option<Duration>,
}

/// A read or write that failed.
#[derive(Debug, thiserror::Error)]
#[error("backup schedules: {what}: {source}")]
pub(crate) struct ScheduleStepError {
    what: String,
    #[source]
    source: kube::Error,
}

fn scheduled_at(b: &Backup) -> Option<Timestamp> {
    b.annotations().get(SCHEDULED_AT_ANNOTATION)?.parse().ok()
}

/// Runs the schedules of `cluster` at `now`.
/// Long (109 lines) on purpose: the schedules' reads, the pure plan (`schedule_plan`), then its
/// writes, in order.
pub async fn run(
    client: &Client,
    cluster: &MySQLCluster,
    now: Timestamp,
) -> Result<ScheduleOutcome, ScheduleStepError> {
    let mut out = ScheduleOutcome::default();
    let Some(config) = &cluster.spec.backup else {
        return Ok(out);
    };
    if config.schedules.iter().all(|s| !s.enabled) {
        return Ok(out);
    }
    let ns = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let api: Api<Backup> = Api::namespaced(client.clone(), &ns);
    let existing = api
        .list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={name}")))
        .await
        .map_err(|source| ScheduleStepError {
            what: "listing Backups".into(),
            source,
        })?;
    let mut by_schedule: BTreeMap<String, Vec<ScheduledBackup>> = BTreeMap::new();
    for b in &existing.items {
        let (Some(s), Some(at)) = (b.labels().get(SCHEDULE_LABEL), scheduled_at(b)) else {
            continue;
        };
        by_schedule
            .entry(s.clone())
            .or_default()
            .push(ScheduledBackup {
                name: b.name_any(),
                scheduled_at: at,
                phase: b.status.as_ref().and_then(|st| st.phase),
            });
    }
    let created_at = cluster
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| Timestamp::from_second(t.0.as_second()).ok())
        .unwrap_or(now);
    for s in config.schedules.iter().filter(|s| s.enabled) {
        let cron = match schedule_plan::parse(&s.schedule) {
            Ok(c) => c,
            Err(e) => {
                out.invalid.push(e.to_string());
                continue;
            }
        };
        let runs = by_schedule.remove(&s.name).unwrap_or_default();
        let since = runs
            .iter()
            .map(|r| r.scheduled_at)
            .max()
            .unwrap_or(created_at);
        if let Some(at) = schedule_plan::due(&cron, since, now) {
            let backup_name = schedule_plan::backup_name(&name, &s.name, at);
            let backup = Backup {
                metadata: ObjectMeta {
                    name: Some(backup_name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(BTreeMap::from([
                        (CLUSTER_LABEL.to_string(), name.clone()),
                        (SCHEDULE_LABEL.to_string(), s.name.clone()),
                    ])),
                    annotations: Some(BTreeMap::from([(
                        SCHEDULED_AT_ANNOTATION.to_string(),
                        schedule_plan::scheduled_at_text(at),
                    )])),
                    ..Default::default()
                },
                spec: BackupSpec {
                    cluster_name: name.clone(),
                    storage: None,
                    deletion_policy: crate::api::DeletionPolicy::Delete,
                },
                status: None,
            };
            match api.create(&PostParams::default(), &backup).await {
                Ok(_) => {
                    info!(backup = %backup_name, schedule = %s.name, "scheduled backup created");
                    out.created.push(backup_name);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(source) => {
                    return Err(ScheduleStepError {
                        what: format!("creating Backup {backup_name}"),
                        source,
                    });
                }
            }
        }
        for doomed in schedule_plan::retention(&runs, s.keep.max(1) as usize) {
            match api.delete(&doomed, &DeleteParams::background()).await {
                Ok(_) => out.deleted.push(doomed),
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    warn!(backup = %doomed, error = %e, "retention could not delete an old backup")
                }
            }
        }
        if let Some(next) = schedule_plan::next(&cron, now) {
            let wait = Duration::try_from(next.duration_since(now)).unwrap_or_default();
            out.next_in = Some(out.next_in.map_or(wait, |w| w.min(wait)));
        }
    }
    Ok(out)
}
