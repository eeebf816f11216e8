//! `spec.networkPolicy` enforced on the real node (kube-router's firewall, started by
//! `testenv.sh up --node`): two client pods that are none of the cluster's, one that
//! `routerFrom` admits and one it does not, connect (bash's `/dev/tcp`) to the members' 3306 and
//! 33060 and to the Routers' 6446. Before the policies exist both get through everywhere (so
//! every refusal below is the policies' doing); with them, neither reaches a member and only the
//! admitted one reaches a Router. The rest of the tier (failures, the operator's failover, scale
//! by clone, a Backup Job and a restore) runs with the policies on; at the end they are turned
//! off and the members are reachable again.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::env::{CLUSTER, Env, NS, until};

/// The client `routerFrom` admits, and one it does not; the label tells them apart.
const ADMITTED: &str = "client-admitted";
const OTHER: &str = "client-other";
const CLIENT_LABEL: &str = "innodb-operator.io/test-client";
const MEMBER_PORTS: [u16; 2] = [3306, 33060];
const ROUTER_PORT: u16 = 6446;
/// How long a policy change may take to be enforced (kube-router syncs on the API's event).
const ENFORCE_LIMIT: Duration = Duration::from_secs(60);

/// Where a TCP connection from a client pod got.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reach {
    Connected,
    Blocked(&'static str),
}

/// The policies turned on: clients that are not the cluster's reach no member, and only the
/// admitted one reaches the Routers.
pub async fn enforced(env: &mut Env) {
    for (name, class) in [(ADMITTED, "admitted"), (OTHER, "other")] {
        env.apply(&client_pod(name, class));
    }
    env.kubectl(&[
        "-n",
        NS,
        "wait",
        "--for=condition=Ready",
        &format!("pod/{ADMITTED}"),
        &format!("pod/{OTHER}"),
        "--timeout=120s",
    ])
    .unwrap_or_else(|e| panic!("the client pods: {e}"));
    let targets = targets(env).await;
    for client in [ADMITTED, OTHER] {
        for (what, ip, port) in &targets {
            assert_eq!(
                reach(env, client, *ip, *port),
                Reach::Connected,
                "without policies {client} reaches {what} {ip}:{port}"
            );
        }
    }

    let cut = Instant::now();
    env.patch_spec(&format!(
        r#"{{"networkPolicy":{{"enabled":true,"routerFrom":[{{"podSelector":{{"matchLabels":{{"{CLIENT_LABEL}":"admitted"}}}}}}]}}}}"#
    ));
    let (_, member, port) = &targets[0];
    until("the members' policy enforced", ENFORCE_LIMIT, async || {
        (reach(env, OTHER, *member, *port) != Reach::Connected).then_some(())
    })
    .await;
    env.time("networkPolicy enabled -> a client refused", cut.elapsed());
    let names = env
        .kubectl(&["-n", NS, "get", "networkpolicy", "-o", "name"])
        .unwrap_or_else(|e| panic!("the NetworkPolicies: {e}"));
    for policy in ["members", "router"] {
        assert!(
            names.contains(&format!(
                "networkpolicy.networking.k8s.io/{CLUSTER}-{policy}"
            )),
            "{CLUSTER}-{policy} is made: {names}"
        );
    }
    for client in [ADMITTED, OTHER] {
        for (what, ip, port) in &targets {
            let got = reach(env, client, *ip, *port);
            let admitted = *port == ROUTER_PORT && client == ADMITTED;
            assert_eq!(
                got == Reach::Connected,
                admitted,
                "with the policies {client} -> {what} {ip}:{port}: {got:?}"
            );
            eprintln!("node: networkPolicy on: {client} -> {what} {ip}:{port}: {got:?}");
        }
    }
}

