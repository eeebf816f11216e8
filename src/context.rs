//! What every reconcile shares, in a module of its own so that the controller's wiring
//! (`controller`) and the reconciles it runs (`cluster`, `backup_controller`) import it without
//! importing each other: the Kubernetes client, the settings, the metrics, the Event recorder
//! and the X protocol monitor of the members.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::ObjectRef;
use tracing::warn;

use crate::leader::Permit;
use crate::metrics::Metrics;
use crate::objects::operator_pods::OperatorPods;
use crate::pod_cache::{ClusterKey, PodCache};
use crate::topology::Event as TopologyEvent;
use crate::xproto::monitor::{ClusterTargets, MonitorHandle};

/// Settings of the controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// DNS domain of the Kubernetes cluster (`cluster.local`).
    pub cluster_domain: String,
    /// Only this namespace, or all when `None`.
    pub namespace: Option<String>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub http_addr: SocketAddr,
    /// The operator's own image, which backup Jobs run.
    pub image: String,
    /// The operator's own pods, which the members' NetworkPolicy admits; `None` outside the
    /// cluster.
    pub operator_pods: Option<OperatorPods>,
}

/// What every reconcile gets.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) recorder: Recorder,
    /// Sessions to every member's X protocol port: health probes and Group Replication notices
    /// that wake the cluster's reconcile.
    pub(crate) monitor: MonitorHandle<ClusterKey>,
    /// Topology Events already published per cluster (reason, message), so a condition that
    /// persists is announced once, not every tick.
    published: Mutex<HashMap<ClusterKey, BTreeSet<(&'static str, String)>>>,
    /// Whether this replica still leads, asked before SQL operations on members (Kubernetes
    /// writes are fenced in the client).
    pub(crate) permit: Permit,
    /// The pods the operator owns, as the reconciles read them.
    pub(crate) pods: PodCache,
}

impl Context {
    pub(crate) fn new(
        client: Client,
        config: Config,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        monitor: MonitorHandle<ClusterKey>,
        permit: Permit,
        pods: PodCache,
    ) -> Self {
        Context {
            client,
            config,
            metrics,
            recorder,
            monitor,
            published: Mutex::new(HashMap::new()),
            permit,
            pods,
        }
    }

    fn key(ns: &str, name: &str) -> ClusterKey {
        ObjectRef::new(name).within(ns)
    }

    /// Points the monitor at the cluster's members. Idempotent.
    pub fn monitor_targets(&self, ns: &str, name: &str, targets: ClusterTargets) {
        if let Err(e) = self.monitor.set_targets(Self::key(ns, name), targets) {
            warn!(error = %e, "cannot monitor the members over the X protocol");
        }
    }

    /// The Events of this tick not yet published for the cluster (those published before and
    /// no longer current are forgotten, so they are announced again if they come back).
    pub(crate) fn new_events<'a>(
        &self,
        ns: &str,
        name: &str,
        events: &'a [TopologyEvent],
    ) -> Vec<&'a TopologyEvent> {
        let current: BTreeSet<(&'static str, String)> = events
            .iter()
            .map(|e| (e.reason, e.message.clone()))
            .collect();
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let before = published
            .insert(Self::key(ns, name), current)
            .unwrap_or_default();
        events
            .iter()
            .filter(|e| !before.contains(&(e.reason, e.message.clone())))
            .collect()
    }

    /// Stops monitoring a deleted cluster.
    pub(crate) fn forget(&self, ns: &str, name: &str) {
        let key = Self::key(ns, name);
        self.monitor.remove(&key);
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }
}
