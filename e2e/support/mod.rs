//! Test fixture for the control-plane tier: one real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok) per test binary, started by
//! `e2e/testenv/testenv.sh`, and one namespace per test.
//!
//! Each test binary compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::Deserialize;

pub mod capture;
pub mod cert_manager;
pub mod chart;
pub mod minio;
pub mod operator;
pub mod proxy;

pub const TESTENV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/testenv/testenv.sh");

/// A running control plane, shared by the tests of one binary.
#[derive(Debug)]
pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub audit_log: PathBuf,
    pub bin_dir: PathBuf,
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The control plane of this test binary, started on first use. `None` (the test returns early)
/// only outside CI when the binaries were never built; under `CI=true` that is a failure, and a
/// control plane that fails to start is always a failure.
pub fn control_plane() -> Option<&'static ControlPlane> {
    static CP: OnceLock<Result<Option<ControlPlane>, String>> = OnceLock::new();
    // Every test of the binary reports the same first failure, not a symptom of it.
    match CP.get_or_init(|| start(Nodes::Kwok)) {
        Ok(cp) => cp.as_ref(),
        Err(e) => panic!("{e}"),
    }
}

/// The control plane of this test binary with one real node (kubelet, containerd, kube-proxy,
/// CoreDNS: `testenv.sh up --node`) instead of kwok's fake ones. Needs root and the node's
/// binaries and images (`e2e/lib/install-testenv.sh --node`); `None` as for [`control_plane`].
pub fn node_control_plane() -> Option<&'static ControlPlane> {
    static CP: OnceLock<Result<Option<ControlPlane>, String>> = OnceLock::new();
    match CP.get_or_init(|| start(Nodes::Real)) {
        Ok(cp) => cp.as_ref(),
        Err(e) => panic!("{e}"),
    }
}

/// Where the pods of a control plane run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Nodes {
    /// kwok's fake nodes: pods are Running at once and run nothing.
    Kwok,
    /// One real node of this machine.
    Real,
}

fn start(nodes: Nodes) -> Result<Option<ControlPlane>, String> {
    // aws-lc-rs and ring are both linked in; pick one as the binary does.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin_dir = PathBuf::from(try_run(Command::new(TESTENV).arg("bin"))?.trim());
    let (needed, build) = match nodes {
        Nodes::Kwok => ("kube-apiserver", format!("{TESTENV} build")),
        Nodes::Real => ("kubelet", "e2e/lib/install-testenv.sh --node".to_string()),
    };
    if !bin_dir.join(needed).exists() {
        let msg = format!(
            "{needed} is missing in {}: run `{build}` (minutes cold)",
            bin_dir.display()
        );
        if in_ci() {
            return Err(msg);
        }
        eprintln!("SKIPPED: {msg}");
        return Ok(None);
    }
    let dir = std::env::temp_dir().join(format!("innodb-operator-testenv-{}", std::process::id()));
    // The script's watchdog stops everything when this process exits, however it exits. A failed
    // start stops what it started; it is tried once more (a loaded machine can miss a deadline),
    // and both failures are reported.
    let up = || {
        let mut cmd = Command::new(TESTENV);
        cmd.arg("up")
            .arg(&dir)
            .env("TESTENV_OWNER_PID", std::process::id().to_string());
        if nodes == Nodes::Real {
            cmd.arg("--node");
        }
        try_run(&mut cmd)
    };
    if let Err(first) = up() {
        eprintln!("control plane did not start; trying once more. {first}");
        up().map_err(|second| format!("{first}\n--- and again:\n{second}"))?;
    }
    Ok(Some(ControlPlane {
        kubeconfig: dir.join("kubeconfig"),
        audit_log: dir.join("audit.log"),
        dir,
        bin_dir,
    }))
}

