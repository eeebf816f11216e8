//! The sample cluster on the real node, shared by the real-node tier (`main.rs`) and its
//! failover benchmark (`e2e/bench/failover_node.rs`): the chart installed, the sample applied,
//! the servers asked how the group is, the Services' addresses, timings.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, Service};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use mysql_async::prelude::Queryable;

use crate::roles::Roles;
use crate::support::{self, ControlPlane};
use crate::writer::{self, AppTls, Writer};

pub const NS: &str = "shop";
pub const CLUSTER: &str = "orders";
pub const OPERATOR_NS: &str = "innodb-operator";
pub const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/config/samples/mysqlcluster-local.yaml"
);
pub const MEMBERS: usize = 3;
/// The bridge the node's pods hang on (`POD_BRIDGE` of `e2e/testenv/node.sh`).
pub const POD_BRIDGE: &str = "iop-cni0";
pub const APP_PASSWORD: &str = "app-Secret-node";
/// Kills mysqld inside a member's container: the container's shell is pid 1, mysqld its child
/// (the image has no `kill` or `pkill` binary; the shell's builtin does).
const KILL_MYSQLD: &str = "for p in /proc/[0-9]*; do case \"$(tr '\\0' ' ' < $p/cmdline)\" in \
                           mysqld*) kill -9 ${p#/proc/};; esac; done";
/// Generous bounds for a shared 2-core machine; the measured times are printed.
pub const READY_LIMIT: Duration = Duration::from_secs(600);
pub const STEP: Duration = Duration::from_secs(300);

/// The sample cluster on the real node, and what the test watches.
pub struct Env {
    pub cp: &'static ControlPlane,
    pub admin: Client,
    pub roles: Roles,
    pub root_password: String,
    /// How clients verify the sample cluster's members: its CA, the `C` Service's name.
    pub tls: AppTls,
    pub timings: Vec<(String, Duration)>,
    /// How many members the cluster should have now (`spec.instances`).
    pub size: usize,
}

/// `kubectl ARGS` (the release's own kubectl) against the node's control plane: its stdout, or
/// a message with its stderr.
pub fn kubectl(cp: &ControlPlane, args: &[&str]) -> Result<String, String> {
    run(cp.command("kubectl").args(args))
}

pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", shown(cmd)))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed ({}): {}{}",
            shown(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The command line for a message, with a `mysql` password argument (`-pSECRET`) left out.
fn shown(cmd: &Command) -> String {
    let args = cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.starts_with("-p") && a.len() > 2 {
            "-p(password)".to_string()
        } else {
            a.into_owned()
        }
    });
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `query` on `addr` as `user`, over TLS verified with `tls` (members refuse cleartext
/// clients); every column as text.
pub async fn sql(
    addr: SocketAddr,
    tls: &AppTls,
    user: &str,
    password: &str,
    query: &str,
) -> Result<Vec<Vec<String>>, String> {
    let opts = writer::opts(addr, password, tls).user(Some(user));
    let work = async {
        let mut conn = mysql_async::Conn::new(opts)
            .await
            .map_err(|e| e.to_string())?;
        let rows: Vec<mysql_async::Row> = conn.query(query).await.map_err(|e| e.to_string())?;
        let _ = conn.disconnect().await;
        Ok(rows
            .into_iter()
            .map(|mut r| {
                (0..r.len())
                    .map(|i| r.take::<Option<String>, _>(i).flatten().unwrap_or_default())
                    .collect()
            })
            .collect())
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| format!("{addr}: no answer in 10 s"))?
}

pub async fn until<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

impl Env {
    /// The chart installed (the operator's two replicas as pods, one leading) and the sample
    /// applied in a namespace enforcing the restricted Pod Security Standard, Ready with three
    /// members ONLINE and two routers Ready; `None` when the tier is skipped (outside CI only).
    pub async fn start() -> Option<Env> {
        let cp = support::node_control_plane()?;
        let admin = cp.admin().await;

        // The operator from its chart, as pods.
        let started = Instant::now();
        install_chart(cp).unwrap_or_else(|e| panic!("helm install: {e}"));
        let leaders = kubectl(
            cp,
            &[
                "-n",
                OPERATOR_NS,
                "get",
                "lease",
                "innodb-operator",
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
        );
        assert!(
            leaders.as_ref().is_ok_and(|h| !h.is_empty()),
            "no operator replica leads: {leaders:?}"
        );
        let operator_pods = Api::<Pod>::namespaced(admin.clone(), OPERATOR_NS)
            .list(&ListParams::default())
            .await
            .expect("list operator pods");
        assert_eq!(operator_pods.items.len(), 2, "the chart runs two replicas");

        // The sample, in a namespace that enforces the restricted Pod Security Standard.
        let mut ns = Namespace::default();
        ns.metadata.name = Some(NS.to_string());
        ns.metadata.labels = Some(
            [(
                "pod-security.kubernetes.io/enforce".to_string(),
                "restricted".to_string(),
            )]
            .into(),
        );
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create the namespace");
        let mut env = Env {
            cp,
            roles: Roles::watch(admin.clone(), NS, CLUSTER),
            admin: admin.clone(),
            root_password: String::new(),
            tls: AppTls {
                ca_pem: Vec::new(),
                name: String::new(),
            },
            timings: Vec::new(),
            size: MEMBERS,
        };
        env.time("helm install -> operator leads", started.elapsed());
        let applied = Instant::now();
        env.kubectl(&["-n", NS, "apply", "-f", SAMPLE])
            .unwrap_or_else(|e| panic!("kubectl apply: {e}"));
        let wait = env.kubectl(&[
            "-n",
            NS,
            "wait",
            &format!("mysqlcluster/{CLUSTER}"),
            "--for=condition=Ready",
            &format!("--timeout={}s", READY_LIMIT.as_secs()),
        ]);
        if let Err(e) = wait {
            panic!("the sample never became Ready: {e}\n{}", env.describe());
        }
        env.time("kubectl apply -> Ready", applied.elapsed());
        env.root_password = env.password(&format!("{CLUSTER}-root")).await;
        env.tls = env.cluster_tls(CLUSTER).await;
        let primary = until("three members ONLINE", STEP, async || env.healthy().await).await;
        let routers = until("two routers Ready", STEP, async || {
            let pods = Api::<Pod>::namespaced(admin.clone(), NS)
                .list(&ListParams::default().labels(&format!(
                    "app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=router"
                )))
                .await
                .ok()?;
            let ready = pods.items.iter().filter(|p| pod_ready(p)).count();
            (ready == 2).then_some(ready)
        })
        .await;
        eprintln!("node: {MEMBERS} members ONLINE (primary {primary}), {routers} routers Ready");
        Some(env)
    }

    /// The `password` key of the Secret `name` in the test namespace.
    pub async fn password(&self, name: &str) -> String {
        let secret = Api::<Secret>::namespaced(self.admin.clone(), NS)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("the Secret {name}: {e}"));
        String::from_utf8(secret.data.expect("data")["password"].0.clone()).expect("utf-8 password")
    }

    /// How clients verify cluster `name`'s members: `ca.crt` of its TLS Secret (the operator's
    /// CA), and its `C` Service's name, which the member certificate carries.
    pub async fn cluster_tls(&self, name: &str) -> AppTls {
        let secret = Api::<Secret>::namespaced(self.admin.clone(), NS)
            .get(&format!("{name}-tls"))
            .await
            .unwrap_or_else(|e| panic!("the Secret {name}-tls: {e}"));
        AppTls {
            ca_pem: secret.data.expect("data")["ca.crt"].0.clone(),
            name: format!("{name}.{NS}.svc"),
        }
    }

    pub fn time(&mut self, what: &str, d: Duration) {
        eprintln!("node: {what}: {:.1} s", d.as_secs_f64());
        self.timings.push((what.to_string(), d));
    }

    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        kubectl(self.cp, args)
    }

    pub async fn service_ip(&self, name: &str) -> IpAddr {
        let svc = Api::<Service>::namespaced(self.admin.clone(), NS)
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Service {name}: {e}"));
        svc.spec
            .and_then(|s| s.cluster_ip)
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("Service {name} has no cluster IP"))
    }

    /// The member pods.
    pub async fn member_pods(&self) -> Vec<Pod> {
        Api::<Pod>::namespaced(self.admin.clone(), NS)
            .list(&ListParams::default().labels(&format!(
                "app.kubernetes.io/instance={CLUSTER},app.kubernetes.io/component=database"
            )))
            .await
            .expect("list member pods")
            .items
    }

    /// The member pods' names and addresses (running ones only).
    pub async fn members(&self) -> Vec<(String, IpAddr)> {
        self.member_pods()
            .await
            .iter()
            .filter_map(|p| {
                let ip = p.status.as_ref()?.pod_ip.as_ref()?.parse().ok()?;
                Some((p.name_any(), ip))
            })
            .collect()
    }

    pub async fn root(&self, ip: IpAddr, query: &str) -> Result<Vec<Vec<String>>, String> {
        sql(
            SocketAddr::new(ip, 3306),
            &self.tls,
            "root",
            &self.root_password,
            query,
        )
        .await
    }

    /// Every member ONLINE in one group, asked of each server, with exactly the pod the group
    /// calls primary labelled primary; the primary's name.
    pub async fn healthy(&self) -> Option<String> {
        let members = self.members().await;
        if members.len() != self.size {
            return None;
        }
        let mut primary = None;
        for (_, ip) in &members {
            let rows = self
                .root(
                    *ip,
                    "SELECT MEMBER_HOST, MEMBER_STATE, MEMBER_ROLE \
                     FROM performance_schema.replication_group_members",
                )
                .await
                .ok()?;
            let online = rows.iter().filter(|r| r[1] == "ONLINE").count();
            if online != self.size || rows.len() != self.size {
                return None;
            }
            primary = rows
                .iter()
                .find(|r| r[2] == "PRIMARY")
                .map(|r| r[0].split('.').next().unwrap_or_default().to_string());
        }
        let primary = primary?;
        (self.roles.primaries() == vec![primary.clone()]).then_some(primary)
    }

    pub fn describe(&self) -> String {
        let pods = self
            .kubectl(&["-n", NS, "get", "mysqlcluster,pods", "-o", "wide"])
            .unwrap_or_else(|e| e);
        let events = self
            .kubectl(&["-n", NS, "get", "events", "--sort-by=.lastTimestamp"])
            .unwrap_or_else(|e| e);
        let operator = self
            .kubectl(&[
                "-n",
                OPERATOR_NS,
                "logs",
                "-l",
                "app.kubernetes.io/instance=innodb-operator",
                "--prefix",
                "--tail=40",
            ])
            .unwrap_or_else(|e| e);
        format!("{pods}\n{events}\noperator (last lines):\n{operator}")
    }

    /// `kubectl apply` of one document (YAML or JSON) in the test namespace.
    pub fn apply(&self, doc: &str) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), doc).expect("write the manifest");
        let path = file.path().to_str().expect("utf-8 path");
        self.kubectl(&["-n", NS, "apply", "-f", path])
            .unwrap_or_else(|e| panic!("kubectl apply {doc}: {e}"));
    }

    /// `kubectl patch` of the cluster's spec with a JSON merge patch.
    pub fn patch_spec(&self, spec: &str) {
        self.kubectl(&[
            "-n",
            NS,
            "patch",
            "mysqlcluster",
            CLUSTER,
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{spec}}}"#),
        ])
        .unwrap_or_else(|e| panic!("patch spec {spec}: {e}"));
    }

    /// `kill -9` of `pod`'s mysqld inside its container.
    pub fn kill_mysqld(&self, pod: &str) {
        self.kubectl(&[
            "-n",
            NS,
            "exec",
            pod,
            "-c",
            "mysql",
            "--",
            "sh",
            "-c",
            KILL_MYSQLD,
        ])
        .unwrap_or_else(|e| panic!("kill mysqld in {pod}: {e}"));
    }

    /// The application's schema and account (as root on the primary), and a writer committing
    /// numbered rows through the `C-router-lb` Service, once its first rows are in.
    pub async fn start_writer(&self) -> Writer {
        let primary = self.healthy().await.expect("healthy before writing");
        let primary_ip = self
            .members()
            .await
            .into_iter()
            .find(|m| m.0 == primary)
            .expect("the primary pod")
            .1;
        for q in writer::setup_statements(APP_PASSWORD) {
            self.root(primary_ip, &q)
                .await
                .unwrap_or_else(|e| panic!("{q}: {e}"));
        }
        let lb = SocketAddr::new(self.service_ip(&format!("{CLUSTER}-router-lb")).await, 6446);
        let w = Writer::start(lb, APP_PASSWORD, &self.tls);
        until("the writer's first rows", STEP, async || {
            (w.acked().len() >= 20).then_some(())
        })
        .await;
        w
    }

    /// Each member pod's UID (a replaced pod has a new one).
    pub async fn member_uids(&self) -> std::collections::BTreeMap<String, String> {
        self.member_pods()
            .await
            .into_iter()
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect()
    }

    /// How many member pods are Ready.
    pub async fn ready_members(&self) -> usize {
        self.member_pods()
            .await
            .iter()
            .filter(|p| pod_ready(p))
            .count()
    }

    /// The names of the namespace's PersistentVolumeClaims.
    pub fn pvcs(&self) -> Vec<String> {
        let out = self
            .kubectl(&["-n", NS, "get", "pvc", "-o", "name"])
            .unwrap_or_else(|e| panic!("list volume claims: {e}"));
        let mut names: Vec<String> = out.lines().map(str::to_string).collect();
        names.sort();
        names
    }
}

/// The pod's Ready condition is True.
fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The chart with the image built here, into its own namespace; waits until its two replicas
/// run and one of them leads.
pub fn install_chart(cp: &ControlPlane) -> Result<(), String> {
    run(cp
        .command("helm")
        .args(["install", "innodb-operator", support::chart::CHART])
        .args(["--namespace", OPERATOR_NS, "--create-namespace"])
        .args(["--set", "image.repository=innodb-operator"])
        .args([
            "--set",
            "image.tag=local",
            "--set",
            "image.pullPolicy=Never",
        ])
        .args(["--wait", "--timeout", "300s"]))
    .map(drop)
}
