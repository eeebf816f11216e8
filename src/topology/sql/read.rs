//! The probes and reads, and the parsers of their rows into typed values. Pure: no I/O.

use crate::version::ServerVersion;

use super::SqlError;
use crate::topology::member::{GroupMemberRow, MemberStatus, Role};

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
pub(crate) const PROBED_VARIABLES: [&str; 6] = [
    "group_replication_communication_stack",
    EXPEL_TIMEOUT_VARIABLE,
    GROUP_NAME_VARIABLE,
    OFFLINE_MODE_VARIABLE,
    GROUP_SEEDS_VARIABLE,
    IP_ALLOWLIST_VARIABLE,
];

/// Where a member starting Group Replication looks for the group (see `membership`).
pub(crate) const GROUP_SEEDS_VARIABLE: &str = "group_replication_group_seeds";
/// Whose connections XCom admits (see `membership`).
pub(crate) const IP_ALLOWLIST_VARIABLE: &str = "group_replication_ip_allowlist";

/// A variable's value from the probe's variable rows, as the server says it (`None` when the
/// server has no such variable, e.g. without the Group Replication plugin).
pub fn variable(variables: &[(String, Option<String>)], name: &str) -> Option<String> {
    variables
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.clone().unwrap_or_default())
}

/// The name (a UUID) of the group the member starts or joins.
pub(crate) const GROUP_NAME_VARIABLE: &str = "group_replication_group_name";

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
pub(crate) const EXPEL_TIMEOUT_VARIABLE: &str = "group_replication_member_expel_timeout";

/// The member's `group_replication_member_expel_timeout` from the probe's variable rows
/// (`None` without the Group Replication plugin or with a value that is not a number).
pub fn expel_timeout(variables: &[(String, Option<String>)]) -> Option<u32> {
    variables
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(EXPEL_TIMEOUT_VARIABLE))
        .and_then(|(_, value)| value.as_deref()?.trim().parse().ok())
}

/// Refuses clients without `CONNECTION_ADMIN` while ON (see `admit`).
pub(crate) const OFFLINE_MODE_VARIABLE: &str = "offline_mode";

/// The member's `offline_mode` from the probe's variable rows (a server without the variable
/// has no offline mode).
pub fn offline_mode(variables: &[(String, Option<String>)]) -> bool {
    variables
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(OFFLINE_MODE_VARIABLE))
        .and_then(|(_, value)| value.as_deref())
        .is_some_and(parse_bool)
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
pub(crate) type CloneRowText = (String, Option<u32>, Option<String>);

/// The last clone into the member failed (`clone_status` keeps it across restarts until the
/// next clone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneFailure {
    pub(crate) error_no: u32,
    pub message: String,
}

impl std::fmt::Display for CloneFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ERROR {}: {}", self.error_no, self.message)
    }
}

/// The failure of the last clone, if the row says it failed.
pub(crate) fn clone_failure(rows: &[CloneRowText]) -> Option<CloneFailure> {
    rows.iter()
        .find(|(state, _, _)| state.eq_ignore_ascii_case("Failed"))
        .map(|(_, error_no, message)| CloneFailure {
            error_no: error_no.unwrap_or(0),
            message: message.clone().unwrap_or_default(),
        })
}

/// Whether `clone_status` rows show a clone running.
pub(crate) fn clone_running(rows: &[CloneRowText]) -> bool {
    rows.iter()
        .any(|(state, _, _)| state.eq_ignore_ascii_case("In Progress"))
}

/// One row of [`SELECT_MEMBERS`] as text columns.
pub(crate) type MemberRowText = (String, String, Option<u16>, String, String, String);

/// Parses [`SELECT_MEMBERS`] rows. With Group Replication stopped the server shows one row for
/// itself with state OFFLINE, an empty host and empty role.
pub(crate) fn parse_members(rows: Vec<MemberRowText>) -> Result<Vec<GroupMemberRow>, SqlError> {
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
pub(crate) fn parse_bool(text: &str) -> bool {
    matches!(text.to_ascii_uppercase().as_str(), "1" | "ON" | "TRUE")
}
