//! MySQL server versions: the one version type of the operator (parsed from `spec.version` and
//! from a server's `@@version`), the release series it supports, which version changes MySQL
//! allows, and what differs between series. Pure: no I/O.
//!
//! Supported: the LTS series 8.4 and 9.7, and 8.0.27+ (end of life, still run). Innovation
//! releases (8.1–8.3, 9.0–9.6, 26.x) are refused: they have no patch releases and no upgrade
//! path the operator can promise.

use std::fmt;

/// `major.minor.patch` of a MySQL server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

/// A version that cannot be read or is not supported. Each message says what to use instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VersionError {
    #[error("{0:?} is not a MySQL version: use major.minor.patch, e.g. {DEFAULT_VERSION}")]
    Malformed(String),
    #[error(
        "MySQL {0} is not supported: use an LTS release, 9.7.x (the default) or 8.4.x, or 8.0.27 or later 8.0 releases (end of life)"
    )]
    Unsupported(ServerVersion),
}

/// The MySQL version a new cluster gets when the spec names none: the LTS series proven by the
/// real-MySQL test tier.
pub(crate) const DEFAULT_VERSION: &str = "9.7.4";

impl ServerVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        ServerVersion {
            major,
            minor,
            patch,
        }
    }

    /// Parses a spec's `8.4.7` (also `8.4` as `8.4.0`); nothing else is allowed.
    pub(crate) fn parse_spec(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError::Malformed(text.to_string());
        let mut parts = text.split('.');
        let mut next = |required: bool| match parts.next() {
            Some(p) if !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u32>().map_err(|_| bad())
            }
            None if !required => Ok(0),
            _ => Err(bad()),
        };
        let version = ServerVersion::new(next(true)?, next(true)?, next(false)?);
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(version)
    }

    /// Parses a server's `@@version`: `8.0.36`, `8.4.2-commercial`, `8.0.36-28` (Percona),
    /// `9.7.4-1` (Debian). The three-part `@@version` is read, never the four-part
    /// `version_with_update` of 9.7.4+.
    pub(crate) fn parse_server(text: &str) -> Result<Self, VersionError> {
        let numeric = text.split(['-', ' ']).next().unwrap_or_default();
        let mut parts = numeric.split('.').map(|p| p.parse::<u32>());
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => {
                Ok(ServerVersion::new(major, minor, patch))
            }
            _ => Err(VersionError::Malformed(text.to_string())),
        }
    }

    /// The supported series of this version, or why it is not supported.
    pub(crate) fn series(self) -> Result<Series, VersionError> {
        match (self.major, self.minor) {
            (8, 0) if self.patch >= 27 => Ok(Series::Mysql80),
            (8, 4) => Ok(Series::Lts84),
            (9, 7) => Ok(Series::Lts97),
            _ => Err(VersionError::Unsupported(self)),
        }
    }

    /// Whether two versions belong to the same release series (`major.minor`).
    pub(crate) fn same_series(self, other: ServerVersion) -> bool {
        (self.major, self.minor) == (other.major, other.minor)
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A release series the operator supports, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Series {
    /// 8.0.27 and later: end of life since April 2026, still run.
    Mysql80,
    /// 8.4 LTS.
    Lts84,
    /// 9.7 LTS, the current one.
    Lts97,
}

impl Series {
    /// `8.0`, `8.4`, `9.7`.
    pub fn name(self) -> &'static str {
        match self {
            Series::Mysql80 => "8.0",
            Series::Lts84 => "8.4",
            Series::Lts97 => "9.7",
        }
    }

    /// The series MySQL upgrades this one to in place (8.0 → 8.4 LTS → 9.7 LTS).
    pub fn next(self) -> Option<Series> {
        match self {
            Series::Mysql80 => Some(Series::Lts84),
            Series::Lts84 => Some(Series::Lts97),
            Series::Lts97 => None,
        }
    }

    /// Whether the series no longer gets fixes (a status warning says so).
    pub(crate) fn end_of_life(self) -> bool {
        self == Series::Mysql80
    }

    /// Server options this series no longer accepts: mysqld aborts at startup on them
    /// ("unknown variable"), so `spec.mycnf` may not set them.
    pub(crate) fn removed_options(self) -> impl Iterator<Item = &'static str> {
        let lists: &[&[&'static str]] = match self {
            Series::Mysql80 => &[],
            Series::Lts84 => &[REMOVED_IN_84],
            Series::Lts97 => &[REMOVED_IN_84, REMOVED_IN_9X],
        };
        lists.iter().flat_map(|l| l.iter().copied())
    }

    /// Whether mysqld of this series aborts on `option` (`-` and `_` are the same; a `loose_`
    /// prefix makes mysqld ignore an unknown option, so it is never refused).
    pub fn removed(self, option: &str) -> bool {
        let normalized = option.replace('-', "_");
        self.removed_options().any(|r| r == normalized)
    }

    /// Whether `binlog_transaction_dependency_tracking=WRITESET` must be written (8.0 needs it
    /// for a parallel applier that keeps up with the group; 8.4 removed the option).
    pub(crate) fn needs_writeset_option(self) -> bool {
        self == Series::Mysql80
    }

    /// Whether the XCOM communication stack is deprecated (9.7 lists
    /// `group_replication_communication_stack` as deprecated).
    pub(crate) fn xcom_deprecated(self) -> bool {
        self >= Series::Lts97
    }
}

