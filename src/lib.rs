//! innodb-operator: a Kubernetes operator for MySQL InnoDB Cluster.
//!
//! One binary, several roles (see `main.rs`): the controller (`run`), the CRD printer (`crd`),
//! and what backup and restore Jobs run (`backup`, `restore`).
//!
//! - [`controller`] wires the watches and runs the two reconciles with a shared [`context`],
//!   on the replica that holds the lease of [`leader`].
//! - [`cluster`] is the `MySQLCluster` reconcile; it drives the Group Replication state machine
//!   in [`topology`], which watches the members over the X protocol ([`xproto`]).
//! - [`backup_controller`] is the `Backup` reconcile (Jobs, schedules, retention).
//! - [`datapath`] is what those Jobs run: the dump into S3 and the restore from it.
//! - [`objects`] holds what every object the operator makes shares (names, labels, accounts,
//!   ports, pod security); [`context`] what every reconcile shares, [`pod_cache`] the pods it
//!   reads.
//! - [`certs`] is the per-cluster CA and the certificates it issues.
//! - [`api`] holds the CRD types, [`events`] the Events the operator records.

pub mod api;
pub mod backup_controller;
pub mod certs;
pub mod cluster;
pub mod context;
pub mod controller;
pub mod crd;
pub mod credentials;
pub mod datapath;
pub mod events;
pub(crate) mod http;
pub mod leader;
pub mod metrics;
pub mod objects;
pub(crate) mod pod_cache;
pub mod telemetry;
pub mod topology;
pub mod version;
pub mod xproto;
