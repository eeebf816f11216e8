//! The kubelet's part for one cluster's pods on the kwok nodes, with real processes: kwok makes
//! the pods Running and gives them IPs; this runs each pod the API holds (the member
//! StatefulSet's and the Router Deployment's) at its IP with the `e2e/realmysql` harness, from
//! the pod's own spec and the ConfigMaps and Secrets of the namespace. A container that exits is
//! started again (after 10 s when it ran less than that, as a kubelet's back-off), a deleted pod
//! is stopped (SIGTERM, then SIGKILL after its grace period) and a pod of the same name created
//! again starts fresh on its kept claims.
//!
//! kwok removes a deleted pod from the API at once, while a kubelet keeps it (Terminating) until
//! its containers have stopped: the StatefulSet controller would create the pod again, and kwok
//! give its IP to another pod, while the old server still runs and answers at that IP (the
//! operator then joined a scaled-down member that was shutting down, in the new pod's name).
//! So every pod this kubelet runs carries its finalizer, removed once the pod's processes
//! stopped, as a kubelet's graceful deletion does.
//!
//! The cluster DNS and kube-proxy are the harness's too: every container's `/etc/hosts` holds
//! each member pod's stable name (`<hostname>.<subdomain>.<ns>.svc.<domain>`), each ClusterIP
//! Service's name with its cluster IP and each headless Service's with its ready endpoints,
//! rewritten in place on change, and a name it does not hold (a deleted pod's) fails at once, as
//! the cluster DNS answers (the pods' `/etc/resolv.conf`, see `realmysql::members`);
//! [`crate::proxy`] serves the cluster IPs. So the Router, whose
//! configuration names the rw and ro Services, follows their EndpointSlices as in a cluster.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Config, ResourceExt};

use crate::proxy::Proxy;
use crate::realmysql::members::{Cluster, Removal, base_hosts};
use crate::realmysql::pod::PodSource;

const TICK: Duration = Duration::from_millis(200);
/// A container that ran less than this is started again only this long after its last start.
const BACK_OFF: Duration = Duration::from_secs(10);
const COMPONENT: &str = "app.kubernetes.io/component";
/// Holds a deleted pod in the API until this kubelet stopped its processes.
const FINALIZER: &str = "innodb-operator.test/harness-kubelet";
const INSTANCE: &str = "app.kubernetes.io/instance";
pub const DOMAIN: &str = "cluster.local";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Member,
    Router,
}

/// A pod this kubelet runs.
#[derive(Clone, Debug)]
pub struct Running {
    pub uid: String,
    pub ip: String,
    pub kind: Kind,
    /// The member's StatefulSet ordinal; for a router, a number of this harness.
    pub ordinal: u32,
    started: Instant,
}

/// The processes of the cluster's pods, shared with the test (to kill, pause or cut one off).
pub struct Pods {
    pub members: Cluster,
    pub routers: Cluster,
    /// Pod name → what runs for it.
    pub running: BTreeMap<String, Running>,
    next_router: u32,
    hosts: String,
    proxy: Proxy,
    /// Member ordinals whose container is not started again while held (a stopped node).
    pub held: std::collections::BTreeSet<u32>,
    /// What this kubelet did, with the time since it started.
    pub events: Vec<String>,
    /// The first thing it could not do (the test fails with it).
    pub error: Option<String>,
    since: Instant,
}

impl Pods {
    fn cluster(&mut self, kind: Kind) -> &mut Cluster {
        match kind {
            Kind::Member => &mut self.members,
            Kind::Router => &mut self.routers,
        }
    }

    fn event(&mut self, what: String) {
        let line = format!("{:>7.1} s  {what}", self.since.elapsed().as_secs_f64());
        eprintln!("kubelet: {line}");
        self.events.push(line);
    }
}

