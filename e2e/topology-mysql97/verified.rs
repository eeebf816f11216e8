//! Sessions as the operator and an application open them to a real member (TLS trusting a
//! given CA, the member's name checked), and a writer through them whose acknowledged rows are
//! then looked for on every member: shared by the TLS and CA-change scenarios.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use innodb_operator::objects::MYSQL_PORT;
use mysql_async::prelude::Queryable;
use mysql_async::{OptsBuilder, SslOpts};

use crate::group::Group;

pub(crate) fn admin_opts(g: &Group, ordinal: u32) -> OptsBuilder {
    let admin = g
        .built
        .credentials(innodb_operator::objects::accounts::Account::Admin);
    OptsBuilder::default()
        .ip_or_hostname(g.members.member(ordinal).ip.clone())
        .tcp_port(MYSQL_PORT as u16)
        .user(Some(admin.user))
        .pass(Some(admin.password))
        .prefer_socket(false)
}

/// The operator's admin session to `ordinal` over TLS trusting `ca_pem`, verifying `name`.
pub(crate) fn verified(g: &Group, ordinal: u32, ca_pem: Vec<u8>) -> OptsBuilder {
    admin_opts(g, ordinal).ssl_opts(
        SslOpts::default()
            .with_root_certs(vec![ca_pem.into()])
            .with_disable_built_in_roots(true)
            .with_danger_tls_hostname_override(Some(g.members.member(ordinal).fqdn.clone())),
    )
}

/// The application's sessions (account `app`) to every member, trusting `ca_pem`: a writer's
/// targets.
pub(crate) fn app_sessions(g: &Group, ca_pem: Vec<u8>) -> Vec<OptsBuilder> {
    g.members
        .members()
        .iter()
        .map(|m| {
            verified(g, m.ordinal, ca_pem.clone())
                .user(Some("app"))
                .pass(Some("app-pw-1"))
        })
        .collect()
}

/// What a writer did: the ids acknowledged, the errors of writes no target took, and the
/// writes a target refused that the next one took (the primary moved).
pub(crate) struct Written {
    pub acknowledged: BTreeSet<u32>,
    pub failures: Vec<String>,
    pub moved: Vec<String>,
}

/// A writer committing one row per new verified session until `stop`, ids after `after`: each
/// row to the target that took the last one, else to the next target that takes it (so it
/// follows the primary across a switchover, as a Router would).
pub(crate) fn spawn_writer(
    targets: Vec<OptsBuilder>,
    stop: Arc<AtomicBool>,
    after: u32,
) -> tokio::task::JoinHandle<Written> {
    async fn insert(opts: &OptsBuilder, id: u32) -> Result<(), mysql_async::Error> {
        let mut c = mysql_async::Conn::new(opts.clone()).await?;
        c.query_drop(format!("INSERT INTO iop_test.t VALUES ({id}, 'w')"))
            .await?;
        c.disconnect().await
    }
    tokio::spawn(async move {
        let mut written = Written {
            acknowledged: BTreeSet::new(),
            failures: Vec::new(),
            moved: Vec::new(),
        };
        let mut current = 0;
        let mut id = after;
        while !stop.load(Ordering::Relaxed) {
            id += 1;
            let mut refused = None;
            for k in 0..targets.len() {
                let target = (current + k) % targets.len();
                match insert(&targets[target], id).await {
                    Ok(()) => {
                        written.acknowledged.insert(id);
                        written.moved.extend(refused.take());
                        current = target;
                        break;
                    }
                    Err(e) => {
                        refused.get_or_insert(e.to_string());
                    }
                }
            }
            written.failures.extend(refused);
        }
        written
    })
}

/// Every acknowledged id (all after `after`) is on every member, applied within 30 s.
pub(crate) async fn on_every_member(g: &Group, acknowledged: &BTreeSet<u32>, after: u32) {
    for m in g.members.members() {
        let started = Instant::now();
        loop {
            let rows = g
                .root_query(
                    m.ordinal,
                    &format!("SELECT id FROM iop_test.t WHERE id > {after}"),
                )
                .await;
            let present: BTreeSet<u32> =
                rows.iter().flatten().map(|v| v.parse().unwrap()).collect();
            if acknowledged.is_subset(&present) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "member {} lacks acknowledged writes",
                m.ordinal
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
