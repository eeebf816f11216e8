//! The member pods' role labels as the API serves them, watched for the whole test: which pods
//! are labelled primary now, and the most that ever were at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

const ROLE: &str = "innodb-operator.io/role";

#[derive(Default)]
struct Seen {
    /// Pod name → (IP, role label).
    now: BTreeMap<String, (Option<String>, Option<String>)>,
    /// The most pods labelled primary at one moment, and which.
    most: Vec<String>,
}

pub struct Roles {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Roles {
    pub fn watch(client: Client, namespace: &str, cluster: &str) -> Roles {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let selector =
            format!("app.kubernetes.io/instance={cluster},app.kubernetes.io/component=database");
        let (store, writer) = reflector::store();
        let stream = reflector(
            writer,
            watcher(api, watcher::Config::default().labels(&selector)),
        )
        .default_backoff();
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                let mut listed = false;
                while let Some(event) = stream.next().await {
                    listed |= matches!(event, Ok(watcher::Event::InitDone));
                    if !listed || event.is_err() {
                        continue;
                    }
                    let now: BTreeMap<_, _> = store
                        .state()
                        .iter()
                        .map(|p| {
                            let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
                            (p.name_any(), (ip, p.labels().get(ROLE).cloned()))
                        })
                        .collect();
                    let mut s = seen.lock().unwrap();
                    let primaries = primaries_of(&now);
                    if primaries.len() > s.most.len() {
                        s.most = primaries;
                    }
                    s.now = now;
                }
            })
        };
        Roles { seen, task }
    }

    /// The pods labelled primary now.
    pub fn primaries(&self) -> Vec<String> {
        primaries_of(&self.seen.lock().unwrap().now)
    }

    /// The IP of pod `name` as the API gives it.
    pub fn ip(&self, name: &str) -> Option<String> {
        self.seen.lock().unwrap().now.get(name)?.0.clone()
    }

    /// The role label of every pod now.
    pub fn labels(&self) -> BTreeMap<String, Option<String>> {
        let s = self.seen.lock().unwrap();
        s.now
            .iter()
            .map(|(k, v)| (k.clone(), v.1.clone()))
            .collect()
    }

    /// The most pods ever labelled primary at once.
    pub fn most_primaries(&self) -> Vec<String> {
        self.seen.lock().unwrap().most.clone()
    }
}

impl Drop for Roles {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn primaries_of(now: &BTreeMap<String, (Option<String>, Option<String>)>) -> Vec<String> {
    now.iter()
        .filter(|(_, (_, role))| role.as_deref() == Some("primary"))
        .map(|(name, _)| name.clone())
        .collect()
}
