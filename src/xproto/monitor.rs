//! The member monitor: one task per member endpoint that probes the X protocol port on an
//! interval and, when the cluster has credentials, keeps a TLS session subscribed to Group
//! Replication notices. It publishes [`MemberEvent`]s on one stream: probe results (latency for
//! the metrics) and wake-ups carrying the cluster key (reconcile triggers).
//!
//! A dead or slow member never blocks the others: each member has its own task, every connect and
//! round trip has a deadline, and reconnects back off exponentially (capped, jittered).

use std::collections::{HashMap, HashSet};
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::backoff::Backoff;
use super::client::{self, ClientError, ConnOptions, Endpoint, Session, SessionOptions};
use super::health::{HealthBoard, MemberHealth};
use super::notice::GrEvent;
use super::tls::{self, TlsError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorConfig {
    /// How often each member is probed (and its session pinged).
    pub probe_interval: Duration,
    pub conn: ConnOptions,
    /// Delay between session reconnect attempts.
    pub backoff: Backoff,
    /// Events buffered for a slow consumer. When full, probe results are dropped (they are
    /// samples) while wake-ups wait for room.
    pub channel_capacity: usize,
}

/// The shortest probe interval honoured; a zero interval would spin.
pub(crate) const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);

impl MonitorConfig {
    fn probe_period(&self) -> Duration {
        self.probe_interval.max(MIN_PROBE_INTERVAL)
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(5),
            conn: ConnOptions::default(),
            backoff: Backoff::default(),
            channel_capacity: 1024,
        }
    }
}

/// What to monitor for one cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterTargets {
    pub endpoints: Vec<Endpoint>,
    /// Credentials and TLS settings for notice sessions; `None` means probes only.
    pub session: Option<SessionOptions>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MemberEvent<K> {
    Probe(ProbeResult<K>),
    Wake(Wake<K>),
}

impl<K> MemberEvent<K> {
    #[cfg(test)]
    pub(crate) fn cluster(&self) -> &K {
        match self {
            Self::Probe(p) => &p.cluster,
            Self::Wake(w) => &w.cluster,
        }
    }

    /// The cluster to reconcile, for wake-ups; `None` for probe results.
    pub(crate) fn into_wake_key(self) -> Option<K> {
        match self {
            Self::Wake(w) => Some(w.cluster),
            Self::Probe(_) => None,
        }
    }
}

/// One capabilities probe of one member.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult<K> {
    pub(crate) cluster: K,
    pub endpoint: Endpoint,
    /// The capabilities round-trip latency, or why the probe failed.
    pub outcome: Result<Duration, String>,
}

impl<K> ProbeResult<K> {
    /// Latency in seconds, the unit Prometheus histograms use.
    pub fn latency_seconds(&self) -> Option<f64> {
        self.outcome.as_ref().ok().map(Duration::as_secs_f64)
    }
}

