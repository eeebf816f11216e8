//! The NetworkPolicies of `spec.networkPolicy` (opt-in): `C-members` admits to the members'
//! MySQL ports only the cluster's members, Routers, backup and restore Jobs and the operator's
//! pods; `C-router` admits to the Routers' ports only whom the spec names. Ingress only: egress
//! is not restricted.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::router_conf;
use crate::cluster::validate::ValidCluster;
use crate::objects::names::Component;
use crate::objects::operator_pods::OperatorPods;
use crate::objects::{MYSQL_PORT, MYSQLX_PORT};

/// Label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The policies `c` needs: none unless `spec.networkPolicy.enabled`; the Routers' only with
/// Routers. `operator` are the operator's pods (`None`: it runs outside the cluster, and no
/// pod of it is admitted).
pub(crate) fn policies(c: &ValidCluster, operator: Option<&OperatorPods>) -> Vec<NetworkPolicy> {
    let Some(router_from) = &c.network_policy else {
        return Vec::new();
    };
    let mut policies = vec![members(c, operator)];
    if c.router_instances > 0 {
        policies.push(router(c, router_from));
    }
    policies
}

/// The ports a member listens on for others: classic and X protocol, and the XCOM stack's
/// group communication port (the MYSQL stack talks on the classic port).
pub(crate) fn member_ports(c: &ValidCluster) -> Vec<i32> {
    let mut ports = vec![MYSQL_PORT, MYSQLX_PORT];
    let group = i32::from(c.stack.local_address_port());
    if !ports.contains(&group) {
        ports.push(group);
    }
    ports
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

fn pods(labels: BTreeMap<String, String>) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(labels),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn policy(
    c: &ValidCluster,
    name: String,
    component: Component,
    ports: Vec<i32>,
    from: Vec<NetworkPolicyPeer>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: c.meta(name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(c.names.pod_selector(component)),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".to_string()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                ports: Some(ports.into_iter().map(tcp).collect()),
                from: Some(from),
            }]),
            ..Default::default()
        }),
    }
}

/// `C-members`: the members' ports, from the cluster's own pods and the operator's.
fn members(c: &ValidCluster, operator: Option<&OperatorPods>) -> NetworkPolicy {
    let mut from: Vec<NetworkPolicyPeer> = [
        Component::Database,
        Component::Router,
        Component::Backup,
        Component::Restore,
    ]
    .into_iter()
    .map(|component| pods(c.names.pod_selector(component)))
    .collect();
    if let Some(operator) = operator {
        from.push(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    NAMESPACE_NAME_LABEL.to_string(),
                    operator.namespace.clone(),
                )])),
                ..Default::default()
            }),
            ..pods(operator.labels.clone())
        });
    }
    policy(
        c,
        c.names.members_network_policy(),
        Component::Database,
        member_ports(c),
        from,
    )
}

