//! SQL statement builders and result parsers, per server capabilities. Pure: no I/O.
//!
//! Capabilities come from probing the server (its version number, `information_schema.PLUGINS`
//! and which variables exist), never from `version_comment`. Every statement that carries a
//! password is a [`Statement`] whose `Debug`/`Display` show it redacted.

use std::fmt;

use thiserror::Error;

use crate::version::ServerVersion;

use super::member::{GroupMemberRow, MemberStatus, Role};

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

/// What a server supports, from probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    pub version: ServerVersion,
    /// The `group_replication` plugin is ACTIVE.
    pub group_replication: bool,
    /// The `clone` plugin is ACTIVE.
    pub clone: bool,
    /// `group_replication_communication_stack` exists (8.0.27+): the MYSQL stack and the
    /// `GROUP_REPLICATION_STREAM` privilege are available.
    pub communication_stack: bool,
}

/// Plugin names the probe asks about.
pub const PROBED_PLUGINS: [&str; 2] = ["group_replication", "clone"];
/// Variables the probe asks about.
pub const PROBED_VARIABLES: [&str; 4] = [
    "group_replication_communication_stack",
    EXPEL_TIMEOUT_VARIABLE,
    GROUP_NAME_VARIABLE,
    OFFLINE_MODE_VARIABLE,
];

/// The name (a UUID) of the group the member starts or joins.
pub const GROUP_NAME_VARIABLE: &str = "group_replication_group_name";

/// The member's `group_replication_group_name` from the probe's variable rows, lowercase
/// (`None` without the Group Replication plugin, or when it is unset).
pub fn group_name(variables: &[(String, Option<String>)]) -> Option<String> {
    variables
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(GROUP_NAME_VARIABLE))
        .and_then(|(_, value)| value.as_deref())
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
}

/// Seconds a suspected member may stay UNREACHABLE before the group expels it.
pub const EXPEL_TIMEOUT_VARIABLE: &str = "group_replication_member_expel_timeout";

/// The member's `group_replication_member_expel_timeout` from the probe's variable rows
/// (`None` without the Group Replication plugin or with a value that is not a number).
pub fn expel_timeout(variables: &[(String, Option<String>)]) -> Option<u32> {
    variables
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(EXPEL_TIMEOUT_VARIABLE))
        .and_then(|(_, value)| value.as_deref()?.trim().parse().ok())
}

/// Refuses clients without `CONNECTION_ADMIN` while ON (see `admit`).
pub const OFFLINE_MODE_VARIABLE: &str = "offline_mode";

/// The member's `offline_mode` from the probe's variable rows (a server without the variable
/// has no offline mode).
pub fn offline_mode(variables: &[(String, Option<String>)]) -> bool {
    variables
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(OFFLINE_MODE_VARIABLE))
        .and_then(|(_, value)| value.as_deref())
        .is_some_and(parse_bool)
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

impl Capabilities {
    /// From `@@version`, `(PLUGIN_NAME, PLUGIN_STATUS)` rows and the names of existing variables.
    pub fn from_probe(
        version: &str,
        plugins: &[(String, String)],
        variables: &[String],
    ) -> Result<Self, SqlError> {
        let version = ServerVersion::parse_server(version)
            .map_err(|_| SqlError::BadVersion(version.to_string()))?;
        if version < ServerVersion::new(8, 0, 23) {
            return Err(SqlError::TooOld(version));
        }
        let active = |name: &str| {
            plugins
                .iter()
                .any(|(n, s)| n.eq_ignore_ascii_case(name) && s.eq_ignore_ascii_case("ACTIVE"))
        };
        Ok(Capabilities {
            version,
            group_replication: active("group_replication"),
            clone: active("clone"),
            communication_stack: variables
                .iter()
                .any(|v| v.eq_ignore_ascii_case("group_replication_communication_stack")),
        })
    }
}

/// One SQL statement; `Debug` and `Display` show it with secrets redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    sql: String,
    shown: String,
}