/// The policies turned off again: the operator deletes them and the other client reaches the
/// members again.
pub async fn lifted(env: &mut Env) {
    let cut = Instant::now();
    env.patch_spec(r#"{"networkPolicy":{"enabled":false}}"#);
    let targets = targets(env).await;
    until("the members reachable again", ENFORCE_LIMIT, async || {
        targets
            .iter()
            .all(|(_, ip, port)| reach(env, OTHER, *ip, *port) == Reach::Connected)
            .then_some(())
    })
    .await;
    env.time(
        "networkPolicy disabled -> the members reachable",
        cut.elapsed(),
    );
    let names = env
        .kubectl(&["-n", NS, "get", "networkpolicy", "-o", "name"])
        .unwrap_or_else(|e| panic!("the NetworkPolicies: {e}"));
    assert!(names.trim().is_empty(), "the policies are deleted: {names}");
}

/// Each member's ports and one Router's, with what they are.
async fn targets(env: &Env) -> Vec<(String, IpAddr, u16)> {
    let mut targets: Vec<(String, IpAddr, u16)> = env
        .members()
        .await
        .into_iter()
        .flat_map(|(name, ip)| MEMBER_PORTS.map(|port| (format!("member {name}"), ip, port)))
        .collect();
    let routers = Api::<Pod>::namespaced(env.admin.clone(), NS)
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=router"
        )))
        .await
        .expect("list router pods");
    let router = routers
        .items
        .iter()
        .find_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
            Some((format!("router {}", p.metadata.name.as_deref()?), ip))
        })
        .expect("a router pod with an address");
    targets.push((router.0, router.1, ROUTER_PORT));
    targets
}

/// A client pod of the MySQL image (bash, coreutils), as the restricted Pod Security Standard
/// of the namespace wants it.
fn client_pod(name: &str, class: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {CLIENT_LABEL: class}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 999,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client",
                "image": "iop/mysql-debian:9.7.4",
                "imagePullPolicy": "Never",
                "command": ["sleep", "infinity"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                              "limits": {"memory": "64Mi"}},
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    })
    .to_string()
}

/// A TCP connection from `pod` to `ip:port`: bash's `/dev/tcp` in the pod, 3 s at most.
fn reach(env: &Env, pod: &str, ip: IpAddr, port: u16) -> Reach {
    let out = env
        .cp
        .command("kubectl")
        .args(["-n", NS, "exec", pod, "--", "timeout", "3", "bash", "-c"])
        .arg(format!("exec 3<>/dev/tcp/{ip}/{port}"))
        .output()
        .expect("run kubectl");
    reach_of(out.status.code(), &String::from_utf8_lossy(&out.stderr))
        .unwrap_or_else(|e| panic!("{pod} -> {ip}:{port}: the probe itself failed: {e}"))
}

/// What the probe's exit status and error output say: connected (0), timed out (`timeout`'s
/// 124), refused or unreachable (bash's message); anything else is the probe failing (the pod
/// gone, kubectl refused).
fn reach_of(code: Option<i32>, stderr: &str) -> Result<Reach, String> {
    match code {
        Some(0) => Ok(Reach::Connected),
        Some(124) => Ok(Reach::Blocked("timed out")),
        Some(1) if stderr.contains("Connection refused") => Ok(Reach::Blocked("refused")),
        Some(1) if stderr.contains("No route to host") => Ok(Reach::Blocked("no route to host")),
        _ => Err(format!("exit status {code:?}: {stderr}")),
    }
}

#[test]
fn a_probe_is_connected_blocked_or_failed() {
    assert_eq!(reach_of(Some(0), ""), Ok(Reach::Connected));
    assert_eq!(reach_of(Some(124), ""), Ok(Reach::Blocked("timed out")));
    assert_eq!(
        reach_of(
            Some(1),
            "bash: connect: Connection refused\nbash: line 1: /dev/tcp/10.244.0.9/3306: Connection refused\ncommand terminated with exit code 1"
        ),
        Ok(Reach::Blocked("refused"))
    );
    assert!(
        reach_of(
            Some(1),
            "Error from server (NotFound): pods \"x\" not found"
        )
        .is_err()
    );
}
