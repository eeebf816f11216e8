//! The custom resources of `innodb-operator.io/v1alpha1`: `MySQLCluster` and `Backup`.
//!
//! The Rust types are the source of truth; `innodb-operator crd` prints the CRDs generated from
//! them into `crds/`. Validation the API server can do lives here too: OpenAPI bounds and formats,
//! and CEL rules (`x-kubernetes-validations`) for what a type cannot say.

pub(crate) mod backup;
pub mod cluster;
pub mod conditions;
pub mod storage;

#[cfg(test)]
mod validation_tests;

pub(crate) use backup::{Backup, BackupPhase, BackupSpec, BackupStatus, DeletionPolicy};
pub use cluster::{MySQLCluster, MySQLClusterSpec, MySQLClusterStatus};
pub use storage::S3Storage;

/// All CRDs this operator serves, in a stable order.
pub(crate) fn crds()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    use kube::CustomResourceExt;
    vec![MySQLCluster::crd(), Backup::crd()]
}