/// Something happened that the cluster's reconcile should look at now.
#[derive(Debug, Clone, PartialEq)]
pub struct Wake<K> {
    pub cluster: K,
    pub endpoint: Endpoint,
    pub reason: WakeReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeReason {
    /// A notice session was (re)established; notices may have been missed before it.
    SessionOpened,
    /// A Group Replication notice arrived.
    GroupReplication(GrEvent),
    /// The notice session failed; it is being re-established.
    SessionLost(String),
    /// The probe went from failing to passing or back.
    ProbeHealthChanged { healthy: bool },
}

/// Starts monitors; see [`MonitorHandle`].
pub struct Monitor;

impl Monitor {
    /// Returns the handle that sets what to monitor and the stream of events. Member tasks are
    /// spawned on the current Tokio runtime by [`MonitorHandle::set_targets`]. When every handle
    /// is dropped (or [`MonitorHandle::shutdown`] is called) all member tasks stop and the stream
    /// ends.
    pub fn start<K>(config: MonitorConfig) -> (MonitorHandle<K>, ReceiverStream<MemberEvent<K>>)
    where
        K: Clone + Eq + Hash + Debug + Display + Send + Sync + 'static,
    {
        let (tx, rx) = mpsc::channel(config.channel_capacity.max(1));
        let root = CancellationToken::new();
        let shared = Shared {
            config,
            tx,
            root: root.clone(),
            _stop_on_drop: root.drop_guard(),
            clusters: Mutex::default(),
            health: HealthBoard::default(),
            next_task_id: AtomicU64::new(0),
            tls_configs: tls::ConfigCache::default(),
        };
        (
            MonitorHandle {
                shared: Arc::new(shared),
            },
            ReceiverStream::new(rx),
        )
    }
}

/// Controls which members are monitored. Cheap to clone.
pub struct MonitorHandle<K> {
    shared: Arc<Shared<K>>,
}

impl<K> Clone for MonitorHandle<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<K> {
    config: MonitorConfig,
    tx: mpsc::Sender<MemberEvent<K>>,
    root: CancellationToken,
    _stop_on_drop: DropGuard,
    clusters: Mutex<HashMap<K, ClusterState>>,
    health: HealthBoard<K>,
    next_task_id: AtomicU64,
    tls_configs: tls::ConfigCache,
}

#[derive(Default)]
struct ClusterState {
    session: Option<SessionOptions>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    members: HashMap<Endpoint, CancellationToken>,
}

impl ClusterState {
    fn stop_all<K: Eq + Hash + Clone>(&mut self, cluster: &K, health: &HealthBoard<K>) {
        for (endpoint, token) in self.members.drain() {
            token.cancel();
            health.unregister(cluster, &endpoint);
        }
    }
}

impl<K> MonitorHandle<K>
where
    K: Clone + Eq + Hash + Debug + Display + Send + Sync + 'static,
{
    /// Makes the monitored members of `cluster` exactly `targets.endpoints`: starts tasks for
    /// new endpoints, stops those no longer listed, and restarts all of them when the session
    /// settings changed. Idempotent; call it on every reconcile. Fails (changing nothing) only
    /// when the TLS settings are unusable.
    pub fn set_targets(&self, cluster: K, targets: ClusterTargets) -> Result<(), TlsError> {
        let mut clusters = self
            .shared
            .clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let changed_session = clusters.get(&cluster).map(|s| &s.session) != Some(&targets.session);
        let new_tls = match (&targets.session, changed_session) {
            (Some(session), true) => Some(self.shared.tls_configs.get(&session.tls)?),
            _ => None,
        };
        let state = clusters.entry(cluster.clone()).or_default();
        let health = &self.shared.health;
        if changed_session {
            state.stop_all(&cluster, health);
            state.session = targets.session.clone();
            state.tls_config = new_tls;
        }
        let wanted: HashSet<&Endpoint> = targets.endpoints.iter().collect();
        state.members.retain(|endpoint, token| {
            let keep = wanted.contains(endpoint);
            if !keep {
                token.cancel();
                health.unregister(&cluster, endpoint);
            }
            keep
        });
        for endpoint in wanted {
            if state.members.contains_key(endpoint) {
                continue;
            }
            let token = self.shared.root.child_token();
            let id = self.shared.next_task_id.fetch_add(1, Ordering::Relaxed);
            health.register(&cluster, endpoint, id);
            let member = Member {
                id,
                cluster: cluster.clone(),
                endpoint: endpoint.clone(),
                config: self.shared.config,
                tx: self.shared.tx.clone(),
                health: health.clone(),
                session: state.session.clone().zip(state.tls_config.clone()),
            };
            tokio::spawn(member.run(token.clone()));
            state.members.insert(endpoint.clone(), token);
        }
        if state.members.is_empty() {
            clusters.remove(&cluster);
        }
        Ok(())
    }

    /// Stops monitoring `cluster` (e.g. when it is deleted).
    pub(crate) fn remove(&self, cluster: &K) {
        let mut clusters = self
            .shared
            .clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(mut state) = clusters.remove(cluster) {
            state.stop_all(cluster, &self.shared.health);
        }
    }

    /// The latest probe and session state of each monitored member of `cluster`, sorted by
    /// endpoint.
    pub fn health(&self, cluster: &K) -> Vec<MemberHealth> {
        self.shared.health.snapshot(cluster)
    }

    /// The endpoints currently monitored for `cluster`, sorted (what the tests check).
    #[cfg(test)]
    pub(crate) fn endpoints(&self, cluster: &K) -> Vec<Endpoint> {
        let clusters = self
            .shared
            .clusters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut endpoints: Vec<Endpoint> = clusters
            .get(cluster)
            .map(|s| s.members.keys().cloned().collect())
            .unwrap_or_default();
        endpoints.sort();
        endpoints
    }

    /// Stops every member task; the event stream ends once they have exited.
    pub(crate) fn shutdown(&self) {
        self.shared.root.cancel();
    }
}

/// Why a session's serve loop ended.
enum SessionEnd {
    ReceiverGone,
    Lost(ClientError),
}

struct Member<K> {
    /// Identifies this task in the health board.
    id: u64,
    cluster: K,
    endpoint: Endpoint,
    config: MonitorConfig,
    tx: mpsc::Sender<MemberEvent<K>>,
    health: HealthBoard<K>,
    session: Option<(SessionOptions, Arc<rustls::ClientConfig>)>,
}

impl<K: Clone + Eq + Hash + Debug + Display + Send + Sync + 'static> Member<K> {
    fn update_health(&self, f: impl FnOnce(&mut MemberHealth)) {
        self.health
            .update(&self.cluster, &self.endpoint, self.id, f);
    }

