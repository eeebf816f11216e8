//! The objects a cluster owns, on the control plane with the operator binary: what decides each
//! apply is one list of the cluster's labelled objects per kind, so these prove the two cases a
//! list alone cannot see or must see: an object of one of the cluster's names that is someone
//! else's (no labels: not listed) is refused, not taken over; and an object the spec no longer
//! needs is deleted. The NetworkPolicies of `spec.networkPolicy` (and the chart's own) are such
//! objects: made when enabled, changed with the spec, deleted when disabled.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use support::chart::{CHART, CHART_POD_LABELS, RELEASE_NS, operator, operator_in_chart_pods};
use support::{control_plane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);

fn clusters(client: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    );
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn create_cluster(client: &Client, ns: &str, name: &str, spec: Value) {
    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
        "metadata": {"name": name}, "spec": spec
    }))
    .expect("cluster");
    clusters(client, ns)
        .create(&PostParams::default(), &obj)
        .await
        .expect("create cluster");
}

/// The cluster's Ready condition once it describes the current generation.
async fn ready(client: &Client, ns: &str, name: &str) -> Option<Value> {
    let obj = clusters(client, ns).get(name).await.ok()?;
    let status = obj.data.get("status")?;
    (status["observedGeneration"].as_i64() == obj.metadata.generation).then_some(())?;
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .cloned()
}

#[tokio::test]
async fn an_object_with_a_clusters_name_that_is_someone_elses_is_refused_not_taken_over() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("foreign-object").await;
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let theirs: Service = serde_json::from_value(json!({
        "metadata": {"name": "orders-ro"},
        "spec": {"selector": {"app": "theirs"}, "ports": [{"port": 80}]}
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create their Service");
    let _op = operator(cp, &admin, &ns).await;
    create_cluster(
        &admin,
        &ns,
        "orders",
        json!({"instances": 1, "router": {"instances": 0}}),
    )
    .await;

    let condition = wait_for("the cluster to report ApplyFailed", TIMEOUT, || async {
        ready(&admin, &ns, "orders")
            .await
            .filter(|c| c["reason"] == "ApplyFailed")
    })
    .await;
    let message = condition["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("orders-ro") && message.contains("not managed by this MySQLCluster"),
        "{message}"
    );
    let after = services.get("orders-ro").await.expect("their Service");
    assert!(
        after.metadata.owner_references.is_none(),
        "taken over: {:?}",
        after.metadata.owner_references
    );
    let selector = after.spec.and_then(|s| s.selector).unwrap_or_default();
    assert_eq!(selector.get("app").map(String::as_str), Some("theirs"));
    // The objects before it in the apply order were made; theirs stopped the rest.
    assert!(services.get_opt("orders").await.expect("get").is_some());
}

#[tokio::test]
async fn objects_the_spec_no_longer_needs_are_deleted() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("prune").await;
    let _op = operator(cp, &admin, &ns).await;
    create_cluster(
        &admin,
        &ns,
        "orders",
        json!({"instances": 1, "router": {"instances": 1}}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    wait_for("the router Deployment", TIMEOUT, || async {
        deployments.get_opt("orders-router").await.ok().flatten()
    })
    .await;

    clusters(&admin, &ns)
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"router": {"instances": 0}}})),
        )
        .await
        .expect("no routers");
    wait_for("the router's objects to be deleted", TIMEOUT, || async {
        let left = [
            deployments.get_opt("orders-router").await.ok()?.is_some(),
            services.get_opt("orders-router").await.ok()?.is_some(),
            services.get_opt("orders-router-lb").await.ok()?.is_some(),
            config_maps
                .get_opt("orders-router-config")
                .await
                .ok()?
                .is_some(),
        ];
        (!left.iter().any(|l| *l)).then_some(())
    })
    .await;
    // What the spec still needs stays.
    assert!(services.get_opt("orders").await.expect("get").is_some());
    assert!(services.get_opt("orders-ro").await.expect("get").is_some());
}

/// The one ingress rule of `policy`: its TCP ports and its peers, as JSON.
fn ingress(policy: &NetworkPolicy) -> (Vec<i32>, Vec<Value>) {
    let spec = policy.spec.as_ref().expect("spec");
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
    let rules = spec.ingress.as_ref().expect("ingress");
    assert_eq!(rules.len(), 1, "{rules:?}");
    let ports = rules[0]
        .ports
        .iter()
        .flatten()
        .map(|p| match p.port {
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => n,
            ref other => panic!("port {other:?}"),
        })
        .collect();
    let from = rules[0]
        .from
        .iter()
        .flatten()
        .map(|p: &NetworkPolicyPeer| serde_json::to_value(p).unwrap())
        .collect();
    (ports, from)
}

