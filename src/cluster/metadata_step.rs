//! Keeping the InnoDB Cluster metadata (`topology::metadata`): what it should say, from this
//! reconcile's observation (pure), and the pass on the primary with its Events.

use tracing::{info, warn};

use crate::api::MySQLCluster;
use crate::context::Context;
use crate::events::Reason;
use crate::objects::MYSQLX_PORT;
use crate::objects::accounts::Account;
use crate::objects::names::Names;
use crate::topology::metadata::keep::{KeepError, Kept};
use crate::topology::metadata::{Desired, RouterRow, ddl};
use crate::topology::mysql::SqlOps;
use crate::topology::observe::Endpoint;
use crate::topology::{Observed, Operation};

/// Where and what to write: the primary and the metadata the group calls for. `None` without a
/// writable primary, or when `operation` moves the primary (the next reconcile writes on the
/// new one).
pub(crate) fn desired(
    names: &Names,
    domain: &str,
    observed: &Observed,
    operation: &Operation,
) -> Option<(Endpoint, Desired)> {
    if matches!(
        operation,
        Operation::SetPrimary { .. } | Operation::ForceQuorum { .. } | Operation::Bootstrap { .. }
    ) {
        return None;
    }
    let router = RouterRow {
        name: names.router(),
        address: names.service_fqdn(&names.router(), domain),
        user: Account::Router.user().to_string(),
    };
    let (primary, desired) = Desired::from_observed(observed, MYSQLX_PORT as u16, router)?;
    Some((observed.input.endpoint(primary), desired))
}

/// One pass on the primary; what it changed, or why it failed, becomes an Event. Never fails
/// the reconcile: the metadata is kept again on the next one.
pub(crate) async fn run(
    ctx: &Context,
    cluster: &MySQLCluster,
    ops: &SqlOps,
    at: &Endpoint,
    desired: &Desired,
) {
    match ops.keep_metadata(at, desired).await {
        Ok(Kept { statements: 0, .. }) => {}
        Ok(kept) => {
            let note = note(&kept, desired.members.len());
            info!(%note, "metadata");
            super::publish(ctx, cluster, Reason::MetadataUpdated, &note).await;
        }
        Err(e) => {
            let note = failure_note(&e);
            warn!(%note, "metadata");
            super::publish(ctx, cluster, Reason::MetadataFailed, &note).await;
        }
    }
}

fn note(kept: &Kept, members: usize) -> String {
    if kept.created {
        format!(
            "created the InnoDB Cluster metadata (schema {}) with {members} members",
            ddl::VERSION
        )
    } else {
        format!(
            "corrected the InnoDB Cluster metadata to the group's {members} members \
             ({} statements)",
            kept.statements
        )
    }
}

/// The error, with what to do when the operator's account lacks the schema's grant (members
/// an earlier version initialised).
fn failure_note(e: &KeepError) -> String {
    let text = e.to_string();
    if text.contains("denied") {
        let [.., grant] = crate::topology::sql::admin_grants(Account::Admin.user());
        format!("{text}. The operator's account needs, as root on the primary: {grant}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ops::OpsError;
    use crate::topology::{ClusterInput, Observed};

    #[test]
    fn nothing_is_written_while_the_primary_moves_or_without_one() {
        let names = Names::new("db", "ns");
        let observed = Observed {
            input: ClusterInput::for_test(3),
            members: vec![],
        };
        assert!(desired(&names, "cluster.local", &observed, &Operation::None).is_none());
        let op = Operation::ForceQuorum {
            via: 0,
            members: vec![0],
        };
        assert!(desired(&names, "cluster.local", &observed, &op).is_none());
    }

    #[test]
    fn a_refused_grant_names_the_one_to_run() {
        let e = KeepError::Ops(OpsError::Statement {
            endpoint: "db-0".into(),
            what: "CREATE DATABASE".into(),
            message: "Access denied for user 'innodb_admin'@'%' to database".into(),
        });
        let note = failure_note(&e);
        assert!(
            note.contains("GRANT CREATE, DROP, REFERENCES, CREATE VIEW, INSERT, UPDATE, DELETE ON mysql_innodb_cluster_metadata.*"),
            "{note}"
        );
        assert!(note.starts_with("keeping the InnoDB Cluster metadata: CREATE DATABASE failed"));
    }

    #[test]
    fn notes_say_what_changed() {
        let created = Kept {
            created: true,
            statements: 20,
        };
        assert_eq!(
            note(&created, 3),
            "created the InnoDB Cluster metadata (schema 2.2.0) with 3 members"
        );
    }
}
