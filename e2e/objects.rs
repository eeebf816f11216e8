//! The objects a cluster owns, on the control plane with the operator binary: what decides each
//! apply is one list of the cluster's labelled objects per kind, so these prove the two cases a
//! list alone cannot see or must see: an object of one of the cluster's names that is someone
//! else's (no labels: not listed) is refused, not taken over; and an object the spec no longer
//! needs is deleted.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use support::chart::operator;
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
