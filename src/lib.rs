//! innodb-operator: a Kubernetes operator for MySQL InnoDB Cluster.
pub mod xproto;
