//! The operator and its Helm chart against a real control plane: the chart installs, the
//! operator binary of this build runs as a local process with the chart's ServiceAccount token
//! (so a missing RBAC rule fails the test), the samples are accepted and reconciled into objects
//! the apiserver validates and the controller-manager runs, bad specs are rejected by the
//! apiserver, deletion garbage-collects, a malformed object does not stop the others, a
//! restarted operator writes nothing, and of two replicas only the leader acts: a standby takes
//! over a killed leader, and a leader paused past its lease or cut off from the apiserver stops
//! before the next one starts.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use support::cert_manager::{CertManager, ca_issuer};
use support::chart::{RELEASE_NS, chart, operator, replica, replica_through};
use support::operator::{Expect, LEASE_DURATION, LEASE_RENEW_DEADLINE, Operator};
use support::proxy::Proxy;
use support::{ControlPlane, control_plane, wait_for};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/samples");
const TIMEOUT: Duration = Duration::from_secs(90);
const INSTANCE: &str = "app.kubernetes.io/instance";

fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    )
}

fn clusters(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &cluster_resource())
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("read sample");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("sample is YAML"))
        .filter(|doc: &Value| !doc.is_null())
        .collect()
}

/// Server-side applies one manifest (any kind, resolved by discovery) into `ns`.
async fn apply(client: &Client, ns: &str, doc: &Value) -> Result<DynamicObject, kube::Error> {
    let (group, version) = match doc["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .split_once('/')
    {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            doc["apiVersion"].as_str().unwrap_or_default().to_string(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, doc["kind"].as_str().expect("kind"));
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let name = doc["metadata"]["name"].as_str().expect("name");
    api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(doc))
        .await
}

fn owned_by(meta: &kube::api::ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.controller == Some(true))
}

