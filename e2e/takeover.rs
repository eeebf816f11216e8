//! Work in flight when the leading replica dies, on the control plane with two replicas of the
//! operator binary: the standby that takes over finishes it, and does not do it a second time. A
//! switchover in flight runs against the failover benchmark's fake members (`bench/failover`),
//! which count the switchovers they are asked for.

mod support;
// The failover benchmark's fake members; it uses the rest of them.
#[allow(dead_code)]
#[path = "bench/failover/group.rs"]
mod group;
#[allow(dead_code)]
#[path = "bench/failover/members.rs"]
mod members;
#[path = "bench/failover/sql_face.rs"]
mod sql_face;
// Shared with the X protocol tests, which use the rest of it.
#[allow(dead_code)]
#[path = "xproto/server.rs"]
mod xserver;

use std::collections::BTreeMap;
use std::time::Duration;

use innodb_operator::xproto::messages::GroupReplicationChange;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
    ResourceExt,
};
use members::{CLUSTER, MEMBERS, Members, create_cluster};
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

const ROLE_LABEL: &str = "innodb-operator.io/role";
const SWITCHOVER_TO: &str = "innodb-operator.io/switchover-to";

/// The role label of each member pod, by ordinal.
async fn roles(client: &Client, ns: &str) -> Vec<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut roles = Vec::new();
    for i in 0..MEMBERS {
        let pod = pods.get_opt(&format!("{CLUSTER}-{i}")).await.ok().flatten();
        roles.push(pod.and_then(|p| p.labels().get(ROLE_LABEL).cloned()));
    }
    roles
}

/// The ready addresses of the rw Service's EndpointSlices.
async fn rw_addresses(client: &Client, ns: &str) -> Vec<String> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={CLUSTER}")))
        .await
        .expect("list EndpointSlices");
    support::ready_addresses(&slices.items)
}

/// Exactly member `primary` labelled primary, the others secondary.
fn labelled(roles: &[Option<String>], primary: usize) -> bool {
    roles.iter().enumerate().all(|(i, r)| {
        let want = if i == primary { "primary" } else { "secondary" };
        r.as_deref() == Some(want)
    })
}

/// What makes the leader switch the primary (member 0) over to member 1.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// The user's `switchover-to` annotation.
    Annotation,
    /// The primary's pod is deleted (held terminating by a finalizer, as a preStop hook holds a
    /// real one): the leader hands over before it goes.
    PodDeleted,
}

const HOLD_FINALIZER: &str = "e2e.innodb-operator.io/hold";