impl Statement {
    /// A statement without secrets.
    pub fn from_text(sql: impl Into<String>) -> Self {
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
pub fn quote(text: &str) -> Result<String, SqlError> {
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

// ---- probes and reads ----

pub const SELECT_VERSION: &str = "SELECT @@GLOBAL.version";

pub fn select_plugins() -> String {
    format!(
        "SELECT PLUGIN_NAME, PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ({})",
        PROBED_PLUGINS.map(|p| format!("'{p}'")).join(", ")
    )
}

/// `SHOW GLOBAL VARIABLES` (rows: name, value) works on every server the probe may meet.
pub fn select_variables() -> String {
    format!(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ({})",
        PROBED_VARIABLES.map(|p| format!("'{p}'")).join(", ")
    )
}

pub const SELECT_SELF: &str =
    "SELECT @@GLOBAL.server_uuid, @@GLOBAL.gtid_executed, @@GLOBAL.super_read_only";

/// When the certificate the server presents ends (an empty value without TLS).
pub const SELECT_CERTIFICATE_END: &str = "SHOW GLOBAL STATUS LIKE 'Ssl_server_not_after'";

/// The end of the served certificate from [`SELECT_CERTIFICATE_END`]'s rows: OpenSSL's
/// `Mmm dd hh:mm:ss yyyy GMT` (the day padded with a space); `None` when empty or unreadable.
pub fn certificate_end(rows: &[(String, String)]) -> Option<jiff::Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_, text) = rows.first()?;
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [month, day, time, year, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let mut hms = time.split(':').map(|p| p.parse::<i8>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    jiff::civil::DateTime::new(
        year.parse().ok()?,
        i8::try_from(month).ok()?,
        day.parse().ok()?,
        h,
        m,
        s,
        0,
    )
    .ok()?
    .to_zoned(jiff::tz::TimeZone::UTC)
    .ok()
    .map(|z| z.timestamp())
}

/// Reads the TLS files again (certificate, key, CA) for new connections; on an error the server
/// keeps what it has.
pub const RELOAD_TLS: &str = "ALTER INSTANCE RELOAD TLS";

pub const SELECT_RECEIVED: &str = "SELECT RECEIVED_TRANSACTION_SET FROM \
     performance_schema.replication_connection_status WHERE CHANNEL_NAME = 'group_replication_applier'";

pub const SELECT_MEMBERS: &str = "SELECT MEMBER_ID, MEMBER_HOST, MEMBER_PORT, MEMBER_STATE, \
     MEMBER_ROLE, MEMBER_VERSION FROM performance_schema.replication_group_members";

pub const SELECT_MEMBER_VERSIONS: &str =
    "SELECT MEMBER_VERSION FROM performance_schema.replication_group_members";

pub const SELECT_QUEUE: &str = "SELECT COUNT_TRANSACTIONS_REMOTE_IN_APPLIER_QUEUE FROM \
     performance_schema.replication_group_member_stats WHERE MEMBER_ID = @@GLOBAL.server_uuid";

/// Only queried when the clone plugin is active (the table comes with it).
pub const SELECT_CLONE_STATE: &str =
    "SELECT STATE, ERROR_NO, ERROR_MESSAGE FROM performance_schema.clone_status";

/// One row of [`SELECT_CLONE_STATE`].
pub type CloneRowText = (String, Option<u32>, Option<String>);

/// The last clone into the member failed (`clone_status` keeps it across restarts until the
/// next clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneFailure {
    pub error_no: u32,
    pub message: String,
}

impl std::fmt::Display for CloneFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR {}: {}", self.error_no, self.message)
    }
}

/// The failure of the last clone, if the row says it failed.
pub fn clone_failure(rows: &[CloneRowText]) -> Option<CloneFailure> {
    rows.iter()
        .find(|(state, _, _)| state.eq_ignore_ascii_case("Failed"))
        .map(|(_, error_no, message)| CloneFailure {
            error_no: error_no.unwrap_or(0),
            message: message.clone().unwrap_or_default(),
        })
}

/// Whether `clone_status` rows show a clone running.
pub fn clone_running(rows: &[CloneRowText]) -> bool {
    rows.iter()
        .any(|(state, _, _)| state.eq_ignore_ascii_case("In Progress"))
}

/// One row of [`SELECT_MEMBERS`] as text columns.
pub type MemberRowText = (String, String, Option<u16>, String, String, String);

