//! SQL statements, per server capabilities (the writes here, the probes and reads with the
//! parsers of their rows in [`read`]). Pure: no I/O.
//!
//! Capabilities come from probing the server (its version number, `information_schema.PLUGINS`
//! and which variables exist), never from `version_comment`. Every statement that carries a
//! password is a [`Statement`] whose `Debug`/`Display` show it redacted.

use std::fmt;

use thiserror::Error;

use crate::version::ServerVersion;

mod read;
#[cfg(test)]
mod tests;

pub use read::{
    Capabilities, PROBED_PLUGINS, SELECT_CERTIFICATE_END, SELECT_CLONE_STATE,
    SELECT_MEMBER_VERSIONS, SELECT_MEMBERS, SELECT_QUEUE, SELECT_RECEIVED, SELECT_SELF,
    SELECT_VERSION, certificate_end, expel_timeout, group_name, offline_mode, select_plugins,
    select_variables, variable,
};
pub(crate) use read::{
    CloneFailure, CloneRowText, EXPEL_TIMEOUT_VARIABLE, GROUP_SEEDS_VARIABLE,
    IP_ALLOWLIST_VARIABLE, MemberRowText, OFFLINE_MODE_VARIABLE, clone_failure, clone_running,
    parse_bool, parse_members,
};

/// A result the operator could not make sense of.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SqlError {
    #[error("server version {0:?} is not of the form major.minor.patch")]
    BadVersion(String),
    #[error("MySQL {0} is too old: Group Replication management needs 8.0.23 or later")]
    TooOld(ServerVersion),
    #[error("replication_group_members has an unknown MEMBER_STATE {0:?}")]
    BadState(String),
    #[error("replication_group_members has an unknown MEMBER_ROLE {0:?}")]
    BadRole(String),
    #[error("a password contains a NUL byte; choose another")]
    BadPassword,
}

pub use crate::credentials::Credentials;

/// The accounts the operator creates on a new group (they replicate to every member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accounts {
    /// Group Replication distributed recovery and clone donor.
    pub recovery: Credentials,
    pub router: Credentials,
    pub backup: Credentials,
}

/// Admits clients again: `SET GLOBAL offline_mode = OFF`.
pub fn admit_clients() -> Statement {
    Statement::from_text(format!("SET GLOBAL {OFFLINE_MODE_VARIABLE} = OFF"))
}

/// `SET GLOBAL group_replication_member_expel_timeout = <seconds>`; on a member whose view
/// suspects another, a new value takes effect at once (checked on 9.7).
pub fn set_expel_timeout(seconds: u32) -> Statement {
    Statement::from_text(format!("SET GLOBAL {EXPEL_TIMEOUT_VARIABLE} = {seconds}"))
}

/// `SET GLOBAL group_replication_group_seeds = '...'` and, when given, `..._ip_allowlist`, in
/// one statement; both can be changed while Group Replication runs (see `membership`). The
/// values are Kubernetes DNS names (letters, digits, `-`, `.`), ports and commas: nothing to
/// escape.
pub fn set_membership(settings: &crate::topology::membership::Settings) -> Statement {
    let mut sql = format!("SET GLOBAL {GROUP_SEEDS_VARIABLE} = '{}'", settings.seeds);
    if let Some(allowlist) = &settings.allowlist {
        sql.push_str(&format!(", {IP_ALLOWLIST_VARIABLE} = '{allowlist}'"));
    }
    Statement::from_text(sql)
}

/// One SQL statement; `Debug` and `Display` show it with secrets redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    sql: String,
    shown: String,
}

impl Statement {
    /// A statement without secrets.
    pub(crate) fn from_text(sql: impl Into<String>) -> Self {
        let sql = sql.into();
        Statement {
            shown: sql.clone(),
            sql,
        }
    }

    /// A statement in which `{secret}` stands for a quoted secret.
    fn with_secret(template: &str, secret: &str) -> Result<Self, SqlError> {
        Ok(Statement {
            sql: template.replace("{secret}", &quote(secret)?),
            shown: template.replace("{secret}", "'<redacted>'"),
        })
    }

    /// The text to send to the server. Never log it: use `Display`.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl fmt::Display for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Statement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Statement({:?})", self.shown)
    }
}

/// A single-quoted string literal. Valid whether or not `NO_BACKSLASH_ESCAPES` is set is not
/// possible for backslashes, so the session must run without it (see [`SESSION_SETUP`]).
pub(crate) fn quote(text: &str) -> Result<String, SqlError> {
    if text.contains('\0') {
        return Err(SqlError::BadPassword);
    }
    Ok(format!(
        "'{}'",
        text.replace('\\', "\\\\").replace('\'', "''")
    ))
}

