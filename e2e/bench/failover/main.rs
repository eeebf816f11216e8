//! Failover latency on the real control plane: from a Group Replication role change, announced
//! by a notice on the members' X protocol ports, until the rw Service's EndpointSlice selects the
//! new primary — through the operator binary of this build (installed by the chart, running as
//! its ServiceAccount), the real kube-apiserver, and kube-controller-manager's EndpointSlice
//! controller.
//!
//! The members are fakes on the pods' IPs (`members.rs`): each answers over TLS with the
//! cluster's certificate; the InnoDB Cluster metadata reads as the operator keeps it, so its
//! metadata pass writes nothing. Rounds cycle through a switchover (all members stay ONLINE), a failover
//! (the primary's pod is gone and refuses connections) and a partition (connections to the
//! primary hang); the others elect the next member, and the old primary comes back by
//! auto-rejoin before the next round.
//!
//! Then, in the same run, leader failover rounds (`leader.rs`): `kill -9` of the leading operator
//! replica while a standby waits, until the standby's first reconcile and its relabel of a
//! primary elected meanwhile.
//!
//!   cargo bench --bench failover_control_plane                 # 40 rounds + 10 leader rounds
//!   FAILOVER_ROUNDS=10 FAILOVER_LEADER_ROUNDS=2 cargo bench --profile dev --bench failover_control_plane
//!
//! Needs the control-plane binaries (`e2e/testenv/testenv.sh build`).

#[path = "../../support/mod.rs"]
mod support;
// Shared with the X protocol tests, which use the rest of it.
#[allow(dead_code)]
#[path = "../../xproto/server.rs"]
mod xserver;

mod group;
mod leader;
mod members;
mod sql_face;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use innodb_operator::xproto::messages::GroupReplicationChange;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use tokio::sync::watch;

use group::Status;
use members::{CLUSTER, MEMBERS, Members, create_cluster};
const ROUND_LIMIT: Duration = Duration::from_secs(30);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Values seen by a watch, each with the instant it arrived.
struct Timeline<T> {
    events: Mutex<Vec<(Instant, T)>>,
    count: watch::Sender<usize>,
}

impl<T: Clone> Timeline<T> {
    fn new() -> Arc<Self> {
        Arc::new(Timeline {
            events: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        })
    }

    fn push(&self, value: T) {
        let mut events = self.events.lock().unwrap();
        events.push((Instant::now(), value));
        self.count.send_replace(events.len());
    }

    fn latest(&self) -> Option<T> {
        self.events.lock().unwrap().last().map(|(_, v)| v.clone())
    }

    /// Every value seen so far.
    fn all(&self) -> Vec<T> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// When the first value at or after `since` satisfied `pred`; `Err(what)` when none did
    /// within [`ROUND_LIMIT`].
    async fn first(
        &self,
        since: Instant,
        what: &str,
        pred: impl Fn(&T) -> bool,
    ) -> Result<Instant, String> {
        let mut seen = self.count.subscribe();
        let deadline = tokio::time::Instant::from_std(since + ROUND_LIMIT);
        loop {
            let hit = self
                .events
                .lock()
                .unwrap()
                .iter()
                .find(|(at, v)| *at >= since && pred(v))
                .map(|(at, _)| *at);
            if let Some(at) = hit {
                return Ok(at);
            }
            if tokio::time::timeout_at(deadline, seen.changed())
                .await
                .is_err()
            {
                return Err(format!("{what}: not within {} s", ROUND_LIMIT.as_secs()));
            }
        }
    }
}

/// Follows objects of kind `K` selected by `labels`, pushing `view(all objects)` on each change.
fn follow<K, T>(
    api: Api<K>,
    labels: &str,
    timeline: Arc<Timeline<T>>,
    view: impl Fn(&[Arc<K>]) -> T + Send + 'static,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    T: Clone + PartialEq + Send + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api, watcher::Config::default().labels(labels)),
    )
    .default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut listed = false;
        while let Some(event) = stream.next().await {
            listed |= matches!(event, Ok(watcher::Event::InitDone));
            if event.is_ok() && listed {
                let value = view(&store.state());
                if timeline.latest().as_ref() != Some(&value) {
                    timeline.push(value);
                }
            }
        }
    });
}

