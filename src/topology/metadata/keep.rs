//! Reading the metadata schema on the primary and writing what [`super::plan`] asks, over the
//! operator's own session (`SqlOps`), within its operation deadline.

use thiserror::Error;

use super::ddl::SCHEMA;
use super::{
    Desired, MetadataError, OPERATOR_ROUTER_ID, SchemaVersion, Stored, StoredCluster,
    StoredInstance, StoredRouter,
};
use crate::topology::mysql::{Session, SqlOps};
use crate::topology::observe::Endpoint;
use crate::topology::ops::OpsError;

/// Why the metadata was not kept this time (the next reconcile tries again).
#[derive(Debug, Error)]
pub(crate) enum KeepError {
    #[error("keeping the InnoDB Cluster metadata: {0}")]
    Ops(#[from] OpsError),
    #[error("keeping the InnoDB Cluster metadata: {0}")]
    Metadata(#[from] MetadataError),
}

/// What a pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Kept {
    /// The schema was created (it did not exist).
    pub created: bool,
    /// Statements run (DDL, grants and row changes).
    pub statements: usize,
}

/// Whether the schema exists with its version view (created last: a schema cut short has none).
pub fn select_schema_exists() -> String {
    format!(
        "SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{SCHEMA}' \
         AND TABLE_NAME = 'schema_version'"
    )
}

pub fn select_version() -> String {
    format!("SELECT major, minor, patch FROM {SCHEMA}.schema_version")
}

pub fn select_clusters() -> String {
    format!(
        "SELECT cluster_id, cluster_name, attributes->>'$.group_replication_group_name' \
         FROM {SCHEMA}.clusters"
    )
}

pub fn select_instances() -> String {
    format!(
        "SELECT instance_id, cluster_id, mysql_server_uuid, address, \
         addresses->>'$.mysqlClassic', addresses->>'$.mysqlX' FROM {SCHEMA}.instances"
    )
}

pub fn select_router() -> String {
    format!(
        "SELECT router_name, address, cluster_id FROM {SCHEMA}.routers \
         WHERE router_id = {OPERATOR_ROUTER_ID}"
    )
}

impl SqlOps {
    /// Makes the metadata on the primary `at` say what `desired` says: reads it, plans, runs
    /// the plan (the row changes in one transaction).
    pub(crate) async fn keep_metadata(
        &self,
        at: &Endpoint,
        desired: &Desired,
    ) -> Result<Kept, KeepError> {
        let work = async {
            let mut s = self.connect(at).await?;
            let stored = read(&mut s).await?;
            let statements = super::plan(&stored, desired)?;
            for statement in &statements {
                s.run(statement).await?;
            }
            Ok(Kept {
                created: stored.version.is_none(),
                statements: statements.len(),
            })
        };
        tokio::time::timeout(self.operation_timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(KeepError::Ops(OpsError::Unreachable {
                    endpoint: at.to_string(),
                    reason: format!(
                        "keeping the metadata took over {} ms",
                        self.operation_timeout.as_millis()
                    ),
                }))
            })
    }
}

/// A row of [`select_instances`]: id, cluster, UUID, address, classic and X endpoints.
type InstanceRow = (
    u32,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

async fn read(s: &mut Session<'_>) -> Result<Stored, OpsError> {
    let exists: Vec<u64> = s.rows(&select_schema_exists()).await?;
    if exists.first().copied().unwrap_or(0) == 0 {
        return Ok(Stored::default());
    }
    let version: Vec<(u32, u32, u32)> = s.rows(&select_version()).await?;
    let version = version
        .into_iter()
        .next()
        .map(|(major, minor, patch)| SchemaVersion {
            major,
            minor,
            patch,
        });
    // A view without a row reads as "upgrade running" (0.0.0): nothing is written.
    let version = version.unwrap_or(SchemaVersion {
        major: 0,
        minor: 0,
        patch: 0,
    });
    if version.major != 2 {
        // Other majors have other tables; the plan refuses them by their version alone.
        return Ok(Stored {
            version: Some(version),
            ..Stored::default()
        });
    }
    let clusters: Vec<(String, String, Option<String>)> = s.rows(&select_clusters()).await?;
    let instances: Vec<InstanceRow> = s.rows(&select_instances()).await?;
    let router: Vec<(String, String, Option<String>)> = s.rows(&select_router()).await?;
    Ok(Stored {
        version: Some(version),
        clusters: clusters
            .into_iter()
            .map(|(cluster_id, cluster_name, group)| StoredCluster {
                cluster_id,
                cluster_name,
                group_name: group.map(|g| g.to_ascii_lowercase()),
            })
            .collect(),
        instances: instances
            .into_iter()
            .map(
                |(instance_id, cluster_id, server_uuid, address, endpoint, xendpoint)| {
                    StoredInstance {
                        instance_id,
                        cluster_id,
                        server_uuid,
                        address,
                        endpoint,
                        xendpoint,
                    }
                },
            )
            .collect(),
        router: router
            .into_iter()
            .next()
            .map(|(router_name, address, cluster_id)| StoredRouter {
                router_name,
                address,
                cluster_id,
            }),
    })
}