async fn condition(client: &Client, ns: &str, name: &str, type_: &str) -> Option<Value> {
    let obj = clusters(client, ns).get(name).await.ok()?;
    let generation = obj.metadata.generation?;
    let status = obj.data.get("status")?;
    (status["observedGeneration"].as_i64() == Some(generation)).then_some(())?;
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[tokio::test]
async fn chart_installs_crds_and_least_privilege_rbac() {
    let Some(cp) = control_plane() else { return };
    let sa = chart(cp);
    let admin = cp.admin().await;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    for name in [
        "mysqlclusters.innodb-operator.io",
        "backups.innodb-operator.io",
    ] {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        assert!(established, "CRD {name} is not Established");
        // The chart ships the same CRDs as `crds/` (what `innodb-operator crd` prints).
        let file = format!("{}/crds/{name}.yaml", env!("CARGO_MANIFEST_DIR"));
        let shipped: CustomResourceDefinition =
            serde_yaml::from_str(&std::fs::read_to_string(&file).expect("crds/ file"))
                .expect("CRD yaml");
        assert_eq!(
            serde_json::to_value(&crd.spec.versions).unwrap()[0]["schema"],
            serde_json::to_value(&shipped.spec.versions).unwrap()[0]["schema"],
            "the installed schema of {name} differs from {file}"
        );
    }
    // The ServiceAccount may do what the operator needs and nothing beyond it.
    let client = cp.service_account_client(&admin, RELEASE_NS, sa).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let err = secrets
        .list(&ListParams::default())
        .await
        .expect_err("the operator must not list Secrets");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );
    clusters(&client, "default")
        .list(&ListParams::default())
        .await
        .expect("the operator lists MySQLClusters");
    // Leader election: Leases in the operator's own namespace, nowhere else.
    Api::<Lease>::namespaced(client.clone(), RELEASE_NS)
        .list(&ListParams::default())
        .await
        .expect("the operator lists Leases in its namespace");
    let err = Api::<Lease>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect_err("the operator must not list Leases elsewhere");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "{err:?}"
    );
    // Two replicas by default, kept one at a time through drains.
    let deployment = Api::<Deployment>::namespaced(admin.clone(), RELEASE_NS)
        .get("innodb-operator")
        .await
        .expect("the operator's Deployment");
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(2));
    let pdb = Api::<PodDisruptionBudget>::namespaced(admin.clone(), RELEASE_NS)
        .get("innodb-operator")
        .await
        .expect("the operator's PodDisruptionBudget");
    assert_eq!(
        pdb.spec.and_then(|s| s.min_available),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[tokio::test]
async fn samples_are_reconciled_and_deletion_collects_everything() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("samples").await;
    // The sample cluster's README step: the S3 credentials Secret it names.
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "s3-credentials"},
                "stringData": {"AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e-secret"}
            }))
            .unwrap(),
        )
        .await
        .expect("create s3-credentials");
    let _op = operator(cp, &admin, &ns).await;

    let mut samples: Vec<_> = std::fs::read_dir(SAMPLES)
        .expect("config/samples")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    samples.sort();
    assert!(!samples.is_empty(), "no samples in {SAMPLES}");
    let mut applied = 0;
    for path in &samples {
        for doc in documents(path) {
            apply(&admin, &ns, &doc)
                .await
                .unwrap_or_else(|e| panic!("{} rejected: {e}", path.display()));
            applied += 1;
        }
    }
    assert!(applied >= 2, "expected a MySQLCluster and a Backup sample");

    let cluster = clusters(&admin, &ns).get("orders").await.expect("orders");
    let uid = cluster.uid().expect("uid");
    let instances = cluster.data["spec"]["instances"]
        .as_i64()
        .expect("instances") as usize;
    let routers = cluster.data["spec"]["router"]["instances"]
        .as_i64()
        .unwrap_or(0) as usize;
    let selector = ListParams::default().labels(&format!("{INSTANCE}=orders"));

    // The members run on kwok nodes.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    wait_for("member and router pods Running", TIMEOUT, || async {
        let list = pods.list(&selector).await.ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        (running == instances + routers).then_some(())
    })
    .await;
    let sts = Api::<StatefulSet>::namespaced(admin.clone(), &ns)
        .get("orders")
        .await
        .expect("StatefulSet orders");
    assert!(
        owned_by(&sts.metadata, &uid),
        "StatefulSet not owned by the cluster"
    );
    assert_eq!(
        sts.spec.as_ref().and_then(|s| s.replicas),
        Some(instances as i32)
    );

    // Every child carries the cluster's labels and is owned by it.
    let services = Api::<Service>::namespaced(admin.clone(), &ns)
        .list(&selector)
        .await
        .unwrap();
    let configmaps = Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .list(&selector)
        .await
        .unwrap();
    let secrets = Api::<Secret>::namespaced(admin.clone(), &ns)
        .list(&selector)
        .await
        .unwrap();
    let pdbs = Api::<PodDisruptionBudget>::namespaced(admin.clone(), &ns)
        .list(&selector)
        .await
        .unwrap();
    let deployments = Api::<Deployment>::namespaced(admin.clone(), &ns)
        .list(&selector)
        .await
        .unwrap();
    let service_names: Vec<String> = services.items.iter().map(|s| s.name_any()).collect();
    for expected in ["orders", "orders-ro", "orders-instances"] {
        assert!(
            service_names.iter().any(|n| n == expected),
            "no Service {expected}: {service_names:?}"
        );
    }
    assert!(!configmaps.items.is_empty(), "no ConfigMap for the cluster");
    assert!(
        !secrets.items.is_empty(),
        "no credentials Secret for the cluster"
    );
    assert_eq!(pdbs.items.len(), 1, "PodDisruptionBudgets");
    assert_eq!(
        deployments.items.len(),
        usize::from(routers > 0),
        "router Deployments"
    );
    let metas = services
        .items
        .iter()
        .map(|o| &o.metadata)
        .chain(configmaps.items.iter().map(|o| &o.metadata))
        .chain(secrets.items.iter().map(|o| &o.metadata))
        .chain(pdbs.items.iter().map(|o| &o.metadata))
        .chain(deployments.items.iter().map(|o| &o.metadata));
    for meta in metas {
        assert!(
            owned_by(meta, &uid),
            "{:?} is not owned by the cluster",
            meta.name
        );
    }

    // Status: conditions for the current generation, and the printer columns kubectl shows.
    let ready = wait_for(
        "a Ready condition for the current generation",
        TIMEOUT,
        || condition(&admin, &ns, "orders", "Ready"),
    )
    .await;
    assert!(
        ready["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{ready}"
    );
    let table = printer_table(&admin, &ns).await;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    let row = table["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["cells"][0] == "orders"))
        .expect("a row for orders")["cells"]
        .as_array()
        .expect("cells")
        .clone();
    let cell = |name: &str| -> Value {
        let i = columns
            .iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("no column {name}: {columns:?}"));
        row[i].clone()
    };
    assert_eq!(cell("Instances"), json!(instances), "Instances column");
    assert!(cell("Online").is_i64(), "Online column: {}", cell("Online"));
    assert!(
        cell("Status").as_str().is_some_and(|s| !s.is_empty()),
        "Status column: {}",
        cell("Status")
    );

    // Deleting the cluster lets the garbage collector remove everything it owned.
    clusters(&admin, &ns)
        .delete("orders", &DeleteParams::foreground())
        .await
        .expect("delete orders");
    wait_for(
        "the cluster and its children to be gone",
        TIMEOUT,
        || async {
            let left = Api::<StatefulSet>::namespaced(admin.clone(), &ns)
                .list(&selector)
                .await
                .ok()?
                .items
                .len()
                + Api::<Service>::namespaced(admin.clone(), &ns)
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len()
                + Api::<ConfigMap>::namespaced(admin.clone(), &ns)
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len()
                + Api::<Secret>::namespaced(admin.clone(), &ns)
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len()
                + Api::<Deployment>::namespaced(admin.clone(), &ns)
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len()
                + Api::<PodDisruptionBudget>::namespaced(admin.clone(), &ns)
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len()
                + Api::<Pod>::namespaced(admin.clone(), &ns)
                    .list(&selector)
                    .await
                    .ok()?
                    .items
                    .len()
                + usize::from(
                    clusters(&admin, &ns)
                        .get_opt("orders")
                        .await
                        .ok()?
                        .is_some(),
                );
            (left == 0).then_some(())
        },
    )
    .await;
}

/// The MySQLCluster list as the apiserver renders it for kubectl (the printer columns).
async fn printer_table(client: &Client, ns: &str) -> Value {
    let url = format!("/apis/innodb-operator.io/v1alpha1/namespaces/{ns}/mysqlclusters");
    let request = http::Request::get(url)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .expect("request");
    client
        .request::<Value>(request)
        .await
        .expect("Table of MySQLClusters")
}

