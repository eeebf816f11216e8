//! The InnoDB Cluster metadata schema (`mysql_innodb_cluster_metadata`) that MySQL Router reads
//! to follow the group by itself: what it should say of this cluster ([`Desired`], from the
//! primary's view of the group), what it says now ([`Stored`], read from the primary), and the
//! statements that make the one the other ([`plan`], pure). `keep.rs` does the reading and
//! writing; `ddl.rs` holds the schema; `METADATA.md` gives the facts each part follows.
//!
//! An existing schema (written by MySQL Shell, or by an earlier pass) is kept: its cluster row
//! (id, name, options) and router registrations stay; only the rows that describe the group
//! wrongly are changed.

pub mod ddl;
pub mod keep;

use std::collections::BTreeSet;
use std::fmt;

use thiserror::Error;

use super::member::MemberStatus;
use super::observe::Observed;
use super::sql::{self, SqlError, Statement};
use ddl::SCHEMA;

/// `router_id` of the row the operator registers for its Router Deployment, which every
/// replica's configuration names: far above the ids `mysqlrouter --bootstrap` takes (an
/// `AUTO_INCREMENT` from 1), so the two never meet.
pub const OPERATOR_ROUTER_ID: u32 = 1_000_000;
/// The product name Router registers itself with.
const PRODUCT_NAME: &str = "MySQL Router";

/// A `schema_version` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchemaVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Why the schema cannot be kept.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum MetadataError {
    #[error(
        "the metadata schema reports version 0.0.0: an upgrade (MySQL Shell's \
         dba.upgradeMetadata()) is running or was interrupted; finish it, the operator waits"
    )]
    UpgradeRunning,
    #[error(
        "the metadata schema is version {found}; the operator keeps 2.2.0 or a later 2.x \
         (what Router 9.7 reads): upgrade it with MySQL Shell's dba.upgradeMetadata()"
    )]
    Unsupported { found: SchemaVersion },
    #[error(transparent)]
    Sql(#[from] SqlError),
}

/// One member as the metadata names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instance {
    /// `@@server_uuid`, lowercase.
    pub server_uuid: String,
    /// The member's stable DNS name (its `report_host`).
    pub host: String,
    pub port: u16,
    pub(crate) x_port: u16,
    /// Port of `group_replication_local_address`.
    pub group_port: u16,
}

impl Instance {
    /// `host:port`: the row's `address` and `instance_name`, and its classic endpoint.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    fn x_address(&self) -> String {
        format!("{}:{}", self.host, self.x_port)
    }

    fn group_address(&self) -> String {
        format!("{}:{}", self.host, self.group_port)
    }
}

/// The operator's registration of its Router Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterRow {
    /// The Deployment's name.
    pub name: String,
    /// The Routers' Service name, where clients reach them.
    pub address: String,
    /// The MySQL account the Routers log in with.
    pub user: String,
}

/// What the schema should say of this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The name a new cluster row gets (an existing row keeps its own).
    pub cluster_name: String,
    /// `group_replication_group_name`, lowercase: how Router finds the cluster's row.
    pub group_name: String,
    /// Every member in the primary's view of the group.
    pub members: Vec<Instance>,
    /// Host names of the members the cluster should have that are not in the group now (a pod
    /// restarting): their rows stay, so Router uses them again once they are back.
    pub(crate) absent_hosts: BTreeSet<String>,
    pub router: RouterRow,
}

impl Desired {
    /// From what the members said: the primary (ONLINE, writable, in a group with quorum) and
    /// the metadata its view calls for; `None` without such a primary (nothing can be written).
    pub(crate) fn from_observed(
        observed: &Observed,
        x_port: u16,
        router: RouterRow,
    ) -> Option<(u32, Desired)> {
        let input = &observed.input;
        let (ordinal, primary) = observed.members.iter().find_map(|m| {
            let s = m.state()?;
            let own = s.own_row()?;
            let writable = own.state == MemberStatus::Online
                && own.role == Some(super::Role::Primary)
                && !s.super_read_only
                && s.has_quorum();
            writable.then_some((m.ordinal, s))
        })?;
        let members: Vec<Instance> = primary
            .group
            .iter()
            .map(|row| Instance {
                server_uuid: row.member_id.to_ascii_lowercase(),
                host: row.host.clone(),
                port: row.port,
                x_port,
                group_port: input.group_port(),
            })
            .collect();
        let in_group: BTreeSet<&str> = members.iter().map(|m| m.host.as_str()).collect();
        let absent_hosts = (0..input.instances)
            .map(|o| input.host(o))
            .filter(|h| !in_group.contains(h.as_str()))
            .collect();
        let desired = Desired {
            cluster_name: input.name.clone(),
            group_name: input.group_name.clone(),
            members,
            absent_hosts,
            router,
        };
        Some((ordinal, desired))
    }
}

