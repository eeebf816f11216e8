//! Reading the schema: databases, tables (with the column and key facts chunking needs), views,
//! routines, triggers, events, and accounts with their grants.

use std::collections::BTreeMap;

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};

use super::chunk;
use super::encode::{self, Column};
use super::sql;

/// Schemas that belong to the server, never dumped.
pub(crate) const SYSTEM_DATABASES: &[&str] =
    &["mysql", "information_schema", "performance_schema", "sys"];
/// The InnoDB Cluster metadata: it describes the group it was written in, so a backup leaves it
/// out (a cluster restored from it writes its own; an older backup that holds it is loaded, and
/// the operator then replaces the other group's rows).
pub(crate) const CLUSTER_METADATA_DATABASE: &str = "mysql_innodb_cluster_metadata";
/// Accounts the server creates itself; restoring them would clobber the target's own.
const SYSTEM_USERS: &[&str] = &[
    "root",
    "mariadb.sys",
    "mysql.sys",
    "mysql.session",
    "mysql.infoschema",
    "PUBLIC",
    "",
];

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub databases: Vec<Database>,
    pub(crate) accounts: Vec<Account>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    pub name: String,
    pub(crate) create: String,
    pub(crate) tables: Vec<Ddl>,
    pub(crate) views: Vec<Ddl>,
    pub(crate) routines: Vec<Ddl>,
    pub(crate) triggers: Vec<Ddl>,
    pub(crate) events: Vec<Ddl>,
}

/// One CREATE statement and the sql_mode it must run under (routines, triggers, events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Ddl {
    pub(crate) name: String,
    pub(crate) sql_mode: Option<String>,
    pub(crate) statement: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub(crate) user: String,
    pub(crate) host: String,
    pub(crate) create: String,
    pub(crate) grants: Vec<String>,
}

/// What the dump needs to know about a table's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TableData {
    pub(crate) database: String,
    pub(crate) name: String,
    pub(crate) columns: Vec<Column>,
    pub(crate) split_column: Option<String>,
    pub(crate) est_rows: u64,
    pub(crate) avg_row_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("reading the schema failed at `{what}`: {source}")]
    Query {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error(
        "`{what}` returned no CREATE statement; the backup user needs SELECT and SHOW VIEW \
             on the schema, and SHOW_ROUTINE (or SELECT on mysql.proc) for routines"
    )]
    Missing { what: String },
    #[error(
        "table {table} is a {kind}; this tool dumps base tables and views only: \
         exclude its database or convert the table"
    )]
    UnsupportedTable { table: String, kind: String },
}

