//! `Backup`: one backup of a `MySQLCluster`, taken on demand or by a schedule.

// `printcolumn(...)` repeats `type_ = ...` by design; clippy reads it as a duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::storage::S3Storage;

/// Desired state of a backup.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "innodb-operator.io",
    version = "v1alpha1",
    kind = "Backup",
    plural = "backups",
    singular = "backup",
    shortname = "myb",
    category = "innodb",
    namespaced,
    status = "BackupStatus",
    doc = "One backup of a MySQLCluster, streamed to S3 by a Job. Deleting it deletes the stored objects when its deletionPolicy is Delete.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterName"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Size",
        type_ = "integer",
        json_path = ".status.sizeBytes",
        format = "int64"
    ),
    printcolumn(
        name = "Location",
        type_ = "string",
        json_path = ".status.location",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupSpec {
    /// The `MySQLCluster` (same namespace) to back up. Fixed when the Backup is created.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterName is immutable: create a new Backup for another cluster"))]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub(crate) cluster_name: String,
    /// Where to store this backup; defaults to the cluster's `spec.backup.storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<S3Storage>,
    /// What happens to the stored objects when this Backup is deleted.
    #[serde(default)]
    pub(crate) deletion_policy: DeletionPolicy,
}

/// What happens to a backup's objects when the `Backup` is deleted.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub(crate) enum DeletionPolicy {
    /// Keep the objects in the bucket.
    #[default]
    Retain,
    /// Delete the objects from the bucket before the Backup goes away.
    Delete,
}

/// Lifecycle of a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub(crate) enum BackupPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

/// Observed state of a backup.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BackupStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) phase: Option<BackupPhase>,
    /// `s3://bucket/prefix/` of the backup (the folder holding its manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<String>,
    /// The bucket, endpoint and credentials reference the backup was written with, recorded
    /// when its Job is created: a restore and the cleanup use these, never the current spec.
    /// (Absent on Backups created by older versions, which fall back to `location` and the spec.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) storage: Option<S3Storage>,
    /// The key prefix of the backup in that bucket (the folder holding its manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) prefix: Option<String>,
    /// Compressed size of all stored objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) size_bytes: Option<i64>,
    /// GTID set of the consistent snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gtid_set: Option<String>,
    /// The member the backup was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) completion_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// What happened, in words; on failure, what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
}
