//! Names and labels of everything made for a cluster. One place, so builders, apply/prune and
//! the topology step agree.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// Label key for a pod's Group Replication role; the `C` and `C-ro` Services select on it.
pub(crate) const ROLE_LABEL: &str = "innodb-operator.io/role";
/// Value of [`ROLE_LABEL`] on the primary.
pub(crate) const ROLE_PRIMARY: &str = "primary";
/// Value of [`ROLE_LABEL`] on ONLINE secondaries.
pub(crate) const ROLE_SECONDARY: &str = "secondary";
/// Annotation with the hash of the object as last applied (skips no-op writes).
pub(crate) const APPLIED_HASH_ANNOTATION: &str = "innodb-operator.io/applied-hash";
/// Value of `app.kubernetes.io/managed-by`.
pub(crate) const MANAGER: &str = "innodb-operator";
/// `app.kubernetes.io/name` of every object the operator makes.
pub(crate) const APP_NAME: &str = "mysql-innodb-cluster";

pub(crate) const LABEL_NAME: &str = "app.kubernetes.io/name";
pub(crate) const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub(crate) const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(crate) const LABEL_COMPONENT: &str = "app.kubernetes.io/component";

/// The part of a cluster an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// The MySQL members (StatefulSet, its Services, config, PDB).
    Database,
    /// The MySQL Router tier.
    Router,
    /// Credentials.
    Credentials,
    /// A backup's Job and its pod.
    Backup,
    /// The restore Job of a new cluster and its pod.
    Restore,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Database => "database",
            Component::Router => "router",
            Component::Credentials => "credentials",
            Component::Backup => "backup",
            Component::Restore => "restore",
        }
    }
}

/// The names of one cluster's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub cluster: String,
    pub(crate) namespace: String,
}

impl Names {
    pub(crate) fn new(cluster: &str, namespace: &str) -> Self {
        Self {
            cluster: cluster.to_string(),
            namespace: namespace.to_string(),
        }
    }
    /// StatefulSet and read-write Service: `C`.
    pub(crate) fn statefulset(&self) -> String {
        self.cluster.clone()
    }
    pub(crate) fn rw_service(&self) -> String {
        self.cluster.clone()
    }
    pub(crate) fn ro_service(&self) -> String {
        format!("{}-ro", self.cluster)
    }
    /// Headless Service of the members: `C-instances`.
    pub(crate) fn instances_service(&self) -> String {
        format!("{}-instances", self.cluster)
    }
    pub(crate) fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }
    pub(crate) fn pdb(&self) -> String {
        self.cluster.clone()
    }
    pub(crate) fn router(&self) -> String {
        format!("{}-router", self.cluster)
    }
    /// ClusterIP Service of the routers (the headless one is [`Names::router`]).
    pub(crate) fn router_lb_service(&self) -> String {
        format!("{}-router-lb", self.cluster)
    }
    pub(crate) fn router_config_map(&self) -> String {
        format!("{}-router-config", self.cluster)
    }
    /// NetworkPolicy of the members' pods (`spec.networkPolicy`).
    pub(crate) fn members_network_policy(&self) -> String {
        format!("{}-members", self.cluster)
    }
    /// NetworkPolicy of the Routers' pods (`spec.networkPolicy`).
    pub(crate) fn router_network_policy(&self) -> String {
        format!("{}-router", self.cluster)
    }
    /// Secret of one of the cluster's accounts.
    pub fn secret(&self, account: &str) -> String {
        format!("{}-{}", self.cluster, account)
    }
    /// The cluster's CA (certificate and key), made by the operator.
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.cluster)
    }
    /// The members' certificate signed by the cluster's CA.
    pub fn member_tls_secret(&self) -> String {
        format!("{}-tls", self.cluster)
    }
    /// The cert-manager Certificate of the members (with `spec.tls.issuerRef`).
    pub(crate) fn member_certificate(&self) -> String {
        format!("{}-member", self.cluster)
    }
    /// The Secret cert-manager issues the members' certificate into.
    pub(crate) fn issued_member_tls_secret(&self) -> String {
        format!("{}-member-tls", self.cluster)
    }
    pub(crate) fn pod(&self, ordinal: i32) -> String {
        format!("{}-{}", self.cluster, ordinal)
    }
    /// DNS name of a member pod under the headless Service.
    pub fn pod_fqdn(&self, ordinal: i32, domain: &str) -> String {
        format!(
            "{}.{}.{}.svc.{}",
            self.pod(ordinal),
            self.instances_service(),
            self.namespace,
            domain
        )
    }
    /// DNS name of a Service of this cluster.
    pub(crate) fn service_fqdn(&self, service: &str, domain: &str) -> String {
        format!("{service}.{}.svc.{domain}", self.namespace)
    }

    /// Labels that select every object of this cluster (used to prune).
    pub(crate) fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_NAME.to_string(), APP_NAME.to_string()),
            (LABEL_INSTANCE.to_string(), self.cluster.clone()),
            (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
        ])
    }

    /// `key=value,...` form of [`Names::selector_labels`].
    pub(crate) fn selector_string(&self) -> String {
        to_selector(&self.selector_labels())
    }

    /// Labels of an object of `component`.
    pub(crate) fn labels(&self, component: Component) -> BTreeMap<String, String> {
        let mut l = self.selector_labels();
        l.insert(LABEL_COMPONENT.to_string(), component.as_str().to_string());
        l
    }

    /// Pod selector of a component (stable: never changes for an existing workload).
    pub(crate) fn pod_selector(&self, component: Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_INSTANCE.to_string(), self.cluster.clone()),
            (LABEL_COMPONENT.to_string(), component.as_str().to_string()),
        ])
    }
}

/// `k=v,k2=v2` from a label map.
pub(crate) fn to_selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Metadata of an object owned by the cluster.
pub(crate) fn owned_meta(
    name: String,
    names: &Names,
    component: Component,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names.namespace.clone()),
        labels: Some(names.labels(component)),
        owner_references: Some(vec![owner.clone()]),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let n = Names::new("orders", "db");
        assert_eq!(n.statefulset(), "orders");
        assert_eq!(n.instances_service(), "orders-instances");
        assert_eq!(n.ro_service(), "orders-ro");
        assert_eq!(n.router(), "orders-router");
        assert_eq!(n.members_network_policy(), "orders-members");
        assert_eq!(n.router_network_policy(), "orders-router");
        assert_eq!(
            n.pod_fqdn(2, "cluster.local"),
            "orders-2.orders-instances.db.svc.cluster.local"
        );
        assert_eq!(
            n.selector_string(),
            "app.kubernetes.io/instance=orders,app.kubernetes.io/managed-by=innodb-operator,app.kubernetes.io/name=mysql-innodb-cluster"
        );
    }
}