/// The kubelet thread; stopped (and every pod with it) when dropped.
pub struct Kubelet {
    pods: Arc<Mutex<Pods>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Kubelet {
    /// Runs the pods of cluster `cluster` in `namespace` from now on.
    pub fn start(
        rootfs: &std::path::Path,
        config: Config,
        namespace: &str,
        cluster: &str,
    ) -> Kubelet {
        let members = Cluster::empty(rootfs, cluster, namespace)
            .unwrap_or_else(|e| panic!("member network: {e}"));
        let routers = Cluster::empty(rootfs, &format!("{cluster}-routers"), namespace)
            .unwrap_or_else(|e| panic!("router network: {e}"));
        let pods = Arc::new(Mutex::new(Pods {
            members,
            routers,
            running: BTreeMap::new(),
            next_router: 0,
            hosts: String::new(),
            proxy: Proxy::new(),
            held: Default::default(),
            events: Vec::new(),
            error: None,
            since: Instant::now(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pods, stop) = (pods.clone(), stop.clone());
            let (namespace, cluster) = (namespace.to_string(), cluster.to_string());
            std::thread::spawn(move || run(config, &namespace, &cluster, &pods, &stop))
        };
        Kubelet {
            pods,
            stop,
            thread: Some(thread),
        }
    }

    /// The pods, locked; panics with the kubelet's first error.
    pub fn pods(&self) -> MutexGuard<'_, Pods> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = &pods.error {
            panic!("the harness's kubelet failed: {e}");
        }
        pods
    }

    /// What the kubelet did (after a failure).
    pub fn pods_events(&self) -> String {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        pods.events.join("\n")
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(config: Config, namespace: &str, cluster: &str, pods: &Mutex<Pods>, stop: &AtomicBool) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("kubelet runtime");
    let client = runtime.block_on(async { Client::try_from(config).expect("kubelet client") });
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = runtime.block_on(tick(&client, namespace, cluster, pods)) {
            let mut p = pods.lock().unwrap_or_else(|e| e.into_inner());
            p.event(format!("FAILED: {e}"));
            p.error.get_or_insert(e);
        }
        std::thread::sleep(TICK);
    }
}

/// A pod of the cluster that should run: name, uid, IP, kind, the pod.
struct Wanted {
    name: String,
    uid: String,
    ip: String,
    kind: Kind,
    pod: Pod,
}

fn wanted(pods: Vec<Pod>, cluster: &str) -> Vec<Wanted> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.labels().get(INSTANCE).map(String::as_str) == Some(cluster))
        .filter_map(|p| {
            let kind = match p.labels().get(COMPONENT)?.as_str() {
                "database" => Kind::Member,
                "router" => Kind::Router,
                _ => return None,
            };
            Some(Wanted {
                name: p.name_any(),
                uid: p.uid()?,
                ip: p.status.as_ref()?.pod_ip.clone()?,
                kind,
                pod: p,
            })
        })
        .collect()
}

fn ordinal_of(name: &str) -> Result<u32, String> {
    name.rsplit('-')
        .next()
        .and_then(|o| o.parse().ok())
        .ok_or_else(|| format!("member pod {name} has no ordinal"))
}

async fn tick(
    client: &Client,
    namespace: &str,
    cluster: &str,
    pods: &Mutex<Pods>,
) -> Result<(), String> {
    let api = |e: kube::Error| format!("list: {e}");
    let all: Vec<Pod> = Api::<Pod>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(api)?
        .items;
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(api)?
        .items;
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(api)?
        .items;
    let wanted = wanted(all, cluster);
    let new: Vec<&Wanted> = {
        let p = pods.lock().unwrap_or_else(|e| e.into_inner());
        wanted
            .iter()
            .filter(|w| p.running.get(&w.name).is_none_or(|r| r.uid != w.uid))
            .collect()
    };
    let objects = if new.is_empty() {
        None
    } else {
        let cms = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(api)?
            .items;
        let secrets = Api::<Secret>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .map_err(api)?
            .items;
        Some((cms, secrets))
    };
    // Held before anything runs for them, released once their processes stopped.
    for w in &new {
        finalize(client, namespace, &w.name, &w.uid, true).await?;
    }
    let stopped = {
        let mut p = pods.lock().unwrap_or_else(|e| e.into_inner());
        let world = Seen {
            wanted: &wanted,
            new: &new,
            objects: objects.as_ref(),
            services: &services,
            slices: &slices,
        };
        run_pods(&mut p, &world, namespace)?
    };
    for (name, uid) in stopped {
        finalize(client, namespace, &name, &uid, false).await?;
    }
    Ok(())
}

