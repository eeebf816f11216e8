//! Leader election: one replica of the operator acts (reconciles, holds the X protocol sessions
//! to the members, schedules backups); the others stand by and take over when it is gone.
//!
//! ## Who holds the lease
//!
//! The `coordination.k8s.io` Lease `<name>` in the operator's namespace is held with
//! `kube-lease-manager`: a replica takes it when it is free or expired, and the holder renews it
//! every `renew_period` (the Lease says `leaseDurationSeconds: duration`). A standby takes an
//! expired lease once its own clock is past the Lease's `renewTime + duration`.
//!
//! ## When the holder stops: the fence
//!
//! The crate does not say when a holder stops being sure of its lease: a renewal that fails
//! (the API server unreachable) is retried and the holder goes on reporting itself leader. So
//! this module keeps a **fence** of its own, fed by a watch on the Lease: each time the Lease
//! shows this replica as holder, renewed at `renewTime`, the fence allows acting until
//! `renewTime + renew_deadline` (converted to the monotonic clock when the event arrives). The
//! replica leads while the fence holds. When it runs out — no renewal seen in time, another
//! holder, the Lease released or deleted — the replica is **deposed**: from that instant the
//! [`WriteGuard`] in the operator's Kubernetes client refuses every request that changes
//! something, the controller drops its reconciles and the X protocol sessions, and the process
//! exits (Kubernetes restarts it, as a standby).
//!
//! ## Why a deposed leader stops before the next one starts
//!
//! Let `R` be the `renewTime` of the last renewal the leader made: its own wall clock, written
//! into the Lease. A standby takes the lease only when its clock passes `R + duration`; with
//! clocks at most `skew` apart, that is not before real time `R + duration − skew`, and it then
//! still reads the Lease, releases it and acquires it (two more round trips and a random wait of
//! 0.1–1 s) before it acts. The leader's fence ends at `R + renew_deadline` by its own clocks
//! (the monotonic clock runs on while the process is paused, so a leader frozen past its lease
//! wakes up deposed), and writes are refused from that instant. So no two replicas act at once
//! as long as `duration − renew_deadline` (3 s with the defaults 15 s and 12 s) exceeds the
//! skew between the nodes' clocks plus the time a request already sent spends in flight. The
//! one gap: SQL the topology step sends to the members is not behind the write guard; the
//! process exits within milliseconds of the fence ending, well inside that margin.
//!
//! ## How fast a standby takes over
//!
//! When the leader's process dies just after a renewal at `R`, a standby acquires at
//! `R + duration` plus at most about a second (its own read, release, random wait and
//! acquire), then starts its watches and reconciles: about `duration + 2 s` (17 s with the
//! defaults); `e2e/operator.rs` checks the bound with a `kill -9` of the leader.
//! A leader stopped with SIGTERM releases the lease, but a standby still waits out the
//! `duration` it last read.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::client::ClientBuilder;
use kube::runtime::watcher;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::timeout::TimeoutLayer;
use tower::{BoxError, Layer, Service};
use tracing::{info, warn};

/// Why leader election could not run, or a write was refused.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "lease timing {duration}s / renew period {renew_period}s / renew deadline {renew_deadline}s: need 0 < renew period < renew deadline < lease duration"
    )]
    Timing {
        duration: u64,
        renew_period: u64,
        renew_deadline: u64,
    },
    #[error("building the Kubernetes client that renews the lease: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "cannot read or create the Lease {namespace}/{name} (the operator's Role must allow get, list, watch, create and patch on leases in its namespace): {source}"
    )]
    Lease {
        namespace: String,
        name: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error(
        "write refused: this replica does not hold the operator's lease (it stands by or was deposed; the leader does the work)"
    )]
    NotLeading,
}

/// The lease's timing, in whole seconds as the Lease stores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    duration: u64,
    renew_period: u64,
    renew_deadline: u64,
}

