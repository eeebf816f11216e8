//! Leader failover: `kill -9` of the leading operator replica while a standby waits, at the
//! moment the cluster's spec changes and its group elects another primary. Measured until the
//! standby's first reconcile (the status reports the new generation) and until the new primary's
//! pod is labelled by it — nobody listens when the group sends its notice, so the new leader
//! must find the change by itself.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::members::{CLUSTER, Members, clusters};
use crate::support::ControlPlane;
use crate::support::chart::replica;
use crate::support::operator::{Expect, LEASE_DURATION, Operator};
use crate::{Timeline, fail};

/// One round.
pub struct Sample {
    /// Kill → the status reports the generation written at the kill.
    pub reconcile: Duration,
    /// Kill → the primary elected at the kill labelled `primary`.
    pub relabel: Duration,
}

/// How long a round may take: the lease runs out, then the standby starts its controllers.
fn round_limit() -> Duration {
    Duration::from_secs(LEASE_DURATION + 20)
}

/// The generation the status last reported on.
async fn observed_generation(clusters: &Api<DynamicObject>) -> Option<i64> {
    let c = clusters.get(CLUSTER).await.ok()?;
    c.data["status"]["observedGeneration"].as_i64()
}

/// Runs `rounds` rounds against `leader`; returns the samples and the replica leading at the end.
pub async fn rounds(
    cp: &ControlPlane,
    admin: &Client,
    ns: &str,
    members: &Members,
    labels: &Timeline<BTreeMap<String, Option<String>>>,
    mut leader: Operator,
    rounds: usize,
) -> (Vec<Sample>, Operator) {
    let clusters = clusters(admin, ns);
    let mut samples = Vec::new();
    for round in 0..rounds {
        let standby = replica(cp, admin, ns, &format!("standby-{round}"), Expect::Standby)
            .await
            .0;
        members.monitored().await;
        let routers = 1 + (round as i64 + 1) % 2;
        let t0 = Instant::now();
        leader.signal("KILL");
        let new = {
            let mut g = members.group.lock().unwrap();
            let new = g.next_primary();
            g.set_primary(new);
            new
        };
        let changed = clusters
            .patch(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"router": {"instances": routers}}})),
            )
            .await
            .expect("change the router count");
        let generation = changed.metadata.generation.expect("a generation");
        drop(leader);
        leader = standby;
        let deadline = t0 + round_limit();
        let reconciled = loop {
            if observed_generation(&clusters).await == Some(generation) {
                break Instant::now();
            }
            if Instant::now() > deadline {
                fail(
                    &leader,
                    format!("leader round {round}: generation {generation} not reconciled"),
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let name = format!("{CLUSTER}-{new}");
        let relabelled = labels
            .first(
                t0,
                &format!("leader round {round}: {name} labelled primary"),
                |l| l.get(&name).cloned().flatten().as_deref() == Some("primary"),
            )
            .await
            .unwrap_or_else(|e| fail(&leader, e));
        samples.push(Sample {
            reconcile: reconciled - t0,
            relabel: relabelled - t0,
        });
    }
    (samples, leader)
}