/// What one tick read from the API.
struct Seen<'a> {
    wanted: &'a [Wanted],
    new: &'a [&'a Wanted],
    objects: Option<&'a (Vec<ConfigMap>, Vec<Secret>)>,
    services: &'a [Service],
    slices: &'a [EndpointSlice],
}

/// Makes the processes match what the API holds: pods gone are stopped, new ones started,
/// exited containers started again, the cluster DNS and kube-proxy brought up to date.
/// Returns the stopped pods (name, uid). Over 80 lines: one kubelet pass, in a kubelet's order.
fn run_pods(p: &mut Pods, seen: &Seen, namespace: &str) -> Result<Vec<(String, String)>, String> {
    let Seen {
        wanted,
        new,
        objects,
        services,
        slices,
    } = *seen;
    // Pods deleted, or replaced by a new pod of the same name.
    let gone: Vec<(String, Running)> = p
        .running
        .iter()
        .filter(|(name, r)| !wanted.iter().any(|w| &w.name == *name && w.uid == r.uid))
        .map(|(n, r)| (n.clone(), r.clone()))
        .collect();
    let mut stopped = Vec::new();
    for (name, r) in gone {
        let gone = p
            .cluster(r.kind)
            .remove_pod(r.ordinal, Removal::Deleted)
            .map_err(|e| format!("pod {name}: {e}"))?;
        p.running.remove(&name);
        p.event(format!("pod {name} gone: stopped ({:?})", gone.status));
        stopped.push((name, r.uid));
    }
    // New pods: their network and state, then every one's init containers at once.
    let mut starting: BTreeMap<Kind, Vec<u32>> = BTreeMap::new();
    if let Some((cms, secrets)) = objects {
        for w in new {
            let source = PodSource::from_pod(&w.pod, cms, secrets);
            if let Some(missing) = source.missing_source() {
                // As a kubelet: the pod waits for its volume's object (a Secret cert-manager
                // has not issued yet), tried again next tick.
                p.event(format!("pod {}: waiting for {missing}", w.name));
                continue;
            }
            let ordinal = match w.kind {
                Kind::Member => ordinal_of(&w.name)?,
                Kind::Router => {
                    p.next_router += 1;
                    p.next_router
                }
            };
            p.cluster(w.kind)
                .add_pod(ordinal, &w.name, &w.ip, source)
                .map_err(|e| format!("pod {}: {e}", w.name))?;
            p.running.insert(
                w.name.clone(),
                Running {
                    uid: w.uid.clone(),
                    ip: w.ip.clone(),
                    kind: w.kind,
                    ordinal,
                    started: Instant::now(),
                },
            );
            starting.entry(w.kind).or_default().push(ordinal);
            p.event(format!("pod {} at {}: starting", w.name, w.ip));
        }
    }
    // The names and Services first: a starting member may look its peers up.
    let dns = Dns::new(services, slices);
    for change in p.proxy.update(dns.proxied())? {
        p.event(format!("proxy: {change}"));
    }
    let hosts = dns.hosts(wanted, namespace);
    if hosts != p.hosts || !starting.is_empty() {
        p.members.set_hosts(&hosts)?;
        p.routers.set_hosts(&hosts)?;
        p.hosts = hosts;
    }
    for (kind, ordinals) in starting {
        p.cluster(kind).start_some(&ordinals)?;
        p.event(format!(
            "{kind:?} pods {ordinals:?}: init containers done, main started"
        ));
    }
    // Containers that exited: started again, as the pod's restartPolicy Always says.
    let names: Vec<String> = p.running.keys().cloned().collect();
    for name in names {
        let r = p.running[&name].clone();
        let held = r.kind == Kind::Member && p.held.contains(&r.ordinal);
        let cluster = p.cluster(r.kind);
        if cluster.is_running(r.ordinal) {
            let Some(status) = cluster.wait_exit(r.ordinal, Duration::ZERO) else {
                continue;
            };
            p.event(format!("pod {name}: container exited ({status})"));
        }
        if held || r.started.elapsed() < BACK_OFF {
            continue;
        }
        p.cluster(r.kind).restart_container(r.ordinal)?;
        if let Some(r) = p.running.get_mut(&name) {
            r.started = Instant::now();
        }
        p.event(format!("pod {name}: container started again"));
    }
    Ok(stopped)
}