impl Timing {
    /// `duration`: how long a lease not renewed stays taken; `renew_period`: how often the
    /// holder renews it; `renew_deadline`: how long after its last renewal the holder goes on
    /// acting. `0 < renew_period < renew_deadline < duration`.
    pub fn new(duration: u64, renew_period: u64, renew_deadline: u64) -> Result<Self, LeaderError> {
        if 0 < renew_period && renew_period < renew_deadline && renew_deadline < duration {
            Ok(Timing {
                duration,
                renew_period,
                renew_deadline,
            })
        } else {
            Err(LeaderError::Timing {
                duration,
                renew_period,
                renew_deadline,
            })
        }
    }

    fn renew_deadline(&self) -> Duration {
        Duration::from_secs(self.renew_deadline)
    }

    /// The crate renews `grace` seconds before the lease would expire.
    fn grace(&self) -> u64 {
        self.duration - self.renew_period
    }

    /// How long one request of a renewal may take: half the time between a renewal and the
    /// renew deadline, so that a request lost on a dead connection is tried again in time.
    fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.renew_deadline - self.renew_period) / 2
    }
}

/// Which Lease, and who this replica is.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    /// The operator's own namespace; `None` takes the client's default (the service account's
    /// namespace in a pod, the kubeconfig context's otherwise).
    pub namespace: Option<String>,
    /// Unique per process: see [`identity`].
    pub identity: String,
    pub timing: Timing,
}

/// This process's holder identity: the pod's name and a random suffix, so that a container
/// restarted in the same pod never takes over a lease its predecessor held.
pub fn identity(pod_name: Option<&str>) -> String {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{}-{suffix}", pod_name.unwrap_or("innodb-operator"))
}

/// Why a leader stopped leading.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Deposition {
    #[error(
        "the lease was not seen renewed within the renew deadline ({0:?}): the API server is unreachable or too slow"
    )]
    NotRenewed(Duration),
    #[error("the lease is now held by {0}")]
    TakenOver(String),
    #[error("the lease was released or deleted")]
    Released,
}

/// What this replica is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Waits for the lease; does nothing else.
    Standby,
    /// Holds the lease and acts.
    Leading,
    /// Held the lease and lost it: stops, for good.
    Deposed(Deposition),
}

/// What one look at the Lease says about this replica.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    /// This replica holds it, for `remaining` more of the renew deadline.
    Holder { remaining: Duration },
    /// This replica's renew deadline has passed (no renewal seen in time).
    Expired,
    /// Another holder, or none.
    Other(Option<String>),
}

/// Reads a Lease (`None`: there is none) at wall-clock time `now`.
fn seen(
    spec: Option<&LeaseSpec>,
    me: &str,
    renew_deadline: Duration,
    now: jiff::Timestamp,
) -> Seen {
    let holder = spec.and_then(|s| s.holder_identity.clone());
    if holder.as_deref() != Some(me) {
        return Seen::Other(holder);
    }
    let Some(renewed) = spec.and_then(|s| s.renew_time.as_ref()) else {
        return Seen::Expired;
    };
    let until = renewed.0 + jiff::SignedDuration::try_from(renew_deadline).unwrap_or_default();
    match until.duration_since(now).try_into() {
        Ok(remaining) if remaining > Duration::ZERO => Seen::Holder { remaining },
        _ => Seen::Expired,
    }
}

/// The role after `seen`. Deposed is final; a standby becomes leader only on seeing itself hold
/// a lease that is still good.
fn next(role: &Role, seen: &Seen, renew_deadline: Duration) -> Role {
    match (role, seen) {
        (Role::Deposed(why), _) => Role::Deposed(why.clone()),
        (_, Seen::Holder { .. }) => Role::Leading,
        (Role::Standby, _) => Role::Standby,
        (Role::Leading, Seen::Expired) => Role::Deposed(Deposition::NotRenewed(renew_deadline)),
        (Role::Leading, Seen::Other(Some(holder))) => {
            Role::Deposed(Deposition::TakenOver(holder.clone()))
        }
        (Role::Leading, Seen::Other(None)) => Role::Deposed(Deposition::Released),
    }
}

/// Until when this replica may act (monotonic clock); shared with the [`WriteGuard`].
#[derive(Debug, Default)]
struct Fence {
    until: Mutex<Option<Instant>>,
}

