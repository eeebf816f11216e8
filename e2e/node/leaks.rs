//! After the whole run: no secret of the cluster, its backups or the operator appears in what
//! people and tools read besides Secrets — the logs of every pod (the operator's replicas, the
//! members, the Routers, the backup and restore Jobs), Events, the custom resources with their
//! status, ConfigMaps.

use base64::Engine;
use serde_json::Value;

use crate::env::{Env, NS, OPERATOR_NS};

/// A secret value to look for, and where it is kept.
struct Needle {
    origin: String,
    text: String,
}

fn json(env: &Env, args: &[&str]) -> Value {
    let out = env
        .kubectl(args)
        .unwrap_or_else(|e| panic!("kubectl {args:?}: {e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON: {e}"))
}

/// What would give a secret away: passwords and S3 keys whole, a private key by the first line
/// of its body (never a certificate: those are public).
fn needles(secrets: &Value) -> Vec<Needle> {
    let mut out = Vec::new();
    for s in secrets["items"].as_array().into_iter().flatten() {
        let name = format!(
            "{}/{}",
            s["metadata"]["namespace"].as_str().unwrap_or_default(),
            s["metadata"]["name"].as_str().unwrap_or_default()
        );
        for (key, value) in s["data"].as_object().into_iter().flatten() {
            let Some(bytes) = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let secret_key = key == "password" || key.ends_with("SECRET_ACCESS_KEY");
            let private_key = key.ends_with(".key") || text.contains("PRIVATE KEY-----");
            let found = if private_key {
                text.lines()
                    .find(|l| !l.starts_with("-----") && l.len() >= 32)
                    .map(str::to_string)
            } else if secret_key && text.len() >= 8 {
                Some(text)
            } else {
                None
            };
            if let Some(text) = found {
                out.push(Needle {
                    origin: format!("Secret {name} key {key}"),
                    text,
                });
            }
        }
    }
    out
}

/// Every pod's log in `ns` (all containers; a container restarted also gives its previous log).
fn pod_logs(env: &Env, ns: &str) -> Vec<(String, String)> {
    let pods = json(env, &["get", "pods", "-n", ns, "-o", "json"]);
    let mut logs = Vec::new();
    for p in pods["items"].as_array().into_iter().flatten() {
        let pod = p["metadata"]["name"].as_str().unwrap_or_default();
        for previous in ["--previous=false", "--previous=true"] {
            // A container that never restarted has no previous log: kubectl says so, nothing read.
            if let Ok(log) = env.kubectl(&["logs", "-n", ns, pod, "--all-containers", previous]) {
                logs.push((format!("log of pod {ns}/{pod} ({previous})"), log));
            }
        }
    }
    logs
}

pub fn no_secret_leaked(env: &Env) {
    let mut needles = needles_of(env, NS);
    needles.extend(needles_of(env, OPERATOR_NS));
    assert!(
        needles.iter().any(|n| n.origin.contains("key password")),
        "the cluster's passwords were found to look for"
    );
    let mut haystacks = pod_logs(env, NS);
    haystacks.extend(pod_logs(env, OPERATOR_NS));
    for (what, args) in [
        ("Events", vec!["get", "events", "-A", "-o", "json"]),
        (
            "events.k8s.io Events",
            vec!["get", "events.v1.events.k8s.io", "-A", "-o", "json"],
        ),
        (
            "MySQLClusters",
            vec!["get", "mysqlclusters", "-A", "-o", "json"],
        ),
        ("Backups", vec!["get", "backups", "-A", "-o", "json"]),
        ("ConfigMaps", vec!["get", "configmaps", "-A", "-o", "json"]),
    ] {
        haystacks.push((what.to_string(), json(env, &args).to_string()));
    }
    let read: usize = haystacks.iter().map(|(_, h)| h.len()).sum();
    let leaks: Vec<String> = needles
        .iter()
        .flat_map(|n| {
            haystacks
                .iter()
                .filter(|(_, h)| h.contains(&n.text))
                .map(move |(what, _)| format!("{} appears in the {what}", n.origin))
        })
        .collect();
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    eprintln!(
        "node: no secret leaked: {} secret values looked for in {} logs and listings ({} KiB)",
        needles.len(),
        haystacks.len(),
        read / 1024
    );
}

fn needles_of(env: &Env, ns: &str) -> Vec<Needle> {
    needles(&json(env, &["get", "secrets", "-n", ns, "-o", "json"]))
}