fn quote_name(text: &str) -> String {
    // User and host names come from the operator's own configuration; a NUL cannot occur.
    quote(text).unwrap_or_else(|_| "''".to_string())
}

/// Run once per session: string literals above rely on backslash escapes.
pub const SESSION_SETUP: &str = "SET SESSION sql_mode = 'TRADITIONAL'";

/// Reads the TLS files again (certificate, key, CA) for new connections; on an error the server
/// keeps what it has.
pub(crate) const RELOAD_TLS: &str = "ALTER INSTANCE RELOAD TLS";

// ---- accounts ----

fn create_user(user: &Credentials) -> Result<Statement, SqlError> {
    Statement::with_secret(
        &format!(
            "CREATE USER IF NOT EXISTS {}@'%' IDENTIFIED BY {{secret}}",
            quote_name(&user.user)
        ),
        &user.password,
    )
}

fn grant(privileges: &str, on: &str, user: &str) -> Statement {
    Statement::from_text(format!(
        "GRANT {privileges} ON {on} TO {}@'%'",
        quote_name(user)
    ))
}

/// What the recovery account may do: recover and donate a clone (`BACKUP_ADMIN`), and, with the
/// MYSQL communication stack, carry the group's own connections.
fn recovery_privileges(caps: &Capabilities) -> String {
    let mut privileges = String::from("REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN");
    if caps.communication_stack {
        privileges.push_str(", GROUP_REPLICATION_STREAM");
    }
    privileges
}

/// Whether the recovery account exists on this member: one row, a count.
pub(crate) fn select_account_exists(user: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM mysql.user WHERE User = {} AND Host = '%'",
        quote_name(user)
    )
}

/// The recovery account, created on this member only (binary logging off for the session, so
/// it is no transaction of its own), before its first `START GROUP_REPLICATION`: with the MYSQL
/// communication stack a starting member authenticates the group's connections, its test
/// connection to itself included, with the recovery credentials, so the account must exist on
/// every member before it starts — the seed of a bootstrap too. Run only where the account is
/// missing (a member that left a group is `super_read_only`, and has it already).
pub(crate) fn local_recovery_account(
    caps: &Capabilities,
    recovery: &Credentials,
) -> Result<Vec<Statement>, SqlError> {
    Ok(vec![
        Statement::from_text(SQL_LOG_BIN_OFF),
        create_user(recovery)?,
        grant(&recovery_privileges(caps), "*.*", &recovery.user),
        Statement::from_text(SQL_LOG_BIN_ON),
    ])
}

pub(crate) const SQL_LOG_BIN_OFF: &str = "SET SESSION sql_log_bin = 0";
pub(crate) const SQL_LOG_BIN_ON: &str = "SET SESSION sql_log_bin = 1";

/// The accounts created on the primary right after a bootstrap. They are written to the binary
/// log on purpose: every member gets them through the group.
pub fn account_statements(
    caps: &Capabilities,
    accounts: &Accounts,
) -> Result<Vec<Statement>, SqlError> {
    let router = &accounts.router.user;
    Ok(vec![
        create_user(&accounts.recovery)?,
        grant(&recovery_privileges(caps), "*.*", &accounts.recovery.user),
        create_user(&accounts.router)?,
        grant("SELECT, EXECUTE", "mysql_innodb_cluster_metadata.*", router),
        grant(
            "SELECT",
            "performance_schema.replication_group_members",
            router,
        ),
        grant(
            "SELECT",
            "performance_schema.replication_group_member_stats",
            router,
        ),
        grant("SELECT", "performance_schema.global_variables", router),
        create_user(&accounts.backup)?,
        grant(
            "SELECT, SHOW VIEW, EVENT, TRIGGER, RELOAD, REPLICATION CLIENT, BACKUP_ADMIN",
            "*.*",
            &accounts.backup.user,
        ),
    ])
}

/// The operator's own privileges, granted by the pod's first-start script (as root, with binary
/// logging off, so the account never becomes a transaction of its own). Least privilege: Group
/// Replication and clone administration, reading state, and creating the cluster's other
/// accounts — `WITH GRANT OPTION` because a grantor must hold what it grants them. No data
/// changes and no DDL outside the InnoDB Cluster metadata schema, which the operator creates
/// and keeps (`metadata`: `DROP` for its `CREATE OR REPLACE VIEW`, `REFERENCES` for its
/// foreign keys; the Router account's grants on its tables come from these); no SUPER.
/// `GROUP_REPLICATION_STREAM` exists from 8.0.27, the oldest version the operator accepts.
pub(crate) fn admin_grants(user: &str) -> [String; 3] {
    let user = quote_name(user);
    let metadata = super::metadata::ddl::SCHEMA;
    [
        format!(
            "GRANT SELECT, EXECUTE, RELOAD, SHOW VIEW, EVENT, TRIGGER, REPLICATION SLAVE, \
             REPLICATION CLIENT, CREATE USER ON *.* TO {user}@'%' WITH GRANT OPTION"
        ),
        format!(
            "GRANT GROUP_REPLICATION_ADMIN, CLONE_ADMIN, SYSTEM_VARIABLES_ADMIN, \
             REPLICATION_SLAVE_ADMIN, CONNECTION_ADMIN, BACKUP_ADMIN, GROUP_REPLICATION_STREAM \
             ON *.* TO {user}@'%' WITH GRANT OPTION"
        ),
        format!(
            "GRANT CREATE, DROP, REFERENCES, CREATE VIEW, INSERT, UPDATE, DELETE ON {metadata}.* \
             TO {user}@'%' WITH GRANT OPTION"
        ),
    ]
}