/// Removed in 8.4 (MySQL 8.4 release notes and Shell's upgrade checker).
const REMOVED_IN_84: &[&str] = &[
    "binlog_transaction_dependency_tracking",
    "default_authentication_plugin",
    "group_replication_recovery_complete_at",
    "transaction_write_set_extraction",
    "master_info_repository",
    "relay_log_info_repository",
    "expire_logs_days",
    "log_bin_use_v1_row_events",
    "avoid_temporal_upgrade",
    "show_old_temporals",
];

/// Removed in 9.0–9.5, on top of 8.4's removals (Shell 9.6's `sysvars.json`, the version
/// reference's option changes; `mysql_native_password` is gone as a server plugin).
const REMOVED_IN_9X: &[&str] = &[
    "mysql_native_password",
    "mysql_native_password_proxy_users",
    "group_replication_allow_local_lower_version_join",
    "replica_parallel_type",
    "slave_parallel_type",
    "innodb_log_file_size",
    "innodb_log_files_in_group",
    "innodb_undo_tablespaces",
    "temptable_use_mmap",
];

/// Why a change of `spec.version` is refused. Each message says what to do instead.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeRefused {
    #[error(
        "spec.version {to} is older than {from}, which the members run: MySQL cannot downgrade a data directory in place; set spec.version back to {from}, or restore a backup into a new cluster of {to}"
    )]
    Downgrade {
        from: ServerVersion,
        to: ServerVersion,
    },
    #[error(
        "spec.version {to} skips a series: {from} upgrades in place only to {next}.x first; set spec.version to a {next} release, and to {to} once every member runs it"
    )]
    SkipsSeries {
        from: ServerVersion,
        to: ServerVersion,
        next: &'static str,
    },
}

/// Whether the members may go from `from` (what they run) to `to` (the new spec), following
/// MySQL's upgrade rules: patch upgrades within a series, and one series up (8.0 → 8.4 → 9.7).
/// Both versions are supported ones (see [`ServerVersion::series`]).
pub(crate) fn check_change(
    from: ServerVersion,
    from_series: Series,
    to: ServerVersion,
    to_series: Series,
) -> Result<(), ChangeRefused> {
    if to < from {
        return Err(ChangeRefused::Downgrade { from, to });
    }
    if to_series == from_series || Some(to_series) == from_series.next() {
        return Ok(());
    }
    Err(ChangeRefused::SkipsSeries {
        from,
        to,
        next: from_series.next().map(Series::name).unwrap_or("none"),
    })
}

