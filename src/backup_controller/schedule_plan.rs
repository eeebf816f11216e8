//! Backup schedules, as pure decisions: which run is due now (at most one, however many were
//! missed while the operator was down), when the next one is, and which old backups retention
//! removes.
//!
//! Times are `jiff` timestamps, as everywhere in the operator; the cron parser (`croner`) computes
//! in `chrono`'s types, so the two conversions below are the only place `chrono` is used.

use chrono::{DateTime, Utc};
use croner::Cron;
use jiff::Timestamp;
use jiff::tz::Offset;

use crate::api::BackupPhase;

/// Label on a scheduled Backup naming its schedule.
pub(crate) const SCHEDULE_LABEL: &str = "innodb-operator.io/schedule";
/// Label on a Backup naming its cluster.
pub(crate) const CLUSTER_LABEL: &str = "innodb-operator.io/cluster";
/// Annotation on a scheduled Backup with the time it was scheduled for (RFC 3339).
pub(crate) const SCHEDULED_AT_ANNOTATION: &str = "innodb-operator.io/scheduled-at";

/// A schedule expression that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("schedule {schedule:?} is not a valid cron expression: {reason}")]
pub(crate) struct ScheduleError {
    pub(crate) schedule: String,
    pub(crate) reason: String,
}

/// Parses a five-field cron expression or a macro such as `@daily` (times are UTC).
pub(crate) fn parse(schedule: &str) -> Result<Cron, ScheduleError> {
    schedule.trim().parse::<Cron>().map_err(|e| ScheduleError {
        schedule: schedule.to_string(),
        reason: e.to_string(),
    })
}

fn to_chrono(t: Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().unsigned_abs())
}

fn from_chrono(t: DateTime<Utc>) -> Option<Timestamp> {
    Timestamp::new(t.timestamp(), t.timestamp_subsec_nanos() as i32).ok()
}

/// The run that is due at `now`: the latest occurrence after `since` (the last run, or when the
/// schedule started to exist) and not after `now`. Missed earlier occurrences are skipped, so
/// an operator that was down for a week takes one catch-up backup, not seven.
pub(crate) fn due(cron: &Cron, since: Timestamp, now: Timestamp) -> Option<Timestamp> {
    let latest = cron.find_previous_occurrence(&to_chrono(now)?, true).ok()?;
    let latest = from_chrono(latest)?;
    (latest > since).then_some(latest)
}

/// The next occurrence strictly after `now`.
pub(crate) fn next(cron: &Cron, now: Timestamp) -> Option<Timestamp> {
    from_chrono(cron.find_next_occurrence(&to_chrono(now)?, false).ok()?)
}

/// Name of the Backup a schedule creates for the run at `at`: deterministic, so creating it twice
/// is harmless.
pub(crate) fn backup_name(cluster: &str, schedule: &str, at: Timestamp) -> String {
    format!("{cluster}-{schedule}-{}", at.strftime("%Y%m%d%H%M"))
}

/// The value of [`SCHEDULED_AT_ANNOTATION`]: RFC 3339 with the offset written out
/// (`2026-11-23T03:00:00+00:00`).
pub(crate) fn scheduled_at_text(at: Timestamp) -> String {
    at.display_with_offset(Offset::UTC).to_string()
}

/// One Backup of a schedule, as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScheduledBackup {
    pub(crate) name: String,
    pub(crate) scheduled_at: Timestamp,
    pub(crate) phase: Option<BackupPhase>,
}

/// Names of the Backups retention deletes: all but the `keep` newest Succeeded ones, and all but
/// the `keep` newest Failed ones (kept for their messages). Pending and Running ones stay.
pub(crate) fn retention(backups: &[ScheduledBackup], keep: usize) -> Vec<String> {
    let mut doomed = Vec::new();
    for phase in [BackupPhase::Succeeded, BackupPhase::Failed] {
        let mut of_phase: Vec<&ScheduledBackup> =
            backups.iter().filter(|b| b.phase == Some(phase)).collect();
        of_phase.sort_by_key(|b| std::cmp::Reverse(b.scheduled_at));
        doomed.extend(of_phase.into_iter().skip(keep).map(|b| b.name.clone()));
    }
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn one_catch_up_after_downtime() {
        let cron = parse("0 3 * * *").unwrap();
        // Last run two days ago; the operator was down since: one run, the latest occurrence.
        let due_at = due(&cron, t("2026-11-21T03:00:00Z"), t("2026-11-23T10:00:00Z"));
        assert_eq!(due_at, Some(t("2026-11-23T03:00:00Z")));
        // Once that run exists, nothing more is due until tomorrow 03:00.
        assert_eq!(
            due(&cron, t("2026-11-23T03:00:00Z"), t("2026-11-23T10:00:00Z")),
            None
        );
        assert_eq!(
            next(&cron, t("2026-11-23T10:00:00Z")),
            Some(t("2026-11-24T03:00:00Z"))
        );
    }

    #[test]
    fn nothing_due_before_the_first_occurrence_after_creation() {
        let cron = parse("@hourly").unwrap();
        assert_eq!(
            due(&cron, t("2026-11-23T10:05:00Z"), t("2026-11-23T10:59:59Z")),
            None
        );
        assert_eq!(
            due(&cron, t("2026-11-23T10:05:00Z"), t("2026-11-23T11:00:00Z")),
            Some(t("2026-11-23T11:00:00Z"))
        );
    }

    #[test]
    fn bad_expressions_are_errors() {
        let err = parse("61 * * * *").unwrap_err();
        assert!(err.to_string().contains("61 * * * *"));
        assert!(parse("every day").is_err());
    }

    #[test]
    fn names_are_deterministic() {
        assert_eq!(
            backup_name("orders", "nightly", t("2026-11-23T03:00:00Z")),
            "orders-nightly-202611230300"
        );
    }

    #[test]
    fn the_scheduled_time_is_written_as_before_and_read_back() {
        let at = t("2026-11-23T03:00:00Z");
        assert_eq!(scheduled_at_text(at), "2026-11-23T03:00:00+00:00");
        assert_eq!(scheduled_at_text(at).parse::<Timestamp>().unwrap(), at);
    }

    #[test]
    fn retention_keeps_the_newest_succeeded_and_failed() {
        let b = |name: &str, day: u32, phase: Option<BackupPhase>| ScheduledBackup {
            name: name.into(),
            scheduled_at: t(&format!("2026-11-{day:02}T03:00:00Z")),
            phase,
        };
        let backups = vec![
            b("s1", 1, Some(BackupPhase::Succeeded)),
            b("s2", 2, Some(BackupPhase::Succeeded)),
            b("f3", 3, Some(BackupPhase::Failed)),
            b("s4", 4, Some(BackupPhase::Succeeded)),
            b("f5", 5, Some(BackupPhase::Failed)),
            b("r6", 6, Some(BackupPhase::Running)),
            b("p7", 7, None),
        ];
        let mut doomed = retention(&backups, 2);
        doomed.sort();
        assert_eq!(doomed, vec!["s1".to_string()]);
        let mut doomed = retention(&backups, 1);
        doomed.sort();
        assert_eq!(
            doomed,
            vec!["f3".to_string(), "s1".to_string(), "s2".to_string()]
        );
    }
}
