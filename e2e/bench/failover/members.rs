//! The fake members of a cluster on the control plane, shared by the failover benchmark and the
//! takeover tests: on the IPs kwok gives the member pods (added to `lo`, which needs
//! CAP_NET_ADMIN), each answers the operator's SQL sessions from one simulated [`Group`]
//! (opensrv-mysql) and speaks the X protocol with PLAIN and Group Replication notices, both over
//! TLS with the certificate a member pod mounts: the cluster's TLS Secret, signed by the CA the
//! operator made (its sessions trust that CA only). The group's name is the one in the cluster's
//! my.cnf.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use innodb_operator::cluster::build::mycnf::MYCNF_KEY;
use innodb_operator::cluster::dereference::group_name_in_mycnf;
use innodb_operator::xproto::messages::GroupReplicationChange;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::group::{Group, Registration};
use crate::sql_face;
use crate::support::wait_for;
use crate::xserver::{Behavior, FakeXServer, TestPki};

pub const CLUSTER: &str = "bench";
pub const MEMBERS: usize = 3;

/// Creates the MySQLCluster of the fake members: [`MEMBERS`] members and a Router.
pub async fn create_cluster(admin: &Client, ns: &str) {
    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
        "metadata": {"name": CLUSTER},
        "spec": {"instances": MEMBERS, "router": {"instances": 1}}
    }))
    .unwrap();
    clusters(admin, ns)
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create the MySQLCluster");
}

/// Addresses added to `lo` for the fake members; removed when dropped.
struct LoopbackAddresses(Vec<IpAddr>);

impl LoopbackAddresses {
    fn add(ips: &[IpAddr]) -> Self {
        let mut added = LoopbackAddresses(Vec::new());
        for ip in ips {
            let out = Command::new("ip")
                .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
                .output()
                .expect("run `ip` (Debian package iproute2)");
            assert!(
                out.status.success()
                    || String::from_utf8_lossy(&out.stderr).contains("File exists"),
                "cannot add the pod address {ip} to lo (needs root / CAP_NET_ADMIN): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            added.0.push(*ip);
        }
        added
    }
}

impl Drop for LoopbackAddresses {
    fn drop(&mut self) {
        for ip in &self.0 {
            let _ = Command::new("ip")
                .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
                .output();
        }
    }
}

/// The MySQLClusters of `ns`.
pub fn clusters(admin: &Client, ns: &str) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", "MySQLCluster"),
        "mysqlclusters",
    );
    Api::namespaced_with(admin.clone(), ns, &resource)
}

/// The member pods' IPs, once every pod runs and has one.
async fn pod_ips(client: &Client, ns: &str) -> Vec<IpAddr> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for(
        "member pods running with an IP",
        Duration::from_secs(120),
        || async {
            (0..MEMBERS)
                .map(async |i| {
                    let pod = pods.get_opt(&format!("{CLUSTER}-{i}")).await.ok()??;
                    pod.status?.pod_ip?.parse().ok()
                })
                .collect::<futures::future::JoinAll<_>>()
                .await
                .into_iter()
                .collect::<Option<Vec<IpAddr>>>()
        },
    )
    .await
}

/// The values of `keys` in the Secret `name`, once the operator has created it.
async fn secret_texts<const N: usize>(
    client: &Client,
    ns: &str,
    name: &str,
    keys: [&str; N],
) -> [String; N] {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    wait_for(
        &format!("the Secret {name}"),
        Duration::from_secs(60),
        || async {
            let data = secrets.get_opt(name).await.ok()??.data?;
            let text = |k: &str| {
                data.get(k)
                    .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            };
            keys.iter()
                .map(|k| text(k))
                .collect::<Option<Vec<_>>>()?
                .try_into()
                .ok()
        },
    )
    .await
}

/// The group name in the members' my.cnf (the operator's ConfigMap `C-config`).
async fn group_name(client: &Client, ns: &str) -> String {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    wait_for(
        "the members' my.cnf with a group name",
        Duration::from_secs(60),
        || async {
            let data = maps
                .get_opt(&format!("{CLUSTER}-config"))
                .await
                .ok()??
                .data?;
            let name = group_name_in_mycnf(data.get(MYCNF_KEY)?)?;
            Some(name.to_string())
        },
    )
    .await
}

