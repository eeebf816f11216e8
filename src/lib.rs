//! innodb-operator: a Kubernetes operator for MySQL InnoDB Cluster.
//!
//! One binary, several roles (see `main.rs`): the controller (`run`), the CRD printer (`crd`),
//! and what backup and restore Jobs run (`backup`, `restore`). The cluster reconcile pipeline
//! is in [`cluster`], the Backup controller in [`backups`], the dump engine in [`backup`], the
//! API types in [`api`].

pub mod api;
pub mod backup;
pub mod backups;
pub mod cluster;
pub mod context;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod http;
pub mod metrics;
pub mod telemetry;
pub mod topology;
pub mod xproto;
