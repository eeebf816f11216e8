//! Work in flight when the leading replica dies, on the control plane with two replicas of the
//! operator binary: the standby that takes over finishes it, and does not do it a second time.
//! (A switchover in flight needs members that answer: the real-MySQL tier's business.)

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams, ResourceExt,
};
use serde_json::json;
use support::chart::replica;
use support::control_plane;
use support::operator::{Expect, LEASE_DURATION};

const CLUSTER_LABEL: &str = "innodb-operator.io/cluster";
const SCHEDULED_AT: &str = "innodb-operator.io/scheduled-at";

fn api(client: &Client, ns: &str, kind: &str, plural: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("innodb-operator.io", "v1alpha1", kind);
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

/// The scheduled Backups of `cluster` by the minute they are for (their scheduled-at
/// annotation's), with their names.
async fn backups_by_tick(
    client: &Client,
    ns: &str,
    cluster: &str,
) -> BTreeMap<String, Vec<String>> {
    let list = api(client, ns, "Backup", "backups")
        .list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}")))
        .await
        .expect("list Backups");
    let mut by_tick: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in list.items {
        let at = b
            .annotations()
            .get(SCHEDULED_AT)
            .cloned()
            .unwrap_or_default();
        let tick = at.get(..16).unwrap_or(&at).to_string();
        by_tick.entry(tick).or_default().push(b.name_any());
    }
    by_tick
}

/// A minute as [`backups_by_tick`] keys it.
fn tick_text(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M").to_string()
}

#[tokio::test]
async fn a_standby_taking_over_at_a_schedule_tick_makes_that_ticks_backup_once() {
    let Some(cp) = control_plane() else { return };
    let (admin, ns) = cp.namespace("tick-takeover").await;
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s3-credentials"},
        "stringData": {"AWS_ACCESS_KEY_ID": "e2e", "AWS_SECRET_ACCESS_KEY": "e2e-secret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &credentials)
        .await
        .expect("create s3-credentials");
    let (a, _) = replica(cp, &admin, &ns, "a", Expect::Leader).await;
    let (b, _) = replica(cp, &admin, &ns, "b", Expect::Standby).await;
    let cluster: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "innodb-operator.io/v1alpha1", "kind": "MySQLCluster",
        "metadata": {"name": "ticks"},
        "spec": {"instances": 1, "router": {"instances": 0}, "backup": {
            "storage": {"bucket": "backups", "region": "us-east-1",
                        "credentialsSecret": {"name": "s3-credentials"}},
            "schedules": [{"name": "minutely", "schedule": "* * * * *", "keep": 10}]}}
    }))
    .unwrap();
    api(&admin, &ns, "MySQLCluster", "mysqlclusters")
        .create(&PostParams::default(), &cluster)
        .await
        .expect("create cluster");

    // The leader wakes a second after each tick to make that tick's Backup: kill it then, while
    // it may be making it.
    let now = jiff::Timestamp::now();
    let tick = jiff::Timestamp::from_second((now.as_second() / 60 + 1) * 60).unwrap();
    let kill_at = tick + jiff::SignedDuration::from_millis(1_000);
    tokio::time::sleep(now.duration_until(kill_at).unsigned_abs()).await;
    a.signal("KILL");
    let tick = tick_text(tick);

    // The standby leads once the lease runs out, and the tick's Backup is there: made by the
    // killed leader before it died, or by the new one.
    let deadline = std::time::Instant::now() + Duration::from_secs(LEASE_DURATION + 30);
    loop {
        let leads = b.readyz().await.as_deref() == Some("ready: leader");
        let by_tick = backups_by_tick(&admin, &ns, "ticks").await;
        if leads && by_tick.contains_key(&tick) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "b leads: {leads}; no Backup of the {tick} tick: {by_tick:?}\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // One more tick under the new leader, then: one Backup a tick, the killed one's included.
    let next =
        jiff::Timestamp::from_second((jiff::Timestamp::now().as_second() / 60 + 1) * 60).unwrap();
    let after = next + jiff::SignedDuration::from_secs(5);
    tokio::time::sleep(jiff::Timestamp::now().duration_until(after).unsigned_abs()).await;
    let by_tick = backups_by_tick(&admin, &ns, "ticks").await;
    assert!(
        by_tick.contains_key(&tick_text(next)),
        "no Backup of the tick after the takeover: {by_tick:?}\n{}",
        b.log_text()
    );
    let twice: Vec<_> = by_tick
        .iter()
        .filter(|(_, names)| names.len() > 1)
        .collect();
    assert!(twice.is_empty(), "ticks with two Backups: {twice:?}");
}