impl Fence {
    fn allows(&self, now: Instant) -> bool {
        self.until().is_some_and(|until| now < until)
    }

    fn until(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, until: Option<Instant>) {
        *self.until.lock().unwrap_or_else(|p| p.into_inner()) = until;
    }
}

/// Whether this replica may act now, asked before a Group Replication operation: a leader that
/// was frozen past its fence must not start one in the moment before it exits.
#[derive(Clone, Debug)]
pub(crate) struct Permit(Arc<Fence>);

impl Permit {
    pub(crate) fn allows_now(&self) -> bool {
        self.0.allows(Instant::now())
    }
}

/// Leader election of this process: the lease held by `kube-lease-manager`, and the fence that
/// follows it.
pub(crate) struct Leadership {
    roles: watch::Receiver<Role>,
    fence: Arc<Fence>,
    stop: CancellationToken,
    follower: JoinHandle<()>,
    /// The crate's state channel: dropping it makes the crate release the lease and end.
    held: watch::Receiver<bool>,
    elector: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Leadership {
    /// Creates the Lease if missing, starts competing for it and following it. `client` watches
    /// the Lease; renewals go through a client of their own whose requests time out (half the
    /// time between a renewal and the renew deadline).
    pub async fn start(
        client: &Client,
        config: &kube::Config,
        settings: LeaseSettings,
    ) -> Result<Self, LeaderError> {
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let timing = settings.timing;
        // A bound on each whole request, not on reads: a read timeout also fires on a pooled
        // connection idle between renewals, and the next renewal fails on the dead connection.
        let mut renew_config = config.clone();
        renew_config.connect_timeout = Some(timing.request_timeout());
        let renew_client = ClientBuilder::try_from(renew_config)
            .map_err(LeaderError::Client)?
            .with_layer(&TimeoutLayer::new(timing.request_timeout()))
            .build();
        let manager = LeaseManagerBuilder::new(renew_client, &settings.name)
            .with_namespace(&namespace)
            .with_parameters(LeaseParams::new(
                &settings.identity,
                timing.duration,
                timing.grace(),
            ))
            .build()
            .await
            .map_err(|source| LeaderError::Lease {
                namespace: namespace.clone(),
                name: settings.name.clone(),
                source,
            })?;
        let (held, elector) = manager.watch().await;
        info!(lease = %format!("{namespace}/{}", settings.name), identity = %settings.identity, ?timing, "standing by for the lease");

        let events = watcher(
            Api::<Lease>::namespaced(client.clone(), &namespace),
            watcher::Config::default().fields(&format!("metadata.name={}", settings.name)),
        );
        let fence = Arc::new(Fence::default());
        let (roles_tx, roles) = watch::channel(Role::Standby);
        let stop = CancellationToken::new();
        let follower = tokio::spawn(follow(
            events,
            settings.identity,
            timing.renew_deadline(),
            fence.clone(),
            roles_tx,
            stop.clone(),
        ));
        Ok(Leadership {
            roles,
            fence,
            stop,
            follower,
            held,
            elector,
        })
    }

    /// This replica's role, as it changes.
    pub fn roles(&self) -> watch::Receiver<Role> {
        self.roles.clone()
    }

    /// The layer that refuses writes while this replica does not lead.
    pub(crate) fn write_guard(&self) -> WriteGuardLayer {
        WriteGuardLayer(self.fence.clone())
    }

    /// The fence, for what does not pass the Kubernetes client: SQL to the members.
    pub(crate) fn permit(&self) -> Permit {
        Permit(self.fence.clone())
    }

    /// Stops following and releases the lease, so that a standby need not wait for it to
    /// expire (call it after the controller stopped acting). Bounded by one renew period.
    pub async fn release(self) {
        self.stop.cancel();
        self.fence.set(None);
        let _ = self.follower.await;
        drop(self.held);
        let released = tokio::time::timeout(Duration::from_secs(5), self.elector).await;
        match released {
            Ok(Ok(Ok(_))) => info!("lease released"),
            Ok(Ok(Err(e))) => warn!(error = %e, "releasing the lease failed; it expires by itself"),
            Ok(Err(e)) => warn!(error = %e, "the lease task failed; the lease expires by itself"),
            Err(_) => warn!("releasing the lease timed out; it expires by itself"),
        }
    }
}

/// Follows the Lease's events (and the fence's own end) into the fence and the role.
async fn follow(
    events: impl Stream<Item = Result<watcher::Event<Lease>, watcher::Error>>,
    me: String,
    renew_deadline: Duration,
    fence: Arc<Fence>,
    roles: watch::Sender<Role>,
    stop: CancellationToken,
) {
    let mut events = std::pin::pin!(events);
    // During a relist: whether the Lease was among the objects listed.
    let mut listed: Option<bool> = None;
    loop {
        let until = fence.until();
        let fence_ends = async move {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let now = || jiff::Timestamp::now();
        let look = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = fence_ends => Seen::Expired,
            event = events.next() => match event {
                None => return,
                Some(Err(e)) => {
                    warn!(error = %e, "watching the operator's Lease; retrying");
                    continue;
                }
                Some(Ok(watcher::Event::Init)) => {
                    listed = Some(false);
                    continue;
                }
                Some(Ok(watcher::Event::InitApply(lease))) => {
                    listed = Some(true);
                    seen(lease.spec.as_ref(), &me, renew_deadline, now())
                }
                Some(Ok(watcher::Event::InitDone)) => match listed.take() {
                    Some(false) => seen(None, &me, renew_deadline, now()),
                    _ => continue,
                },
                Some(Ok(watcher::Event::Apply(lease))) => {
                    seen(lease.spec.as_ref(), &me, renew_deadline, now())
                }
                Some(Ok(watcher::Event::Delete(_))) => seen(None, &me, renew_deadline, now()),
            },
        };
        let role = next(&roles.borrow(), &look, renew_deadline);
        // The fence moves first: a deposed replica's writes are refused before anyone hears.
        fence.set(match (&role, &look) {
            (Role::Leading, Seen::Holder { remaining }) => Some(Instant::now() + *remaining),
            _ => None,
        });
        roles.send_if_modified(|current| {
            if *current == role {
                return false;
            }
            match &role {
                Role::Leading => info!(identity = %me, "acquired the lease: leading"),
                Role::Deposed(why) => warn!(identity = %me, reason = %why, "deposed"),
                Role::Standby => {}
            }
            *current = role;
            true
        });
    }
}

/// Refuses every request that changes something (any method but GET, HEAD and OPTIONS) unless
/// the fence allows acting at the moment the request would leave.
#[derive(Clone)]
pub(crate) struct WriteGuardLayer(Arc<Fence>);

impl<S> Layer<S> for WriteGuardLayer {
    type Service = WriteGuard<S>;