/// The ready addresses of the rw Service's EndpointSlices.
fn ready_addresses(slices: &[Arc<EndpointSlice>]) -> Vec<String> {
    support::ready_addresses(slices.iter().map(|s| s.as_ref()))
}

/// Pod name → role label.
fn role_labels(pods: &[Arc<Pod>]) -> BTreeMap<String, Option<String>> {
    pods.iter()
        .map(|p| {
            let role = p.labels().get("innodb-operator.io/role").cloned();
            (p.name_any(), role)
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// The primary moves; every member stays ONLINE.
    Switchover,
    /// The primary's pod is gone: its addresses refuse connections.
    Failover,
    /// The primary is cut off: connections to it open but nothing answers.
    Partition,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Switchover, Kind::Failover, Kind::Partition];
}

struct Sample {
    kind: Kind,
    /// Notice → the new primary's pod labelled `primary` (the operator's part).
    label: Duration,
    /// Notice → the rw Service's EndpointSlice holds exactly the new primary.
    endpoints: Duration,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(name: &str, mut values: Vec<Duration>) {
    values.sort_unstable();
    println!(
        "  {name:<44} n={:<3} p50 {:>6.0} ms  p90 {:>6.0} ms  p99 {:>6.0} ms  max {:>6.0} ms",
        values.len(),
        percentile(&values, 0.5),
        percentile(&values, 0.9),
        percentile(&values, 0.99),
        percentile(&values, 1.0)
    );
}

/// Fails the benchmark with what the operator logged as a warning or error.
fn fail(operator: &support::operator::Operator, what: String) -> ! {
    let log = operator.log_text();
    let problems: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .filter(|l| !l.contains("xproto::monitor"))
        .collect();
    let tail = &problems[problems.len().saturating_sub(30)..];
    panic!(
        "{what}\noperator warnings and errors (last {}):\n{}",
        tail.len(),
        tail.join("\n")
    );
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(bench());
}

// One run through phases that share the fake members, the watches and the operator: the
// role-change rounds, the leader rounds, then the checks and the report.
async fn bench() {
    let rounds: usize = env_or("FAILOVER_ROUNDS", 40);
    let Some(cp) = support::control_plane() else {
        return;
    };
    let (admin, ns) = cp.namespace("failover-bench").await;
    let operator = support::chart::operator(cp, &admin, &ns).await;

    create_cluster(&admin, &ns).await;
    let mut members = Members::start(&admin, &ns).await;
    let group = members.group.clone();
    let ips = members.ips.clone();

    let endpoints = Timeline::new();
    follow(
        Api::<EndpointSlice>::namespaced(admin.clone(), &ns),
        &format!("kubernetes.io/service-name={CLUSTER}"),
        endpoints.clone(),
        ready_addresses,
    );
    let labels = Timeline::new();
    follow(
        Api::<Pod>::namespaced(admin.clone(), &ns),
        &format!("app.kubernetes.io/instance={CLUSTER}"),
        labels.clone(),
        role_labels,
    );

    let pod = |i: usize| format!("{CLUSTER}-{i}");
    let primary_is = |i: usize| {
        let name = pod(i);
        move |l: &BTreeMap<String, Option<String>>| {
            l.get(&name).cloned().flatten().as_deref() == Some("primary")
        }
    };
    let serves = |i: usize| {
        let ip = ips[i].to_string();
        move |a: &Vec<String>| a.len() == 1 && a[0] == ip
    };
    let start = Instant::now() - ROUND_LIMIT / 2;
    endpoints
        .first(start, "the rw Service selects member 0 at first", serves(0))
        .await
        .unwrap_or_else(|e| fail(&operator, e));
    members.monitored().await;
    println!(
        "cluster ready, operator monitoring {MEMBERS} members; {rounds} rounds (operator: {})",
        support::operator::BINARY
    );

    let mut samples = Vec::new();
    for round in 0..rounds {
        let kind = Kind::ALL[round % Kind::ALL.len()];
        let (old, new) = {
            let mut g = group.lock().unwrap();
            match kind {
                Kind::Switchover => {
                    let (old, new) = (g.primary, g.next_primary());
                    g.set_primary(new);
                    (old, new)
                }
                Kind::Failover => g.fail_primary(Status::Down),
                Kind::Partition => g.fail_primary(Status::Partitioned),
            }
        };
        if kind != Kind::Switchover {
            members.x[old] = None; // its notice session drops
        }
        let notices = match kind {
            Kind::Switchover => vec![GroupReplicationChange::MemberRoleChange],
            Kind::Failover | Kind::Partition => vec![
                GroupReplicationChange::MembershipViewChange,
                GroupReplicationChange::MemberRoleChange,
            ],
        };
        let t0 = Instant::now();
        let delivered = members.announce(&notices);
        assert!(
            delivered > 0,
            "round {round}: no notice session to deliver to"
        );
        let labelled = labels
            .first(
                t0,
                &format!("round {round}: {} labelled primary", pod(new)),
                primary_is(new),
            )
            .await
            .unwrap_or_else(|e| fail(&operator, e));
        let selected = endpoints
            .first(
                t0,
                &format!("round {round}: rw Service selects {}", pod(new)),
                serves(new),
            )
            .await
            .unwrap_or_else(|e| fail(&operator, e));
        samples.push(Sample {
            kind,
            label: labelled - t0,
            endpoints: selected - t0,
        });
        if kind != Kind::Switchover {
            group.lock().unwrap().rejoin(old);
            members.start_x(old).await;
            members.announce(&[GroupReplicationChange::MembershipViewChange]);
            let back = pod(old);
            labels
                .first(
                    Instant::now() - ROUND_LIMIT / 2,
                    &format!("{back} back as secondary"),
                    |l| l.get(&back).cloned().flatten().as_deref() == Some("secondary"),
                )
                .await
                .unwrap_or_else(|e| fail(&operator, e));
        }
        members.monitored().await;
    }
    let (leader_samples, operator) = leader::rounds(
        cp,
        &admin,
        &ns,
        &members,
        &labels,
        operator,
        env_or("FAILOVER_LEADER_ROUNDS", 10),
    )
    .await;

    let most = endpoints.all().iter().map(Vec::len).max().unwrap_or(0);
    assert!(
        most <= 1,
        "the rw Service selected {most} pods at once (two primaries?)"
    );
    println!(
        "role change (X notice) -> rw Service EndpointSlice selects the new primary \
         (real kube-apiserver and kube-controller-manager, the operator binary of this build):"
    );
    for kind in Kind::ALL {
        let of = |f: fn(&Sample) -> Duration| {
            samples
                .iter()
                .filter(|s| s.kind == kind)
                .map(f)
                .collect::<Vec<_>>()
        };
        report(
            &format!("{kind:?}: notice -> pod labelled"),
            of(|s| s.label),
        );
        report(
            &format!("{kind:?}: notice -> EndpointSlice"),
            of(|s| s.endpoints),
        );
    }
    report(
        "all: notice -> EndpointSlice (target p99 <= 1000 ms)",
        samples.iter().map(|s| s.endpoints).collect(),
    );
    if !leader_samples.is_empty() {
        println!(
            "kill -9 of the leading replica, a standby waiting (lease duration {} s, renew \
             deadline {} s), at the moment the spec changes and the group elects another primary:",
            support::operator::LEASE_DURATION,
            support::operator::LEASE_RENEW_DEADLINE
        );
        report(
            "leader killed -> standby's first reconcile",
            leader_samples.iter().map(|s| s.reconcile).collect(),
        );
        report(
            "leader killed -> new primary labelled",
            leader_samples.iter().map(|s| s.relabel).collect(),
        );
    }
    // After the report, so that a failed run still shows what it measured.
    let unexpected = group.lock().unwrap().unexpected.clone();
    assert!(
        unexpected.is_empty(),
        "the operator sent statements the fake members do not know: {unexpected:?}"
    );
    println!("  the rw Service never selected more than {most} pod; 0 unexpected statements");
    assert!(
        operator.stop().await,
        "the operator did not stop cleanly on SIGTERM"
    );
}
