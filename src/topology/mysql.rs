//! [`MemberOps`] over SQL with mysql_async: connect as the operator's admin user, run the
//! statements [`super::sql`] builds. Every call has a deadline; passwords never reach an error
//! or a log line.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, SslOpts};
use tracing::{debug, warn};

use super::gtid::GtidSet;
use super::membership::Settings;
use super::observe::{Endpoint, MemberState};
use super::ops::{MemberOps, OpsError};
use super::sql::{self, Accounts, Capabilities, Credentials, Statement};

/// Seconds `group_replication_set_as_primary` lets running transactions finish.
const SWITCHOVER_TIMEOUT_S: u32 = 30;

/// The SQL implementation.
#[derive(Debug, Clone)]
pub struct SqlOps {
    /// The operator's account (exists on every member before Group Replication starts).
    pub admin: Credentials,
    /// Accounts created on a new group; `recovery` also serves clone.
    pub accounts: Accounts,
    /// Deadline of a connection attempt plus a read (gather should stay fast).
    pub observe_timeout: Duration,
    /// Deadline of a group operation (START GROUP_REPLICATION waits for the member to join).
    pub operation_timeout: Duration,
    /// How the sessions are protected.
    pub tls: SessionTls,
}

/// How the operator's sessions to members are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionTls {
    /// TLS, trusting only the cluster's CA (PEM) and checking that the member's certificate
    /// names its host (the session connects to the pod IP, the certificate names the pod's DNS
    /// name).
    Verify { ca_pem: Vec<u8> },
    /// Cleartext: only for servers without certificates (the MariaDB tier).
    Off,
}

/// Why the member's certificate was refused, when the session failed on that: rustls's
/// certificate error, found in the error's chain (mysql_async wraps it in an I/O error).
fn certificate_error(e: &mysql_async::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(why)) = tls {
            return Some(format!("{why:?}"));
        }
        next = err.source();
    }
    None
}

impl SessionTls {
    /// The session options for a member whose host name is `host`.
    fn ssl_opts(&self, host: &str) -> Option<SslOpts> {
        match self {
            SessionTls::Verify { ca_pem } => Some(
                SslOpts::default()
                    .with_root_certs(vec![ca_pem.clone().into()])
                    .with_disable_built_in_roots(true)
                    .with_danger_tls_hostname_override(Some(host.to_string())),
            ),
            SessionTls::Off => None,
        }
    }
}

/// A session with one member (the metadata keeper uses it too).
pub(in crate::topology) struct Session<'a> {
    conn: Conn,
    endpoint: &'a Endpoint,
}

impl Session<'_> {
    fn failed(&self, what: &Statement, e: mysql_async::Error) -> OpsError {
        // A server error may quote the statement; for a statement with a secret only the code
        // is kept.
        let has_secret = what.sql() != what.to_string();
        let message = match (&e, has_secret) {
            (mysql_async::Error::Server(s), true) => format!("server error {}", s.code),
            (_, true) => "the statement failed (details withheld: it carries a password)".into(),
            _ => e.to_string(),
        };
        OpsError::Statement {
            endpoint: self.endpoint.to_string(),
            what: what.to_string(),
            message,
        }
    }

    pub(in crate::topology) async fn run(&mut self, statement: &Statement) -> Result<(), OpsError> {
        debug!(endpoint = %self.endpoint, statement = %statement, "running");
        match self.conn.query_drop(statement.sql()).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.failed(statement, e)),
        }
    }

    async fn run_text(&mut self, sql: &str) -> Result<(), OpsError> {
        self.run(&Statement::from_text(sql)).await
    }

    pub(in crate::topology) async fn rows<T: mysql_async::prelude::FromRow + Send + 'static>(
        &mut self,
        sql: &str,
    ) -> Result<Vec<T>, OpsError> {
        match self.conn.query::<T, _>(sql).await {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.failed(&Statement::from_text(sql), e)),
        }
    }

    fn protocol(&self, message: impl ToString) -> OpsError {
        OpsError::Protocol {
            endpoint: self.endpoint.to_string(),
            message: message.to_string(),
        }
    }

    /// What a member needs before `START GROUP_REPLICATION`: the recovery account on itself
    /// (see [`sql::local_recovery_account`]) and its credentials on the recovery channel.
    async fn prepare_recovery(
        &mut self,
        caps: &Capabilities,
        recovery: &Credentials,
    ) -> Result<(), OpsError> {
        let exists: Vec<u64> = self
            .rows(&sql::select_account_exists(&recovery.user))
            .await?;
        if exists.first().copied().unwrap_or(0) == 0 {
            let statements =
                sql::local_recovery_account(caps, recovery).map_err(|e| self.protocol(e))?;
            for statement in &statements {
                self.run(statement).await?;
            }
        }
        self.run_text(sql::RECOVERY_PUBLIC_KEY).await?;
        let credentials = sql::recovery_credentials(recovery).map_err(|e| self.protocol(e))?;
        self.run(&credentials).await
    }

    async fn capabilities(&mut self) -> Result<Capabilities, OpsError> {
        Ok(self.probe().await?.0)
    }

    /// The capabilities and the probed variables' rows (name, value).
    async fn probe(&mut self) -> Result<(Capabilities, Vec<(String, Option<String>)>), OpsError> {
        let version: Vec<String> = self.rows(sql::SELECT_VERSION).await?;
        let plugins: Vec<(String, String)> = self.rows(&sql::select_plugins()).await?;
        let variables: Vec<(String, Option<String>)> = self.rows(&sql::select_variables()).await?;
        let names: Vec<String> = variables.iter().map(|(name, _)| name.clone()).collect();
        let version = version.into_iter().next().unwrap_or_default();
        let capabilities =
            Capabilities::from_probe(&version, &plugins, &names).map_err(|e| self.protocol(e))?;
        Ok((capabilities, variables))
    }
}

