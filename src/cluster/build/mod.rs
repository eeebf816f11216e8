//! Pure functions from the validated cluster (and what the topology decided, [`BuildInputs`])
//! to the objects it needs; [`super::plan`] calls them.
//! No client and no clock here; randomness (new passwords) comes in from the caller.

pub mod certificate;
pub(crate) mod member_scripts;
pub mod mycnf;
pub(crate) mod network_policy;
pub(crate) mod router;
pub(crate) mod router_conf;
pub mod secrets;
pub(crate) mod services;
pub(crate) mod statefulset;
pub mod tls_secrets;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use rand::Rng;

pub use super::validate::ValidCluster;
use crate::certs::cert_manager::Certificate;
use crate::objects::accounts::Account;
use crate::objects::operator_pods::OperatorPods;

/// One object the cluster needs, applied with server-side apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    PodDisruptionBudget(PodDisruptionBudget),
    Deployment(Deployment),
    NetworkPolicy(NetworkPolicy),
}

/// The kinds the operator applies and prunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    ConfigMap,
    Service,
    StatefulSet,
    PodDisruptionBudget,
    Deployment,
    NetworkPolicy,
    /// cert-manager's, applied only for a cluster that asks for it (never listed or pruned:
    /// without cert-manager the kind does not exist).
    Certificate,
}

impl Kind {
    /// Every kind, in the order they are applied (configuration before what reads it).
    pub(crate) const ALL: [Kind; 6] = [
        Kind::ConfigMap,
        Kind::Service,
        Kind::StatefulSet,
        Kind::PodDisruptionBudget,
        Kind::Deployment,
        Kind::NetworkPolicy,
    ];
}

impl Object {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Object::ConfigMap(_) => Kind::ConfigMap,
            Object::Service(_) => Kind::Service,
            Object::StatefulSet(_) => Kind::StatefulSet,
            Object::PodDisruptionBudget(_) => Kind::PodDisruptionBudget,
            Object::Deployment(_) => Kind::Deployment,
            Object::NetworkPolicy(_) => Kind::NetworkPolicy,
        }
    }

    pub(crate) fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::ConfigMap(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::StatefulSet(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }
}

/// Everything a cluster needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    /// Applied on every reconcile (skipped when unchanged).
    pub objects: Vec<Object>,
    /// Created once when missing; never updated.
    pub secrets: Vec<Secret>,
    /// The operator CA's Secrets to write: [`plan`](super::plan) fills it (it needs the time),
    /// [`build`] leaves it empty.
    pub tls: tls_secrets::TlsWrites,
    /// The cert-manager Certificate to request (`spec.tls.issuerRef`): applied apart from the
    /// objects, as its kind may not exist (cert-manager is optional).
    pub certificate: Option<Certificate>,
}

/// What the objects carry beside the spec: what the topology decided, what the reconcile
/// found and who the operator is. An input of [`build`], never written back into the validated
/// spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInputs<'a> {
    /// Replicas of the StatefulSet: `spec.instances`, except while members leave the group
    /// before their pods go.
    pub replicas: i32,
    /// When the members' certificate ends (the one the Routers mount too): the Routers'
    /// pod template carries it, so a renewed certificate restarts them one at a time (Router
    /// reads its certificate only when it starts; the members reload theirs).
    pub member_certificate_end: Option<jiff::Timestamp>,
    /// The operator's own pods, which the members' NetworkPolicy admits (`None`: it runs
    /// outside the cluster).
    pub operator_pods: Option<&'a OperatorPods>,
}

impl BuildInputs<'_> {
    /// Before the topology has run (no credentials yet): what the spec asks, with an operator
    /// outside the cluster.
    pub fn from_spec(c: &ValidCluster) -> Self {
        BuildInputs {
            replicas: c.instances,
            member_certificate_end: None,
            operator_pods: None,
        }
    }
}

/// Builds every object of `c`. `existing` are the accounts whose Secret exists already.
pub fn build(
    c: &ValidCluster,
    inputs: BuildInputs<'_>,
    existing: &BTreeSet<Account>,
    rng: &mut impl Rng,
) -> Desired {
    let mut objects = vec![
        Object::ConfigMap(mycnf::config_map(c)),
        Object::Service(services::instances(c)),
        Object::Service(services::read_write(c)),
        Object::Service(services::read_only(c)),
        Object::StatefulSet(statefulset::statefulset(c, inputs.replicas)),
        Object::PodDisruptionBudget(statefulset::pdb(c)),
    ];
    if c.router_instances > 0 {
        objects.extend([
            Object::ConfigMap(router::config_map(c)),
            Object::Service(router::headless_service(c)),
            Object::Service(router::lb_service(c)),
            Object::Deployment(router::deployment(c, inputs.member_certificate_end)),
        ]);
    }
    objects.extend(
        network_policy::policies(c, inputs.operator_pods)
            .into_iter()
            .map(Object::NetworkPolicy),
    );
    Desired {
        objects,
        secrets: secrets::missing_secrets(c, existing, rng),
        tls: tls_secrets::TlsWrites::default(),
        certificate: certificate::member_certificate(c),
    }
}
