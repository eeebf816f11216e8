//! Wiring of the controller: leader election (only the leader acts), watches (metadata only, on
//! what the operator owns; the pods in [`crate::pod_cache`]), the reconcile loops, the HTTP
//! endpoint and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, PartialObjectMeta};
use kube::client::ClientBuilder;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, Predicate, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::api::{Backup, MySQLCluster};
use crate::backup_controller::{self, BackupError};
use crate::cluster::{self, ReconcileError};
use crate::context::{Config, Context};
use crate::http::{self, Health};
use crate::leader::{Deposition, LeaderError, Leadership, LeaseSettings, Permit, Role};
use crate::metrics::Metrics;
use crate::objects::names::{LABEL_MANAGED_BY, MANAGER};
use crate::pod_cache::{ClusterKey, PodCache};
use crate::xproto::monitor::{MemberEvent, Monitor, MonitorConfig};

/// How long a cluster's reconcile waits for more triggers before it runs: long enough to take
/// the notices one group change sends from every member (and the watch events of the operator's
/// own writes) as one, short enough to stay a small part of the failover path (the
/// `failover_control_plane` benchmark measures it end to end).
const DEBOUNCE: Duration = Duration::from_millis(50);

/// How many cluster reconciles do their work at once. A reconcile holds what it read until it
/// ends (the cluster, its StatefulSet, the owned objects' metadata with their managedFields, the
/// members' answers), so the cap bounds that memory whatever the number of clusters; unbounded, a
/// burst of 1,000 clusters held 1,000 of them at once. The others wait in arrival order on a
/// semaphore, holding nothing yet. Not the controller's own `concurrency`: its scheduler keeps the
/// requests beyond the cap in a hash set and takes them in hash order, so clusters woken often
/// (members that do not answer: every probe and session retry wakes them) took every slot, and
/// clusters never reconciled once waited forever (100 clusters, cap 32: 26 never reconciled).
const CONCURRENT_RECONCILES: usize = 32;

/// Why the controller could not start, or stopped other than on SIGTERM.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("building the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(
        "the MySQLCluster CRD is not served by the API server ({0}): install it with `kubectl apply -f crds/` or the Helm chart"
    )]
    CrdMissing(#[source] kube::Error),
    #[error(transparent)]
    Lease(#[from] LeaderError),
    #[error("serving the HTTP endpoint on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the watch of the operator's pods stopped before its first list; exit, to be restarted"
    )]
    PodWatch,
    #[error(
        "this replica lost the operator's lease and stopped acting ({0}); exit, to be restarted as a standby"
    )]
    Deposed(Deposition),
}

