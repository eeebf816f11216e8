//! cert-manager for the control-plane tier: its CRDs installed and its controllers
//! (`e2e/lib/install-cert-manager.sh` builds them from cert-manager's Go module) running as a
//! local process against the test's API server, killed when dropped. A missing build is a test
//! failure naming the installer.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::json;

use super::{ControlPlane, wait_for};

fn cache_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("IOP_CACHE").unwrap_or_else(|_| "/root/.cache/innodb-operator".into()),
    )
}

/// cert-manager's controllers, running until dropped.
pub struct CertManager {
    child: Child,
    pub log: PathBuf,
}

impl Drop for CertManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CertManager {
    /// Installs cert-manager's CRDs (server-side apply: a second test applies them again) and
    /// starts its controllers with the control plane's admin kubeconfig.
    pub async fn start(cp: &ControlPlane, admin: &Client) -> CertManager {
        let bin = cache_dir().join("bin/certmanager");
        let crd_dir = cache_dir().join("cert-manager/crds");
        assert!(
            bin.exists() && crd_dir.exists(),
            "cert-manager is not built ({} or {} missing): run e2e/lib/install-cert-manager.sh",
            bin.display(),
            crd_dir.display()
        );
        let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&crd_dir).expect("cert-manager CRDs") {
            let text = std::fs::read_to_string(entry.expect("CRD file").path()).expect("CRD");
            let crd: CustomResourceDefinition = serde_yaml::from_str(&text).expect("a CRD");
            let name = crd.metadata.name.clone().expect("CRD name");
            crds.patch(
                &name,
                &PatchParams::apply("e2e").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("installing CRD {name}: {e}"));
            names.push(name);
        }
        for name in names {
            wait_for(
                "cert-manager CRD established",
                Duration::from_secs(30),
                || {
                    let crds = crds.clone();
                    let name = name.clone();
                    async move {
                        let crd = crds.get(&name).await.ok()?;
                        crd.status?
                            .conditions?
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                            .then_some(())
                    }
                },
            )
            .await;
        }
        let log = cp
            .dir
            .join(format!("cert-manager-{}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("cert-manager log");
        let child = Command::new(&bin)
            .arg("--kubeconfig")
            .arg(&cp.kubeconfig)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        CertManager { child, log }
    }

    /// The controllers' log, for a failing test's message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

/// A CA of cert-manager's own in `ns`, issuing as the Issuer `name`: a self-signed Issuer signs
/// the CA's certificate (Secret `name-root`), a CA Issuer `name` signs with it.
pub async fn ca_issuer(admin: &Client, ns: &str, name: &str) {
    let bootstrap = format!("{name}-bootstrap");
    let root = format!("{name}-root");
    let objects = [
        (
            "Issuer",
            "issuers",
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": bootstrap}, "spec": {"selfSigned": {}}}),
        ),
        (
            "Certificate",
            "certificates",
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "metadata": {"name": root},
            "spec": {"isCA": true, "commonName": format!("{ns} {name}"), "secretName": root,
                     "privateKey": {"algorithm": "ECDSA", "size": 256},
                     "issuerRef": {"name": bootstrap, "kind": "Issuer"}}}),
        ),
        (
            "Issuer",
            "issuers",
            json!({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
            "metadata": {"name": name}, "spec": {"ca": {"secretName": root}}}),
        ),
    ];
    for (kind, plural, doc) in objects {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("cert-manager.io", "v1", kind),
            plural,
        );
        let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), ns, &resource);
        let object_name = doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        api.patch(
            &object_name,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {object_name}: {e}"));
    }
}