/// `base` with `patch` merged in (RFC 7386 JSON merge patch semantics).
fn merged(base: &Value, patch: &Value) -> Value {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            let mut out = b.clone();
            for (k, v) in p {
                if v.is_null() {
                    out.remove(k);
                } else {
                    let merged_value = merged(out.get(k).unwrap_or(&Value::Null), v);
                    out.insert(k.clone(), merged_value);
                }
            }
            Value::Object(out)
        }
        (_, p) => p.clone(),
    }
}

fn sample_cluster(name: &str) -> Value {
    let doc = documents(&Path::new(SAMPLES).join("mysqlcluster.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "MySQLCluster")
        .expect("a MySQLCluster sample");
    merged(&doc, &json!({"metadata": {"name": name}}))
}

fn rejection(result: Result<DynamicObject, kube::Error>, case: &str) -> String {
    match result {
        Ok(_) => panic!("{case}: the apiserver accepted it"),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{case}: {status:?}");
            status.message
        }
        Err(e) => panic!("{case}: unexpected error {e}"),
    }
}

#[tokio::test]
async fn invalid_specs_are_rejected_by_the_apiserver() {
    let Some(cp) = control_plane() else { return };
    chart(cp);
    let _schema = SCHEMA.lock().await;
    let (admin, ns) = cp.namespace("invalid").await;
    let api = clusters(&admin, &ns);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let schedule =
        |s: &str| json!({"backup": {"schedules": [{"name": "nightly", "schedule": s, "keep": 7}]}});
    let corpus = [
        (
            "no members",
            json!({"instances": 0}),
            "greater than or equal to 1",
        ),
        (
            "ten members",
            json!({"instances": 10}),
            "less than or equal to 9",
        ),
        (
            "negative members",
            json!({"instances": -3}),
            "greater than or equal to 1",
        ),
        ("MySQL 5.7", json!({"version": "5.7.44"}), "spec.version"),
        ("MySQL 8.0.26", json!({"version": "8.0.26"}), "spec.version"),
        (
            "MySQL 9.6, an innovation release",
            json!({"version": "9.6.0"}),
            "9.7.x (LTS, the default)",
        ),
        (
            "size in words",
            json!({"storage": {"size": "ten gigs"}}),
            "must be a positive Kubernetes quantity",
        ),
        (
            "size zero",
            json!({"storage": {"size": "0"}}),
            "must be a positive Kubernetes quantity",
        ),
        (
            "negative size",
            json!({"storage": {"size": "-1Gi"}}),
            "must be a positive Kubernetes quantity",
        ),
        (
            "33 routers",
            json!({"router": {"instances": 33}}),
            "less than or equal to 32",
        ),
        (
            "cron with four fields",
            schedule("0 3 * *"),
            "five-field cron expression",
        ),
        (
            "cron in words",
            schedule("every night"),
            "five-field cron expression",
        ),
        (
            "unknown cron macro",
            schedule("@fortnightly"),
            "five-field cron expression",
        ),
        (
            "cron minute out of range",
            schedule("99 3 * * *"),
            "values in range",
        ),
        (
            "a TLS Secret and a cert-manager issuer",
            json!({"tls": {"secretName": "mine", "issuerRef": {"name": "ca"}}}),
            "set secretName (your Secret) or issuerRef",
        ),
        (
            "an issuer without a name",
            json!({"tls": {"issuerRef": {"kind": "ClusterIssuer"}}}),
            "name: Required value",
        ),
        (
            "a Router peer naming nothing",
            json!({"networkPolicy": {"enabled": true, "routerFrom": [{}]}}),
            "ipBlock alone",
        ),
        (
            "a Router peer with an ipBlock and a selector",
            json!({"networkPolicy": {"routerFrom": [
                {"ipBlock": {"cidr": "10.0.0.0/8"}, "namespaceSelector": {}}]}}),
            "ipBlock alone",
        ),
    ];
    let mut failures = Vec::new();
    for (case, spec, expected) in corpus {
        let doc = merged(&sample_cluster("bad"), &json!({"spec": spec}));
        let obj: DynamicObject = serde_json::from_value(doc).expect("object");
        match api.create(&dry_run, &obj).await {
            Ok(_) => failures.push(format!("{case}: accepted")),
            Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains(expected) => {}
            Err(e) => failures.push(format!("{case}: expected 422 with {expected:?}, got {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The sample itself is valid: the corpus fails for its mutation, not for the base.
    let good: DynamicObject = serde_json::from_value(sample_cluster("good")).unwrap();
    api.create(&dry_run, &good)
        .await
        .expect("the sample is accepted");

    // A name that would make `<name>-instances` longer than a DNS label is refused before the
    // operator makes anything for it; the longest allowed name is accepted.
    for (name, accepted) in [("a".repeat(52), true), ("a".repeat(53), false)] {
        let obj: DynamicObject = serde_json::from_value(sample_cluster(&name)).unwrap();
        match api.create(&dry_run, &obj).await {
            Ok(_) => assert!(accepted, "a {}-character name was accepted", name.len()),
            Err(kube::Error::Api(s)) if s.code == 422 => {
                assert!(!accepted, "{}: {}", name.len(), s.message);
                assert!(s.message.contains("at most 52 characters"), "{}", s.message);
            }
            Err(e) => panic!("{}-character name: {e}", name.len()),
        }
    }

    // Fields fixed at creation cannot change.
    let fixed = merged(
        &sample_cluster("fixed"),
        &json!({"spec": {"storage": {"storageClassName": "standard"}, "groupCommunicationStack": "MYSQL"}}),
    );
    api.create(
        &PostParams::default(),
        &serde_json::from_value(fixed).unwrap(),
    )
    .await
    .expect("create fixed");
    let patch_dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    for (case, patch, expected) in [
        (
            "change storageClassName",
            json!({"spec": {"storage": {"storageClassName": "fast"}}}),
            "storage.storageClassName is immutable",
        ),
        (
            "change groupCommunicationStack",
            json!({"spec": {"groupCommunicationStack": "XCOM"}}),
            "groupCommunicationStack cannot be changed",
        ),
    ] {
        let message = rejection(
            api.patch("fixed", &patch_dry, &Patch::Merge(&patch)).await,
            case,
        );
        assert!(message.contains(expected), "{case}: {message}");
    }
}

fn operator_user(cp: &ControlPlane) -> String {
    format!("system:serviceaccount:{RELEASE_NS}:{}", chart(cp))
}

/// The operator's writes into `ns` recorded by the apiserver so far.
fn operator_writes(cp: &ControlPlane, ns: &str) -> Vec<String> {
    let user = operator_user(cp);
    cp.audit_writes()
        .into_iter()
        .filter(|e| e.user.username == user)
        .filter_map(|e| {
            let r = e.object_ref?;
            (r.namespace.as_deref() == Some(ns)).then(|| {
                format!(
                    "{} {}/{}{}",
                    e.verb,
                    r.resource,
                    r.name.unwrap_or_default(),
                    r.subresource.map(|s| format!("/{s}")).unwrap_or_default()
                )
            })
        })
        .collect()
}

/// Waits until the operator has written nothing into `ns` for `quiet`, and returns its writes.
async fn settled_writes(cp: &ControlPlane, ns: &str, quiet: Duration) -> Vec<String> {
    let mut last = operator_writes(cp, ns);
    let mut since = std::time::Instant::now();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = operator_writes(cp, ns);
        if now.len() != last.len() {
            last = now;
            since = std::time::Instant::now();
        } else if since.elapsed() >= quiet {
            return last;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator keeps writing: {last:?}"
        );
    }
}

#[tokio::test]
async fn steady_state_and_restart_write_nothing() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("steady").await;
    let mut spec = sample_cluster("quiet");
    spec["spec"].as_object_mut().unwrap().remove("backup");
    let op = operator(cp, &admin, &ns).await;
    apply(&admin, &ns, &spec).await.expect("apply cluster");
    wait_for(
        "a Ready condition for the current generation",
        TIMEOUT,
        || condition(&admin, &ns, "quiet", "Ready"),
    )
    .await;
    let before = settled_writes(cp, &ns, Duration::from_secs(10)).await;
    assert!(
        !before.is_empty(),
        "the audit log shows no operator writes at all"
    );

    assert!(
        op.stop().await,
        "the operator did not exit cleanly on SIGTERM"
    );
    let op = operator(cp, &admin, &ns).await;
    // Long enough for the restarted operator to list, reconcile and requeue.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let after = operator_writes(cp, &ns);
    assert_eq!(
        after[before.len()..].to_vec(),
        Vec::<String>::new(),
        "writes by the restarted operator in steady state (log: {})",
        op.log.display()
    );
}

/// Held by the tests that depend on the exact MySQLCluster schema, and by the one that loosens
/// it for a moment to store an object the operator cannot read.
static SCHEMA: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Stores `doc` under a schema that lets `mycnf` hold anything (as an older CRD version might
/// have), then puts the shipped schema back.
async fn create_under_loose_schema(admin: &Client, ns: &str, doc: &Value) {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let name = "mysqlclusters.innodb-operator.io";
    let original = crds.get(name).await.expect("CRD");
    let mut loose = serde_json::to_value(&original).unwrap();
    loose["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["mycnf"] = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    crds.replace(
        name,
        &PostParams::default(),
        &serde_json::from_value(loose).unwrap(),
    )
    .await
    .expect("loosen the CRD");
    let api = clusters(admin, ns);
    let obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
    wait_for("the loose schema to take effect", TIMEOUT, || async {
        api.create(&PostParams::default(), &obj).await.ok()
    })
    .await;
    let mut restored = original.clone();
    restored.metadata.resource_version = crds.get(name).await.unwrap().metadata.resource_version;
    crds.replace(name, &PostParams::default(), &restored)
        .await
        .expect("restore the CRD");
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut probe = obj.clone();
    probe.metadata.name = Some("probe".into());
    wait_for("the shipped schema to be back", TIMEOUT, || async {
        api.create(&dry_run, &probe).await.is_err().then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_malformed_object_does_not_stop_the_others() {
    let Some(cp) = control_plane() else { return };
    chart(cp);
    let (admin, ns) = cp.namespace("malformed").await;
    let without_backup = |name: &str| {
        let mut doc = sample_cluster(name);
        doc["spec"].as_object_mut().unwrap().remove("backup");
        doc
    };
    let broken = merged(
        &without_backup("broken"),
        &json!({"spec": {"mycnf": {"max_connections": 500, "sql_mode": ["STRICT_ALL_TABLES"]}}}),
    );
    {
        let _schema = SCHEMA.lock().await;
        create_under_loose_schema(&admin, &ns, &broken).await;
    }
    let op = operator(cp, &admin, &ns).await;
    apply(&admin, &ns, &without_backup("good"))
        .await
        .expect("apply good");
    wait_for("the good cluster to be reconciled", TIMEOUT, || {
        condition(&admin, &ns, "good", "Ready")
    })
    .await;
    Api::<StatefulSet>::namespaced(admin.clone(), &ns)
        .get("good")
        .await
        .expect("StatefulSet of the good cluster");

    // The broken one is reported on the object, not silently skipped.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    let event = wait_for("an Event about the unreadable cluster", TIMEOUT, || async {
        events
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken"))
    })
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
    assert!(
        event
            .note
            .as_deref()
            .is_some_and(|n| n.contains("mycnf") || n.contains("invalid type")),
        "the Event does not say what is wrong: {:?}",
        event.note
    );
    assert!(
        Api::<StatefulSet>::namespaced(admin.clone(), &ns)
            .get_opt("broken")
            .await
            .unwrap()
            .is_none(),
        "the operator built objects from a spec it could not read"
    );
    // ... and in its status, where `kubectl get` shows it.
    let ready = wait_for("the unreadable cluster's Ready condition", TIMEOUT, || {
        condition(&admin, &ns, "broken", "Ready")
    })
    .await;
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "InvalidObject", "{ready}");
    // Still serving after all of it.
    assert_eq!(
        support::operator::http_status(op.http, "/healthz").await,
        Some(200)
    );
}

/// The `restore` block of a cluster's status, once it has one.
async fn restore_status(client: &Client, ns: &str, name: &str) -> Option<Value> {
    let obj = clusters(client, ns).get(name).await.ok()?;
    obj.data.get("status")?.get("restore").cloned()
}

/// A cluster to restore: one member, no routers, restored from `restore_from`.
fn restored_cluster(name: &str, restore_from: Value) -> Value {
    let mut doc = sample_cluster(name);
    let spec = doc["spec"].as_object_mut().unwrap();
    spec.remove("backup");
    spec.insert("instances".into(), json!(1));
    spec.insert("router".into(), json!({"instances": 0}));
    spec.insert("restoreFrom".into(), restore_from);
    doc
}

#[tokio::test]
async fn a_restored_cluster_runs_one_restore_job_and_holds_its_group_until_it_succeeds() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("restore").await;
    let op = operator(cp, &admin, &ns).await;
    let prefix = "prod/shop/orders/orders-nightly-202611230300/";
    let doc = restored_cluster(
        "restored",
        json!({"s3": {
            "storage": {
                "bucket": "mysql-backups",
                "endpoint": "http://minio.storage:9000",
                "forcePathStyle": true,
                "credentialsSecret": {"name": "s3-credentials"}
            },
            "path": prefix
        }}),
    );
    let uid = apply(&admin, &ns, &doc)
        .await
        .expect("apply restored cluster")
        .uid()
        .expect("uid");

    // The Job: owned by the cluster, against member 0, as root, S3 secrets
    // by reference only.
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &ns);
    let job = wait_for("the restore Job", TIMEOUT, || async {
        jobs.get_opt("restore-restored").await.ok().flatten()
    })
    .await;
    assert!(
        owned_by(&job.metadata, &uid),
        "Job not owned by the cluster"
    );
    let pod_spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let c = &pod_spec.containers[0];
    let args = c.args.clone().unwrap_or_default();
    assert_eq!(args[0], "restore");
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--skip-account" && w[1] == "innodb_repl"),
        "{args:?}"
    );
    let env = c.env.clone().unwrap_or_default();
    let value = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .unwrap_or_else(|| panic!("no {n} in {env:?}"))
            .clone()
    };
    assert_eq!(
        value("MYSQL_HOST").value.unwrap(),
        format!("restored-0.restored-instances.{ns}.svc.cluster.local")
    );
    assert_eq!(value("MYSQL_USER").value.unwrap(), "root");
    assert_eq!(value("S3_PREFIX").value.unwrap(), prefix);
    assert_eq!(value("S3_BUCKET").value.unwrap(), "mysql-backups");
    assert_eq!(
        value("S3_ENDPOINT").value.unwrap(),
        "http://minio.storage:9000"
    );
    let secret_ref = |n: &str| {
        let e = value(n);
        assert_eq!(e.value, None, "{n} is inlined");
        let r = e.value_from.unwrap().secret_key_ref.unwrap();
        (r.name, r.key)
    };
    assert_eq!(
        secret_ref("MYSQL_PASSWORD"),
        ("restored-root".into(), "password".into())
    );
    assert_eq!(
        secret_ref("AWS_SECRET_ACCESS_KEY"),
        ("s3-credentials".into(), "AWS_SECRET_ACCESS_KEY".into())
    );

    // While it runs: the restore is Running and the group is held.
    wait_for("restore Running and the group held", TIMEOUT, || async {
        let r = restore_status(&admin, &ns, "restored").await?;
        (r["phase"] == "Running" && r["jobName"] == "restore-restored").then_some(())?;
        let restored = condition(&admin, &ns, "restored", "Restored").await?;
        (restored["status"] == "False" && restored["reason"] == "RestoreRunning").then_some(())?;
        let ready = condition(&admin, &ns, "restored", "Ready").await?;
        (ready["reason"] == "RestoreInProgress").then_some(())?;
        let obj = clusters(&admin, &ns).get("restored").await.ok()?;
        (obj.data["status"]["phase"] == "Restoring").then_some(())
    })
    .await;

    // A restarted operator follows the same Job.
    assert!(op.stop().await, "the operator did not exit cleanly");
    let op = operator(cp, &admin, &ns).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restore_jobs = jobs
        .list(&ListParams::default().labels(&format!(
            "{INSTANCE}=restored,app.kubernetes.io/component=restore"
        )))
        .await
        .expect("list Jobs");
    assert_eq!(restore_jobs.items.len(), 1, "a second restore Job");
    assert_eq!(restore_jobs.items[0].uid(), job.uid());

    // The restore container finishes and reports its result as a real one would (kwok plays
    // the kubelet; the controller-manager's Job controller completes the Job).
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let pod = wait_for("the restore Job's pod", TIMEOUT, || async {
        let list = pods
            .list(&ListParams::default().labels("job-name=restore-restored"))
            .await
            .ok()?;
        list.items.into_iter().next()
    })
    .await;
    let gtid_set = "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-42";
    let result = json!({"status": "Succeeded", "tables": 3, "chunks": 3, "rows": 10,
        "raw_bytes": 100, "stored_bytes": 50, "gtid_set": gtid_set, "seconds": 1.0})
    .to_string();
    let now = jiff::Timestamp::now().to_string();
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Succeeded",
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{
                "name": "restore", "image": c.image, "imageID": "", "ready": false,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                    "message": result, "startedAt": now, "finishedAt": now}}
            }]
        }})),
    )
    .await
    .expect("finish the restore pod");
    let restored = wait_for("restore Succeeded", TIMEOUT, || async {
        let r = restore_status(&admin, &ns, "restored").await?;
        (r["phase"] == "Succeeded").then_some(r)
    })
    .await;
    assert_eq!(restored["gtidSet"], gtid_set);
    assert!(restored["completionTime"].is_string());
    wait_for(
        "Restored True and the group no longer held",
        TIMEOUT,
        || async {
            let c = condition(&admin, &ns, "restored", "Restored").await?;
            (c["status"] == "True").then_some(())?;
            // mysqld does not run on kwok: the group now waits for its members instead.
            let ready = condition(&admin, &ns, "restored", "Ready").await?;
            (ready["reason"] != "RestoreInProgress").then_some(())
        },
    )
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("list Events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("restored"))
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["RestoreStarted", "Restored"] {
        assert_eq!(
            reasons.iter().filter(|r| *r == reason).count(),
            1,
            "{reason} Events in {reasons:?}"
        );
    }
    drop(op);
}