#[tokio::test]
async fn network_policies_follow_the_spec_and_go_when_disabled() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("netpol").await;
    let _op = operator_in_chart_pods(cp, &admin, &ns).await;
    create_cluster(
        &admin,
        &ns,
        "orders",
        json!({"instances": 1, "router": {"instances": 1}, "networkPolicy": {"enabled": true}}),
    )
    .await;
    let policies: Api<NetworkPolicy> = Api::namespaced(admin.clone(), &ns);
    let get = |name: &'static str| {
        let policies = policies.clone();
        async move { policies.get_opt(name).await.ok().flatten() }
    };
    let members = wait_for("the members' NetworkPolicy", TIMEOUT, || {
        get("orders-members")
    })
    .await;
    let owner = &members.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("MySQLCluster", "orders")
    );
    let (ports, from) = ingress(&members);
    assert_eq!(ports, vec![3306, 33060]);
    let cluster_pods = |component: &str| {
        json!({"podSelector": {"matchLabels": {
            "app.kubernetes.io/component": component, "app.kubernetes.io/instance": "orders"}}})
    };
    let operator_labels: serde_json::Map<String, Value> = CHART_POD_LABELS
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), json!(v))
        })
        .collect();
    assert_eq!(
        from,
        vec![
            cluster_pods("database"),
            cluster_pods("router"),
            cluster_pods("backup"),
            cluster_pods("restore"),
            json!({
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": RELEASE_NS}},
                "podSelector": {"matchLabels": operator_labels},
            }),
        ]
    );
    // The members' policy selects exactly the StatefulSet's pods.
    let sts = Api::<k8s_openapi::api::apps::v1::StatefulSet>::namespaced(admin.clone(), &ns)
        .get("orders")
        .await
        .expect("the StatefulSet");
    assert_eq!(
        members
            .spec
            .as_ref()
            .unwrap()
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels,
        sts.spec.unwrap().selector.match_labels
    );
    let router = wait_for("the Routers' NetworkPolicy", TIMEOUT, || {
        get("orders-router")
    })
    .await;
    let (ports, from) = ingress(&router);
    assert_eq!(ports, vec![6446, 6447, 6448, 6449, 6450]);
    assert_eq!(
        from,
        vec![json!({"podSelector": {}})],
        "default: the namespace"
    );

    // Whom the spec names replaces the default.
    let shop = json!({"namespaceSelector": {"matchLabels": {"team": "shop"}}});
    clusters(&admin, &ns)
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"networkPolicy": {"routerFrom": [shop]}}})),
        )
        .await
        .expect("routerFrom");
    wait_for(
        "the Routers' policy to admit team shop",
        TIMEOUT,
        || async {
            let router = get("orders-router").await?;
            (ingress(&router).1 == vec![shop.clone()]).then_some(())
        },
    )
    .await;

    // Disabled: both go; the rest of the cluster stays.
    clusters(&admin, &ns)
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"networkPolicy": {"enabled": false}}})),
        )
        .await
        .expect("disable");
    wait_for("the NetworkPolicies to be deleted", TIMEOUT, || async {
        let left = get("orders-members").await.is_some() || get("orders-router").await.is_some();
        (!left).then_some(())
    })
    .await;
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    assert!(services.get_opt("orders").await.expect("get").is_some());
}

#[tokio::test]
async fn the_charts_network_policy_admits_only_metrics_scrapers_and_is_valid() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("chart-netpol").await;
    let render = |args: &[&str]| {
        let out = cp
            .command("helm")
            .args(["template", "innodb-operator", CHART, "--namespace", &ns])
            .args(["--kube-version", "1.36.0", "--skip-crds"])
            .args(args)
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm template: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        serde_yaml::Deserializer::from_str(&text)
            .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
            .collect::<Vec<Value>>()
    };
    let of_kind = |docs: &[Value], kind: &str| {
        docs.iter()
            .filter(|d| d["kind"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let default = render(&[]);
    assert!(of_kind(&default, "NetworkPolicy").is_empty(), "opt-in");
    // The operator names its pods with the labels its Deployment gives them.
    let deployment = &of_kind(&default, "Deployment")[0];
    let env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .expect("env");
    let labels = env
        .iter()
        .find(|e| e["name"] == "OPERATOR_POD_LABELS")
        .expect("OPERATOR_POD_LABELS");
    assert_eq!(labels["value"], CHART_POD_LABELS);
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for kv in CHART_POD_LABELS.split(',') {
        let (k, v) = kv.split_once('=').unwrap();
        assert_eq!(pod_labels[k], v, "{k}");
    }

    let prometheus = json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}});
    let enabled = render(&[
        "--set",
        "networkPolicy.enabled=true",
        "--set-json",
        &format!("networkPolicy.metricsFrom=[{prometheus}]"),
    ]);
    let policy = of_kind(&enabled, "NetworkPolicy");
    assert_eq!(policy.len(), 1);
    let policy: NetworkPolicy = serde_json::from_value(policy[0].clone()).expect("NetworkPolicy");
    assert_eq!(
        policy
            .spec
            .as_ref()
            .unwrap()
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels,
        serde_json::from_value(pod_labels.clone()).unwrap()
    );
    let (ports, from) = ingress(&policy);
    assert_eq!(ports, vec![8080], "the HTTP port only");
    assert_eq!(from, vec![prometheus]);
    // The API server accepts it as rendered.
    Api::<NetworkPolicy>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &policy)
        .await
        .expect("the apiserver accepts the chart's NetworkPolicy");

    // Without scrapers: no ingress at all.
    let closed = render(&["--set", "networkPolicy.enabled=true"]);
    let closed: NetworkPolicy =
        serde_json::from_value(of_kind(&closed, "NetworkPolicy")[0].clone()).unwrap();
    assert_eq!(closed.spec.unwrap().ingress, Some(vec![]));
}
