//! What a Backup needs next, as pure functions of what was observed: its status, its Job, the
//! result the Job reported. A Backup is Succeeded only when its Job succeeded **and** reported a
//! complete result (the manifest is written last, so a result means the backup is whole).

use serde::Deserialize;

use crate::api::BackupPhase;
use crate::api::cluster::{MemberRole, MemberStatus, ReportedState};

/// The Job of a Backup, as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobView {
    pub succeeded: bool,
    pub failed: bool,
    /// The Job's failure condition message (deadline exceeded, pod failed).
    pub condition_message: Option<String>,
    /// What the backup container wrote to its termination message (one JSON line), or the
    /// tail of its log when it failed without writing one.
    pub result: Option<String>,
}

/// The result line the backup command writes when it finished (fields the status shows).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct JobResult {
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) stored_bytes: u64,
    #[serde(default)]
    pub(crate) gtid_set: String,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// The next step for a Backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Finished (Succeeded or Failed): nothing to do.
    Done,
    /// Create the Job.
    CreateJob,
    /// The Job is running: look again later.
    Wait,
    /// The backup is complete.
    Succeed { size_bytes: u64, gtid_set: String },
    /// The backup failed; the message says why and what to do.
    Fail(String),
}

/// What a backup or restore Job came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still running.
    Running,
    /// Succeeded and reported a complete result.
    Succeeded(JobResult),
    /// Failed, or finished without a complete result: why.
    Failed(String),
}

/// What the Job of a `what` ("backup", "restore") came to. It succeeded only when it finished
/// **and** reported `Succeeded` in a result that can be read.
pub(crate) fn outcome(j: &JobView, what: &str) -> Outcome {
    if j.succeeded {
        return match j.result.as_deref().map(serde_json::from_str::<JobResult>) {
            Some(Ok(r)) if r.status == "Succeeded" => Outcome::Succeeded(r),
            Some(Ok(r)) => Outcome::Failed(format!(
                "the {what} Job reported {}: {}",
                r.status,
                r.error.unwrap_or_default()
            )),
            Some(Err(e)) => Outcome::Failed(format!(
                "the {what} Job finished but its result cannot be read ({e}); the {what} is not known to be complete"
            )),
            None => Outcome::Failed(format!(
                "the {what} Job finished without reporting a result; the {what} is not known to be complete"
            )),
        };
    }
    if j.failed {
        let detail = j
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<JobResult>(r).ok())
            .and_then(|r| r.error)
            .or_else(|| j.result.clone())
            .or_else(|| j.condition_message.clone())
            .unwrap_or_else(|| "no details".to_string());
        return Outcome::Failed(format!("the {what} Job failed: {}", detail.trim()));
    }
    Outcome::Running
}

/// Decides the next step from the Backup's phase and its Job.
pub(crate) fn next_step(phase: Option<BackupPhase>, job: Option<&JobView>) -> Step {
    match (phase, job) {
        (Some(BackupPhase::Succeeded | BackupPhase::Failed), _) => Step::Done,
        (None | Some(BackupPhase::Pending), None) => Step::CreateJob,
        (Some(BackupPhase::Running), None) => Step::Fail(
            "the backup Job disappeared before it finished; take a new backup".to_string(),
        ),
        (_, Some(j)) => match outcome(j, "backup") {
            Outcome::Running => Step::Wait,
            Outcome::Succeeded(r) => Step::Succeed {
                size_bytes: r.stored_bytes,
                gtid_set: r.gtid_set,
            },
            Outcome::Failed(message) => Step::Fail(message),
        },
    }
}

/// The member to back up, by pod name and ordinal: an ONLINE secondary (so the primary keeps its
/// I/O for writes), else the primary. `None` when no member is ONLINE (a member of a status
/// written by an older version, without its ordinal, is not chosen: the cluster's next status
/// has it).
pub(crate) fn pick_source(members: &[MemberStatus]) -> Option<(String, i32)> {
    let online = |role: MemberRole| {
        members
            .iter()
            .filter(|m| m.state == ReportedState::Online && m.role == Some(role))
            .filter_map(|m| Some((m.name.clone(), m.ordinal?)))
            .min()
    };
    online(MemberRole::Secondary).or_else(|| online(MemberRole::Primary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(succeeded: bool, failed: bool, result: Option<&str>) -> JobView {
        JobView {
            succeeded,
            failed,
            condition_message: Some("BackoffLimitExceeded".into()),
            result: result.map(Into::into),
        }
    }

    #[test]
    fn lifecycle() {
        assert_eq!(next_step(None, None), Step::CreateJob);
        assert_eq!(
            next_step(Some(BackupPhase::Running), Some(&job(false, false, None))),
            Step::Wait
        );
        let ok = r#"{"status":"Succeeded","stored_bytes":1234,"gtid_set":"u:1-10"}"#;
        assert_eq!(
            next_step(
                Some(BackupPhase::Running),
                Some(&job(true, false, Some(ok)))
            ),
            Step::Succeed {
                size_bytes: 1234,
                gtid_set: "u:1-10".into()
            }
        );
        assert_eq!(next_step(Some(BackupPhase::Succeeded), None), Step::Done);
        assert_eq!(
            next_step(Some(BackupPhase::Failed), Some(&job(false, true, None))),
            Step::Done
        );
    }

    #[test]
    fn never_succeeds_without_a_complete_result() {
        for result in [
            None,
            Some("garbage"),
            Some(r#"{"status":"Failed","error":"S3 down"}"#),
        ] {
            let step = next_step(Some(BackupPhase::Running), Some(&job(true, false, result)));
            assert!(matches!(step, Step::Fail(_)), "{result:?} gave {step:?}");
        }
        assert!(
            matches!(next_step(Some(BackupPhase::Running), None), Step::Fail(m) if m.contains("disappeared"))
        );
    }

    #[test]
    fn failure_says_why() {
        let step = next_step(
            Some(BackupPhase::Running),
            Some(&job(
                false,
                true,
                Some(r#"{"status":"Failed","error":"bucket b does not exist"}"#),
            )),
        );
        assert_eq!(
            step,
            Step::Fail("the backup Job failed: bucket b does not exist".into())
        );
        let step = next_step(Some(BackupPhase::Running), Some(&job(false, true, None)));
        assert_eq!(
            step,
            Step::Fail("the backup Job failed: BackoffLimitExceeded".into())
        );
    }

    #[test]
    fn source_prefers_an_online_secondary() {
        let m = |ordinal: i32, role, state| MemberStatus {
            name: format!("c-{ordinal}"),
            ordinal: Some(ordinal),
            role: Some(role),
            state,
        };
        let members = vec![
            m(0, MemberRole::Primary, ReportedState::Online),
            m(1, MemberRole::Secondary, ReportedState::Recovering),
            m(2, MemberRole::Secondary, ReportedState::Online),
        ];
        assert_eq!(pick_source(&members), Some(("c-2".into(), 2)));
        assert_eq!(pick_source(&members[..2]), Some(("c-0".into(), 0)));
        // A status from an older version (no ordinal) names no source.
        let old = vec![MemberStatus {
            ordinal: None,
            ..m(2, MemberRole::Secondary, ReportedState::Online)
        }];
        assert_eq!(pick_source(&old), None);
        assert_eq!(pick_source(&members[1..2]), None);
    }
}