impl SqlOps {
    /// Opens a session, within the observe deadline whatever the operation: a member that
    /// cannot even complete a handshake in that time is unreachable, and an operation must not
    /// hold the cluster's reconcile (and the role labels behind it) waiting for one.
    pub(in crate::topology) async fn connect<'a>(
        &self,
        endpoint: &'a Endpoint,
    ) -> Result<Session<'a>, OpsError> {
        self.deadline(endpoint, self.observe_timeout, self.open(endpoint))
            .await
    }

    async fn open<'a>(&self, endpoint: &'a Endpoint) -> Result<Session<'a>, OpsError> {
        let opts = OptsBuilder::default()
            .ip_or_hostname(endpoint.address.clone())
            .tcp_port(endpoint.port)
            .user(Some(self.admin.user.clone()))
            .pass(Some(self.admin.password.clone()))
            .prefer_socket(false)
            .ssl_opts(self.tls.ssl_opts(&endpoint.host));
        let conn = Conn::new(opts).await.map_err(|e| match e {
            mysql_async::Error::Io(mysql_async::IoError::Io(io))
                if io.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                OpsError::Refused {
                    endpoint: endpoint.to_string(),
                }
            }
            // ER_ACCESS_DENIED_ERROR
            mysql_async::Error::Server(server) if server.code == 1045 => OpsError::Denied {
                endpoint: endpoint.to_string(),
                message: format!("ERROR {}: {}", server.code, server.message),
            },
            e => match certificate_error(&e) {
                Some(reason) => OpsError::Untrusted {
                    endpoint: endpoint.to_string(),
                    reason,
                },
                None => OpsError::Unreachable {
                    endpoint: endpoint.to_string(),
                    reason: e.to_string(),
                },
            },
        })?;
        let mut session = Session { conn, endpoint };
        session.run_text(sql::SESSION_SETUP).await?;
        Ok(session)
    }

    pub(in crate::topology) async fn deadline<T>(
        &self,
        endpoint: &Endpoint,
        limit: Duration,
        work: impl Future<Output = Result<T, OpsError>>,
    ) -> Result<T, OpsError> {
        tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(OpsError::Unreachable {
                endpoint: endpoint.to_string(),
                reason: format!("no answer within {} ms", limit.as_millis()),
            })
        })
    }

    async fn read_state(&self, at: &Endpoint) -> Result<MemberState, OpsError> {
        let mut s = self.connect(at).await?;
        let (capabilities, variables) = s.probe().await?;
        let me: Vec<(String, String, String)> = s.rows(sql::SELECT_SELF).await?;
        let Some((server_uuid, executed, read_only)) = me.into_iter().next() else {
            return Err(s.protocol("SELECT @@server_uuid returned no row"));
        };
        let received: Vec<Option<String>> = s.rows(sql::SELECT_RECEIVED).await?;
        let received = received.into_iter().next().flatten().unwrap_or_default();
        let rows: Vec<sql::MemberRowText> = s
            .rows::<(
                String,
                Option<String>,
                Option<u16>,
                String,
                Option<String>,
                Option<String>,
            )>(sql::SELECT_MEMBERS)
            .await?
            .into_iter()
            .map(|(id, host, port, state, role, version)| {
                (
                    id,
                    host.unwrap_or_default(),
                    port,
                    state,
                    role.unwrap_or_default(),
                    version.unwrap_or_default(),
                )
            })
            .collect();
        let group = sql::parse_members(rows).map_err(|e| s.protocol(e))?;
        let queue: Vec<Option<u64>> = s.rows(sql::SELECT_QUEUE).await?;
        let certificate: Vec<(String, String)> = s.rows(sql::SELECT_CERTIFICATE_END).await?;
        let clones: Vec<sql::CloneRowText> = if capabilities.clone {
            s.rows(sql::SELECT_CLONE_STATE).await?
        } else {
            Vec::new()
        };
        let parse = |text: &str| GtidSet::parse(text);
        Ok(MemberState {
            server_uuid: server_uuid.to_ascii_lowercase(),
            capabilities,
            gtid_executed: parse(&executed).map_err(|e| s.protocol(e))?,
            gtid_received: parse(&received).map_err(|e| s.protocol(e))?,
            super_read_only: sql::parse_bool(&read_only),
            offline_mode: sql::offline_mode(&variables),
            group,
            applier_queue: queue.into_iter().next().flatten().unwrap_or(0),
            cloning: sql::clone_running(&clones),
            clone_failed: sql::clone_failure(&clones),
            expel_timeout: sql::expel_timeout(&variables),
            group_name: sql::group_name(&variables),
            certificate_end: sql::certificate_end(&certificate),
            group_seeds: sql::variable(&variables, sql::GROUP_SEEDS_VARIABLE),
            ip_allowlist: sql::variable(&variables, sql::IP_ALLOWLIST_VARIABLE),
        })
    }

    async fn bootstrap_now(&self, at: &Endpoint) -> Result<(), OpsError> {
        let mut s = self.connect(at).await?;
        let capabilities = s.capabilities().await?;
        s.prepare_recovery(&capabilities, &self.accounts.recovery)
            .await?;
        let started = async {
            s.run_text(sql::BOOTSTRAP_ON).await?;
            s.run_text(sql::START_GR).await
        }
        .await;
        // Never leave bootstrap_group ON, whatever happened: on this session if it still works,
        // else on a new one.
        if s.run_text(sql::BOOTSTRAP_OFF).await.is_err() {
            let mut again = self.connect(at).await?;
            again.run_text(sql::BOOTSTRAP_OFF).await?;
        }
        started?;
        let accounts =
            sql::account_statements(&capabilities, &self.accounts).map_err(|e| s.protocol(e))?;
        for statement in &accounts {
            s.run(statement).await?;
        }
        Ok(())
    }

    async fn join_now(&self, at: &Endpoint, restart: bool) -> Result<(), OpsError> {
        let mut s = self.connect(at).await?;
        s.run_text(sql::BOOTSTRAP_OFF).await?;
        if restart {
            s.run_text(sql::STOP_GR).await?;
        }
        let capabilities = s.capabilities().await?;
        s.prepare_recovery(&capabilities, &self.accounts.recovery)
            .await?;
        s.run_text(sql::START_GR).await
    }
}