    fn layer(&self, inner: S) -> WriteGuard<S> {
        WriteGuard {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// The service of [`WriteGuardLayer`].
#[derive(Clone)]
pub(crate) struct WriteGuard<S> {
    inner: S,
    fence: Arc<Fence>,
}

fn changes(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

impl<S, B> Service<http::Request<B>> for WriteGuard<S>
where
    S: Service<http::Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if changes(request.method()) && !self.fence.allows(Instant::now()) {
            return Box::pin(std::future::ready(Err(LeaderError::NotLeading.into())));
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    const DEADLINE: Duration = Duration::from_secs(12);

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn the_permit_follows_the_fence() {
        let fence = Arc::new(Fence::default());
        let permit = Permit(fence.clone());
        assert!(!permit.allows_now(), "no lease seen yet");
        fence.set(Some(Instant::now() + Duration::from_secs(5)));
        assert!(permit.allows_now());
        fence.set(Some(Instant::now() - Duration::from_millis(1)));
        assert!(!permit.allows_now(), "past the fence");
    }

    fn lease(holder: Option<&str>, renewed: Option<i64>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: renewed.map(|s| MicroTime(at(s))),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }
    }

    #[test]
    fn timing_must_leave_room_between_renewals_deadline_and_expiry() {
        assert!(Timing::new(15, 5, 12).is_ok());
        for (d, p, dl) in [
            (15, 0, 12),
            (15, 12, 12),
            (15, 5, 15),
            (15, 5, 20),
            (0, 0, 0),
        ] {
            let err = Timing::new(d, p, dl).unwrap_err();
            assert!(err.to_string().contains("need 0 < renew period"), "{err}");
        }
        let t = Timing::new(15, 5, 12).unwrap();
        assert_eq!(t.grace(), 10);
        assert_eq!(t.request_timeout(), Duration::from_millis(3500));
    }

    #[test]
    fn a_lease_renewed_by_me_is_good_until_the_renew_deadline() {
        let l = lease(Some("me"), Some(0));
        assert_eq!(
            seen(Some(&l), "me", DEADLINE, at(4)),
            Seen::Holder {
                remaining: Duration::from_secs(8)
            }
        );
        assert_eq!(seen(Some(&l), "me", DEADLINE, at(12)), Seen::Expired);
        assert_eq!(seen(Some(&l), "me", DEADLINE, at(30)), Seen::Expired);
        let never_renewed = lease(Some("me"), None);
        assert_eq!(
            seen(Some(&never_renewed), "me", DEADLINE, at(0)),
            Seen::Expired
        );
    }

    #[test]
    fn a_lease_of_another_or_none_is_not_mine() {
        let theirs = lease(Some("other"), Some(0));
        assert_eq!(
            seen(Some(&theirs), "me", DEADLINE, at(1)),
            Seen::Other(Some("other".into()))
        );
        assert_eq!(
            seen(Some(&lease(None, None)), "me", DEADLINE, at(1)),
            Seen::Other(None)
        );
        assert_eq!(seen(None, "me", DEADLINE, at(1)), Seen::Other(None));
    }

    #[test]
    fn standby_leads_only_on_a_good_lease_and_a_leader_is_deposed_for_good() {
        let good = Seen::Holder {
            remaining: Duration::from_secs(3),
        };
        let taken = Seen::Other(Some("b".into()));
        assert_eq!(next(&Role::Standby, &good, DEADLINE), Role::Leading);
        for s in [Seen::Expired, taken.clone(), Seen::Other(None)] {
            assert_eq!(next(&Role::Standby, &s, DEADLINE), Role::Standby, "{s:?}");
        }
        assert_eq!(next(&Role::Leading, &good, DEADLINE), Role::Leading);
        assert_eq!(
            next(&Role::Leading, &Seen::Expired, DEADLINE),
            Role::Deposed(Deposition::NotRenewed(DEADLINE))
        );
        assert_eq!(
            next(&Role::Leading, &taken, DEADLINE),
            Role::Deposed(Deposition::TakenOver("b".into()))
        );
        assert_eq!(
            next(&Role::Leading, &Seen::Other(None), DEADLINE),
            Role::Deposed(Deposition::Released)
        );
        let deposed = Role::Deposed(Deposition::Released);
        assert_eq!(next(&deposed, &good, DEADLINE), deposed);
    }

    /// A service that answers every request with 200.
    #[derive(Clone)]
    struct Ok200;

    impl Service<http::Request<()>> for Ok200 {
        type Response = http::Response<()>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<http::Response<()>, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(())))
        }
    }

    #[tokio::test]
    async fn the_guard_lets_reads_through_and_writes_only_while_the_fence_holds() {
        let fence = Arc::new(Fence::default());
        let mut guard = WriteGuardLayer(fence.clone()).layer(Ok200);
        let request = |method: http::Method| {
            http::Request::builder()
                .method(method)
                .uri("/api/v1/pods")
                .body(())
                .unwrap()
        };
        assert!(guard.call(request(http::Method::GET)).await.is_ok());
        for method in [
            http::Method::POST,
            http::Method::PUT,
            http::Method::PATCH,
            http::Method::DELETE,
        ] {
            let err = guard.call(request(method.clone())).await.unwrap_err();
            assert!(err.to_string().contains("write refused"), "{method}: {err}");
        }
        fence.set(Some(Instant::now() + Duration::from_secs(60)));
        assert!(guard.call(request(http::Method::PATCH)).await.is_ok());
        fence.set(Some(Instant::now()));
        assert!(guard.call(request(http::Method::PATCH)).await.is_err());
    }
}