/// Makes the leader switch over as `ask` says.
async fn ask_for_a_switchover(admin: &Client, ns: &str, ask: Ask) {
    match ask {
        Ask::Annotation => {
            let patch = json!({"metadata": {"annotations": {SWITCHOVER_TO: "1"}}});
            api(admin, ns, "MySQLCluster", "mysqlclusters")
                .patch(CLUSTER, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("ask for a switchover");
        }
        Ask::PodDeleted => {
            let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
            let name = format!("{CLUSTER}-0");
            let hold = json!({"metadata": {"finalizers": [HOLD_FINALIZER]}});
            pods.patch(&name, &PatchParams::default(), &Patch::Merge(&hold))
                .await
                .expect("hold the primary's pod");
            pods.delete(&name, &Default::default())
                .await
                .expect("delete the primary's pod");
        }
    }
}

/// Whether the switchover that `ask` asked for is done as the cluster shows it: member 1
/// labelled primary, the others not, the annotation cleared.
fn switched(ask: Ask, roles: &[Option<String>], annotated: bool) -> bool {
    match ask {
        Ask::Annotation => labelled(roles, 1) && !annotated,
        // The terminating pod may keep or lose its label; it is not the primary.
        Ask::PodDeleted => {
            roles[1].as_deref() == Some("primary")
                && roles[2].as_deref() == Some("secondary")
                && roles[0].as_deref() != Some("primary")
        }
    }
}

/// The leader killed while the switchover it asked for is in flight; the group then carries it
/// out (`group_acts`) or loses it. Returns the members the switchovers asked for (`None`
/// without a control plane).
async fn takeover_during_a_switchover(
    prefix: &str,
    ask: Ask,
    group_acts: bool,
) -> Option<Vec<usize>> {
    let cp = control_plane()?;
    let (admin, ns) = cp.namespace(prefix).await;
    let (a, _) = replica(cp, &admin, &ns, "a", Expect::Leader).await;
    let (b, _) = replica(cp, &admin, &ns, "b", Expect::Standby).await;
    create_cluster(&admin, &ns).await;
    let members = Members::start(&admin, &ns).await;
    let group = members.group.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !labelled(&roles(&admin, &ns).await, 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "member 0 not labelled primary: {:?}\n{}",
            roles(&admin, &ns).await,
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The leader is asked to switch over; the group receives the switchover and holds it in
    // flight.
    group.lock().unwrap().hold_switchovers = true;
    ask_for_a_switchover(&admin, &ns, ask).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while group.lock().unwrap().switchovers.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the leader asked for no switchover\n{}",
            a.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The leader dies waiting for it; the group carries the action out (its client gone) and
    // tells whoever listens, or loses it.
    a.signal("KILL");
    {
        let mut g = group.lock().unwrap();
        if group_acts {
            g.set_primary(1);
        }
        g.lose_held = !group_acts;
        g.hold_switchovers = false;
    }
    if group_acts {
        members.announce(&[GroupReplicationChange::MemberRoleChange]);
    }

    // The standby leads once the lease runs out: member 1 ends primary and labelled so, the
    // request cleared.
    let ip1 = members.ips[1].to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(LEASE_DURATION + 30);
    loop {
        let roles = roles(&admin, &ns).await;
        let cluster = api(&admin, &ns, "MySQLCluster", "mysqlclusters")
            .get(CLUSTER)
            .await
            .expect("get the cluster");
        let asked = cluster.annotations().contains_key(SWITCHOVER_TO);
        let rw = rw_addresses(&admin, &ns).await;
        if switched(ask, &roles, asked) && rw == [ip1.clone()] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after the takeover: roles {roles:?}, switchover still asked: {asked}, rw Service \
             {rw:?}\n{}",
            b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if ask == Ask::PodDeleted {
        let release = json!({"metadata": {"finalizers": null}});
        Api::<Pod>::namespaced(admin.clone(), &ns)
            .patch(
                &format!("{CLUSTER}-0"),
                &PatchParams::default(),
                &Patch::Merge(&release),
            )
            .await
            .expect("let the old primary's pod go");
    }
    let g = group.lock().unwrap();
    assert!(
        g.unexpected.is_empty(),
        "the operator sent statements the fake members do not know: {:?}",
        g.unexpected
    );
    Some(g.switchovers.clone())
}

#[tokio::test]
async fn a_standby_taking_over_during_a_switchover_finishes_it_without_a_second_one() {
    if let Some(asked) =
        takeover_during_a_switchover("switchover-done-takeover", Ask::Annotation, true).await
    {
        assert_eq!(asked, [1], "switchovers the members were asked for");
    }
}

#[tokio::test]
async fn a_standby_taking_over_after_a_switchover_was_lost_asks_for_it_once_more() {
    if let Some(asked) =
        takeover_during_a_switchover("switchover-lost-takeover", Ask::Annotation, false).await
    {
        assert_eq!(asked, [1, 1], "switchovers the members were asked for");
    }
}

#[tokio::test]
async fn a_standby_taking_over_while_the_primarys_pod_goes_finishes_the_handover_once() {
    let ask = Ask::PodDeleted;
    if let Some(asked) = takeover_during_a_switchover("handover-done-takeover", ask, true).await {
        assert_eq!(asked, [1], "switchovers the members were asked for");
    }
}

#[tokio::test]
async fn a_standby_taking_over_after_a_handover_was_lost_hands_over_once_more() {
    let ask = Ask::PodDeleted;
    if let Some(asked) = takeover_during_a_switchover("handover-lost-takeover", ask, false).await {
        assert_eq!(asked, [1, 1], "switchovers the members were asked for");
    }
}
