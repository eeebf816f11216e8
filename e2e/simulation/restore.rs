//! A cluster created from a backup (`spec.restoreFrom`), in the simulation: the restore Job as
//! Kubernetes and the restore command would run it against member 0. What the operator does with
//! it is the reconcile's own `plan::topology` (fed by [`RestoreSim::observation`]), carried
//! out by [`RestoreSim::carry_out`] and [`RestoreSim::write_status`]. The operator keeps nothing
//! in memory: every step reads the persisted status, the Job and the pods, as a restarted
//! operator would.

use innodb_operator::api::S3Storage;
use innodb_operator::api::cluster::{MySQLClusterStatus, RestoreSource, S3Location};
use innodb_operator::backup_controller::decide::JobView;
use innodb_operator::cluster::plan::{RestoreObservation, TopologyPlan};
use innodb_operator::cluster::restore_plan::{self, Plan, RestoreLocation, Unresolved};
use innodb_operator::cluster::status::{self, StatusInput};
use innodb_operator::topology::gtid::{GtidSet, Uuid};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use rand::Rng;
use rand::rngs::SmallRng;

use crate::world::{Pod, World};

/// The server_uuid of the cluster the backup was taken from.
pub const SOURCE: Uuid = Uuid::from_u128(0xbbbb_bbbb_bbbb_bbbb_bbbb_bbbb_bbbb_bbbb);
/// `--wait-for-server-seconds` of the restore Job.
const WAIT_FOR_SERVER_MS: u64 = 600_000;
/// The cluster's name in the simulation (as in `schedule::naming`).
const CLUSTER: &str = "db";

/// Where the restore Job is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JobState {
    /// Its pod is being scheduled and started.
    Starting {
        until: u64,
    },
    /// Connecting to member 0, retrying while it does not answer.
    Connecting {
        deadline: u64,
    },
    /// Loading the chunks (without binary logging); the GTID set comes last.
    Loading {
        since: u64,
        until: u64,
        fails_at: Option<u64>,
    },
    Succeeded(String),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Job {
    created: u64,
    state: JobState,
}

/// What goes wrong in one restore schedule, drawn from its seed.
#[derive(Debug, Clone)]
struct Faults {
    /// Probability that a Job's own work fails (S3 error, corrupt object) part-way.
    job_fails: f64,
    /// Probability that a status write is lost (the operator stops before it).
    status_write_lost: f64,
    /// The user retries a failed restore (deleting the Job) when member 0 holds none of the
    /// backup's databases, as the failure message says.
    user_retries: bool,
}

/// The restore of one simulated cluster.
pub struct RestoreSim {
    /// The backup's GTID set (also `World::backup`).
    pub backup: GtidSet,
    source: RestoreSource,
    location: Result<RestoreLocation, Unresolved>,
    /// The status as stored in the API server.
    pub status: Option<MySQLClusterStatus>,
    job: Option<Job>,
    faults: Faults,
    /// The plan of the last operator step.
    pub last_plan: Option<Plan>,
    /// When the user will delete the failed Job.
    pub retry_at: Option<u64>,
    /// Jobs created, Jobs that failed, user retries, lost status writes.
    pub jobs: u64,
    pub failures: u64,
    pub retries: u64,
    pub lost_writes: u64,
    /// Times the MySQLCluster was recreated from a copy of its spec.
    pub recreations: u64,
    /// Restore Jobs created while members held the cluster's data.
    pub jobs_over_data: u64,
    /// The Job's failure was reported (status Failed, the topology's RestoreFailed) since then.
    pub failure_reported_since: Option<u64>,
}

fn time(now: u64) -> Time {
    Time(
        jiff::Timestamp::from_millisecond(i64::try_from(now).expect("sim time fits"))
            .expect("valid"),
    )
}