#[tokio::test]
async fn a_cluster_restored_from_a_missing_backup_says_what_to_do_and_restores_nothing() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("restore-missing").await;
    let _op = operator(cp, &admin, &ns).await;
    let doc = restored_cluster("lost", json!({"backup": "no-such-backup"}));
    apply(&admin, &ns, &doc).await.expect("apply cluster");
    let restored = wait_for("the Restored condition", TIMEOUT, || async {
        let c = condition(&admin, &ns, "lost", "Restored").await?;
        (c["reason"] == "RestorePending").then_some(c)
    })
    .await;
    assert_eq!(restored["status"], "False");
    let message = restored["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Backup no-such-backup does not exist"),
        "{message}"
    );
    let degraded = wait_for("the group held for the user", TIMEOUT, || async {
        let c = condition(&admin, &ns, "lost", "Degraded").await?;
        (c["reason"] == "RestoreSourceNotFound").then_some(c)
    })
    .await;
    assert_eq!(degraded["status"], "True");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(admin.clone(), &ns);
    wait_for("a RestoreSourceNotFound Event", TIMEOUT, || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("RestoreSourceNotFound")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("lost")
            })
            .then_some(())
    })
    .await;
    let jobs: Api<Job> = Api::namespaced(admin.clone(), &ns);
    assert!(
        jobs.get_opt("restore-lost")
            .await
            .expect("get Job")
            .is_none(),
        "a restore Job was created without a backup"
    );
}

