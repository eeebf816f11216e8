//! End-to-end tests of the X protocol client and monitor against a small X server on loopback,
//! and cross-checks against Oracle's implementation (`crosscheck`).

mod crosscheck;
mod server;

use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use innodb_operator::xproto::client::{self, ClientError, Session};
use innodb_operator::xproto::frame::FrameError;
use innodb_operator::xproto::{
    ClusterTargets, ConnOptions, Credentials, Endpoint, GrEventKind, MemberEvent, Monitor,
    MonitorConfig, SessionOptions, TlsOptions, TlsVerify, WakeReason, backoff::Backoff, tls,
};
use server::{Behavior, FakeXServer, PASSWORD, USER};

fn fast_conn() -> ConnOptions {
    ConnOptions {
        connect_timeout: Duration::from_millis(500),
        io_timeout: Duration::from_millis(400),
        ..ConnOptions::default()
    }
}

fn session_options(verify: TlsVerify, server_name: Option<&str>, password: &str) -> SessionOptions {
    SessionOptions {
        credentials: Credentials::new(USER, password),
        tls: TlsOptions {
            verify,
            server_name: server_name.map(str::to_owned),
        },
    }
}

async fn open_session(
    server: &FakeXServer,
    options: &SessionOptions,
) -> Result<Session, ClientError> {
    let config = tls::client_config(&options.tls).unwrap();
    Session::open(&server.endpoint(), options, config, &fast_conn()).await
}

#[tokio::test]
async fn probe_measures_the_capabilities_round_trip_and_closes() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let latency = client::probe(&server.endpoint(), &fast_conn())
        .await
        .unwrap();
    assert!(latency > Duration::ZERO, "{latency:?}");
    server.wait_for("close", |s| s.closes == 1).await;
    let stats = server.stats();
    assert_eq!(
        (stats.connections, stats.capability_gets, stats.auth_ok),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn probe_times_out_against_a_server_that_never_answers() {
    let server = FakeXServer::start(Behavior::Silent).await;
    let started = Instant::now();
    let err = client::probe(&server.endpoint(), &fast_conn())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn probe_rejects_an_oversized_frame_without_allocating_it() {
    let server = FakeXServer::start(Behavior::Oversized).await;
    let err = client::probe(&server.endpoint(), &fast_conn())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Frame(FrameError::TooLarge { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn probe_reports_a_refused_connection() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = client::probe(&Endpoint::new("127.0.0.1", port), &fast_conn())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err}");
}

#[tokio::test]
async fn session_turns_group_replication_notices_into_typed_events() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let options = session_options(TlsVerify::AcceptSelfSigned, None, PASSWORD);
    let mut session = open_session(&server, &options).await.unwrap();
    let stats = server.stats();
    assert_eq!(
        (stats.tls_upgrades, stats.auth_ok, stats.notice_sessions),
        (1, 1, 1)
    );

    let sent = [
        (2, GrEventKind::ViewChange, "1700:1"),
        (3, GrEventKind::RoleChange, "1700:1"),
        (4, GrEventKind::StateChange, "1700:2"),
        (1, GrEventKind::QuorumLoss, "1700:2"),
        (77, GrEventKind::Unknown(77), "1700:3"),
    ];
    for (raw, _, view) in sent {
        assert_eq!(server.push_notice(raw, view), 1);
    }
    for (_, kind, view) in sent {
        let event = tokio::time::timeout(Duration::from_secs(2), session.next_event())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(event.kind, kind);
        assert_eq!(event.view_id.as_deref(), Some(view));
    }
    assert!(session.ping().await.unwrap() > Duration::ZERO);
    session.close().await;
    server
        .wait_for("close", |s| s.closes == 1 && s.pings == 1)
        .await;
}

#[tokio::test]
async fn notices_arriving_during_a_ping_are_kept() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let options = session_options(TlsVerify::AcceptSelfSigned, None, PASSWORD);
    let mut session = open_session(&server, &options).await.unwrap();
    server.push_notice(2, "9:9");
    session.ping().await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(2), session.next_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(event.kind, GrEventKind::ViewChange);
}

#[tokio::test]
async fn session_verifies_the_server_against_a_ca() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let good = session_options(
        TlsVerify::CaPem(server.ca_pem.clone()),
        Some("localhost"),
        PASSWORD,
    );
    open_session(&server, &good).await.unwrap();

    let other_ca = FakeXServer::start(Behavior::Normal).await.ca_pem.clone();
    let wrong_ca = session_options(TlsVerify::CaPem(other_ca), Some("localhost"), PASSWORD);
    let err = open_session(&server, &wrong_ca).await.err().unwrap();
    assert!(matches!(err, ClientError::Handshake(_)), "{err}");

    let wrong_name = session_options(
        TlsVerify::CaPem(server.ca_pem.clone()),
        Some("db.example"),
        PASSWORD,
    );
    let err = open_session(&server, &wrong_name).await.err().unwrap();
    assert!(matches!(err, ClientError::Handshake(_)), "{err}");
    assert_eq!(
        server.stats().auth_ok,
        1,
        "no credentials sent to an unverified server"
    );
}