fn try_run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl ControlPlane {
    /// Client configuration with the admin (system:masters) credentials.
    pub async fn admin_config(&self) -> Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("read testenv kubeconfig");
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("testenv kubeconfig is valid")
    }

    /// A client with admin credentials. Make one per test: a client belongs to the runtime
    /// that created it.
    pub async fn admin(&self) -> Client {
        Client::try_from(self.admin_config().await).expect("build admin client")
    }

    /// A fresh namespace for one test, named after it.
    pub async fn namespace(&self, test: &str) -> (Client, String) {
        let client = self.admin().await;
        let name = format!("{}-{:08x}", test.replace('_', "-"), rand::random::<u32>());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"innodb-operator.io/test": test}}
        }))
        .expect("namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
        (client, name)
    }

    /// A bound token for a ServiceAccount from the TokenRequest API: requests made with it are
    /// authorized by RBAC exactly as in a pod running as that account.
    pub async fn service_account_token(&self, client: &Client, ns: &str, sa: &str) -> String {
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: Some(vec!["https://kubernetes.default.svc.cluster.local".into()]),
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .create_token_request(sa, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("token for {ns}/{sa}: {e}"))
            .status
            .and_then(|s| s.token)
            .expect("token request returns a token")
    }

    /// A kubeconfig file that authenticates as the ServiceAccount `ns/sa`, for a process (the
    /// operator) that reads `KUBECONFIG`.
    pub async fn service_account_kubeconfig(
        &self,
        client: &Client,
        ns: &str,
        sa: &str,
        path: &Path,
    ) -> PathBuf {
        let token = self.service_account_token(client, ns, sa).await;
        let admin: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig"))
                .expect("kubeconfig yaml");
        let cluster = &admin["clusters"][0]["cluster"];
        let doc = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "testenv", "cluster": {
                "server": cluster["server"].as_str(),
                "certificate-authority-data": cluster["certificate-authority-data"].as_str(),
            }}],
            "users": [{"name": sa, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "testenv", "user": sa, "namespace": ns}}],
            "current-context": "sa",
        });
        std::fs::write(path, serde_yaml::to_string(&doc).expect("yaml")).expect("write kubeconfig");
        path.to_path_buf()
    }

    /// The address of the apiserver (for a proxy in front of it).
    pub fn apiserver(&self) -> std::net::SocketAddr {
        let admin: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig"))
                .expect("kubeconfig yaml");
        let server = admin["clusters"][0]["cluster"]["server"]
            .as_str()
            .expect("server");
        server
            .trim_start_matches("https://")
            .parse()
            .expect("the server is https://IP:port")
    }

    /// A client that authenticates as the ServiceAccount `ns/sa`.
    pub async fn service_account_client(&self, admin: &Client, ns: &str, sa: &str) -> Client {
        let token = self.service_account_token(admin, ns, sa).await;
        let mut config = self.admin_config().await;
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.into()),
            ..Default::default()
        };
        Client::try_from(config).expect("build service account client")
    }

    /// Every write the apiserver recorded so far (create, update, patch, delete).
    pub fn audit_writes(&self) -> Vec<AuditEvent> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<AuditEvent>(line).ok())
            .filter(|e| e.stage == "ResponseComplete")
            .collect()
    }

    /// A command for a program of the testenv (helm, kubectl-like tools) using this control plane.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.dir.join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.join("helm/data"));
        cmd
    }
}

/// The bearer token of a kubeconfig written by [`ControlPlane::service_account_kubeconfig`].
pub fn kubeconfig_token(path: &Path) -> String {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).expect("kubeconfig")).expect("yaml");
    doc["users"][0]["user"]["token"]
        .as_str()
        .expect("a token in the kubeconfig")
        .to_string()
}

/// The ID (`jti` claim) of a service account token: the apiserver records it with every request
/// made with the token, so the requests of two processes of one ServiceAccount tell apart.
pub fn token_id(token: &str) -> String {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .expect("JWT payload is base64url");
    let claims: serde_json::Value = serde_json::from_slice(&claims).expect("JWT claims");
    claims["jti"].as_str().expect("a jti claim").to_string()
}

/// One entry of the apiserver's audit log (only the fields the tests look at).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub stage: String,
    pub verb: String,
    #[serde(rename = "requestURI")]
    pub request_uri: String,
    pub user: AuditUser,
    #[serde(default)]
    pub request_received_timestamp: Option<jiff::Timestamp>,
    #[serde(default)]
    pub object_ref: Option<AuditObjectRef>,
    #[serde(default)]
    pub response_status: Option<AuditStatus>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditUser {
    pub username: String,
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl AuditEvent {
    /// The ID of the token the request was made with (see [`token_id`]), if it was one.
    pub fn credential(&self) -> Option<&str> {
        self.user
            .extra
            .get("authentication.kubernetes.io/credential-id")?
            .first()?
            .strip_prefix("JTI=")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuditStatus {
    #[serde(default)]
    pub code: u16,
}

/// Polls `probe` until it returns `Some`, or panics after `timeout` naming what it waited for.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The addresses a Service's EndpointSlices select as ready (what kube-proxy routes to), sorted.
pub fn ready_addresses<'a>(
    slices: impl IntoIterator<Item = &'a k8s_openapi::api::discovery::v1::EndpointSlice>,
) -> Vec<String> {
    let mut addresses: Vec<String> = slices
        .into_iter()
        .flat_map(|s| s.endpoints.iter().flatten())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
        .flat_map(|e| e.addresses.iter().cloned())
        .collect();
    addresses.sort();
    addresses
}