/// A cluster without backups (nothing scheduled): only its reconcile writes.
fn quiet_cluster(name: &str) -> Value {
    let mut doc = sample_cluster(name);
    doc["spec"].as_object_mut().unwrap().remove("backup");
    doc
}

/// Every write made with the token `credential` (see `support::token_id`): when the apiserver
/// received it, and what it was.
fn writes_by(cp: &ControlPlane, credential: &str) -> Vec<(jiff::Timestamp, String)> {
    cp.audit_writes()
        .into_iter()
        .filter(|e| e.credential() == Some(credential))
        .map(|e| {
            let r = e.object_ref.clone().unwrap_or(support::AuditObjectRef {
                resource: String::new(),
                namespace: None,
                name: None,
                subresource: None,
            });
            (
                e.request_received_timestamp.expect("audit timestamp"),
                format!(
                    "{} {}/{}/{}",
                    e.verb,
                    r.namespace.unwrap_or_default(),
                    r.resource,
                    r.name.unwrap_or_default()
                ),
            )
        })
        .collect()
}

/// The Lease the replicas watching `ns` compete for: its holder and acquire time.
async fn lease_holder(admin: &Client, ns: &str) -> Option<(String, jiff::Timestamp)> {
    let lease = Api::<Lease>::namespaced(admin.clone(), RELEASE_NS)
        .get(&format!("innodb-operator-{ns}"))
        .await
        .ok()?;
    let spec = lease.spec?;
    Some((spec.holder_identity?, spec.acquire_time?.0))
}