/// A metadata-only Api of `K` in the watched namespace(s).
fn api<K>(client: &Client, namespace: &Option<String>) -> Api<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug,
    PartialObjectMeta<K>: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn error_policy(
    _: Arc<PartialObjectMeta<MySQLCluster>>,
    err: &ReconcileError,
    ctx: Arc<Context>,
) -> Action {
    ctx.metrics.failed(err.kind());
    warn!(error = %err, kind = err.kind(), "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(15))
}

fn backup_error_policy(_: Arc<Backup>, err: &BackupError, ctx: Arc<Context>) -> Action {
    ctx.metrics.failed(err.kind());
    warn!(error = %err, kind = err.kind(), "backup reconcile failed; retrying");
    Action::requeue(Duration::from_secs(30))
}

fn log_result<K, E, Q>(
    res: Result<(ObjectRef<K>, Action), kube::runtime::controller::Error<E, Q>>,
) -> future::Ready<()>
where
    K: Resource,
    K::DynamicType: std::fmt::Debug,
    E: std::error::Error,
    Q: std::error::Error,
{
    match res {
        Ok(_) | Err(kube::runtime::controller::Error::ObjectNotFound(_)) => {}
        Err(other) => warn!(error = %other, "controller"),
    }
    future::ready(())
}

/// A typed Api of `K` in the watched namespace(s).
fn api_full<K>(client: &Client, namespace: &Option<String>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the operator until `shutdown` is cancelled (SIGTERM or Ctrl-C in `main`): stands by
/// for the lease, then acts while it leads, then releases the lease. Returns
/// [`RunError::Deposed`] the moment the lease is lost, with the controllers and the member
/// sessions already dropped: the caller exits the process at once.
pub async fn run(
    kube_config: kube::Config,
    config: Config,
    lease: LeaseSettings,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let plain = Client::try_from(kube_config.clone()).map_err(RunError::Client)?;
    api::<MySQLCluster>(&plain, &config.namespace)
        .list(&ListParams::default().limit(1))
        .await
        .map_err(RunError::CrdMissing)?;
    let leadership = Leadership::start(&plain, &kube_config, lease).await?;
    // Every write of the reconciles (applies, status, Events, Jobs) passes the fence.
    let client = ClientBuilder::try_from(kube_config)
        .map_err(RunError::Client)?
        .with_layer(&leadership.write_guard())
        .build();

    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let mut roles = leadership.roles();
    let health = Health {
        metrics: metrics.clone(),
        ready: ready.clone(),
        role: roles.clone(),
    };
    let addr = config.http_addr;
    let http_listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Http { addr, source })?;
    let http_shutdown = shutdown.clone();
    let http_task = tokio::spawn(async move {
        if let Err(e) = http::serve(http_listener, health, async move {
            http_shutdown.cancelled().await
        })
        .await
        {
            error!(error = %e, "HTTP endpoint failed");
        }
    });
    tokio::spawn(publish_role(leadership.roles(), metrics.clone()));

    let first = tokio::select! {
        () = shutdown.cancelled() => None,
        role = roles.wait_for(|r| *r != Role::Standby) => role.ok().map(|r| r.clone()),
    };
    let outcome = match first {
        Some(Role::Deposed(why)) => Err(RunError::Deposed(why)),
        Some(Role::Leading) => {
            let permit = leadership.permit();
            lead(
                client, config, metrics, ready, permit, &mut roles, &shutdown,
            )
            .await
        }
        Some(Role::Standby) | None => Ok(()),
    };
    if let Err(RunError::Deposed(_)) = outcome {
        // Not ours to release; nothing to wait for.
        return outcome;
    }
    leadership.release().await;
    info!("controller stopped; shutting down");
    shutdown.cancel();
    let _ = http_task.await;
    outcome
}

/// Sets the leader metric as the role changes.
async fn publish_role(mut roles: watch::Receiver<Role>, metrics: Arc<Metrics>) {
    loop {
        metrics.leading(*roles.borrow_and_update() == Role::Leading);
        if roles.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves when this replica is deposed; never if the role stops changing.
async fn deposition(roles: &mut watch::Receiver<Role>) -> Deposition {
    loop {
        if let Role::Deposed(why) = &*roles.borrow_and_update() {
            return why.clone();
        }
        if roles.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Acts while this replica leads: the pod cache, the member monitor and the two controllers,
/// until `shutdown` stops them gracefully, or dropped the moment the lease is lost.
async fn lead(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    permit: Permit,
    roles: &mut watch::Receiver<Role>,
    shutdown: &CancellationToken,
) -> Result<(), RunError> {
    info!("leading: starting the controllers");
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGER}"));
    let (pods, _pod_feed, pod_wakes) =
        PodCache::start(api_full::<Pod>(&client, &config.namespace), owned.clone());
    // Until the first list is in, a reconcile would see clusters without pods.
    tokio::select! {
        synced = pods.synced() => if !synced {
            return Err(RunError::PodWatch);
        },
        () = shutdown.cancelled() => return Ok(()),
        why = deposition(roles) => return Err(RunError::Deposed(why)),
    }
    let reporter = Reporter {
        controller: "innodb-operator".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let (monitor, member_events) = Monitor::start::<ClusterKey>(MonitorConfig::default());
    let probe_metrics = metrics.clone();
    let member_wakes = member_events.filter_map(move |event| {
        if let MemberEvent::Probe(probe) = &event {
            probe_metrics.member_probe(probe.latency_seconds());
        }
        future::ready(event.into_wake_key())
    });
    let ctx = Arc::new(Context::new(
        client.clone(),
        config.clone(),
        metrics.clone(),
        Recorder::new(client.clone(), reporter),
        monitor.clone(),
        permit,
        pods,
    ));
    let wakes = futures::stream::select(
        member_wakes,
        tokio_stream::wrappers::ReceiverStream::new(pod_wakes),
    );
    let clusters_loop = clusters_loop(
        &client,
        &config.namespace,
        &owned,
        ctx.clone(),
        wakes,
        ready,
        shutdown,
    );
    let backups_loop = backups_loop(&client, &config.namespace, &owned, ctx, shutdown);
    let result = tokio::select! {
        ((), ()) = future::join(clusters_loop, backups_loop) => Ok(()),
        why = deposition(roles) => Err(RunError::Deposed(why)),
    };
    monitor.shutdown();
    result
}

/// The changes to the objects of kind `K` the operator owns (`owned`): each wakes its owner.
fn owned_changes<K>(
    client: &Client,
    namespace: &Option<String>,
    owned: &watcher::Config,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    PartialObjectMeta<K>: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    watcher(api::<K>(client, namespace), owned.clone()).touched_objects()
}

/// The `MySQLCluster` loop: a reconcile on a change of the spec or annotations, of an owned
/// object, of a member (`wakes`: the X protocol monitor and the pod cache), at most
/// [`CONCURRENT_RECONCILES`] at once. `ready` turns true once the clusters are listed.
fn clusters_loop(
    client: &Client,
    namespace: &Option<String>,
    owned: &watcher::Config,
    ctx: Arc<Context>,
    wakes: impl futures::Stream<Item = ClusterKey> + Send + 'static,
    ready: Arc<AtomicBool>,
    shutdown: &CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let (reader, writer) = reflector::store::<PartialObjectMeta<MySQLCluster>>();
    let trigger = watcher(
        api::<MySQLCluster>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(
        predicates::generation.combine(predicates::annotations),
        Default::default(),
    );
    mark_ready_when_listed(reader.clone(), ready);
    let shutdown = shutdown.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_RECONCILES));
    Controller::for_stream(trigger, reader)
        .with_config(ControllerConfig::default().debounce(DEBOUNCE))
        .owns_stream(owned_changes::<StatefulSet>(client, namespace, owned))
        .owns_stream(owned_changes::<Service>(client, namespace, owned))
        .owns_stream(owned_changes::<ConfigMap>(client, namespace, owned))
        .owns_stream(owned_changes::<Deployment>(client, namespace, owned))
        .owns_stream(owned_changes::<PodDisruptionBudget>(
            client, namespace, owned,
        ))
        .owns_stream(owned_changes::<NetworkPolicy>(client, namespace, owned))
        // The restore Job: its outcome lifts the hold on the group's first start at once.
        .owns_stream(owned_changes::<Job>(client, namespace, owned))
        .reconcile_on(wakes)
        .graceful_shutdown_on(async move { shutdown.cancelled().await })
        .run(
            move |obj, ctx: Arc<Context>| {
                let slots = slots.clone();
                async move {
                    // Never closed: the permit is always granted in turn.
                    let _slot = slots.acquire_owned().await;
                    timed(&ctx, cluster::reconcile(obj, ctx.clone())).await
                }
            },
            error_policy,
            ctx,
        )
        .for_each(log_result)
}

/// Runs one reconcile and records how long it took.
async fn timed<T>(ctx: &Context, reconcile: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let result = reconcile.await;
    ctx.metrics.reconciled(start.elapsed());
    result
}

/// Turns `ready` (what `/readyz` answers) true once `store` holds the first list of clusters.
fn mark_ready_when_listed(store: Store<PartialObjectMeta<MySQLCluster>>, ready: Arc<AtomicBool>) {
    tokio::spawn(async move {
        // `wait_until_ready` wakes only the task that polled it last, and the controller polls
        // it too: poll again until it resolves, or /readyz would never turn ready.
        loop {
            match tokio::time::timeout(Duration::from_millis(250), store.wait_until_ready()).await {
                Ok(Ok(())) => {
                    ready.store(true, Ordering::Relaxed);
                    info!("MySQLCluster watch synced");
                    break;
                }
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
    });
}

/// The `Backup` loop: a reconcile on a change of a Backup or of its Job.
fn backups_loop(
    client: &Client,
    namespace: &Option<String>,
    owned: &watcher::Config,
    ctx: Arc<Context>,
    shutdown: &CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let shutdown = shutdown.clone();
    Controller::new(
        api_full::<Backup>(client, namespace),
        watcher::Config::default(),
    )
    .owns(api_full::<Job>(client, namespace), owned.clone())
    .graceful_shutdown_on(async move { shutdown.cancelled().await })
    .run(
        |obj, ctx: Arc<Context>| async move {
            timed(&ctx, backup_controller::reconcile(obj, ctx.clone())).await
        },
        backup_error_policy,
        ctx,
    )
    .for_each(log_result)
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    error!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => info!("interrupt received"),
        }
        token.cancel();
    });
}