impl RestoreSim {
    pub fn new(rng: &mut SmallRng) -> Self {
        let backup = GtidSet::from_range(SOURCE, 1, rng.random_range(1..5_000));
        let s3 = S3Location {
            storage: S3Storage {
                bucket: "backups".into(),
                endpoint: Some("http://s3:9000".into()),
                force_path_style: true,
                ..Default::default()
            },
            path: "prod/shop/orders/nightly".into(),
        };
        let location = Ok(restore_plan::from_s3(&s3));
        RestoreSim {
            backup,
            source: RestoreSource {
                backup: None,
                s3: Some(s3),
            },
            location,
            status: None,
            job: None,
            faults: Faults {
                job_fails: [0.0, 0.0, 0.1, 0.3][rng.random_range(0..4)],
                status_write_lost: [0.0, 0.1, 0.3][rng.random_range(0..3)],
                user_retries: rng.random_bool(0.5),
            },
            last_plan: None,
            retry_at: None,
            jobs: 0,
            failures: 0,
            retries: 0,
            lost_writes: 0,
            recreations: 0,
            jobs_over_data: 0,
            failure_reported_since: None,
        }
    }

    /// The restore Job as the operator reads it (`None` when it does not exist).
    fn job_view(&self) -> Option<JobView> {
        let job = self.job.as_ref()?;
        Some(match &job.state {
            JobState::Succeeded(gtid_set) => JobView {
                succeeded: true,
                failed: false,
                condition_message: None,
                result: Some(
                    serde_json::json!({
                        "status": "Succeeded", "tables": 3, "chunks": 12, "rows": 1000,
                        "raw_bytes": 1, "stored_bytes": 1, "gtid_set": gtid_set, "seconds": 1.0
                    })
                    .to_string(),
                ),
            },
            JobState::Failed(error) => JobView {
                succeeded: false,
                failed: true,
                condition_message: Some("BackoffLimitExceeded".into()),
                result: Some(serde_json::json!({"status": "Failed", "error": error}).to_string()),
            },
            _ => JobView {
                succeeded: false,
                failed: false,
                condition_message: None,
                result: None,
            },
        })
    }