/// Waits until replica `name` (its holder identity starts with the name) holds the lease, and
/// returns when it acquired it.
async fn acquired_by(admin: &Client, ns: &str, name: &str) -> jiff::Timestamp {
    let prefix = format!("{name}-");
    wait_for(&format!("{name} to hold the lease"), TIMEOUT, || async {
        let (holder, at) = lease_holder(admin, ns).await?;
        holder.starts_with(&prefix).then_some(at)
    })
    .await
}

/// Changes the cluster's spec (a new generation) and waits until its status reports on it.
async fn new_generation_reconciled(admin: &Client, ns: &str, name: &str, routers: i64) {
    let before = clusters(admin, ns).get(name).await.expect("cluster");
    let after = clusters(admin, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"router": {"instances": routers}}})),
        )
        .await
        .expect("change the router count");
    assert!(
        after.metadata.generation > before.metadata.generation,
        "router instances were {routers} already"
    );
    wait_for("the new generation reconciled", TIMEOUT, || {
        condition(admin, ns, name, "Ready")
    })
    .await;
}

/// Two replicas, `a` leading and `b` standing by, and a reconciled cluster `name`.
async fn two_replicas(
    cp: &ControlPlane,
    admin: &Client,
    ns: &str,
    name: &str,
    a_server: Option<std::net::SocketAddr>,
) -> ((Operator, String), (Operator, String)) {
    let a = replica_through(cp, admin, ns, "a", Expect::Leader, a_server, &[]).await;
    let b = replica(cp, admin, ns, "b", Expect::Standby).await;
    apply(admin, ns, &quiet_cluster(name))
        .await
        .expect("apply cluster");
    wait_for("the cluster reconciled", TIMEOUT, || {
        condition(admin, ns, name, "Ready")
    })
    .await;
    (a, b)
}