/// Whether `donor` can clone into `recipient`: MySQL's clone needs both on the same series
/// (8.4 and 9.7 refuse each other in either direction), and a donor no newer than the recipient.
pub(crate) fn can_clone(donor: ServerVersion, recipient: ServerVersion) -> bool {
    donor.same_series(recipient) && donor <= recipient
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ServerVersion {
        ServerVersion::parse_spec(s).unwrap()
    }

    #[test]
    fn spec_versions_parse_strictly() {
        assert_eq!(v("8.4.7"), ServerVersion::new(8, 4, 7));
        assert_eq!(v("9.7"), ServerVersion::new(9, 7, 0));
        for bad in [
            "",
            "8",
            "8.x.1",
            "8.0.1.2",
            "v8.0.30",
            "8..1",
            "9.7.4-1",
            "99999.1.1",
        ] {
            assert_eq!(
                ServerVersion::parse_spec(bad),
                Err(VersionError::Malformed(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn server_versions_drop_their_suffix() {
        for (text, want) in [
            ("8.0.36", (8, 0, 36)),
            ("8.4.2-commercial", (8, 4, 2)),
            ("8.0.36-28", (8, 0, 36)),
            ("9.7.4-1", (9, 7, 4)),
            ("9.7.4 Debian", (9, 7, 4)),
        ] {
            let (a, b, c) = want;
            assert_eq!(
                ServerVersion::parse_server(text),
                Ok(ServerVersion::new(a, b, c))
            );
        }
        // 9.7.4's four-part version_with_update is not @@version.
        assert!(ServerVersion::parse_server("9.7.4.1").is_err());
        assert!(ServerVersion::parse_server("8.0").is_err());
        assert!(ServerVersion::parse_server("eight").is_err());
    }

    #[test]
    fn only_lts_series_and_late_80_are_supported() {
        for ok in ["8.0.27", "8.0.45", "8.4.0", "8.4.7", "9.7.0", "9.7.4"] {
            assert!(v(ok).series().is_ok(), "{ok}");
        }
        for refused in [
            "8.0.26", "8.1.0", "8.3.0", "9.0.1", "9.6.0", "9.8.0", "26.7.0",
        ] {
            let err = v(refused).series().unwrap_err();
            assert!(err.to_string().contains("9.7.x"), "{refused}: {err}");
        }
        assert_eq!(v(DEFAULT_VERSION).series(), Ok(Series::Lts97));
        assert!(Series::Mysql80.end_of_life());
        assert!(!Series::Lts97.end_of_life());
    }

    fn change(from: &str, to: &str) -> Result<(), ChangeRefused> {
        let (f, t) = (v(from), v(to));
        check_change(f, f.series().unwrap(), t, t.series().unwrap())
    }

    #[test]
    fn version_changes_follow_mysqls_upgrade_paths() {
        for ok in [
            ("8.4.7", "8.4.7"),
            ("8.4.6", "8.4.7"),
            ("8.4.7", "9.7.4"),
            ("9.7.0", "9.7.4"),
            ("8.0.36", "8.0.40"),
            ("8.0.40", "8.4.7"),
        ] {
            assert_eq!(change(ok.0, ok.1), Ok(()), "{ok:?}");
        }
        let down = change("9.7.4", "8.4.7").unwrap_err();
        assert!(matches!(down, ChangeRefused::Downgrade { .. }));
        assert!(down.to_string().contains("restore a backup"), "{down}");
        assert!(matches!(
            change("9.7.4", "9.7.3"),
            Err(ChangeRefused::Downgrade { .. })
        ));
        let skip = change("8.0.40", "9.7.4").unwrap_err();
        assert!(skip.to_string().contains("to 8.4.x first"), "{skip}");
    }

    #[test]
    fn clones_stay_within_a_series() {
        assert!(can_clone(v("9.7.4"), v("9.7.4")));
        assert!(can_clone(v("9.7.3"), v("9.7.4")));
        assert!(!can_clone(v("9.7.4"), v("9.7.3")));
        assert!(!can_clone(v("8.4.7"), v("9.7.4")));
        assert!(!can_clone(v("9.7.4"), v("8.4.7")));
    }

    #[test]
    fn removed_options_grow_with_the_series() {
        for opt in Series::Lts84.removed_options() {
            assert!(Series::Lts97.removed(opt), "{opt}");
        }
        assert!(Series::Lts97.removed("innodb-log-file-size"));
        assert!(!Series::Lts84.removed("innodb_log_file_size"));
        assert!(!Series::Lts97.removed("loose_innodb_log_file_size"));
        assert_eq!(Series::Mysql80.removed_options().count(), 0);
        assert!(Series::Mysql80.needs_writeset_option());
        assert!(!Series::Lts97.needs_writeset_option());
        assert!(Series::Lts97.xcom_deprecated() && !Series::Lts84.xcom_deprecated());
    }
}