#[tokio::test]
async fn a_server_without_tls_is_refused_before_credentials_are_sent() {
    let server = FakeXServer::start(Behavior::NoTls).await;
    let options = session_options(TlsVerify::AcceptSelfSigned, None, PASSWORD);
    let err = open_session(&server, &options).await.err().unwrap();
    assert!(
        matches!(err, ClientError::Server { code: 5001, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("enabling TLS"), "{err}");
    let stats = server.stats();
    assert_eq!((stats.auth_ok, stats.auth_failures), (0, 0));
}

#[tokio::test]
async fn wrong_password_is_a_clear_error_without_the_password() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let options = session_options(TlsVerify::AcceptSelfSigned, None, "not-the-password");
    let err = open_session(&server, &options).await.err().unwrap();
    let ClientError::Server { code, .. } = &err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(*code, 1045);
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("not-the-password"), "{shown}");
    assert!(shown.contains("PLAIN authentication"), "{shown}");
}

/// Waits for the first event matching `pred`, failing after `within`.
async fn next_matching<S, K>(
    events: &mut S,
    within: Duration,
    what: &str,
    pred: impl Fn(&MemberEvent<K>) -> bool,
) -> MemberEvent<K>
where
    S: Stream<Item = MemberEvent<K>> + Unpin,
    K: std::fmt::Debug,
{
    tokio::time::timeout(within, async {
        loop {
            let event = events.next().await.expect("event stream ended");
            if pred(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {within:?}"))
}

fn fast_monitor() -> MonitorConfig {
    MonitorConfig {
        probe_interval: Duration::from_millis(200),
        conn: fast_conn(),
        backoff: Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(400),
        },
        channel_capacity: 256,
    }
}

fn is_wake(
    event: &MemberEvent<&'static str>,
    endpoint: &Endpoint,
    pred: impl Fn(&WakeReason) -> bool,
) -> bool {
    matches!(event, MemberEvent::Wake(w) if &w.endpoint == endpoint && pred(&w.reason))
}

#[tokio::test]
async fn monitor_wakes_on_notices_reconnects_and_is_not_blocked_by_a_dead_member() {
    let good = FakeXServer::start(Behavior::Normal).await;
    let dead = FakeXServer::start(Behavior::Silent).await;
    let (handle, mut events) = Monitor::start::<&'static str>(fast_monitor());
    let (a, d) = (good.endpoint(), dead.endpoint());
    handle
        .set_targets(
            "ns/c",
            ClusterTargets {
                endpoints: vec![a.clone(), d.clone()],
                session: Some(session_options(TlsVerify::AcceptSelfSigned, None, PASSWORD)),
            },
        )
        .unwrap();

    let within = Duration::from_secs(5);
    next_matching(&mut events, within, "session opened", |e| {
        is_wake(e, &a, |r| *r == WakeReason::SessionOpened)
    })
    .await;
    let ok = next_matching(
        &mut events,
        within,
        "good probe",
        |e| matches!(e, MemberEvent::Probe(p) if p.endpoint == a && p.outcome.is_ok()),
    )
    .await;
    let MemberEvent::Probe(ok) = ok else {
        unreachable!()
    };
    assert!(ok.latency_seconds().unwrap() > 0.0);
    next_matching(&mut events, within, "dead probe timeout", |e| {
        matches!(e, MemberEvent::Probe(p) if p.endpoint == d && p.outcome.as_ref().is_err_and(|m| m.contains("timed out")))
    })
    .await;

    let health = handle.health(&"ns/c");
    assert_eq!(health.len(), 2);
    let (good_health, dead_health) = if health[0].endpoint == a {
        (&health[0], &health[1])
    } else {
        (&health[1], &health[0])
    };
    assert!(good_health.session_open, "{good_health:?}");
    assert!(
        matches!(good_health.last_probe, Some(Ok(_))),
        "{good_health:?}"
    );
    assert!(!dead_health.session_open, "{dead_health:?}");
    assert!(
        dead_health.consecutive_probe_failures >= 1,
        "{dead_health:?}"
    );

    // A notice wakes the cluster without waiting for a poll, although the other member never
    // answers (the bound is loose for loaded CI machines; latency is measured in the bench).
    let pushed = Instant::now();
    assert_eq!(good.push_notice(2, "42:7"), 1);
    let wake = next_matching(&mut events, within, "view change wake", |e| {
        is_wake(e, &a, |r| matches!(r, WakeReason::GroupReplication(_)))
    })
    .await;
    assert!(
        pushed.elapsed() < Duration::from_secs(2),
        "wake took {:?}",
        pushed.elapsed()
    );
    let MemberEvent::Wake(wake) = wake else {
        unreachable!()
    };
    assert_eq!(wake.cluster, "ns/c");
    let WakeReason::GroupReplication(gr) = wake.reason else {
        unreachable!()
    };
    assert_eq!(
        (gr.kind, gr.view_id.as_deref()),
        (GrEventKind::ViewChange, Some("42:7"))
    );

    // The server drops every connection: the session is lost, re-established, and works again.
    good.drop_connections();
    next_matching(&mut events, within, "session lost", |e| {
        is_wake(e, &a, |r| matches!(r, WakeReason::SessionLost(_)))
    })
    .await;
    next_matching(&mut events, within, "session reopened", |e| {
        is_wake(e, &a, |r| *r == WakeReason::SessionOpened)
    })
    .await;
    assert_eq!(good.stats().notice_sessions, 2);
    good.push_notice(3, "42:8");
    next_matching(&mut events, within, "role change after reconnect", |e| {
        is_wake(
            e,
            &a,
            |r| matches!(r, WakeReason::GroupReplication(g) if g.kind == GrEventKind::RoleChange),
        )
    })
    .await;

    // Pings keep running on the session.
    good.wait_for("session pings", |s| s.pings >= 1).await;

    // The good member keeps its 200 ms probe rhythm (about 7 in the window) while every probe of
    // the dead one hangs until its timeout.
    let window = Duration::from_millis(1500);
    let mut good_probes = 0;
    let mut dead_probes = 0;
    let _ = tokio::time::timeout(window, async {
        while let Some(event) = events.next().await {
            if let MemberEvent::Probe(p) = event {
                if p.endpoint == a && p.outcome.is_ok() {
                    good_probes += 1;
                } else if p.endpoint == d {
                    dead_probes += 1;
                }
            }
        }
    })
    .await;
    assert!(good_probes >= 4, "{good_probes} good probes in {window:?}");
    // Each dead probe ends at its 400 ms deadline, so a few finish in the window, never more.
    assert!(
        (1..=5).contains(&dead_probes),
        "{dead_probes} dead probes in {window:?}"
    );

    // Removing the targets stops the member tasks: no new connections afterwards.
    handle
        .set_targets("ns/c", ClusterTargets::default())
        .unwrap();
    assert!(handle.health(&"ns/c").is_empty());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = (good.stats().connections, dead.stats().connections);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!((good.stats().connections, dead.stats().connections), before);
}

#[tokio::test]
async fn reconnects_back_off_and_new_credentials_restart_the_session() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let mut config = fast_monitor();
    config.probe_interval = Duration::from_secs(60);
    let (handle, mut events) = Monitor::start::<&'static str>(config);
    let targets = |password: &str| ClusterTargets {
        endpoints: vec![server.endpoint()],
        session: Some(session_options(TlsVerify::AcceptSelfSigned, None, password)),
    };
    handle.set_targets("ns/c", targets("wrong")).unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let failures = server.stats().auth_failures;
    // Delays (50ms base, doubling, 400ms cap, jittered down to half) allow at most ~12 attempts
    // in 2 s; without backoff there would be hundreds.
    assert!((2..=12).contains(&failures), "{failures} attempts in 2 s");

    // Same endpoints, new credentials: the member task restarts and the session opens.
    handle.set_targets("ns/c", targets(PASSWORD)).unwrap();
    let endpoint = server.endpoint();
    next_matching(&mut events, Duration::from_secs(5), "session opened", |e| {
        is_wake(e, &endpoint, |r| *r == WakeReason::SessionOpened)
    })
    .await;
    assert_eq!(server.stats().auth_ok, 1);
}

#[tokio::test]
async fn probe_health_transitions_wake_the_cluster() {
    let server = FakeXServer::start(Behavior::Normal).await;
    let (handle, mut events) = Monitor::start::<&'static str>(fast_monitor());
    let endpoint = server.endpoint();
    handle
        .set_targets(
            "ns/c",
            ClusterTargets {
                endpoints: vec![endpoint.clone()],
                session: None,
            },
        )
        .unwrap();
    let within = Duration::from_secs(5);
    next_matching(
        &mut events,
        within,
        "healthy probe",
        |e| matches!(e, MemberEvent::Probe(p) if p.outcome.is_ok()),
    )
    .await;
    drop(server);
    next_matching(&mut events, within, "unhealthy wake", |e| {
        is_wake(e, &endpoint, |r| {
            *r == WakeReason::ProbeHealthChanged { healthy: false }
        })
    })
    .await;
}
