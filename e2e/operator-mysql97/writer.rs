//! An application writing through the Router: an ordinary account (not root, not one of the
//! operator's) commits numbered rows one at a time, reconnecting after any error. A row is
//! acknowledged when its autocommit INSERT returned OK; a row whose statement failed may or may
//! not be there, and its number is never used again. Every new connection first asks
//! `@@super_read_only`: the Router's rw port must reach the primary, never a read-only member.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

pub const DATABASE: &str = "app";
pub const TABLE: &str = "app.rows";
pub const USER: &str = "app";
/// A session that hangs (a partitioned primary) is given up after this.
const STATEMENT_LIMIT: Duration = Duration::from_secs(5);

/// The statements that create the application's schema and account, run as root on the primary.
pub fn setup_statements(password: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {DATABASE}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT PRIMARY KEY, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))"
        ),
        format!("CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{password}'"),
        format!("GRANT SELECT, INSERT ON {DATABASE}.* TO '{USER}'@'%'"),
    ]
}

/// How the application verifies the member it reaches (directly, or through the Router, which
/// passes its TLS through): the cluster's CA, and a name the member certificate carries (the
/// read-write Service's, as the client connects to an address). The members refuse cleartext.
#[derive(Clone)]
pub struct AppTls {
    pub ca_pem: Vec<u8>,
    pub name: String,
}

/// The application's connection options to `addr`: TLS verified with `tls` (members refuse
/// cleartext clients).
pub fn opts(addr: SocketAddr, password: &str, tls: &AppTls) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname(addr.ip().to_string())
        .tcp_port(addr.port())
        .user(Some(USER))
        .pass(Some(password.to_string()))
        .prefer_socket(false)
        .ssl_opts(Some(
            mysql_async::SslOpts::default()
                .with_root_certs(vec![tls.ca_pem.clone().into()])
                .with_disable_built_in_roots(true)
                .with_danger_tls_hostname_override(Some(tls.name.clone())),
        ))
}

#[derive(Default)]
struct Log {
    acked: Vec<(u64, Instant)>,
    failed: Vec<(u64, Instant, String)>,
    /// Every new connection: when, and whether the member it reached was read-only.
    connected: Vec<(Instant, bool)>,
}

pub struct Writer {
    log: Arc<Mutex<Log>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Starts writing through the Router's classic read-write port at `addr`, over TLS verified
    /// with `tls` (the Router passes it through to the member).
    pub fn start(addr: SocketAddr, password: &str, tls: &AppTls) -> Writer {
        Writer::with_opts(opts(addr, password, tls))
    }

    fn with_opts(opts: OptsBuilder) -> Writer {
        let log = Arc::new(Mutex::new(Log::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (log, stop) = (log.clone(), stop.clone());
            tokio::spawn(async move {
                let mut conn: Option<Conn> = None;
                let mut id = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    id += 1;
                    match insert(&mut conn, &opts, id, &log).await {
                        Ok(()) => log.lock().unwrap().acked.push((id, Instant::now())),
                        Err(e) => {
                            conn = None;
                            log.lock().unwrap().failed.push((id, Instant::now(), e));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        };
        Writer { log, stop, task }
    }

    pub fn acked(&self) -> Vec<u64> {
        self.log.lock().unwrap().acked.iter().map(|a| a.0).collect()
    }

    /// When writes were accepted again after `since`: the first acknowledged row after the
    /// first failed statement at or after `since` (a statement in flight at `since` may still be
    /// acknowledged by the old primary).
    pub fn accepted_again_after(&self, since: Instant) -> Option<Instant> {
        let log = self.log.lock().unwrap();
        let failed = log.failed.iter().map(|f| f.1).find(|&at| at >= since)?;
        log.acked.iter().map(|a| a.1).find(|&at| at >= failed)
    }

    /// The write unavailability between `since` and `until`: the longest time in that window
    /// without an acknowledged row (from `since` to the first, between two, from the last to
    /// `until`).
    pub fn longest_pause(&self, since: Instant, until: Instant) -> Duration {
        let log = self.log.lock().unwrap();
        let acks = log
            .acked
            .iter()
            .map(|a| a.1)
            .filter(|&at| at >= since && at <= until);
        let mut last = since;
        let mut longest = Duration::ZERO;
        for at in acks.chain([until]) {
            longest = longest.max(at - last);
            last = at;
        }
        longest
    }

    /// How many statements failed since `since`, and the last error.
    pub fn failures_since(&self, since: Instant) -> (usize, Option<String>) {
        let log = self.log.lock().unwrap();
        let failed: Vec<_> = log.failed.iter().filter(|f| f.1 >= since).collect();
        (failed.len(), failed.last().map(|f| f.2.clone()))
    }

    /// What the writer saw since `since`, as runs of the same outcome: (from, to) in seconds
    /// after `since`, how many statements, and the outcome (`OK` or the error).
    pub fn outcomes_since(&self, since: Instant) -> Vec<(f64, f64, usize, String)> {
        let log = self.log.lock().unwrap();
        let mut all: Vec<(Instant, String)> = log
            .acked
            .iter()
            .map(|a| (a.1, "OK".to_string()))
            .chain(log.failed.iter().map(|f| (f.1, f.2.clone())))
            .filter(|e| e.0 >= since)
            .collect();
        all.sort_by_key(|e| e.0);
        let mut runs: Vec<(f64, f64, usize, String)> = Vec::new();
        for (at, what) in all {
            let t = (at - since).as_secs_f64();
            match runs.last_mut() {
                Some(run) if run.3 == what => {
                    run.1 = t;
                    run.2 += 1;
                }
                _ => runs.push((t, t, 1, what)),
            }
        }
        runs
    }

    /// How many connections the writer opened, and when one reached a read-only member.
    pub fn read_only_connections(&self) -> (usize, Vec<Instant>) {
        let log = self.log.lock().unwrap();
        let read_only = log.connected.iter().filter(|c| c.1).map(|c| c.0);
        (log.connected.len(), read_only.collect())
    }

    /// Stops writing; returns the acknowledged rows.
    pub async fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = (&mut self.task).await;
        self.acked()
    }
}

async fn insert(
    conn: &mut Option<Conn>,
    opts: &OptsBuilder,
    id: u64,
    log: &Mutex<Log>,
) -> Result<(), String> {
    let work = async {
        if conn.is_none() {
            let mut new = Conn::new(opts.clone()).await.map_err(|e| e.to_string())?;
            let read_only: Option<bool> = new
                .query_first("SELECT @@super_read_only")
                .await
                .map_err(|e| e.to_string())?;
            let read_only = read_only.unwrap_or(false);
            log.lock()
                .unwrap()
                .connected
                .push((Instant::now(), read_only));
            *conn = Some(new);
        }
        let c = conn.as_mut().expect("connected");
        c.query_drop(format!("INSERT INTO {TABLE} (id) VALUES ({id})"))
            .await
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(STATEMENT_LIMIT, work)
        .await
        .map_err(|_| format!("no answer within {STATEMENT_LIMIT:?}"))?
}