#[tokio::test]
async fn only_the_leader_acts_and_a_standby_takes_over_a_killed_leader() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("takeover").await;
    let ((a, a_id), (b, b_id)) = two_replicas(cp, &admin, &ns, "ha", None).await;
    settled_writes(cp, &ns, Duration::from_secs(5)).await;
    let in_ns = |id: &str| -> Vec<String> {
        writes_by(cp, id)
            .into_iter()
            .map(|(_, w)| w)
            .filter(|w| w.contains(&format!(" {ns}/")))
            .collect()
    };
    assert!(!in_ns(&a_id).is_empty(), "the leader wrote nothing");
    assert_eq!(in_ns(&b_id), Vec::<String>::new(), "writes by the standby");
    assert_eq!(a.metric("innodb_operator_leader").await, Some(1.0));
    assert_eq!(b.metric("innodb_operator_leader").await, Some(0.0));
    assert_eq!(
        b.metric("innodb_operator_reconciles_total").await,
        Some(0.0)
    );
    assert_eq!(b.readyz().await.as_deref(), Some("ready: standby"));

    let killed = std::time::Instant::now();
    a.signal("KILL");
    new_generation_reconciled(&admin, &ns, "ha", 1).await;
    let took_over = killed.elapsed();
    eprintln!("kill -9 of the leader -> the standby reconciled the change: {took_over:?}");
    assert!(
        !in_ns(&b_id).is_empty(),
        "the change was reconciled, but not by b"
    );
    let bound = Duration::from_secs(LEASE_DURATION + 7);
    assert!(
        took_over <= bound,
        "the standby took {took_over:?} (bound {bound:?}):\n{}",
        b.log_text()
    );
    assert_eq!(b.readyz().await.as_deref(), Some("ready: leader"));
    assert_eq!(b.metric("innodb_operator_leader").await, Some(1.0));
}

/// No write with `credential` was received at or after `since`.
fn assert_no_writes_since(cp: &ControlPlane, credential: &str, since: jiff::Timestamp, log: &str) {
    // Anything still in flight lands in the audit log meanwhile.
    std::thread::sleep(Duration::from_secs(2));
    let late: Vec<_> = writes_by(cp, credential)
        .into_iter()
        .filter(|(at, _)| *at >= since)
        .collect();
    assert!(
        late.is_empty(),
        "the old leader wrote after the new one acquired the lease at {since}: {late:?}\n{log}"
    );
}

#[tokio::test]
async fn a_leader_paused_past_its_lease_writes_nothing_once_the_next_one_leads() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("paused").await;
    let ((mut a, a_id), (b, _)) = two_replicas(cp, &admin, &ns, "paused", None).await;
    a.signal("STOP");
    let acquired = acquired_by(&admin, &ns, "b").await;
    // Work the old leader finds when it wakes up: a new generation in its watch's backlog.
    new_generation_reconciled(&admin, &ns, "paused", 1).await;
    a.signal("CONT");
    let status = a
        .exited(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("the old leader did not exit:\n{}", a.log_text()));
    assert!(!status.success(), "the deposed leader exited with {status}");
    assert!(
        a.log_text().contains("lost the operator's lease"),
        "{}",
        a.log_text()
    );
    assert_no_writes_since(cp, &a_id, acquired, &a.log_text());
    assert_eq!(b.readyz().await.as_deref(), Some("ready: leader"));
}

