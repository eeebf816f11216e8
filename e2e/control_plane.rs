//! Smoke tests of the control-plane test environment itself: the real apiserver stores and
//! validates objects, the controller-manager runs StatefulSets, binds volumes and collects
//! garbage, the scheduler places pods on kwok nodes, RBAC is enforced and writes are audited.
//! If these fail, the operator tests on this tier prove nothing.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Resource;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::{control_plane, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

fn object<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("test object matches its type")
}

#[tokio::test]
async fn statefulset_pod_with_a_volume_runs_on_a_kwok_node() {
    let Some(cp) = control_plane() else { return };
    let (client, ns) = cp.namespace("sts-runs").await;
    let sts: StatefulSet = object(json!({
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "registry.invalid/db:1"}]}
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
            }]
        }
    }));
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await
        .expect("create StatefulSet");

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let running = wait_for("both pods Running and Ready", TIMEOUT, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        let ready: Vec<Pod> = list
            .items
            .into_iter()
            .filter(|p| {
                let status = p.status.as_ref();
                status.and_then(|s| s.phase.as_deref()) == Some("Running")
                    && status
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .collect();
        (ready.len() == 2).then_some(ready)
    })
    .await;
    for pod in &running {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        assert!(node.starts_with("kwok-node-"), "pod scheduled on {node:?}");
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        assert!(ip.is_some(), "kwok gave pod {:?} no IP", pod.metadata.name);
    }

    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    for name in ["data-db-0", "data-db-1"] {
        let pvc = pvcs
            .get(name)
            .await
            .expect("claim from the volumeClaimTemplate");
        let phase = pvc.status.and_then(|s| s.phase);
        assert_eq!(phase.as_deref(), Some("Bound"), "claim {name}");
    }
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_what_it_owns() {
    let Some(cp) = control_plane() else { return };
    let (client, ns) = cp.namespace("gc").await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let owner = cms
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "owner"}})),
        )
        .await
        .expect("create owner");
    let owner_ref = json!({
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner.meta().uid.clone().expect("uid"),
        "controller": true, "blockOwnerDeletion": true
    });
    cms.create(
        &PostParams::default(),
        &object(json!({"metadata": {"name": "owned", "ownerReferences": [owner_ref]}})),
    )
    .await
    .expect("create owned");
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    wait_for("the owned ConfigMap to be collected", TIMEOUT, || async {
        cms.get_opt("owned").await.ok()?.is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn rbac_is_enforced_and_writes_are_audited() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("rbac").await;
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "app"}})),
        )
        .await
        .expect("create ServiceAccount");
    let app = cp.service_account_client(&admin, &ns, "app").await;
    let app_cms: Api<ConfigMap> = Api::namespaced(app.clone(), &ns);

    let denied = app_cms
        .create(
            &PostParams::default(),
            &object(json!({"metadata": {"name": "denied"}})),
        )
        .await
        .expect_err("a ServiceAccount without a Role must not create ConfigMaps");
    assert!(
        matches!(&denied, kube::Error::Api(s) if s.code == 403),
        "{denied:?}"
    );

    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "cm-writer"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]}]
            })),
        )
        .await
        .expect("create Role");
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &object(json!({
                "metadata": {"name": "app-cm-writer"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-writer"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]
            })),
        )
        .await
        .expect("create RoleBinding");
    wait_for("the RoleBinding to take effect", TIMEOUT, || async {
        app_cms
            .create(
                &PostParams::default(),
                &object(json!({"metadata": {"name": "allowed"}})),
            )
            .await
            .ok()
    })
    .await;

    let user = format!("system:serviceaccount:{ns}:app");
    let writes: Vec<_> = cp
        .audit_writes()
        .into_iter()
        .filter(|e| e.user.username == user)
        .collect();
    let codes: Vec<(String, Option<String>, u16)> = writes
        .iter()
        .map(|e| {
            let r = e.object_ref.clone().expect("object ref");
            (
                r.resource,
                r.name,
                e.response_status.as_ref().map_or(0, |s| s.code),
            )
        })
        .collect();
    assert!(
        codes.contains(&("configmaps".into(), Some("allowed".into()), 201)),
        "audit log lacks the allowed create: {codes:?}"
    );
    assert!(
        codes
            .iter()
            .any(|(r, _, code)| r == "configmaps" && *code == 403),
        "audit log lacks the denied create: {codes:?}"
    );
}