// ---- group operations ----

pub(crate) const BOOTSTRAP_ON: &str = "SET GLOBAL group_replication_bootstrap_group = ON";
pub(crate) const BOOTSTRAP_OFF: &str = "SET GLOBAL group_replication_bootstrap_group = OFF";
pub(crate) const START_GR: &str = "START GROUP_REPLICATION";
pub(crate) const STOP_GR: &str = "STOP GROUP_REPLICATION";
/// `caching_sha2_password` recovery without TLS needs the donor's public key.
pub(crate) const RECOVERY_PUBLIC_KEY: &str =
    "SET GLOBAL group_replication_recovery_get_public_key = ON";

/// Stores the recovery credentials for the `group_replication_recovery` channel (8.0.23+ form;
/// 8.4 removed `CHANGE MASTER TO`).
pub(crate) fn recovery_credentials(recovery: &Credentials) -> Result<Statement, SqlError> {
    Statement::with_secret(
        &format!(
            "CHANGE REPLICATION SOURCE TO SOURCE_USER = {}, SOURCE_PASSWORD = {{secret}} \
             FOR CHANNEL 'group_replication_recovery'",
            quote_name(&recovery.user)
        ),
        &recovery.password,
    )
}

/// Lets a clone replace this member's data: `CLONE INSTANCE` fails with error 1290 while
/// `super_read_only` is ON, which it is on every member that has been in a group (Group
/// Replication sets it and leaves it ON after `STOP GROUP_REPLICATION`). The clone replaces all
/// data and the member restarts, so nothing else can write in between that would survive.
pub(crate) const CLONE_WRITABLE: &str = "SET GLOBAL super_read_only = OFF";

/// Restricts clone donors to `donor`, makes the member writable for the clone, then clones from
/// `donor` (the recipient restarts afterwards). The last statement is the clone itself.
pub(crate) fn clone_statements(
    donor_host: &str,
    donor_port: u16,
    recovery: &Credentials,
) -> Result<Vec<Statement>, SqlError> {
    Ok(vec![
        Statement::from_text(format!(
            "SET GLOBAL clone_valid_donor_list = {}",
            quote_name(&format!("{donor_host}:{donor_port}"))
        )),
        Statement::from_text(CLONE_WRITABLE),
        Statement::with_secret(
            &format!(
                "CLONE INSTANCE FROM {}@{}:{donor_port} IDENTIFIED BY {{secret}}",
                quote_name(&recovery.user),
                quote_name(donor_host)
            ),
            &recovery.password,
        )?,
    ])
}

/// Whether every member's `MEMBER_VERSION` is 8.0.29 or later: only then does
/// `group_replication_set_as_primary` honour its timeout (an unparsable version counts as no).
pub(crate) fn group_supports_primary_timeout<'a>(
    versions: impl IntoIterator<Item = &'a str>,
) -> bool {
    versions
        .into_iter()
        .all(|v| ServerVersion::parse_server(v).is_ok_and(|v| v >= ServerVersion::new(8, 0, 29)))
}

/// `group_replication_set_as_primary`, with a timeout for running transactions when every
/// member supports it (see [`group_supports_primary_timeout`]).
pub fn set_as_primary(with_timeout: bool, server_uuid: &str, timeout_s: u32) -> Statement {
    let uuid = quote_name(server_uuid);
    if with_timeout {
        Statement::from_text(format!(
            "SELECT group_replication_set_as_primary({uuid}, {timeout_s})"
        ))
    } else {
        Statement::from_text(format!("SELECT group_replication_set_as_primary({uuid})"))
    }
}

/// Forces the membership, then clears the variable (it must not stay set).
pub(crate) fn force_members_statements(local_addresses: &[String]) -> [Statement; 2] {
    [
        Statement::from_text(format!(
            "SET GLOBAL group_replication_force_members = {}",
            quote_name(&local_addresses.join(","))
        )),
        Statement::from_text("SET GLOBAL group_replication_force_members = ''"),
    ]
}
