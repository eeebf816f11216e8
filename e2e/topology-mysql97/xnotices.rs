//! The X protocol monitor's session against real 9.7 members: TLS verified with the cluster's
//! CA and the member's name, PLAIN with the operator's
//! caching_sha2 account, and the Group Replication notices (view, role, state) the operator's
//! reconcile wakes on.

use std::time::Duration;

use innodb_operator::cluster::topology_step::monitor_targets;
use innodb_operator::xproto::client::{ConnOptions, Session};
use innodb_operator::xproto::notice::{GrEvent, GrEventKind};
use innodb_operator::xproto::tls::{self, TlsVerify};
use tokio::sync::mpsc;

use crate::group::Group;

/// The notices one member sent since it was subscribed.
pub struct Notices {
    member: u32,
    events: mpsc::UnboundedReceiver<GrEvent>,
}

/// Opens the monitor's session to `ordinal` as the operator's account and forwards its events.
pub async fn subscribe(g: &Group, ordinal: u32) -> Notices {
    // What the operator's monitor is given: the member at its pod IP, verified as its DNS name
    // against the cluster's CA.
    let targets = monitor_targets(&g.input(), &g.ops);
    let endpoint = targets.endpoints[ordinal as usize].clone();
    let options = targets.session.expect("a session");
    assert!(matches!(options.tls.verify, TlsVerify::CaPem(_)));
    let config = tls::client_config(&options.tls).expect("TLS client configuration");
    let mut session = Session::open(&endpoint, &options, config, &ConnOptions::default())
        .await
        .unwrap_or_else(|e| panic!("X session to member {ordinal} ({endpoint:?}): {e}"));
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = session.next_event().await {
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    Notices {
        member: ordinal,
        events,
    }
}

impl Notices {
    /// Waits until every kind in `want` has arrived (in any order, among others); returns all
    /// the events seen.
    pub async fn expect(&mut self, want: &[GrEventKind], within: Duration) -> Vec<GrEvent> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while !want
            .iter()
            .all(|k| seen.iter().any(|e: &GrEvent| &e.kind == k))
        {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => seen.push(event),
                Ok(None) => panic!(
                    "member {}: the X session ended; saw {seen:?}, wanted {want:?}",
                    self.member
                ),
                Err(_) => panic!(
                    "member {}: no {want:?} within {within:?}; saw {seen:?}",
                    self.member
                ),
            }
        }
        seen
    }
}
