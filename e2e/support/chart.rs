//! The Helm chart of this repository installed into the test control plane, and the operator
//! binary run with the chart's ServiceAccount.

use std::sync::OnceLock;

use kube::Client;
use serde_json::Value;

use super::ControlPlane;
use super::operator::{Expect, Operator};

pub const RELEASE: &str = "innodb-operator";
pub const RELEASE_NS: &str = "innodb-operator-system";
pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/innodb-operator");

/// The chart, installed once per test binary with `helm install --wait` (the operator's own
/// Deployment becomes Ready on a kwok node). Returns the chart's ServiceAccount name.
pub fn chart(cp: &ControlPlane) -> &'static str {
    static SA: OnceLock<String> = OnceLock::new();
    SA.get_or_init(|| {
        let out = cp
            .command("helm")
            .args(["install", RELEASE, CHART, "--namespace", RELEASE_NS])
            .args(["--create-namespace", "--wait", "--timeout", "120s"])
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm install failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let manifest = cp
            .command("helm")
            .args(["get", "manifest", RELEASE, "--namespace", RELEASE_NS])
            .output()
            .expect("helm get manifest");
        let text = String::from_utf8_lossy(&manifest.stdout);
        serde_yaml::Deserializer::from_str(&text)
            .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
            .find_map(|doc: Value| {
                (doc["kind"] == "ServiceAccount")
                    .then(|| doc["metadata"]["name"].as_str().map(str::to_string))
                    .flatten()
            })
            .expect("the chart creates a ServiceAccount")
    })
}

/// The operator of this build, authenticated as the chart's ServiceAccount, watching `ns`, once
/// it leads.
pub async fn operator(cp: &ControlPlane, admin: &Client, ns: &str) -> Operator {
    replica(cp, admin, ns, "operator", Expect::Leader).await.0
}

/// A replica named `name` of the operator of this build, as [`operator`], with a token of its
/// own; returns it with the token's ID, which the audit log records with each of its requests
/// (see [`super::AuditEvent::credential`]).
pub async fn replica(
    cp: &ControlPlane,
    admin: &Client,
    ns: &str,
    name: &str,
    expect: Expect,
) -> (Operator, String) {
    replica_through(cp, admin, ns, name, expect, None, &[]).await
}

/// The operator as [`operator`], told that its pods are the chart's (the namespace and labels
/// the chart's Deployment gives it), as an operator in the cluster is.
pub async fn operator_in_chart_pods(cp: &ControlPlane, admin: &Client, ns: &str) -> Operator {
    let env = [
        ("POD_NAMESPACE", RELEASE_NS),
        ("OPERATOR_POD_LABELS", CHART_POD_LABELS),
    ];
    replica_through(cp, admin, ns, "operator", Expect::Leader, None, &env)
        .await
        .0
}

/// The labels of the chart's operator pods (its selector labels), as the chart passes them.
pub const CHART_POD_LABELS: &str =
    "app.kubernetes.io/instance=innodb-operator,app.kubernetes.io/name=innodb-operator";

/// A replica as [`replica`] that reaches the apiserver at `server` (a proxy) when given, with
/// `env` added to its environment.
pub async fn replica_through(
    cp: &ControlPlane,
    admin: &Client,
    ns: &str,
    name: &str,
    expect: Expect,
    server: Option<std::net::SocketAddr>,
    env: &[(&str, &str)],
) -> (Operator, String) {
    let sa = chart(cp);
    let kubeconfig = cp.dir.join(format!("{name}-{ns}.kubeconfig"));
    cp.service_account_kubeconfig(admin, RELEASE_NS, sa, &kubeconfig)
        .await;
    if let Some(server) = server {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&kubeconfig).expect("kubeconfig"))
                .expect("yaml");
        doc["clusters"][0]["cluster"]["server"] = format!("https://{server}").into();
        std::fs::write(&kubeconfig, serde_yaml::to_string(&doc).expect("yaml"))
            .expect("write kubeconfig");
    }
    let token = super::kubeconfig_token(&kubeconfig);
    let op = Operator::start_with_env(
        &kubeconfig,
        ns,
        cp.dir.join(format!("{name}-{ns}.log")),
        name,
        expect,
        env,
    )
    .await;
    (op, super::token_id(&token))
}
