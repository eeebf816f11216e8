//! A real group driven by the operator's own `SqlOps`: the operator's view (`gather`, `execute`)
//! next to the server's own answer, read as root over each member's socket.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use innodb_operator::objects::accounts::Account;
use innodb_operator::topology::Decision;
use innodb_operator::topology::gtid::GtidSet;
use innodb_operator::topology::mysql::{SessionTls, SqlOps};
use innodb_operator::topology::observe::{
    ClonePolicy, ClusterInput, MemberState, Observed, PodInfo, PodPhase, RestoreGate,
};
use innodb_operator::topology::ops::{self, Operation, OpsError, Patience};
use mysql_async::prelude::Queryable;

use crate::objects::{self, Built};
use crate::realmysql::members::Cluster;

pub struct Group {
    pub built: Built,
    pub members: Cluster,
    pub ops: SqlOps,
    /// When the certificate in the members' TLS Secret ends, as the operator's input says (a
    /// renewal in the test changes it).
    pub certificate_end: std::sync::Mutex<Option<jiff::Timestamp>>,
}

/// One member as the server itself says, read as root.
#[derive(Debug, PartialEq, Eq)]
pub struct Truth {
    pub server_uuid: String,
    pub gtid_executed: GtidSet,
    /// (MEMBER_ID, MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE), sorted.
    pub rows: Vec<(String, String, String, String)>,
}

impl Group {
    /// Builds cluster `name` with `spec` and starts every member (init containers included).
    pub fn start(rootfs: &std::path::Path, name: &str, spec: &str) -> Group {
        // The sessions are TLS (mysql_async's rustls uses the process's provider, as the
        // operator's main installs it).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built = objects::build(name, spec);
        let names = built.cluster.names.clone();
        let instances = built.cluster.instances as u32;
        let mut members = Cluster::new(
            rootfs,
            name,
            objects::NAMESPACE,
            |o| names.pod_fqdn(o as i32, objects::DOMAIN),
            built.pod_source(),
            instances,
        )
        .unwrap_or_else(|e| panic!("cannot set up the members: {e}"));
        let started = Instant::now();
        if let Err(e) = members.start_all() {
            panic!("members did not start: {e}");
        }
        eprintln!(
            "{name}: pods started (init containers done) in {:?}",
            started.elapsed()
        );
        let ops = SqlOps {
            admin: built.credentials(Account::Admin),
            accounts: built.accounts(),
            observe_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(120),
            tls: SessionTls::Verify {
                ca_pem: built.member_ca().expect("the members' CA"),
            },
        };
        Group {
            certificate_end: std::sync::Mutex::new(built.member_certificate_end()),
            built,
            members,
            ops,
        }
    }

    /// What the operator's tick would be given: every pod Running at its IP.
    pub fn input(&self) -> ClusterInput {
        ClusterInput {
            name: self.built.cluster.names.cluster.clone(),
            namespace: objects::NAMESPACE.into(),
            cluster_domain: objects::DOMAIN.into(),
            stack: self.built.cluster.stack,
            instances: self.built.cluster.instances as u32,
            pods: self
                .members
                .members()
                .iter()
                .map(|m| PodInfo {
                    ordinal: m.ordinal,
                    phase: PodPhase::Running,
                    ready: true,
                    deleting: false,
                    update_pending: false,
                    role_label: None,
                    ip: Some(m.ip.clone()),
                })
                .collect(),
            switchover_to: None,
            force_quorum_from: None,
            clone_policy: ClonePolicy::EmptyOnly,
            history: vec![],
            flap_window: Duration::from_secs(30),
            expel_timeout: 5,
            group_name: self.built.cluster.group_name.to_string(),
            member_certificate_end: *self.certificate_end.lock().unwrap(),
            previous_ca_trusted: false,
            now: jiff::Timestamp::now(),
            restore: RestoreGate::Open,
        }
    }

    /// The operator's observation of every member.
    pub async fn observe(&self) -> Observed {
        ops::gather(&self.ops, self.input(), Patience::Everyone).await
    }

    /// Observes, then runs `operation` as a tick would.
    pub async fn run(&self, operation: Operation) -> Result<(), OpsError> {
        let observed = self.observe().await;
        ops::execute(&self.ops, &observed, &operation).await
    }