/// A cluster row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCluster {
    pub cluster_id: String,
    pub cluster_name: String,
    pub group_name: Option<String>,
}

/// An instance row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInstance {
    pub instance_id: u32,
    pub cluster_id: String,
    pub server_uuid: String,
    pub address: Option<String>,
    pub endpoint: Option<String>,
    pub(crate) xendpoint: Option<String>,
}

/// The operator's router row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRouter {
    pub router_name: String,
    pub address: String,
    pub cluster_id: Option<String>,
}

/// What the schema says now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// `None`: there is no (complete) schema.
    pub version: Option<SchemaVersion>,
    pub clusters: Vec<StoredCluster>,
    pub instances: Vec<StoredInstance>,
    /// The row of [`OPERATOR_ROUTER_ID`].
    pub router: Option<StoredRouter>,
}

/// The statements that make the schema say what is desired: DDL first (each its own
/// transaction), then the rows in one transaction. Empty when the schema is true already.
pub fn plan(stored: &Stored, desired: &Desired) -> Result<Vec<Statement>, MetadataError> {
    let mut ddl: Vec<Statement> = Vec::new();
    match stored.version {
        None => {
            ddl.extend(ddl::create().into_iter().map(Statement::from_text));
            ddl.extend(router_grants(&desired.router.user)?);
        }
        Some(v) if v.major == 0 => return Err(MetadataError::UpgradeRunning),
        Some(v) if v.major != 2 || v.minor < 2 => {
            return Err(MetadataError::Unsupported { found: v });
        }
        Some(_) => {}
    }
    let rows = rows(stored, desired)?;
    let mut all = ddl;
    if !rows.is_empty() {
        all.push(Statement::from_text("START TRANSACTION"));
        all.extend(rows);
        all.push(Statement::from_text("COMMIT"));
    }
    Ok(all)
}

/// What the Router account may change: its registration (Router's own bootstrap grants its
/// accounts the same). The reads (`SELECT, EXECUTE` on the schema, the Group Replication tables)
/// come with the account; these name tables, so they wait for the schema.
fn router_grants(user: &str) -> Result<Vec<Statement>, MetadataError> {
    let user = sql::quote(user)?;
    Ok(["routers", "v2_routers"]
        .iter()
        .map(|table| {
            Statement::from_text(format!(
                "GRANT INSERT, UPDATE, DELETE ON {SCHEMA}.{table} TO {user}@'%'"
            ))
        })
        .collect())
}

/// The row changes, in an order the foreign keys accept.
fn rows(stored: &Stored, desired: &Desired) -> Result<Vec<Statement>, MetadataError> {
    let mut out = Vec::new();
    let ours = stored
        .clusters
        .iter()
        .find(|c| c.group_name.as_deref() == Some(desired.group_name.as_str()));
    // A row of another group describes no group that runs here (the schema replicates within
    // this group): its instances go, then the row. Routers registered to it move to ours.
    for stale in stored.clusters.iter().filter(|c| Some(*c) != ours) {
        let id = sql::quote(&stale.cluster_id)?;
        out.push(format!(
            "DELETE FROM {SCHEMA}.instances WHERE cluster_id = {id}"
        ));
        out.push(format!(
            "DELETE FROM {SCHEMA}.clusters WHERE cluster_id = {id}"
        ));
    }
    let cluster_id = match ours {
        Some(c) => c.cluster_id.clone(),
        None => {
            // A new row's id is the group name: unique, and known before it is written.
            out.push(format!(
                "INSERT INTO {SCHEMA}.clusters (cluster_id, cluster_name, description, options, \
                 attributes, cluster_type, primary_mode, router_options) VALUES ({id}, {name}, \
                 'Kept by innodb-operator', '{{}}', JSON_OBJECT('group_replication_group_name', \
                 {id}), 'gr', 'pm', '{{}}')",
                id = sql::quote(&desired.group_name)?,
                name = sql::quote(&desired.cluster_name)?,
            ));
            desired.group_name.clone()
        }
    };
    out.extend(instance_rows(stored, desired, &cluster_id)?);
    out.extend(router_row(stored, desired, &cluster_id)?);
    Ok(out.into_iter().map(Statement::from_text).collect())
}

