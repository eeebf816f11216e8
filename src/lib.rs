//! innodb-operator: a Kubernetes operator for MySQL InnoDB Cluster.
//!
//! One binary, several roles (see `main.rs`): the controller (`run`), the CRD printer (`crd`).
//! The reconcile pipeline is in [`cluster`]; the API types in [`api`].

pub mod api;
pub mod cluster;
pub mod controller;
pub mod crd;
pub mod http;
pub mod metrics;
pub mod telemetry;