/// `C-router`: the Routers' ports, from `router_from` (empty: every pod of the namespace).
fn router(c: &ValidCluster, router_from: &[NetworkPolicyPeer]) -> NetworkPolicy {
    let from = if router_from.is_empty() {
        vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..Default::default()
        }]
    } else {
        router_from.to_vec()
    };
    let ports = router_conf::ports(c).into_iter().map(|(_, p)| p).collect();
    policy(
        c,
        c.names.router_network_policy(),
        Component::Router,
        ports,
        from,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::testing::valid_cluster;

    fn operator() -> OperatorPods {
        OperatorPods {
            namespace: "ops".into(),
            labels: BTreeMap::from([("app.kubernetes.io/name".into(), "innodb-operator".into())]),
        }
    }

    fn rule(p: &NetworkPolicy) -> &NetworkPolicyIngressRule {
        let ingress = p.spec.as_ref().unwrap().ingress.as_ref().unwrap();
        assert_eq!(ingress.len(), 1, "one rule: every peer to every port");
        &ingress[0]
    }

    fn ports(p: &NetworkPolicy) -> Vec<i32> {
        rule(p)
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|port| {
                assert_eq!(port.protocol.as_deref(), Some("TCP"));
                match port.port {
                    Some(IntOrString::Int(n)) => n,
                    ref other => panic!("port {other:?}"),
                }
            })
            .collect()
    }

    fn selector(labels: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn cluster_pods(component: &str) -> NetworkPolicyPeer {
        NetworkPolicyPeer {
            pod_selector: Some(selector(&[
                ("app.kubernetes.io/component", component),
                ("app.kubernetes.io/instance", "orders"),
            ])),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_unless_enabled() {
        let operator = operator();
        for spec in [
            "spec: {}",
            "spec: {networkPolicy: {}}",
            "spec: {networkPolicy: {enabled: false, routerFrom: [{podSelector: {}}]}}",
        ] {
            assert!(
                policies(&valid_cluster(spec), Some(&operator)).is_empty(),
                "{spec}"
            );
        }
    }

    #[test]
    fn members_admit_their_cluster_and_the_operator_on_the_mysql_ports() {
        let c = valid_cluster("spec: {networkPolicy: {enabled: true}}");
        let built = policies(&c, Some(&operator()));
        assert_eq!(built.len(), 2);
        let members = &built[0];
        assert_eq!(members.metadata.name.as_deref(), Some("orders-members"));
        assert_eq!(members.metadata.namespace.as_deref(), Some("db"));
        let owner = &members.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("MySQLCluster", Some(true))
        );
        assert_eq!(
            members.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "innodb-operator"
        );
        let spec = members.spec.as_ref().unwrap();
        // The StatefulSet's pods, exactly as it selects them.
        assert_eq!(
            spec.pod_selector,
            Some(selector(&[
                ("app.kubernetes.io/component", "database"),
                ("app.kubernetes.io/instance", "orders"),
            ]))
        );
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        assert_eq!(spec.egress, None, "egress is not restricted");
        assert_eq!(ports(members), vec![3306, 33060]);
        assert_eq!(
            rule(members).from.as_ref().unwrap(),
            &vec![
                cluster_pods("database"),
                cluster_pods("router"),
                cluster_pods("backup"),
                cluster_pods("restore"),
                NetworkPolicyPeer {
                    namespace_selector: Some(selector(&[("kubernetes.io/metadata.name", "ops")])),
                    pod_selector: Some(selector(&[("app.kubernetes.io/name", "innodb-operator")])),
                    ..Default::default()
                },
            ]
        );
    }

    #[test]
    fn the_xcom_port_only_with_the_xcom_stack() {
        let xcom =
            valid_cluster("spec: {groupCommunicationStack: XCOM, networkPolicy: {enabled: true}}");
        assert_eq!(ports(&policies(&xcom, None)[0]), vec![3306, 33060, 33061]);
        let mysql =
            valid_cluster("spec: {groupCommunicationStack: MYSQL, networkPolicy: {enabled: true}}");
        assert_eq!(ports(&policies(&mysql, None)[0]), vec![3306, 33060]);
    }

    #[test]
    fn without_the_operators_pods_only_the_clusters_own_are_admitted() {
        let c = valid_cluster("spec: {networkPolicy: {enabled: true}}");
        let from = rule(&policies(&c, None)[0]).from.clone().unwrap();
        assert_eq!(from.len(), 4);
        assert!(from.iter().all(|p| p.namespace_selector.is_none()));
    }

    #[test]
    fn routers_admit_the_namespace_by_default_and_whom_the_spec_names() {
        let c = valid_cluster("spec: {networkPolicy: {enabled: true}}");
        let router = &policies(&c, None)[1];
        assert_eq!(router.metadata.name.as_deref(), Some("orders-router"));
        assert_eq!(
            router.spec.as_ref().unwrap().pod_selector,
            Some(selector(&[
                ("app.kubernetes.io/component", "router"),
                ("app.kubernetes.io/instance", "orders"),
            ]))
        );
        // metadataCache (the default) adds the read-write split port.
        assert_eq!(ports(router), vec![6446, 6447, 6448, 6449, 6450]);
        assert_eq!(
            rule(router).from.as_ref().unwrap(),
            &vec![NetworkPolicyPeer {
                pod_selector: Some(LabelSelector::default()),
                ..Default::default()
            }]
        );

        let c = valid_cluster(
            "spec: {router: {mode: static}, networkPolicy: {enabled: true, routerFrom: [{namespaceSelector: {matchLabels: {team: shop}}}, {ipBlock: {cidr: 10.0.0.0/8}}]}}",
        );
        let router = &policies(&c, None)[1];
        assert_eq!(ports(router), vec![6446, 6447, 6448, 6449]);
        let from = rule(router).from.as_ref().unwrap();
        assert_eq!(from.len(), 2);
        assert_eq!(
            from[0].namespace_selector,
            Some(selector(&[("team", "shop")]))
        );
        assert_eq!(from[1].ip_block.as_ref().unwrap().cidr, "10.0.0.0/8");
    }

    #[test]
    fn no_router_policy_without_routers() {
        let c = valid_cluster("spec: {router: {instances: 0}, networkPolicy: {enabled: true}}");
        let built = policies(&c, None);
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].metadata.name.as_deref(), Some("orders-members"));
    }
}