/// Instance rows: one per member of the group, keyed by server UUID, at its stable endpoints;
/// a member out of the group for now keeps its row; anything else goes.
fn instance_rows(
    stored: &Stored,
    desired: &Desired,
    cluster_id: &str,
) -> Result<Vec<String>, MetadataError> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let host_of = |address: &Option<String>| {
        address
            .as_deref()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(h, _)| h.to_string())
    };
    // Rows of another cluster went with it (above).
    let stored_here = stored
        .instances
        .iter()
        .filter(|i| i.cluster_id == cluster_id);
    let quoted_id = sql::quote(cluster_id)?;
    for row in stored_here {
        let member = desired
            .members
            .iter()
            .find(|m| m.server_uuid == row.server_uuid.to_ascii_lowercase());
        let keep_absent = host_of(&row.address).is_some_and(|h| desired.absent_hosts.contains(&h))
            && member.is_none();
        match member {
            Some(m) if seen.insert(m.server_uuid.as_str()) => {
                let right = row.address.as_deref() == Some(m.address().as_str())
                    && row.endpoint.as_deref() == Some(m.address().as_str())
                    && row.xendpoint.as_deref() == Some(m.x_address().as_str());
                if !right {
                    out.push(format!(
                        "UPDATE {SCHEMA}.instances SET address = {a}, instance_name = {a}, \
                         addresses = {addresses} WHERE instance_id = {id}",
                        a = sql::quote(&m.address())?,
                        addresses = addresses(m)?,
                        id = row.instance_id,
                    ));
                }
            }
            _ if keep_absent => {}
            _ => out.push(format!(
                "DELETE FROM {SCHEMA}.instances WHERE instance_id = {}",
                row.instance_id
            )),
        }
    }
    for m in desired
        .members
        .iter()
        .filter(|m| !seen.contains(m.server_uuid.as_str()))
    {
        out.push(format!(
            "INSERT INTO {SCHEMA}.instances (cluster_id, address, mysql_server_uuid, \
             instance_name, addresses, attributes, instance_type) VALUES ({quoted_id}, {a}, \
             {uuid}, {a}, {addresses}, '{{}}', 'group-member')",
            a = sql::quote(&m.address())?,
            uuid = sql::quote(&m.server_uuid)?,
            addresses = addresses(m)?,
        ));
    }
    Ok(out)
}

/// The `addresses` JSON of a member: classic, X and group communication endpoints.
fn addresses(m: &Instance) -> Result<String, MetadataError> {
    Ok(format!(
        "JSON_OBJECT('mysqlClassic', {}, 'mysqlX', {}, 'grLocal', {})",
        sql::quote(&m.address())?,
        sql::quote(&m.x_address())?,
        sql::quote(&m.group_address())?,
    ))
}

/// The operator's router registration: inserted once, corrected when its name, address or
/// cluster differ; what Router writes into it (version, check-in, attributes) is left alone.
fn router_row(
    stored: &Stored,
    desired: &Desired,
    cluster_id: &str,
) -> Result<Option<String>, MetadataError> {
    let r = &desired.router;
    let right = |s: &StoredRouter| {
        s.router_name == r.name
            && s.address == r.address
            && s.cluster_id.as_deref() == Some(cluster_id)
    };
    let (name, address) = (sql::quote(&r.name)?, sql::quote(&r.address)?);
    let cluster_id = sql::quote(cluster_id)?;
    Ok(match &stored.router {
        None => Some(format!(
            "INSERT INTO {SCHEMA}.routers (router_id, router_name, product_name, address, \
             attributes, cluster_id, options) VALUES ({OPERATOR_ROUTER_ID}, {name}, \
             '{PRODUCT_NAME}', {address}, '{{}}', {cluster_id}, '{{}}')"
        )),
        Some(s) if right(s) => None,
        Some(_) => Some(format!(
            "UPDATE {SCHEMA}.routers SET router_name = {name}, address = {address}, \
             cluster_id = {cluster_id} WHERE router_id = {OPERATOR_ROUTER_ID}"
        )),
    })
}

#[cfg(test)]
mod tests;