#[tokio::test]
async fn a_leader_cut_off_from_the_apiserver_stops_before_the_next_one_starts() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("partition").await;
    let proxy = Proxy::start(cp.apiserver()).await;
    let ((mut a, a_id), (_b, _)) = two_replicas(cp, &admin, &ns, "cutoff", Some(proxy.addr)).await;
    let cut = std::time::Instant::now();
    proxy.cut();
    let status = a
        .exited(Duration::from_secs(LEASE_RENEW_DEADLINE + 10))
        .await
        .unwrap_or_else(|| panic!("the cut-off leader did not exit:\n{}", a.log_text()));
    let stopped = jiff::Timestamp::now();
    let stopped_after = cut.elapsed();
    assert!(!status.success(), "the deposed leader exited with {status}");
    let acquired = acquired_by(&admin, &ns, "b").await;
    eprintln!(
        "cut-off leader exited {stopped_after:?} after the cut, {:?} before the standby acquired the lease",
        acquired.duration_since(stopped)
    );
    assert!(
        stopped < acquired,
        "the old leader exited at {stopped}, after the new one acquired the lease at {acquired}:\n{}",
        a.log_text()
    );
    assert!(
        stopped_after <= Duration::from_secs(LEASE_RENEW_DEADLINE + 1),
        "the cut-off leader acted for {stopped_after:?} after the cut"
    );
    // The new leader carries on.
    new_generation_reconciled(&admin, &ns, "cutoff", 1).await;
    assert_no_writes_since(cp, &a_id, acquired, &a.log_text());
}

/// Waits for `probe`, failing with cert-manager's log (what it did is the likely cause).
async fn wait_with_log<T, F, Fut>(what: &str, cm: &CertManager, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}; cert-manager's log:\n{}",
            cm.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn cert_manager_issues_the_members_certificate_when_the_spec_names_an_issuer() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("certmanager").await;
    let cm = CertManager::start(cp, &admin).await;
    let _op = operator(cp, &admin, &ns).await;
    let mut doc = quiet_cluster("vault");
    doc["spec"]["tls"] = json!({"issuerRef": {"name": "cluster-ca"}});
    let uid = apply(&admin, &ns, &doc)
        .await
        .expect("a cluster naming a cert-manager issuer")
        .uid()
        .expect("uid");

    // The issuer does not exist yet: the operator has asked for the certificate, and says it
    // waits for cert-manager (with cert-manager's reason) instead of starting members without.
    let certificates = Api::<DynamicObject>::namespaced_with(
        admin.clone(),
        &ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
            "certificates",
        ),
    );
    let requested = wait_with_log("the Certificate vault-member", &cm, || async {
        certificates.get("vault-member").await.ok()
    })
    .await;
    assert!(owned_by(&requested.metadata, &uid), "owned by the cluster");
    assert_eq!(requested.data["spec"]["secretName"], "vault-member-tls");
    assert_eq!(
        requested.data["spec"]["issuerRef"],
        json!({"name": "cluster-ca", "kind": "Issuer", "group": "cert-manager.io"})
    );
    let pending = wait_with_log("a CertificatePending warning", &cm, || async {
        condition(&admin, &ns, "vault", "SpecWarning")
            .await
            .filter(|c| c["reason"] == "CertificatePending")
    })
    .await;
    let message = pending["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("waiting for cert-manager to issue Certificate vault-member into Secret vault-member-tls"),
        "{message}"
    );

    // Now the issuer: a CA of cert-manager's own.
    ca_issuer(&admin, &ns, "cluster-ca").await;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    let issued = wait_with_log("Secret vault-member-tls issued", &cm, || async {
        secrets
            .get("vault-member-tls")
            .await
            .ok()
            .filter(|s| s.data.as_ref().is_some_and(|d| d.contains_key("ca.crt")))
    })
    .await;
    let data = issued.data.expect("data");
    let pem = &data["tls.crt"].0;
    let (_, der) = x509_parser::pem::parse_x509_pem(pem).expect("tls.crt is PEM");
    let cert = der.parse_x509().expect("tls.crt is a certificate");
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("SANs")
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    let members = format!("DNSName(*.vault-instances.{ns}.svc.cluster.local)");
    assert!(sans.contains(&members), "{members} not in {sans:?}");
    assert_ne!(
        data["ca.crt"].0, *pem,
        "ca.crt is the CA's certificate, not the member's"
    );

    // Issued: the warning clears, and the members mount what cert-manager issued.
    wait_with_log("the warning cleared", &cm, || async {
        condition(&admin, &ns, "vault", "SpecWarning")
            .await
            .filter(|c| c["status"] == "False")
    })
    .await;
    let sts = Api::<StatefulSet>::namespaced(admin.clone(), &ns)
        .get("vault")
        .await
        .expect("StatefulSet vault");
    let mounted: Vec<String> = sts
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.volumes.unwrap_or_default())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.secret.and_then(|s| s.secret_name))
        .collect();
    assert!(
        mounted.contains(&"vault-member-tls".to_string()),
        "{mounted:?}"
    );
    assert!(
        secrets.get_opt("vault-tls").await.expect("read").is_none()
            && secrets.get_opt("vault-ca").await.expect("read").is_none(),
        "the operator made no CA of its own"
    );
}