/// Puts this kubelet's finalizer on pod `name` (`hold`), or takes it off once the pod's
/// processes stopped; only the pod of `uid` (a pod already gone is fine).
async fn finalize(
    client: &Client,
    namespace: &str,
    name: &str,
    uid: &str,
    hold: bool,
) -> Result<(), String> {
    let finalizers: Vec<&str> = if hold { vec![FINALIZER] } else { vec![] };
    let patch = serde_json::json!({
        "metadata": {"uid": uid, "finalizers": finalizers},
    });
    match Api::<Pod>::namespaced(client.clone(), namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Gone, or a new pod of that name (the uid precondition failed).
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(format!("pod {name}: finalizer: {e}")),
    }
}

/// A Service's cluster IP (none when headless) and its ports with their endpoints' ports.
type ServiceFront = (Option<IpAddr>, Vec<(u16, u16)>);

/// The namespace's Services: each one's cluster IP (none for a headless one) and ports, and the
/// ready endpoints of its EndpointSlices.
struct Dns {
    services: BTreeMap<String, ServiceFront>,
    /// Service name → ready endpoint addresses.
    endpoints: BTreeMap<String, Vec<IpAddr>>,
}

impl Dns {
    fn new(services: &[Service], slices: &[EndpointSlice]) -> Dns {
        let mut endpoints: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
        let mut target_ports: BTreeMap<(String, String), u16> = BTreeMap::new();
        for s in slices {
            let Some(service) = s.labels().get("kubernetes.io/service-name") else {
                continue;
            };
            for p in s.ports.iter().flatten() {
                if let (Some(name), Some(port)) = (&p.name, p.port) {
                    target_ports.insert((service.clone(), name.clone()), port as u16);
                }
            }
            let ready = s
                .endpoints
                .iter()
                .flatten()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                .flat_map(|e| e.addresses.iter())
                .filter_map(|a| a.parse::<IpAddr>().ok());
            let all = endpoints.entry(service.clone()).or_default();
            all.extend(ready);
            all.sort();
            all.dedup();
        }
        let services = services
            .iter()
            .filter_map(|svc| {
                let name = svc.name_any();
                let spec = svc.spec.as_ref()?;
                let ip = spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok());
                let ports = spec
                    .ports
                    .iter()
                    .flatten()
                    .filter_map(|p| {
                        let target = target_ports
                            .get(&(name.clone(), p.name.clone().unwrap_or_default()))
                            .copied()?;
                        Some((p.port as u16, target))
                    })
                    .collect();
                Some((name, (ip, ports)))
            })
            .collect();
        Dns {
            services,
            endpoints,
        }
    }

    /// What kube-proxy serves: each ClusterIP Service port → its endpoints.
    fn proxied(&self) -> BTreeMap<SocketAddr, Vec<SocketAddr>> {
        let mut out = BTreeMap::new();
        for (name, (ip, ports)) in &self.services {
            let Some(ip) = ip else { continue };
            let endpoints = self.endpoints.get(name).cloned().unwrap_or_default();
            for (port, target) in ports {
                out.insert(
                    SocketAddr::new(*ip, *port),
                    endpoints
                        .iter()
                        .map(|e| SocketAddr::new(*e, *target))
                        .collect(),
                );
            }
        }
        out
    }

    /// The cluster DNS as `/etc/hosts`: member pods' stable names; a ClusterIP Service's name
    /// with its cluster IP, a headless one's with the ready addresses of its endpoints.
    fn hosts(&self, wanted: &[Wanted], namespace: &str) -> String {
        let mut out = base_hosts();
        for w in wanted {
            let spec = w.pod.spec.as_ref();
            if let Some((host, sub)) =
                spec.and_then(|s| s.hostname.as_ref().zip(s.subdomain.as_ref()))
            {
                out += &format!(
                    "{}\t{host}.{sub}.{namespace}.svc.{DOMAIN} {}\n",
                    w.ip, w.name
                );
            }
        }
        for (name, (ip, _)) in &self.services {
            let addresses = match ip {
                Some(ip) => vec![*ip],
                None => self.endpoints.get(name).cloned().unwrap_or_default(),
            };
            for a in addresses {
                out += &format!("{a}\t{name}.{namespace}.svc.{DOMAIN}\n");
            }
        }
        out
    }
}