    /// Polls the operator's observation until `done` holds; panics with the last one and the
    /// members' logs after `limit`.
    pub async fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Observed) -> bool,
    ) -> (Observed, Duration) {
        let started = Instant::now();
        loop {
            let observed = self.observe().await;
            if done(&observed) {
                return (observed, started.elapsed());
            }
            if started.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting until {what}; last observation:\n{}",
                    describe(&observed)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn socket(&self, ordinal: u32) -> PathBuf {
        self.members.volume_path(ordinal, "run").join("mysqld.sock")
    }

    /// `root@localhost` over the member's socket, with the password of the root Secret.
    fn root_opts(&self, ordinal: u32) -> mysql_async::OptsBuilder {
        let root = self.built.credentials(Account::Root);
        mysql_async::OptsBuilder::default()
            .socket(Some(self.socket(ordinal).display().to_string()))
            .user(Some("root"))
            .pass(Some(root.password))
    }

    /// A root session over the member's socket (the test's own access, not the operator's).
    pub async fn root(&self, ordinal: u32) -> mysql_async::Conn {
        let opts = self.root_opts(ordinal);
        mysql_async::Conn::new(opts)
            .await
            .unwrap_or_else(|e| panic!("root login on member {ordinal}: {e}"))
    }

    /// `sql` as root on `ordinal`, every column as text; an error when the member is down.
    pub async fn root_try(
        &self,
        ordinal: u32,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        query_as(self.root_opts(ordinal), sql).await
    }

    /// `sql` on `ordinal` as an application's account ([`APP_USER`], no `CONNECTION_ADMIN`:
    /// refused while the member is offline), over the member's socket.
    pub async fn app_try(
        &self,
        ordinal: u32,
        sql: &str,
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        let opts = mysql_async::OptsBuilder::default()
            .socket(Some(self.socket(ordinal).display().to_string()))
            .user(Some(APP_USER.0))
            .pass(Some(APP_USER.1));
        query_as(opts, sql).await
    }

    /// Decides on `observed` and carries out the decision as the operator's tick does (the
    /// expel-timeout change, the membership settings, the members admitted to clients or
    /// reloading their certificate, then the operation); returns the decision.
    pub async fn tick(&self, observed: &Observed) -> Decision {
        let decision = innodb_operator::topology::decide(observed);
        if decision.operation != Operation::None
            || decision.expel_timeout.is_some()
            || !decision.membership.is_empty()
            || !decision.admit.is_empty()
            || !decision.reload_tls.is_empty()
        {
            let outcome =
                innodb_operator::topology::carry_out(&self.ops, observed, &decision).await;
            eprintln!(
                "operator tick: {:?}, expel timeout {:?}, membership {:?}, admit {:?}, reload TLS \
                 {:?} -> {outcome:?}",
                decision.operation,
                decision.expel_timeout,
                decision.membership,
                decision.admit,
                decision.reload_tls
            );
        }
        decision
    }

    /// Observe, decide and execute as the operator's tick does, until `done` holds; returns the
    /// operations it ran.
    pub async fn converge(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&Observed) -> bool,
    ) -> Vec<String> {
        let started = Instant::now();
        let mut ran = Vec::new();
        loop {
            let observed = self.observe().await;
            if done(&observed) {
                return ran;
            }
            let decision = self.tick(&observed).await;
            if decision.operation != Operation::None {
                ran.push(format!("{:?}", decision.operation));
            }
            if started.elapsed() > limit {
                panic!(
                    "the operator's ticks did not reach {what} within {limit:?} (ran {ran:?}); \
                     conditions {:?}; last observation:\n{}",
                    decision.conditions,
                    describe(&observed)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `sql` as root on `ordinal`, first column of every row as text.
    pub async fn root_query(&self, ordinal: u32, sql: &str) -> Vec<Option<String>> {
        let mut conn = self.root(ordinal).await;
        let rows: Vec<mysql_async::Row> = conn
            .query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql} on member {ordinal}: {e}"));
        rows.into_iter()
            .map(|mut r| r.take::<Option<String>, _>(0).flatten())
            .collect()
    }

    pub async fn root_exec(&self, ordinal: u32, sql: &str) {
        let mut conn = self.root(ordinal).await;
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql} on member {ordinal}: {e}"));
    }

    /// What the server says of itself and its group.
    pub async fn truth(&self, ordinal: u32) -> Truth {
        let mut conn = self.root(ordinal).await;
        let (uuid, gtids): (String, String) = conn
            .query_first("SELECT @@server_uuid, @@gtid_executed")
            .await
            .expect("read self")
            .expect("a row");
        let mut rows: Vec<(String, String, String, String)> = conn
            .query(
                "SELECT MEMBER_ID, MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE \
                 FROM performance_schema.replication_group_members",
            )
            .await
            .expect("read members");
        rows.sort();
        Truth {
            server_uuid: uuid.to_ascii_lowercase(),
            gtid_executed: GtidSet::parse(&gtids).expect("gtid set"),
            rows,
        }
    }

    /// The operator's view of `ordinal` equals the server's own answer.
    pub async fn assert_believes_truth(&self, observed: &Observed, ordinal: u32) {
        let state = observed
            .state(ordinal)
            .unwrap_or_else(|| panic!("member {ordinal} unobserved:\n{}", describe(observed)));
        let truth = self.truth(ordinal).await;
        let mut believed: Vec<(String, String, String, String)> = state
            .group
            .iter()
            .map(|r| {
                (
                    r.member_id.clone(),
                    r.host.clone(),
                    r.state.as_str().to_string(),
                    r.role
                        .map_or(String::new(), |r| r.label_value().to_ascii_uppercase()),
                )
            })
            .collect();
        believed.sort();
        let real_rows: Vec<_> = truth
            .rows
            .iter()
            .map(|(id, host, st, role)| {
                (
                    id.to_ascii_lowercase(),
                    host.clone(),
                    st.clone(),
                    role.clone(),
                )
            })
            .collect();
        assert_eq!(
            state.server_uuid, truth.server_uuid,
            "member {ordinal}: uuid"
        );
        assert_eq!(
            state.gtid_executed, truth.gtid_executed,
            "member {ordinal}: gtid_executed"
        );
        assert_eq!(believed, real_rows, "member {ordinal}: group view");
    }
}

/// The member's own state as text (`ONLINE`/`OFFLINE`/...), `-` when it did not answer.
pub fn status(observed: &Observed, ordinal: u32) -> String {
    observed
        .state(ordinal)
        .map_or("-".into(), |s| s.own_status().as_str().to_string())
}

/// Whether `ordinal` is ONLINE with `role` in its own view, with `size` ONLINE members.
pub fn online_as(observed: &Observed, ordinal: u32, primary: bool, size: usize) -> bool {
    observed.state(ordinal).is_some_and(|s: &MemberState| {
        let online = s
            .group
            .iter()
            .filter(|r| r.state.as_str() == "ONLINE")
            .count();
        let role = s.own_row().and_then(|r| r.role).map(|r| r.label_value());
        s.own_status().as_str() == "ONLINE"
            && online == size
            && role == Some(if primary { "primary" } else { "secondary" })
    })
}

pub fn describe(observed: &Observed) -> String {
    observed
        .members
        .iter()
        .map(|m| match m.state() {
            Some(s) => format!(
                "  {}: {} read_only={} gtids={} view=[{}]\n",
                m.ordinal,
                s.own_status().as_str(),
                s.super_read_only,
                s.gtid_executed,
                s.group
                    .iter()
                    .map(|r| format!(
                        "{}:{}:{:?}",
                        r.host.split('.').next().unwrap_or(""),
                        r.state.as_str(),
                        r.role
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => format!("  {}: {:?}\n", m.ordinal, m.reach),
        })
        .collect()
}

/// An application's account (name, password) the tests create on the group: no privilege beyond
/// reading the test's schema.
pub const APP_USER: (&str, &str) = ("app", "app-password-3032");

/// `sql` in a new session opened with `opts`, every column as text.
async fn query_as(
    opts: mysql_async::OptsBuilder,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .map_err(|e| e.to_string())?;
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.map_err(|e| e.to_string())?;
    Ok(crate::realmysql::text_rows(rows))
}