    /// What the operator's restore step reads at `now`: the request, the status as stored and
    /// the Job.
    pub fn observation(&self, now: u64) -> RestoreObservation<'_> {
        RestoreObservation {
            cluster: CLUSTER,
            requested: Some(&self.source),
            location: Some(&self.location),
            status: self.status.as_ref(),
            job: self.job_view(),
            job_created: self.job.as_ref().map(|j| time(j.created)),
            now: time(now),
        }
    }

    /// Carries out the restore part of the operator's plan: creates the Job when it says so.
    pub fn carry_out(&mut self, w: &mut World, plan: &Plan, now: u64, rng: &mut SmallRng) {
        // Creating a Job that exists is a 409 the step ignores.
        if plan.create_job && self.job.is_none() {
            let holding: Vec<u32> = w
                .members
                .iter()
                .filter(|(_, m)| m.group().is_some() || !m.transactions().is_empty())
                .map(|(&o, _)| o)
                .collect();
            // Harmless (the Job refuses a member that is not empty, and the data then opens
            // the gate) but wasted: counted. Only a member 0 the operator cannot read gets one.
            if !holding.is_empty() {
                self.jobs_over_data += 1;
            }
            self.jobs += 1;
            self.job = Some(Job {
                created: now,
                state: JobState::Starting {
                    until: now + rng.random_range(1_000..5_000),
                },
            });
        }
        self.last_plan = Some(plan.clone());
    }

    /// Writes the status of this reconcile (unless the write is lost).
    pub fn write_status(&mut self, planned: &TopologyPlan, now: u64, rng: &mut SmallRng) {
        if rng.random_bool(self.faults.status_write_lost) {
            self.lost_writes += 1;
            return;
        }
        let mut input = StatusInput::default();
        planned.fill_status(&mut input);
        self.status = Some(status::status(&input, self.status.as_ref(), &time(now)));
    }

    /// Moves the Job on at `now`: what the restore command would do to member 0. Returns a line
    /// for the trace when something happened.
    pub fn advance(&mut self, w: &mut World, now: u64, rng: &mut SmallRng) -> Option<String> {
        let job = self.job.as_mut()?;
        let m0 = w.mm(0);
        let up = m0.running();
        let line = match job.state.clone() {
            JobState::Starting { until } if until <= now => {
                job.state = JobState::Connecting {
                    deadline: now + WAIT_FOR_SERVER_MS,
                };
                Some("restore Job started".to_string())
            }
            JobState::Connecting { .. } if up => {
                if m0.partial || !m0.transactions().is_empty() {
                    job.state = JobState::Failed(
                        "the target already has database(s) [\"shop\"]; restore only into an \
                         empty server (drop them or use a fresh server)"
                            .into(),
                    );
                } else {
                    let load = rng.random_range(5_000..60_000);
                    // Half of the Job's own failures come before the first chunk committed.
                    let fails_at = rng.random_bool(self.faults.job_fails).then(|| {
                        if rng.random_bool(0.5) {
                            now
                        } else {
                            now + rng.random_range(1..load)
                        }
                    });
                    job.state = JobState::Loading {
                        since: now,
                        until: now + load,
                        fails_at,
                    };
                }
                Some(format!("restore Job connected: {:?}", job.state))
            }
            JobState::Connecting { deadline } if deadline <= now => {
                job.state = JobState::Failed(
                    "cannot connect to the restore target: connection refused".into(),
                );
                Some("restore Job gave up connecting".to_string())
            }
            JobState::Loading { .. } if !up => {
                m0.partial = true;
                job.state = JobState::Failed(
                    "restore step `load` failed: Lost connection to MySQL server during query"
                        .into(),
                );
                Some("restore Job lost member 0 mid-load".to_string())
            }
            JobState::Loading {
                fails_at: Some(t),
                since,
                ..
            } if t <= now => {
                m0.partial = t > since;
                job.state = JobState::Failed(if m0.partial {
                    "object prod/shop/orders/nightly/shop.orders.3.zst is corrupt: checksum \
                     mismatch; the backup cannot be trusted, restore another one"
                        .into()
                } else {
                    "S3 refused the request for prod/shop/orders/nightly/manifest.json: \
                     AccessDenied"
                        .into()
                });
                Some(format!("restore Job failed (data loaded: {})", m0.partial))
            }
            JobState::Loading { until, .. } if until <= now => {
                // RESET BINARY LOGS AND GTIDS; SET GLOBAL gtid_purged = <backup>.
                m0.partial = false;
                m0.executed = self.backup.clone();
                m0.received = self.backup.clone();
                job.state = JobState::Succeeded(self.backup.to_string());
                Some("restore Job succeeded".to_string())
            }
            _ => None,
        };
        if matches!(job.state, JobState::Loading { .. }) && w.m(0).group().is_some() {
            w.violations.push(format!(
                "t={now}ms: member 0 is in a group while the restore Job loads into it"
            ));
        }
        if let Some(JobState::Failed(_)) = self.job.as_ref().map(|j| &j.state)
            && line.is_some()
        {
            self.failures += 1;
        }
        line
    }

    /// The next time the Job moves by itself.
    pub fn next_deadline(&self) -> u64 {
        match self.job.as_ref().map(|j| &j.state) {
            Some(JobState::Starting { until }) => *until,
            Some(JobState::Connecting { deadline }) => *deadline,
            Some(JobState::Loading {
                until, fails_at, ..
            }) => fails_at.unwrap_or(u64::MAX).min(*until),
            _ => u64::MAX,
        }
        .min(self.retry_at.unwrap_or(u64::MAX))
    }

    pub fn failed(&self) -> bool {
        matches!(
            self.job.as_ref().map(|j| &j.state),
            Some(JobState::Failed(_))
        )
    }

    /// The user has read the failure: deletes the Job to retry when member 0 holds none of the
    /// backup's databases (the message's advice); otherwise the cluster stays as it is.
    pub fn user_reads_failure(&mut self, w: &World, now: u64, rng: &mut SmallRng) -> bool {
        let m0 = w.m(0);
        let clean = !m0.partial && m0.transactions().is_empty() && m0.pod != Pod::Absent;
        if self.faults.user_retries && clean && self.retry_at.is_none() && self.retries < 2 {
            self.retry_at = Some(now + rng.random_range(5_000..60_000));
            return true;
        }
        false
    }

    /// The MySQLCluster is recreated from a copy of its spec (a GitOps re-apply, a restore of
    /// the namespace's objects): the status is gone, the Job went with the old object, the data
    /// volumes stay.
    pub fn object_recreated(&mut self) {
        self.status = None;
        self.job = None;
        self.retry_at = None;
        self.recreations += 1;
    }

    /// Deletes the failed Job when the user's retry is due.
    pub fn user_retry(&mut self, now: u64) -> bool {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.job = None;
            self.retries += 1;
            return true;
        }
        false
    }
}