/// What a member's pod mounts of the TLS Secret the operator made (`C-tls`, signed by its CA
/// `C-ca`): the X protocol's identity and the SQL port's.
async fn member_tls(client: &Client, ns: &str) -> (TestPki, Arc<sql_face::ServerConfig>) {
    let [ca, cert, key] = secret_texts(
        client,
        ns,
        &format!("{CLUSTER}-tls"),
        ["ca.crt", "tls.crt", "tls.key"],
    )
    .await;
    (
        TestPki::from_pem(&ca, &cert, &key),
        sql_face::tls_config(&cert, &key),
    )
}

pub struct Members {
    pub group: Arc<Mutex<Group>>,
    pub ips: Vec<IpAddr>,
    pub x: Vec<Option<FakeXServer>>,
    user: String,
    password: String,
    /// The members' certificate, from the cluster's TLS Secret.
    pki: TestPki,
    sql: Vec<JoinHandle<()>>,
    _addresses: LoopbackAddresses,
}

impl Members {
    /// The fake members of the cluster [`create_cluster`] made, once the operator has written
    /// what their pods would mount (the admin account's and the TLS Secrets, my.cnf) and the
    /// pods run: on the pods' IPs, ONLINE, member 0 the primary.
    pub async fn start(admin: &Client, ns: &str) -> Members {
        let ips = pod_ips(admin, ns).await;
        let [user, password] = secret_texts(
            admin,
            ns,
            &format!("{CLUSTER}-admin"),
            ["username", "password"],
        )
        .await;
        let (pki, sql_tls) = member_tls(admin, ns).await;
        let hosts = (0..MEMBERS)
            .map(|i| format!("{CLUSTER}-{i}.{CLUSTER}-instances.{ns}.svc.cluster.local"))
            .collect();
        let registration = Registration {
            cluster_name: CLUSTER.into(),
            router_name: format!("{CLUSTER}-router"),
            router_address: format!("{CLUSTER}-router.{ns}.svc.cluster.local"),
        };
        let name = group_name(admin, ns).await;
        let group = Arc::new(Mutex::new(Group::new(name, registration, hosts)));
        let mut members = Members {
            group: group.clone(),
            ips: ips.clone(),
            x: (0..MEMBERS).map(|_| None).collect(),
            user,
            password,
            pki,
            sql: Vec::new(),
            _addresses: LoopbackAddresses::add(&ips),
        };
        for (i, ip) in ips.iter().enumerate() {
            let addr = SocketAddr::new(*ip, 3306);
            let task = sql_face::serve(addr, i, group.clone(), sql_tls.clone()).await;
            members.sql.push(task);
            members.start_x(i).await;
        }
        members
    }

    pub async fn start_x(&mut self, i: usize) {
        let addr = SocketAddr::new(self.ips[i], 33060);
        let (user, password, pki) = (&self.user, &self.password, self.pki.clone());
        self.x[i] = Some(FakeXServer::start_on(addr, Behavior::Normal, user, password, pki).await);
    }

    /// Sends notices from every member still ONLINE; returns how many sessions received them.
    pub fn announce(&self, kinds: &[GroupReplicationChange]) -> usize {
        let (online, view) = {
            let g = self.group.lock().unwrap();
            (g.online(), g.view_id())
        };
        let mut delivered = 0;
        for i in online {
            if let Some(x) = &self.x[i] {
                for kind in kinds {
                    delivered += x.push_notice(*kind as u32, &view);
                }
            }
        }
        delivered
    }

    /// Waits until the operator's monitor holds a notice session on every ONLINE member.
    pub async fn monitored(&self) {
        let online = self.group.lock().unwrap().online();
        for i in online {
            let x = self.x[i].as_ref().expect("an ONLINE member serves X");
            x.wait_for("the operator's notice session", |s| s.notice_sessions >= 1)
                .await;
        }
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for task in &self.sql {
            task.abort();
        }
    }
}
