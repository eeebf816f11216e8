//! The Helm chart of this repository installed into the test control plane, and the operator
//! binary run with the chart's ServiceAccount.

use std::sync::OnceLock;

use kube::Client;
use serde_json::Value;

use super::ControlPlane;
use super::operator::Operator;

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

/// The operator of this build, authenticated as the chart's ServiceAccount, watching `ns`.
pub async fn operator(cp: &ControlPlane, admin: &Client, ns: &str) -> Operator {
    let sa = chart(cp);
    let kubeconfig = cp.dir.join(format!("operator-{ns}.kubeconfig"));
    cp.service_account_kubeconfig(admin, RELEASE_NS, sa, &kubeconfig)
        .await;
    Operator::start(&kubeconfig, ns, cp.dir.join(format!("operator-{ns}.log"))).await
}