    async fn run(self, cancel: CancellationToken) {
        let sessions = async {
            match &self.session {
                Some((options, tls_config)) => self.session_loop(options, tls_config).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = self.probe_loop() => {}
            _ = sessions => {}
        }
        tracing::debug!(cluster = %self.cluster, endpoint = %self.endpoint, "X protocol member monitor stopped");
    }

    /// Sends a wake-up, waiting for room; `false` when the consumer is gone.
    async fn wake(&self, reason: WakeReason) -> bool {
        let wake = Wake {
            cluster: self.cluster.clone(),
            endpoint: self.endpoint.clone(),
            reason,
        };
        self.tx.send(MemberEvent::Wake(wake)).await.is_ok()
    }

    /// Probes forever; returns only when the consumer is gone.
    async fn probe_loop(&self) {
        let mut tick = tokio::time::interval(self.config.probe_period());
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut healthy = None;
        loop {
            tick.tick().await;
            let outcome = client::probe(&self.endpoint, &self.config.conn)
                .await
                .map_err(|e| e.to_string());
            if let Err(error) = &outcome {
                tracing::debug!(cluster = %self.cluster, endpoint = %self.endpoint, %error, "X protocol probe failed");
            }
            let now_healthy = outcome.is_ok();
            self.update_health(|h| h.record_probe(&outcome));
            let result = ProbeResult {
                cluster: self.cluster.clone(),
                endpoint: self.endpoint.clone(),
                outcome,
            };
            match self.tx.try_send(MemberEvent::Probe(result)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    tracing::debug!(endpoint = %self.endpoint, "event consumer is behind; probe result dropped");
                }
                Err(TrySendError::Closed(_)) => return,
            }
            if healthy.is_some_and(|was| was != now_healthy)
                && !self
                    .wake(WakeReason::ProbeHealthChanged {
                        healthy: now_healthy,
                    })
                    .await
            {
                return;
            }
            healthy = Some(now_healthy);
        }
    }

