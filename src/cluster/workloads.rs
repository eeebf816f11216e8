//! Part of [`super::gather`]: read the cluster's pods and workloads as the API server sees them,
//! for the topology's input and the status.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

use super::status::PodView;
use crate::objects::names::{Component, Names, ROLE_LABEL};
use crate::pod_cache::PodCache;
use crate::topology::Role;

/// What the workloads report.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Workloads {
    /// The member pods, sorted by name, as the pod cache keeps them (slimmed).
    pub(crate) pods: Vec<Pod>,
    pub(crate) statefulset: Option<StatefulSet>,
    pub(crate) router_ready: i32,
}

impl Workloads {
    /// The member pods of `cluster` as the status sees them.
    pub(crate) fn pod_views(&self, cluster: &str) -> Vec<PodView> {
        self.pods.iter().map(|p| pod_view(cluster, p)).collect()
    }

    /// Whether the StatefulSet runs its current spec on every replica.
    pub(crate) fn rolled_out(&self) -> bool {
        self.statefulset.as_ref().is_some_and(rolled_out)
    }
}

/// A read that failed.
#[derive(Debug, thiserror::Error)]
#[error("reading the cluster's {what}: {source}")]
pub(crate) struct ObserveError {
    what: &'static str,
    #[source]
    source: kube::Error,
}

/// A pod as the status sees it.
pub(crate) fn pod_view(cluster: &str, p: &Pod) -> PodView {
    let status = p.status.as_ref();
    let name = p.metadata.name.clone().unwrap_or_default();
    PodView {
        ordinal: super::topology_step::ordinal(cluster, &name),
        name,
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".to_string()),
        ready: status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")),
        role: p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ROLE_LABEL))
            .and_then(|v| Role::from_label(v)),
        member_state: None,
    }
}

/// Whether the StatefulSet runs its current spec on every replica.
pub(crate) fn rolled_out(sts: &StatefulSet) -> bool {
    let desired = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(st) = &sts.status else { return false };
    st.observed_generation == sts.metadata.generation
        && st.ready_replicas.unwrap_or(0) == desired
        && st.updated_replicas.unwrap_or(0) == desired
        && st.current_revision.is_some()
        && st.current_revision == st.update_revision
}

/// Reads the member pods of `names` from the operator's pod cache, and its StatefulSet and
/// router Deployment from the API server.
pub(crate) async fn observe(
    client: &Client,
    cache: &PodCache,
    names: &Names,
) -> Result<Workloads, ObserveError> {
    let pods = cache
        .pods(&names.namespace, &names.pod_selector(Component::Database))
        .iter()
        .map(|p| Pod::clone(p))
        .collect();
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &names.namespace);
    let statefulset = sts
        .get_opt(&names.statefulset())
        .await
        .map_err(|source| ObserveError {
            what: "StatefulSet",
            source,
        })?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &names.namespace);
    let router_ready = deployments
        .get_opt(&names.router())
        .await
        .map_err(|source| ObserveError {
            what: "router Deployment",
            source,
        })?
        .and_then(|d| d.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Ok(Workloads {
        pods,
        statefulset,
        router_ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_view_reads_phase_readiness_and_role() {
        let p: Pod = serde_yaml::from_str(
            "metadata: {name: c-0, labels: {innodb-operator.io/role: primary}}\n\
             status: {phase: Running, conditions: [{type: Ready, status: 'True'}]}\n",
        )
        .unwrap();
        let v = pod_view("c", &p);
        assert_eq!(
            (v.name.as_str(), v.phase.as_str(), v.ready),
            ("c-0", "Running", true)
        );
        assert_eq!((v.ordinal, v.role), (Some(0), Some(Role::Primary)));
        let empty = pod_view("c", &Pod::default());
        assert_eq!((empty.phase.as_str(), empty.ready), ("Pending", false));
    }

    #[test]
    fn rollout_needs_matching_revisions_and_ready_replicas() {
        let done: StatefulSet = serde_yaml::from_str(
            "metadata: {generation: 2}\nspec: {replicas: 3, selector: {}, serviceName: s, template: {}}\n\
             status: {observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3, currentRevision: r1, updateRevision: r1}\n",
        )
        .unwrap();
        assert!(rolled_out(&done));
        let mut rolling = done.clone();
        rolling.status.as_mut().unwrap().update_revision = Some("r2".into());
        assert!(!rolled_out(&rolling));
        let mut stale = done;
        stale.metadata.generation = Some(3);
        assert!(!rolled_out(&stale));
    }
}