/// Parses [`SELECT_MEMBERS`] rows. With Group Replication stopped the server shows one row for
/// itself with state OFFLINE, an empty host and empty role.
pub fn parse_members(rows: Vec<MemberRowText>) -> Result<Vec<GroupMemberRow>, SqlError> {
    rows.into_iter()
        .map(|(member_id, host, port, state, role, version)| {
            let state = match state.to_ascii_uppercase().as_str() {
                "ONLINE" => MemberStatus::Online,
                "RECOVERING" => MemberStatus::Recovering,
                "OFFLINE" => MemberStatus::Offline,
                "ERROR" => MemberStatus::Error,
                "UNREACHABLE" => MemberStatus::Unreachable,
                _ => return Err(SqlError::BadState(state)),
            };
            let role = match role.to_ascii_uppercase().as_str() {
                "PRIMARY" => Some(Role::Primary),
                "SECONDARY" => Some(Role::Secondary),
                "" => None,
                _ => return Err(SqlError::BadRole(role)),
            };
            Ok(GroupMemberRow {
                member_id: member_id.to_ascii_lowercase(),
                host,
                port: port.unwrap_or(0),
                state,
                role,
                version,
            })
        })
        .collect()
}

/// `@@super_read_only` comes back as 0/1 or OFF/ON depending on the client path.
pub fn parse_bool(text: &str) -> bool {
    matches!(text.to_ascii_uppercase().as_str(), "1" | "ON" | "TRUE")
}

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
pub fn select_account_exists(user: &str) -> String {
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
pub fn local_recovery_account(
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

pub const SQL_LOG_BIN_OFF: &str = "SET SESSION sql_log_bin = 0";
pub const SQL_LOG_BIN_ON: &str = "SET SESSION sql_log_bin = 1";

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
pub fn admin_grants(user: &str) -> [String; 3] {
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

pub const BOOTSTRAP_ON: &str = "SET GLOBAL group_replication_bootstrap_group = ON";
pub const BOOTSTRAP_OFF: &str = "SET GLOBAL group_replication_bootstrap_group = OFF";
pub const START_GR: &str = "START GROUP_REPLICATION";
pub const STOP_GR: &str = "STOP GROUP_REPLICATION";
/// `caching_sha2_password` recovery without TLS needs the donor's public key.
pub const RECOVERY_PUBLIC_KEY: &str = "SET GLOBAL group_replication_recovery_get_public_key = ON";

/// Stores the recovery credentials for the `group_replication_recovery` channel (8.0.23+ form;
/// 8.4 removed `CHANGE MASTER TO`).
pub fn recovery_credentials(recovery: &Credentials) -> Result<Statement, SqlError> {
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
pub const CLONE_WRITABLE: &str = "SET GLOBAL super_read_only = OFF";

/// Restricts clone donors to `donor`, makes the member writable for the clone, then clones from
/// `donor` (the recipient restarts afterwards). The last statement is the clone itself.
pub fn clone_statements(
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
pub fn group_supports_primary_timeout<'a>(versions: impl IntoIterator<Item = &'a str>) -> bool {
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
pub fn force_members_statements(local_addresses: &[String]) -> [Statement; 2] {
    [
        Statement::from_text(format!(
            "SET GLOBAL group_replication_force_members = {}",
            quote_name(&local_addresses.join(","))
        )),
        Statement::from_text("SET GLOBAL group_replication_force_members = ''"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(version: &str, stack: bool) -> Capabilities {
        let plugins = vec![
            ("group_replication".to_string(), "ACTIVE".to_string()),
            ("clone".to_string(), "DISABLED".to_string()),
        ];
        let variables = if stack {
            vec!["group_replication_communication_stack".to_string()]
        } else {
            vec![]
        };
        Capabilities::from_probe(version, &plugins, &variables).unwrap()
    }

    fn creds(user: &str, password: &str) -> Credentials {
        Credentials {
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn capabilities_come_from_probes_not_vendor_strings() {
        let c80 = caps("8.0.28", true);
        assert!(c80.group_replication);
        assert!(!c80.clone, "a DISABLED plugin is not available");
        assert!(!caps("8.0.26", false).communication_stack);
        assert_eq!(
            Capabilities::from_probe("8.0.20", &[], &[]),
            Err(SqlError::TooOld(ServerVersion::new(8, 0, 20)))
        );
        // MariaDB answers the probes without a group_replication plugin.
        let maria = Capabilities::from_probe("10.11.6-MariaDB-0+deb12u1", &[], &[]).unwrap();
        assert!(!maria.group_replication);
    }

    #[test]
    fn secrets_are_quoted_and_never_shown() {
        let s = recovery_credentials(&creds("gr_recovery", "p'w\\d")).unwrap();
        assert_eq!(
            s.sql(),
            "CHANGE REPLICATION SOURCE TO SOURCE_USER = 'gr_recovery', SOURCE_PASSWORD = 'p''w\\\\d' \
             FOR CHANNEL 'group_replication_recovery'"
        );
        assert!(!s.to_string().contains("p''w"));
        assert!(!format!("{s:?}").contains("p''w"));
        assert!(s.to_string().contains("'<redacted>'"));
        assert!(!format!("{:?}", creds("u", "hunter2")).contains("hunter2"));
        assert_eq!(
            recovery_credentials(&creds("u", "a\0b")),
            Err(SqlError::BadPassword)
        );
    }

    fn accounts() -> Accounts {
        Accounts {
            recovery: creds("gr", "x"),
            router: creds("router", "y"),
            backup: creds("backup", "z"),
        }
    }

    #[test]
    fn recovery_account_gets_the_stream_privilege_only_where_it_exists() {
        let accounts = accounts();
        let with = account_statements(&caps("8.4.0", true), &accounts).unwrap();
        let without = account_statements(&caps("8.0.25", false), &accounts).unwrap();
        assert_eq!(
            with[1].sql(),
            "GRANT REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN, GROUP_REPLICATION_STREAM ON *.* TO 'gr'@'%'"
        );
        assert_eq!(
            without[1].sql(),
            "GRANT REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN ON *.* TO 'gr'@'%'"
        );
        assert_eq!(
            with[0].to_string(),
            "CREATE USER IF NOT EXISTS 'gr'@'%' IDENTIFIED BY '<redacted>'"
        );
        assert!(with.iter().all(|s| !s.sql().contains("sql_log_bin")));
    }

    #[test]
    fn the_local_recovery_account_is_unlogged_and_like_the_replicated_one() {
        let accounts = accounts();
        let caps = caps("9.7.4", true);
        let local = local_recovery_account(&caps, &accounts.recovery).unwrap();
        let replicated = account_statements(&caps, &accounts).unwrap();
        let shown: Vec<String> = local.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "SET SESSION sql_log_bin = 0".to_string(),
                replicated[0].to_string(),
                replicated[1].to_string(),
                "SET SESSION sql_log_bin = 1".to_string(),
            ]
        );
        assert_eq!(local[1].sql(), replicated[0].sql());
        assert_eq!(
            select_account_exists("g'r"),
            "SELECT COUNT(*) FROM mysql.user WHERE User = 'g''r' AND Host = '%'"
        );
    }

    #[test]
    fn admin_holds_what_it_grants_and_nothing_broader() {
        let grants = admin_grants("iop").join("\n");
        let accounts = account_statements(&caps("8.4.0", true), &accounts()).unwrap();
        for statement in accounts.iter().filter(|s| s.sql().starts_with("GRANT ")) {
            let privileges = statement.sql()["GRANT ".len()..]
                .split(" ON ")
                .next()
                .unwrap();
            for p in privileges.split(", ") {
                assert!(grants.contains(p), "admin cannot grant {p}: {grants}");
            }
        }
        assert!(grants.matches("WITH GRANT OPTION").count() == 3);
        let [global, dynamic, metadata] = admin_grants("iop");
        let global = format!("{global}\n{dynamic}");
        for broad in [
            "ALL", "SUPER", "INSERT", "UPDATE", "DELETE", "DROP", "CREATE,", "SHUTDOWN",
        ] {
            assert!(!global.contains(broad), "{broad} in {global}");
        }
        // Data changes and DDL only in the metadata schema, and no more than it needs.
        assert!(
            metadata.ends_with("ON mysql_innodb_cluster_metadata.* TO 'iop'@'%' WITH GRANT OPTION"),
            "{metadata}"
        );
        for broad in ["ALL", "SUPER", "ALTER", "INDEX", "ROUTINE", "*.*"] {
            assert!(!metadata.contains(broad), "{broad} in {metadata}");
        }
        // What the metadata plan grants the Router account, the admin holds.
        for p in ["INSERT", "UPDATE", "DELETE"] {
            assert!(metadata.contains(p), "{metadata}");
        }
        assert!(admin_grants("o'x")[0].contains("TO 'o''x'@'%'"), "{grants}");
    }

    #[test]
    fn clone_and_switchover_statements() {
        let stmts = clone_statements(
            "db-0.db-instances.ns.svc.cluster.local",
            3306,
            &creds("gr", "pw"),
        )
        .unwrap();
        assert_eq!(
            stmts[0].sql(),
            "SET GLOBAL clone_valid_donor_list = 'db-0.db-instances.ns.svc.cluster.local:3306'"
        );
        assert_eq!(stmts[1].sql(), "SET GLOBAL super_read_only = OFF");
        assert_eq!(
            stmts[2].sql(),
            "CLONE INSTANCE FROM 'gr'@'db-0.db-instances.ns.svc.cluster.local':3306 IDENTIFIED BY 'pw'"
        );
        assert_eq!(stmts.len(), 3, "the clone is the last statement");
        assert!(!stmts[2].to_string().contains("'pw'"));
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            set_as_primary(false, uuid, 30).sql(),
            format!("SELECT group_replication_set_as_primary('{uuid}')")
        );
        assert_eq!(
            set_as_primary(true, uuid, 30).sql(),
            format!("SELECT group_replication_set_as_primary('{uuid}', 30)")
        );
        assert!(group_supports_primary_timeout(["8.0.29", "8.4.2"]));
        assert!(!group_supports_primary_timeout(["8.4.2", "8.0.28"]));
        assert!(!group_supports_primary_timeout(["8.4.2", ""]));
        let force = force_members_statements(&["a:3306".into(), "b:3306".into()]);
        assert_eq!(
            force[0].sql(),
            "SET GLOBAL group_replication_force_members = 'a:3306,b:3306'"
        );
        assert_eq!(
            force[1].sql(),
            "SET GLOBAL group_replication_force_members = ''"
        );
    }

    #[test]
    fn probe_queries_name_what_they_probe() {
        assert_eq!(
            select_plugins(),
            "SELECT PLUGIN_NAME, PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ('group_replication', 'clone')"
        );
        assert!(select_variables().ends_with(
            "IN ('group_replication_communication_stack', 'group_replication_member_expel_timeout', \
             'group_replication_group_name', 'offline_mode')"
        ));
    }

    #[test]
    fn the_served_certificates_end_is_read_as_openssl_prints_it() {
        let rows = |v: &str| vec![("Ssl_server_not_after".to_string(), v.to_string())];
        assert_eq!(
            certificate_end(&rows("Jun  1 12:00:00 2027 GMT")),
            Some("2027-06-01T12:00:00Z".parse().unwrap())
        );
        assert_eq!(
            certificate_end(&rows("Dec 31 23:59:59 2026 GMT")),
            Some("2026-12-31T23:59:59Z".parse().unwrap())
        );
        // Without TLS the value is empty; anything else unreadable is unknown, not a panic.
        for bad in [
            "",
            "Jun 1 12:00 2027 GMT",
            "Foo  1 12:00:00 2027 GMT",
            "Feb 30 12:00:00 2027 GMT",
        ] {
            assert_eq!(certificate_end(&rows(bad)), None, "{bad:?}");
        }
        assert_eq!(certificate_end(&[]), None);
    }

    #[test]
    fn offline_mode_is_read_from_the_probe_and_turned_off() {
        let rows = |v: Option<&str>| vec![("offline_mode".to_string(), v.map(String::from))];
        assert!(offline_mode(&rows(Some("ON"))));
        assert!(!offline_mode(&rows(Some("OFF"))));
        assert!(!offline_mode(&rows(None)));
        // MariaDB and old servers have no such variable: nothing to admit.
        assert!(!offline_mode(&[]));
        assert_eq!(admit_clients().sql(), "SET GLOBAL offline_mode = OFF");
    }

    #[test]
    fn the_expel_timeout_is_read_from_the_probe_and_set_as_a_number() {
        let rows = |v: Option<&str>| {
            vec![
                (
                    "group_replication_communication_stack".to_string(),
                    Some("MYSQL".to_string()),
                ),
                (
                    "group_replication_member_expel_timeout".to_string(),
                    v.map(String::from),
                ),
            ]
        };
        assert_eq!(expel_timeout(&rows(Some("5"))), Some(5));
        assert_eq!(expel_timeout(&rows(Some("0"))), Some(0));
        assert_eq!(expel_timeout(&rows(Some("x"))), None);
        assert_eq!(expel_timeout(&rows(None)), None);
        assert_eq!(expel_timeout(&[]), None);
        assert_eq!(
            set_expel_timeout(0).sql(),
            "SET GLOBAL group_replication_member_expel_timeout = 0"
        );
    }

    #[test]
    fn the_group_name_is_read_from_the_probe_in_lowercase() {
        let rows = |v: Option<&str>| {
            vec![(
                "group_replication_group_name".to_string(),
                v.map(String::from),
            )]
        };
        assert_eq!(
            group_name(&rows(Some("AAAAAAAA-0000-4000-8000-00000000000A"))).as_deref(),
            Some("aaaaaaaa-0000-4000-8000-00000000000a")
        );
        assert_eq!(group_name(&rows(Some(""))), None);
        assert_eq!(group_name(&rows(None)), None);
        assert_eq!(group_name(&[]), None);
    }

    #[test]
    fn member_rows_parse_for_80_and_84() {
        let rows = parse_members(vec![
            (
                "AAAAAAAA-0000-0000-0000-000000000001".into(),
                "db-0.db-instances.ns.svc.cluster.local".into(),
                Some(3306),
                "ONLINE".into(),
                "PRIMARY".into(),
                "8.4.2".into(),
            ),
            (
                "aaaaaaaa-0000-0000-0000-000000000002".into(),
                "db-1.db-instances.ns.svc.cluster.local".into(),
                Some(3306),
                "UNREACHABLE".into(),
                "SECONDARY".into(),
                "8.0.36".into(),
            ),
        ])
        .unwrap();
        assert_eq!(rows[0].member_id, "aaaaaaaa-0000-0000-0000-000000000001");
        assert_eq!(rows[0].role, Some(Role::Primary));
        assert_eq!(rows[1].state, MemberStatus::Unreachable);
        // GR stopped: the server's own row, OFFLINE, no host, no role, NULL port.
        let offline = parse_members(vec![(
            "aaaaaaaa-0000-0000-0000-000000000003".into(),
            String::new(),
            None,
            "OFFLINE".into(),
            String::new(),
            String::new(),
        )])
        .unwrap();
        assert_eq!(offline[0].role, None);
        assert_eq!(offline[0].state, MemberStatus::Offline);
        assert!(matches!(
            parse_members(vec![(
                "x".into(),
                "h".into(),
                None,
                "WEIRD".into(),
                String::new(),
                String::new()
            )]),
            Err(SqlError::BadState(_))
        ));
        assert!(matches!(
            parse_members(vec![(
                "x".into(),
                "h".into(),
                None,
                "ONLINE".into(),
                "BOSS".into(),
                String::new()
            )]),
            Err(SqlError::BadRole(_))
        ));
        let row = |state: &str, error_no: Option<u32>, message: Option<&str>| {
            (state.to_string(), error_no, message.map(String::from))
        };
        assert!(clone_running(&[row("In Progress", Some(0), None)]));
        assert!(!clone_running(&[row("Completed", Some(0), None)]));
        let failed = [row("Failed", Some(3862), Some("Clone Donor Error: 2013"))];
        assert!(!clone_running(&failed));
        assert_eq!(
            clone_failure(&failed).map(|f| f.to_string()).as_deref(),
            Some("ERROR 3862: Clone Donor Error: 2013")
        );
        assert_eq!(clone_failure(&[row("Completed", Some(0), None)]), None);
        assert!(parse_bool("ON") && parse_bool("1") && !parse_bool("0") && !parse_bool("OFF"));
    }
}