impl MemberOps for SqlOps {
    async fn observe(&self, at: &Endpoint) -> Result<MemberState, OpsError> {
        self.deadline(at, self.observe_timeout, self.read_state(at))
            .await
    }

    async fn bootstrap(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, self.bootstrap_now(at))
            .await
    }

    async fn join(&self, at: &Endpoint, restart: bool) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, self.join_now(at, restart))
            .await
    }

    /// Starts the clone and returns: it runs for as long as the data takes and ends with mysqld
    /// restarting, so it is left running on its own session; later ticks see it in
    /// `performance_schema.clone_status`.
    async fn clone_from(&self, at: &Endpoint, donor: &Endpoint) -> Result<(), OpsError> {
        let statements = sql::clone_statements(&donor.host, donor.port, &self.accounts.recovery)
            .map_err(|e| OpsError::Protocol {
                endpoint: at.to_string(),
                message: e.to_string(),
            })?;
        let (clone, before) = statements
            .split_last()
            .expect("clone_statements ends with the clone");
        let mut s = self.connect(at).await?;
        for statement in before {
            s.run(statement).await?;
        }
        let endpoint = at.clone();
        let clone = clone.clone();
        let Session { conn, .. } = s;
        tokio::spawn(async move {
            let mut s = Session {
                conn,
                endpoint: &endpoint,
            };
            // The recipient restarts when the clone is done, which drops this session.
            if let Err(e) = s.run(&clone).await {
                warn!(endpoint = %endpoint, error = %e, "clone ended with an error (a restart after a completed clone also ends this way)");
            }
        });
        Ok(())
    }

    async fn set_expel_timeout(&self, at: &Endpoint, seconds: u32) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            self.connect(at)
                .await?
                .run(&sql::set_expel_timeout(seconds))
                .await
        })
        .await
    }

    async fn set_membership(&self, at: &Endpoint, settings: &Settings) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            self.connect(at)
                .await?
                .run(&sql::set_membership(settings))
                .await
        })
        .await
    }

    async fn admit_clients(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            self.connect(at).await?.run(&sql::admit_clients()).await
        })
        .await
    }

    async fn reload_tls(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            self.connect(at).await?.run_text(sql::RELOAD_TLS).await
        })
        .await
    }

    async fn leave(&self, at: &Endpoint) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            self.connect(at).await?.run_text(sql::STOP_GR).await
        })
        .await
    }

    async fn set_primary(&self, at: &Endpoint, server_uuid: &str) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            let mut s = self.connect(at).await?;
            let versions: Vec<Option<String>> = s.rows(sql::SELECT_MEMBER_VERSIONS).await?;
            let versions: Vec<String> = versions
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect();
            let with_timeout =
                sql::group_supports_primary_timeout(versions.iter().map(String::as_str));
            s.run(&sql::set_as_primary(
                with_timeout,
                server_uuid,
                SWITCHOVER_TIMEOUT_S,
            ))
            .await
        })
        .await
    }

    async fn force_members(
        &self,
        at: &Endpoint,
        local_addresses: &[String],
    ) -> Result<(), OpsError> {
        self.deadline(at, self.operation_timeout, async {
            let mut s = self.connect(at).await?;
            let [force, clear] = sql::force_members_statements(local_addresses);
            let forced = s.run(&force).await;
            s.run(&clear).await?;
            forced
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::observe::{ClonePolicy, ClusterInput};

    fn creds(user: &str) -> Credentials {
        Credentials {
            user: user.into(),
            password: "secret-pw".into(),
        }
    }

    fn ops() -> SqlOps {
        SqlOps {
            admin: creds("iop"),
            accounts: Accounts {
                recovery: creds("gr"),
                router: creds("router"),
                backup: creds("backup"),
            },
            observe_timeout: Duration::from_millis(200),
            operation_timeout: Duration::from_millis(200),
            tls: SessionTls::Off,
        }
    }

    /// The controller runs ticks on a multi-threaded runtime: the future must be `Send`.
    #[test]
    fn a_tick_over_sql_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let input = ClusterInput {
            name: "db".into(),
            namespace: "ns".into(),
            cluster_domain: "cluster.local".into(),
            stack: crate::api::cluster::CommunicationStack::MYSQL,
            instances: 1,
            pods: vec![],
            switchover_to: None,
            force_quorum_from: None,
            clone_policy: ClonePolicy::default(),
            history: vec![],
            flap_window: Duration::from_secs(30),
            expel_timeout: 5,
            group_name: String::new(),
            member_certificate_end: None,
            previous_ca_trusted: false,
            now: jiff::Timestamp::UNIX_EPOCH,
            restore: Default::default(),
        };
        let ops = ops();
        let observed = crate::topology::Observed {
            input: input.clone(),
            members: vec![],
        };
        assert_send(&crate::topology::observe(&ops, input));
        let operation = crate::topology::Operation::None;
        assert_send(&crate::topology::ops::execute(&ops, &observed, &operation));
        assert!(!format!("{ops:?}").contains("secret-pw"));
    }

    #[tokio::test]
    async fn an_unreachable_member_is_an_error_within_the_deadline() {
        // Port 9 on localhost: nothing listens (connection refused) or the deadline hits.
        let endpoint = Endpoint::named(0, "127.0.0.1", 9);
        let started = std::time::Instant::now();
        let err = ops().observe(&endpoint).await.expect_err("nothing listens");
        assert!(
            matches!(err, OpsError::Refused { .. } | OpsError::Unreachable { .. }),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(!err.to_string().contains("secret-pw"));
    }
}