    /// Keeps a notice session open, reconnecting with backoff; returns only when the consumer is
    /// gone.
    async fn session_loop(&self, options: &SessionOptions, tls_config: &Arc<rustls::ClientConfig>) {
        let mut attempt: u32 = 0;
        loop {
            match Session::open(
                &self.endpoint,
                options,
                tls_config.clone(),
                &self.config.conn,
            )
            .await
            {
                Ok(mut session) => {
                    attempt = 0;
                    self.update_health(|h| h.session_open = true);
                    tracing::info!(cluster = %self.cluster, endpoint = %self.endpoint, "X protocol notice session open");
                    if !self.wake(WakeReason::SessionOpened).await {
                        return;
                    }
                    let error = match self.serve(&mut session).await {
                        SessionEnd::ReceiverGone => return,
                        SessionEnd::Lost(error) => error,
                    };
                    self.update_health(|h| h.session_open = false);
                    tracing::warn!(cluster = %self.cluster, endpoint = %self.endpoint, %error, "X protocol notice session lost; reconnecting");
                    if !self.wake(WakeReason::SessionLost(error.to_string())).await {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(cluster = %self.cluster, endpoint = %self.endpoint, attempt, %error, "cannot open X protocol notice session");
                }
            }
            let delay = self.config.backoff.delay(attempt, rand::random::<f64>());
            attempt = attempt.saturating_add(1);
            tokio::time::sleep(delay).await;
        }
    }

    /// Forwards notices as wake-ups and pings the session every probe interval.
    async fn serve(&self, session: &mut Session) -> SessionEnd {
        let period = self.config.probe_period();
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = session.next_event() => match event {
                    Ok(event) => {
                        tracing::info!(cluster = %self.cluster, endpoint = %self.endpoint, kind = ?event.kind, view_id = event.view_id.as_deref().unwrap_or(""), "Group Replication notice");
                        if !self.wake(WakeReason::GroupReplication(event)).await {
                            return SessionEnd::ReceiverGone;
                        }
                    }
                    Err(error) => return SessionEnd::Lost(error),
                },
                _ = ping.tick() => {
                    if let Err(error) = session.ping().await {
                        return SessionEnd::Lost(error);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_key_only_for_wakes() {
        let endpoint = Endpoint::new("h", 1);
        let probe = MemberEvent::Probe(ProbeResult {
            cluster: "ns/c",
            endpoint: endpoint.clone(),
            outcome: Ok(Duration::from_millis(3)),
        });
        assert_eq!(*probe.cluster(), "ns/c");
        let MemberEvent::Probe(p) = &probe else {
            unreachable!()
        };
        assert_eq!(p.latency_seconds(), Some(0.003));
        assert_eq!(probe.into_wake_key(), None);
        let wake = MemberEvent::Wake(Wake {
            cluster: "ns/c",
            endpoint,
            reason: WakeReason::SessionOpened,
        });
        assert_eq!(wake.into_wake_key(), Some("ns/c"));
    }

    #[tokio::test]
    async fn set_targets_adds_removes_and_clears() {
        let (handle, _events) = Monitor::start::<&'static str>(MonitorConfig::default());
        let a = Endpoint::new("127.0.0.1", 1);
        let b = Endpoint::new("127.0.0.1", 2);
        let targets = |endpoints: Vec<Endpoint>| ClusterTargets {
            endpoints,
            session: None,
        };
        handle
            .set_targets("c", targets(vec![a.clone(), b.clone()]))
            .unwrap();
        assert_eq!(handle.endpoints(&"c"), vec![a.clone(), b.clone()]);
        let health: Vec<Endpoint> = handle
            .health(&"c")
            .into_iter()
            .map(|h| h.endpoint)
            .collect();
        assert_eq!(health, vec![a.clone(), b.clone()]);
        handle.set_targets("c", targets(vec![b.clone()])).unwrap();
        assert_eq!(handle.endpoints(&"c"), vec![b.clone()]);
        assert_eq!(handle.health(&"c").len(), 1);
        handle.set_targets("c", targets(vec![])).unwrap();
        assert!(handle.endpoints(&"c").is_empty());
        handle.set_targets("d", targets(vec![a.clone()])).unwrap();
        handle.remove(&"d");
        assert!(handle.endpoints(&"d").is_empty());
        assert!(handle.health(&"d").is_empty());
    }

    #[test]
    fn zero_probe_interval_is_clamped() {
        let config = MonitorConfig {
            probe_interval: Duration::ZERO,
            ..MonitorConfig::default()
        };
        assert_eq!(config.probe_period(), MIN_PROBE_INTERVAL);
        assert_eq!(
            MonitorConfig::default().probe_period(),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn bad_tls_settings_change_nothing() {
        let (handle, _events) = Monitor::start::<&'static str>(MonitorConfig::default());
        let targets = ClusterTargets {
            endpoints: vec![Endpoint::new("127.0.0.1", 1)],
            session: Some(SessionOptions {
                credentials: client::Credentials::new("u", "p"),
                tls: tls::TlsOptions {
                    verify: tls::TlsVerify::CaPem("garbage".into()),
                    server_name: None,
                },
            }),
        };
        assert!(handle.set_targets("c", targets).is_err());
        assert!(handle.endpoints(&"c").is_empty());
    }

    #[tokio::test]
    async fn stream_ends_after_shutdown() {
        use futures::StreamExt;
        let (handle, mut events) = Monitor::start::<&'static str>(MonitorConfig::default());
        handle
            .set_targets(
                "c",
                ClusterTargets {
                    endpoints: vec![Endpoint::new("127.0.0.1", 1)],
                    session: None,
                },
            )
            .unwrap();
        handle.shutdown();
        drop(handle);
        let rest = tokio::time::timeout(Duration::from_secs(5), async {
            let mut n = 0;
            while events.next().await.is_some() {
                n += 1;
            }
            n
        })
        .await
        .expect("stream ends once the member tasks stopped");
        assert!(rest <= 1);
    }
}
