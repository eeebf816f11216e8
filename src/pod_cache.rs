//! The pods the operator owns, held in one cache fed by one watch and slimmed to what the
//! reconciles read of them: name, labels, deletion, phase, readiness and IP.
//!
//! Every reconcile used to list its cluster's pods in full (spec, status, managedFields): at 100
//! clusters that was most of the operator's peak memory, and a request per reconcile. The cache
//! keeps one small copy of each pod for every cluster; a reconcile reads its members from it
//! without a request. The watch runs in a task of its own, so the cache stays current whatever
//! the controller is doing, and each change it sees wakes the pod's cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::warn;

use crate::api::MySQLCluster;
use crate::objects::names::LABEL_INSTANCE;

/// A cluster's key in the controller's queue, in the pod cache and in the X protocol monitor
/// (which files the cluster's members under it).
pub(crate) type ClusterKey = ObjectRef<PartialObjectMeta<MySQLCluster>>;

/// The only pod condition a reconcile reads.
const READY: &str = "Ready";

/// How many pod changes may wait for the controller before the watch waits for it.
const WAKE_BUFFER: usize = 256;

/// A read-only view of the cache, shared by every reconcile.
#[derive(Clone)]
pub(crate) struct PodCache {
    store: Store<Pod>,
}

/// The watch feeding a [`PodCache`]; stops when dropped.
pub(crate) struct PodFeed {
    _stop: DropGuard,
}

impl PodCache {
    /// Starts watching the pods `api` lists with `config` (the operator's own), slimmed, in a
    /// task of its own. Returns the cache, the watch (which stops when dropped), and the
    /// clusters whose pods changed, one wake per change.
    pub fn start(
        api: Api<Pod>,
        config: watcher::Config,
    ) -> (PodCache, PodFeed, mpsc::Receiver<ClusterKey>) {
        let (store, writer) = reflector::store();
        let (tx, rx) = mpsc::channel(WAKE_BUFFER);
        let stop = CancellationToken::new();
        let events = watcher(api, config)
            .modify(slim)
            .default_backoff()
            .reflect(writer)
            .touched_objects();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(events.take_until(cancelled.cancelled_owned()));
            while let Some(event) = events.next().await {
                match event {
                    Ok(pod) => {
                        if let Some(key) = cluster_of(&pod)
                            && tx.send(key).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(e) => warn!(error = %e, "watching the operator's pods; retrying"),
                }
            }
        });
        let feed = PodFeed {
            _stop: stop.drop_guard(),
        };
        (PodCache { store }, feed, rx)
    }

    /// Resolves once the first list of the pods is in the cache; before that a reconcile would
    /// see a cluster without pods. Only one task may wait at a time (the store wakes the last).
    pub(crate) async fn synced(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// The pods in `namespace` that carry every label of `selector`, sorted by name.
    pub(crate) fn pods(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<Arc<Pod>> {
        let mut pods = self.store.state_filter(|p| {
            p.namespace().as_deref() == Some(namespace)
                && selector
                    .iter()
                    .all(|(k, v)| p.labels().get(k).map(String::as_str) == Some(v.as_str()))
        });
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        pods
    }
}

/// The cluster a pod belongs to, by its instance label.
fn cluster_of(pod: &Pod) -> Option<ClusterKey> {
    let cluster = pod.labels().get(LABEL_INSTANCE)?;
    Some(ObjectRef::new(cluster).within(pod.meta().namespace.as_deref()?))
}

/// What the cache keeps of a pod: what [`crate::cluster`] reads (name, namespace, labels,
/// deletion, phase, the Ready condition's status, IP) and nothing else.
pub(crate) fn slim(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    pod.spec = None;
    pod.status = pod.status.take().map(|s| PodStatus {
        phase: s.phase,
        pod_ip: s.pod_ip,
        conditions: s.conditions.map(|cs| {
            cs.into_iter()
                .filter(|c| c.type_ == READY)
                .map(|c| PodCondition {
                    type_: c.type_,
                    status: c.status,
                    ..PodCondition::default()
                })
                .collect()
        }),
        ..PodStatus::default()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slim_keeps_what_the_reconcile_reads_and_drops_the_rest() {
        let mut pod: Pod = serde_yaml::from_str(
            "metadata:\n  name: c-0\n  namespace: ns\n  labels: {app.kubernetes.io/instance: c}\n\
             \x20 annotations: {a: b}\n  deletionTimestamp: '2026-01-01T00:00:00Z'\n\
             \x20 managedFields: [{manager: kubelet, operation: Update}]\n\
             spec: {containers: [{name: mysql, image: m}]}\n\
             status:\n  phase: Running\n  podIP: 198.18.0.7\n  hostIP: 10.0.0.1\n\
             \x20 conditions: [{type: Ready, status: 'True', reason: r}, {type: Initialized, status: 'True'}]\n\
             \x20 containerStatuses: [{name: mysql, image: m, imageID: i, ready: true, restartCount: 0}]\n",
        )
        .unwrap();
        slim(&mut pod);
        let want: Pod = serde_yaml::from_str(
            "metadata:\n  name: c-0\n  namespace: ns\n  labels: {app.kubernetes.io/instance: c}\n\
             \x20 deletionTimestamp: '2026-01-01T00:00:00Z'\n\
             status: {phase: Running, podIP: 198.18.0.7, conditions: [{type: Ready, status: 'True'}]}\n",
        )
        .unwrap();
        pretty_assertions::assert_eq!(pod, want);
        assert_eq!(
            cluster_of(&pod),
            Some(ObjectRef::new("c").within("ns")),
            "a pod wakes the cluster its instance label names"
        );
    }
}