fn query_err(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> SchemaError {
    let what = what.into();
    move |source| SchemaError::Query { what, source }
}

/// Picks the databases to dump: `only` if given, else all but the system ones.
pub(crate) fn select_databases(all: Vec<String>, only: &[String]) -> Vec<String> {
    all.into_iter()
        .filter(|d| {
            if only.is_empty() {
                let lower = d.to_ascii_lowercase();
                !SYSTEM_DATABASES.contains(&lower.as_str()) && lower != CLUSTER_METADATA_DATABASE
            } else {
                only.contains(d)
            }
        })
        .collect()
}

/// Whether an `information_schema.COLUMNS.EXTRA` value marks a generated (computed) column.
/// MySQL's `DEFAULT_GENERATED` is an expression default, a real column.
pub(crate) fn is_generated(extra: &str) -> bool {
    let e = extra.to_ascii_uppercase();
    [
        "VIRTUAL GENERATED",
        "STORED GENERATED",
        "PERSISTENT GENERATED",
    ]
    .iter()
    .any(|g| e.contains(g))
}

/// Reads the full schema and the data facts of every table in the selected databases.
pub(crate) async fn read(
    conn: &mut Conn,
    only: &[String],
) -> Result<(Schema, Vec<TableData>), SchemaError> {
    let all: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await
        .map_err(query_err("list databases"))?;
    let names = select_databases(all, only);
    let mut schema = Schema::default();
    let mut data = Vec::new();
    for db in &names {
        let (database, tables) = read_database(conn, db).await?;
        schema.databases.push(database);
        data.extend(tables);
    }
    schema.accounts = read_accounts(conn).await?;
    Ok((schema, data))
}

async fn show_create(
    conn: &mut Conn,
    what: String,
    stmt_col: usize,
    mode_col: Option<usize>,
    name: &str,
) -> Result<Ddl, SchemaError> {
    let row: Option<mysql_async::Row> = conn.query_first(&what).await.map_err(query_err(&what))?;
    let row = row.ok_or_else(|| SchemaError::Missing { what: what.clone() })?;
    let statement: Option<String> = row.get(stmt_col);
    let statement = statement.ok_or_else(|| SchemaError::Missing { what: what.clone() })?;
    Ok(Ddl {
        name: name.to_string(),
        sql_mode: mode_col.and_then(|i| row.get(i)),
        statement,
    })
}

/// A row of `information_schema.TABLES`: name, type, estimated rows, average row size.
type TableRow = (String, String, Option<u64>, Option<u64>);

/// One database's schema (its `CREATE`, tables, views, then stored programs) and the tables the
/// dump reads, in the order the dump needs them.
async fn read_database(
    conn: &mut Conn,
    db: &str,
) -> Result<(Database, Vec<TableData>), SchemaError> {
    let create = show_create(
        conn,
        format!("SHOW CREATE DATABASE {}", sql::ident(db)),
        1,
        None,
        db,
    )
    .await?
    .statement;
    let lit = sql::literal(db);
    let (tables, mut cols_by_table, pk) = list_tables(conn, db, &lit).await?;
    let mut database = Database {
        name: db.to_string(),
        create,
        tables: vec![],
        views: vec![],
        routines: vec![],
        triggers: vec![],
        events: vec![],
    };
    let mut data = Vec::new();
    for (name, kind, rows, avg) in tables {
        let q = sql::qualified(db, &name);
        match kind.as_str() {
            "VIEW" => database
                .views
                .push(show_create(conn, format!("SHOW CREATE VIEW {q}"), 1, None, &name).await?),
            "BASE TABLE" => {
                database.tables.push(
                    show_create(conn, format!("SHOW CREATE TABLE {q}"), 1, None, &name).await?,
                );
                let cols = cols_by_table.remove(&name).unwrap_or_default();
                data.push(table_data(db, &name, cols, pk.get(&name), rows, avg));
            }
            other => {
                return Err(SchemaError::UnsupportedTable {
                    table: format!("{db}.{name}"),
                    kind: other.to_string(),
                });
            }
        }
    }
    read_stored_programs(conn, db, &lit, &mut database).await?;
    Ok((database, data))
}

/// The tables of a database (name, type, estimated rows, average row size), the columns of each
/// (name, data type, extra) in order, and the first column of each primary key.
async fn list_tables(
    conn: &mut Conn,
    db: &str,
    lit: &str,
) -> Result<
    (
        Vec<TableRow>,
        BTreeMap<String, Vec<(String, String, String)>>,
        BTreeMap<String, String>,
    ),
    SchemaError,
> {
    let tables: Vec<TableRow> = conn
        .query(format!(
            "SELECT TABLE_NAME, TABLE_TYPE, TABLE_ROWS, AVG_ROW_LENGTH FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {lit} ORDER BY TABLE_NAME"
        ))
        .await
        .map_err(query_err(format!("list tables of {db}")))?;
    let columns: Vec<(String, String, String, String)> = conn
        .query(format!(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, EXTRA FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = {lit} ORDER BY TABLE_NAME, ORDINAL_POSITION"
        ))
        .await
        .map_err(query_err(format!("list columns of {db}")))?;
    let pk_first: Vec<(String, String)> = conn
        .query(format!(
            "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = {lit} AND INDEX_NAME = 'PRIMARY' AND SEQ_IN_INDEX = 1"
        ))
        .await
        .map_err(query_err(format!("list primary keys of {db}")))?;
    let mut cols_by_table: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (t, c, ty, extra) in columns {
        cols_by_table.entry(t).or_default().push((c, ty, extra));
    }
    let pk: BTreeMap<String, String> = pk_first.into_iter().collect();
    Ok((tables, cols_by_table, pk))
}

/// The routines, triggers and events of `db` into `database`.
async fn read_stored_programs(
    conn: &mut Conn,
    db: &str,
    lit: &str,
    database: &mut Database,
) -> Result<(), SchemaError> {
    database.routines = show_create_listed(
        conn,
        db,
        "routines",
        format!(
            "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES \
             WHERE ROUTINE_SCHEMA = {lit} ORDER BY ROUTINE_NAME"
        ),
        2,
    )
    .await?;
    database.triggers = show_create_listed(
        conn,
        db,
        "triggers",
        format!(
            "SELECT TRIGGER_NAME, 'TRIGGER' FROM information_schema.TRIGGERS \
             WHERE TRIGGER_SCHEMA = {lit} ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
        ),
        2,
    )
    .await?;
    database.events = show_create_listed(
        conn,
        db,
        "events",
        format!(
            "SELECT EVENT_NAME, 'EVENT' FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {lit} \
             ORDER BY EVENT_NAME"
        ),
        3,
    )
    .await?;
    Ok(())
}

/// The `SHOW CREATE` of each stored program `list` finds in `db` (rows: its name and the
/// keyword `SHOW CREATE` takes: `PROCEDURE`, `FUNCTION`, `TRIGGER`, `EVENT`), in the list's
/// order; `stmt_col` is the column of the statement in what `SHOW CREATE` returns.
async fn show_create_listed(
    conn: &mut Conn,
    db: &str,
    what: &str,
    list: String,
    stmt_col: usize,
) -> Result<Vec<Ddl>, SchemaError> {
    let listed: Vec<(String, String)> = conn
        .query(list)
        .await
        .map_err(query_err(format!("list {what} of {db}")))?;
    let mut ddl = Vec::with_capacity(listed.len());
    for (name, kind) in listed {
        let show = format!("SHOW CREATE {kind} {}", sql::qualified(db, &name));
        ddl.push(show_create(conn, show, stmt_col, Some(1), &name).await?);
    }
    Ok(ddl)
}

/// What the dump reads of a base table: its stored columns (`cols`: name, data type, extra) with
/// their codecs, the first primary key column (`pk_first`) when chunks can split on it, and
/// the server's estimates of its rows and their size.
fn table_data(
    db: &str,
    name: &str,
    cols: Vec<(String, String, String)>,
    pk_first: Option<&String>,
    rows: Option<u64>,
    avg_row_bytes: Option<u64>,
) -> TableData {
    let split_column = pk_first.filter(|k| {
        cols.iter()
            .any(|(c, ty, _)| c == *k && chunk::is_splittable_type(ty))
    });
    TableData {
        database: db.to_string(),
        name: name.to_string(),
        split_column: split_column.cloned(),
        columns: cols
            .into_iter()
            .filter(|(_, _, extra)| !is_generated(extra))
            .map(|(c, ty, _)| Column {
                name: c,
                codec: encode::codec_for(&ty),
            })
            .collect(),
        est_rows: rows.unwrap_or(0),
        avg_row_bytes: avg_row_bytes.unwrap_or(0),
    }
}

async fn read_accounts(conn: &mut Conn) -> Result<Vec<Account>, SchemaError> {
    let users: Vec<(String, String)> = conn
        .query("SELECT User, Host FROM mysql.user ORDER BY User, Host")
        .await
        .map_err(query_err("list accounts (needs SELECT on mysql.user)"))?;
    let mut accounts = Vec::new();
    for (user, host) in users {
        if SYSTEM_USERS.contains(&user.as_str()) {
            continue;
        }
        let account = format!("{}@{}", sql::literal(&user), sql::literal(&host));
        // Roles (MariaDB) have no CREATE USER form; they are skipped with a warning.
        let create: String = match conn
            .query_first(format!("SHOW CREATE USER {account}"))
            .await
        {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => {
                tracing::warn!(%user, %host, "account has no CREATE USER form (a role?); not dumped");
                continue;
            }
        };
        let grants: Vec<String> = conn
            .query(format!("SHOW GRANTS FOR {account}"))
            .await
            .map_err(query_err(format!("SHOW GRANTS FOR {account}")))?;
        accounts.push(Account {
            user,
            host,
            create,
            grants,
        });
    }
    Ok(accounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_databases_are_skipped_unless_asked_for() {
        let all = vec![
            "app".to_string(),
            "mysql".into(),
            "sys".into(),
            "Shop".into(),
            CLUSTER_METADATA_DATABASE.into(),
        ];
        assert_eq!(select_databases(all.clone(), &[]), vec!["app", "Shop"]);
        assert_eq!(
            CLUSTER_METADATA_DATABASE,
            crate::topology::metadata::ddl::SCHEMA
        );
        assert_eq!(select_databases(all, &["Shop".into()]), vec!["Shop"]);
    }

    #[test]
    fn expression_defaults_are_not_generated_columns() {
        assert!(is_generated("VIRTUAL GENERATED"));
        assert!(is_generated("STORED GENERATED"));
        assert!(!is_generated(
            "DEFAULT_GENERATED on update CURRENT_TIMESTAMP"
        ));
        assert!(!is_generated("auto_increment"));
    }
}
