//! The reconcile as data: one pure function, [`plan`], from what [`super::gather`] observed to
//! everything the driver ([`super::reconcile`]) then does, in this order:
//!
//! 1. the Events about the spec (a warning, or why it is invalid);
//! 2. the restore Job to create and the restore's Event ([`topology`]: restore first, it gates
//!    the group's first start);
//! 3. the one Group Replication operation ([`topology`], through `decide`);
//! 4. the objects to apply, built with what the topology decided ([`BuildInputs`]);
//! 5. what the topology asks of Kubernetes: role labels, the pod a rolling update replaces,
//!    one-shot annotations to clear ([`KubernetesChanges`]);
//! 6. the status to write ([`StatusInput`]; the driver adds only what its writes did).
//!
//! [`topology`] is also what the simulation (`e2e/simulation`) drives with its simulated members
//! and restore Job, so the order of restore, gate and decision is tested there.

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use rand::Rng;

use super::build::tls_secrets::{self, TlsWrites};
use super::build::{self, BuildInputs, Desired};
use super::gather::Observations;
use super::restore_plan::{self, RestoreInput, RestoreLocation, Unresolved};
use super::status::StatusInput;
use super::topology_step;
use super::validate::{SpecWarning, ValidCluster, ValidationError};
use super::{CONVERGING, RESTORE_POLL};
use crate::api::cluster::{FORCE_QUORUM_ANNOTATION, RestoreSource, SWITCHOVER_ANNOTATION};
use crate::api::{MySQLCluster, MySQLClusterStatus};
use crate::backup_controller::decide::JobView;
use crate::backup_controller::job;
use crate::context::Config;
use crate::events::Reason;
use crate::objects::names::Names;
use crate::objects::tls::TlsSource;
use crate::topology::metadata::Desired as MetadataDesired;
use crate::topology::observe::Endpoint;
use crate::topology::tls_reload::{self, Expiring, Holder};
use crate::topology::{ActionRecord, Decision, Observed, Operation, RestoreGate, updated_history};

/// What the restore step reads besides the members: the request, where its backup is, the
/// status as stored and the restore Job as found.
#[derive(Clone, Debug)]
pub struct RestoreObservation<'a> {
    pub cluster: &'a str,
    /// `spec.restoreFrom`.
    pub requested: Option<&'a RestoreSource>,
    /// Where its backup is, as the dereference step resolved it.
    pub location: Option<&'a Result<RestoreLocation, Unresolved>>,
    /// The status as stored.
    pub status: Option<&'a MySQLClusterStatus>,
    /// The restore Job (`None` when it does not exist or was not read) and when it was created.
    pub job: Option<JobView>,
    pub job_created: Option<Time>,
    pub now: Time,
}

/// The Group Replication part of a plan: the restore's next step, the gate it sets, and the
/// decision taken with that gate.
#[derive(Clone, Debug)]
pub struct TopologyPlan {
    /// What the members said, with the restore gate of this plan.
    pub observed: Observed,
    pub restore: restore_plan::Plan,
    pub decision: Decision,
    /// The action history to store: pruned, plus this decision's record (an attempt counts
    /// whether or not it succeeds).
    pub history: Vec<ActionRecord>,
}

impl TopologyPlan {
    /// Puts what the topology and the restore report into the status.
    pub fn fill_status(&self, status: &mut StatusInput) {
        status.topology = Some(topology_step::topology_view(&self.decision, &self.history));
        status.restore = self.restore.status.clone();
    }

    /// The StatefulSet's replicas this decision asks for.
    pub fn replicas(&self) -> i32 {
        self.decision.statefulset_replicas.max(1) as i32
    }
}

/// The restore's next step from what the members said, then the decision with the gate it sets.
/// Without a restore observation (or without `spec.restoreFrom`) the gate is open.
pub fn topology(
    mut observed: Observed,
    restore: Option<&RestoreObservation>,
    decide: &dyn Fn(&Observed) -> Decision,
) -> TopologyPlan {
    let restore = match restore {
        Some(r) => restore_step_plan(r, &observed),
        None => restore_plan::plan_nothing(),
    };
    observed.input.restore = restore.gate.clone();
    let decision = decide(&observed);
    let history = updated_history(&observed, decision.record.clone());
    TopologyPlan {
        observed,
        restore,
        decision,
        history,
    }
}

fn restore_step_plan(r: &RestoreObservation, observed: &Observed) -> restore_plan::Plan {
    let old = r.status.and_then(|s| s.restore.as_ref());
    let names = Names::new(r.cluster, "");
    restore_plan::plan(&RestoreInput {
        requested: r.requested,
        location: r.location,
        old,
        job_name: &job::restore_job_name(r.cluster),
        job: r.job.as_ref(),
        job_created: r.job_created.as_ref(),
        first_member: &names.pod(0),
        first_member_ready: restore_plan::first_member_ready(observed, old),
        group_started: restore_plan::nothing_to_restore(r.status, observed),
        cluster: r.cluster,
        now: &r.now,
    })
}

/// What the topology asks of Kubernetes besides the objects.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KubernetesChanges {
    /// Role labels to set (`None` removes it), in the order they must be written.
    pub(crate) labels: Vec<(String, Option<&'static str>)>,
    /// Role labels to set once the operation, a switchover, has succeeded.
    pub(crate) labels_after_switchover: Vec<(String, Option<&'static str>)>,
    /// The pod a rolling update replaces now.
    pub(crate) replace_pod: Option<String>,
    /// One-shot annotations of the cluster whose order was carried out.
    pub(crate) clear_annotations: Vec<&'static str>,
}

/// Everything one reconcile does, computed before it does any of it.
#[derive(Debug)]
pub(crate) struct Plan {
    /// Events about the spec.
    pub(crate) spec_events: Vec<(Reason, String)>,
    /// The restore and the one operation; `None` while the spec is invalid or before every
    /// credentials Secret exists.
    pub(crate) topology: Option<TopologyPlan>,
    /// The restore Job to create, and where it restores from (for the log).
    pub(crate) restore_job: Option<(Job, String)>,
    /// The objects to apply and the Secrets to create; `None` while the spec is invalid.
    pub(crate) desired: Option<Desired>,
    pub(crate) kubernetes: KubernetesChanges,
    /// The status, as far as it is known before anything is written.
    pub(crate) status: StatusInput,
    /// When to look again (before the backup schedules ask for earlier).
    pub(crate) requeue: Duration,
    /// The primary and what the InnoDB Cluster metadata should say, once the operation ran.
    pub(crate) metadata: Option<(Endpoint, MetadataDesired)>,
}

/// The plan of one reconcile. `decide` is the topology's decision function; `rng` makes the
/// passwords of Secrets that do not exist yet.
pub(crate) fn plan(
    obs: &Observations,
    config: &Config,
    decide: &dyn Fn(&Observed) -> Decision,
    rng: &mut impl Rng,
) -> Plan {
    let mut status = status_input(obs);
    let valid = match &obs.valid {
        Ok(valid) => valid,
        Err(invalid) => return refused(status, invalid),
    };
    status.warnings = valid.warnings.clone();
    let tls = certificate_writes(obs, valid, &mut status.warnings, rng);
    let spec_events = status
        .warnings
        .iter()
        .map(|w| (Reason::SpecWarning(w.reason()), w.to_string()))
        .collect();
    let topology = obs.members.as_ref().map(|m| {
        let restore = restore_observation(obs);
        topology(m.observed.clone(), Some(&restore), decide)
    });
    let inputs = BuildInputs {
        replicas: topology
            .as_ref()
            .map_or(valid.instances, TopologyPlan::replicas),
        // A certificate written now is the one the pods mount next.
        member_certificate_end: tls
            .member_certificate_end()
            .or(obs.deref.member_certificate_end),
        operator_pods: config.operator_pods.as_ref(),
    };
    let mut requeue = CONVERGING;
    if let Some(t) = &topology {
        t.fill_status(&mut status);
        if let Some(e) = tls_reload::expiring(&t.observed, obs.now) {
            status.warnings.push(expiry_warning(&e, valid, obs.now));
        }
        requeue = requeue_after(t);
    }
    Plan {
        spec_events,
        restore_job: topology
            .as_ref()
            .and_then(|t| restore_job(obs, valid, config, &t.restore)),
        desired: Some(Desired {
            tls,
            ..build::build(valid, inputs, &obs.deref.existing_accounts, rng)
        }),
        kubernetes: topology
            .as_ref()
            .map(|t| kubernetes_changes(obs, &t.decision))
            .unwrap_or_default(),
        metadata: topology.as_ref().and_then(|t| {
            super::metadata_step::desired(
                &obs.names,
                &valid.domain,
                &t.observed,
                &t.decision.operation,
            )
        }),
        topology,
        status,
        requeue,
    }
}

/// The status of `obs` before validation: what the spec asks and what the workloads show.
fn status_input(obs: &Observations) -> StatusInput {
    let cluster = &obs.cluster;
    StatusInput {
        generation: cluster.metadata.generation,
        group_name: obs.deref.group_name.to_string(),
        desired_instances: cluster.spec.instances,
        router_desired: cluster.spec.router.instances,
        pods: obs.workloads.pod_views(&obs.names.cluster),
        statefulset_rolled_out: obs.workloads.rolled_out(),
        router_ready: obs.workloads.router_ready,
        ..Default::default()
    }
}

/// The plan of an invalid spec: its Event and the error in the status, nothing built or run.
fn refused(mut status: StatusInput, invalid: &ValidationError) -> Plan {
    status.error = Some((invalid.reason().to_string(), invalid.to_string()));
    Plan {
        spec_events: vec![(Reason::InvalidSpec(invalid.reason()), invalid.to_string())],
        topology: None,
        restore_job: None,
        desired: None,
        kubernetes: KubernetesChanges::default(),
        status,
        requeue: CONVERGING,
        metadata: None,
    }
}

/// The operator CA's Secrets to write now; a certificate still pending at cert-manager, or one
/// the operator cannot make, is a warning.
fn certificate_writes(
    obs: &Observations,
    valid: &ValidCluster,
    warnings: &mut Vec<SpecWarning>,
    rng: &mut impl Rng,
) -> TlsWrites {
    if let Some(pending) = &obs.deref.certificate_pending {
        warnings.push(SpecWarning::CertificatePending(pending.clone()));
    }
    tls_secrets::tls_writes(valid, &obs.deref.tls, obs.now, rng).unwrap_or_else(|e| {
        warnings.push(SpecWarning::Certificates(e.to_string()));
        TlsWrites::default()
    })
}

/// When to look again after `t`: the decision's, and no sooner than the restore's poll while
/// a member loads a backup (a restore takes minutes to hours).
fn requeue_after(t: &TopologyPlan) -> Duration {
    let restore_poll = (t.restore.gate != RestoreGate::Open).then_some(RESTORE_POLL);
    CONVERGING
        .min(t.decision.requeue)
        .max(restore_poll.unwrap_or_default())
}

/// What the status says of a certificate in use that ends soon or has ended.
fn expiry_warning(e: &Expiring, valid: &ValidCluster, now: jiff::Timestamp) -> SpecWarning {
    let secret = valid.member_tls_secret();
    let what = match e.holder {
        Holder::Secret => format!("the certificate in Secret {secret}"),
        Holder::Member(o) => format!(
            "the certificate member {} serves",
            valid.names.pod(o as i32)
        ),
    };
    let end = e.end.strftime("%Y-%m-%dT%H:%M:%SZ");
    let renew = match (&valid.tls, e.holder) {
        (_, Holder::Member(_)) => format!(
            "the operator reloads the members' TLS when Secret {secret} holds a newer one: renew it there"
        ),
        (TlsSource::OperatorCa, Holder::Secret) => format!(
            "the operator renews its own at two thirds of its life: check its Events for CertificateError, or delete Secret {secret} to have it issued again"
        ),
        (TlsSource::CertManager(_), Holder::Secret) => format!(
            "cert-manager renews it: kubectl describe certificate {}",
            valid.names.member_certificate()
        ),
        (TlsSource::Secret(_), Holder::Secret) => {
            format!("renew the certificate in your Secret {secret}")
        }
    };
    if e.ended(now) {
        SpecWarning::CertificateExpired(format!(
            "{what} ended at {end}: new connections to the members with it fail; {renew}"
        ))
    } else {
        SpecWarning::CertificateExpiring(format!("{what} ends at {end}; {renew}"))
    }
}

/// The restore as observed in this reconcile.
fn restore_observation(obs: &Observations) -> RestoreObservation<'_> {
    RestoreObservation {
        cluster: &obs.names.cluster,
        requested: obs.cluster.spec.restore_from.as_ref(),
        location: obs.deref.restore.as_ref(),
        status: obs.cluster.status.as_ref(),
        job: obs.restore_job.as_ref().map(|j| j.view.clone()),
        job_created: obs.restore_job.as_ref().and_then(|j| j.created.clone()),
        now: Time(obs.now),
    }
}

/// The restore Job, when the restore plan asks for it and the backup was found.
fn restore_job(
    obs: &Observations,
    valid: &ValidCluster,
    config: &Config,
    restore: &restore_plan::Plan,
) -> Option<(Job, String)> {
    let Some(Ok(location)) = obs.deref.restore.as_ref().filter(|_| restore.create_job) else {
        return None;
    };
    let input = job::JobInput {
        mode: job::Mode::Restore,
        image: config.image.clone(),
        cluster: obs.names.cluster.clone(),
        namespace: obs.names.namespace.clone(),
        host: obs.names.pod_fqdn(0, &config.cluster_domain),
        tls_secret: valid.member_tls_secret(),
        storage: location.storage.clone(),
        prefix: location.prefix.clone(),
    };
    Some((
        job::restore_job(&obs.cluster, &input),
        location.source.clone(),
    ))
}

/// What `decision` asks of Kubernetes, against the pods and annotations as observed.
fn kubernetes_changes(obs: &Observations, decision: &Decision) -> KubernetesChanges {
    let cluster: &MySQLCluster = &obs.cluster;
    let annotations = cluster.annotations();
    let mut clear_annotations = Vec::new();
    if decision.switchover_complete && annotations.contains_key(SWITCHOVER_ANNOTATION) {
        clear_annotations.push(SWITCHOVER_ANNOTATION);
    }
    if decision.force_quorum_consumed && annotations.contains_key(FORCE_QUORUM_ANNOTATION) {
        clear_annotations.push(FORCE_QUORUM_ANNOTATION);
    }
    KubernetesChanges {
        labels: topology_step::label_changes(
            &obs.names.cluster,
            &obs.workloads.pods,
            &decision.labels,
        ),
        labels_after_switchover: match decision.operation {
            Operation::SetPrimary { target, .. } => topology_step::labels_after_switchover(
                &obs.names.cluster,
                &obs.workloads.pods,
                &decision.labels,
                target,
            ),
            _ => Vec::new(),
        },
        replace_pod: decision
            .update_next
            .map(|ordinal| obs.names.pod(ordinal as i32)),
        clear_annotations,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use k8s_openapi::api::apps::v1::StatefulSet;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    use super::*;
    use crate::cluster::build::Object;
    use crate::cluster::gather::Members;
    use crate::cluster::testing::{cluster_from_yaml, deref};
    use crate::cluster::validate::validate;
    use crate::cluster::workloads::Workloads;
    use crate::objects::accounts::Account;
    use crate::topology::mysql::{SessionTls, SqlOps};
    use crate::topology::observe::{Member, Reach};
    use crate::topology::sql::{Accounts, Credentials};
    use crate::topology::{ClusterInput, decide};

    const META: &str = "metadata: {name: orders, namespace: db, uid: u}";

    fn config() -> Config {
        Config {
            cluster_domain: "cluster.local".into(),
            namespace: None,
            http_addr: "127.0.0.1:0".parse().unwrap(),
            image: "operator:test".into(),
            operator_pods: None,
        }
    }

    fn members(instances: u32) -> Members {
        let creds = |user: &str| Credentials {
            user: user.into(),
            password: "pw".into(),
        };
        Members {
            ops: SqlOps {
                admin: creds("a"),
                accounts: Accounts {
                    recovery: creds("r"),
                    router: creds("ro"),
                    backup: creds("b"),
                },
                observe_timeout: Duration::from_secs(1),
                operation_timeout: Duration::from_secs(1),
                tls: SessionTls::Off,
            },
            observed: Observed {
                input: ClusterInput::for_test(instances),
                members: (0..instances)
                    .map(|ordinal| Member {
                        ordinal,
                        reach: Reach::Unreachable {
                            reason: "test".into(),
                            silence: crate::topology::observe::Silence::NoAnswer,
                        },
                    })
                    .collect(),
            },
        }
    }

    fn observations(spec: &str, with_members: bool) -> Observations {
        let cluster = cluster_from_yaml(&format!("{META}\nspec: {spec}"));
        let mut d = deref();
        d.existing_accounts = Account::ALL.into_iter().collect();
        let valid = validate(&cluster, &d, None, "cluster.local");
        Observations {
            names: Names::new("orders", "db"),
            members: with_members.then(|| members(cluster.spec.instances as u32)),
            cluster,
            deref: d,
            workloads: Workloads::default(),
            valid,
            restore_job: None,
            now: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn statefulset(plan: &Plan) -> &StatefulSet {
        let desired = plan.desired.as_ref().expect("objects are built");
        desired
            .objects
            .iter()
            .find_map(|o| match o {
                Object::StatefulSet(s) => Some(s),
                _ => None,
            })
            .expect("a StatefulSet")
    }

    #[test]
    fn an_invalid_spec_plans_its_event_and_its_error_and_nothing_else() {
        let obs = observations("{instances: 12}", false);
        let plan = plan(&obs, &config(), &decide, &mut SmallRng::seed_from_u64(1));
        assert_eq!(plan.spec_events.len(), 1);
        assert!(matches!(plan.spec_events[0].0, Reason::InvalidSpec(_)));
        assert!(plan.topology.is_none() && plan.desired.is_none());
        assert!(plan.restore_job.is_none());
        assert_eq!(plan.kubernetes, KubernetesChanges::default());
        let (reason, message) = plan.status.error.expect("the status says why");
        assert_eq!(reason, "InvalidInstances");
        assert!(message.contains("spec.instances 12"), "{message}");
    }

    #[test]
    fn the_replicas_the_topology_decides_go_into_the_statefulset_and_not_into_the_spec() {
        let obs = observations("{instances: 3}", true);
        let leaving = |o: &Observed| Decision {
            statefulset_replicas: 2,
            ..decide(o)
        };
        let plan = plan(&obs, &config(), &leaving, &mut SmallRng::seed_from_u64(1));
        let replicas = statefulset(&plan).spec.as_ref().and_then(|s| s.replicas);
        assert_eq!(replicas, Some(2));
        assert_eq!(obs.valid.as_ref().unwrap().instances, 3);
        assert_eq!(plan.status.desired_instances, 3);
        // Before the credentials exist the topology does not run: the spec's count.
        let plan = super::plan(
            &observations("{instances: 3}", false),
            &config(),
            &leaving,
            &mut SmallRng::seed_from_u64(1),
        );
        assert!(plan.topology.is_none());
        let replicas = statefulset(&plan).spec.as_ref().and_then(|s| s.replicas);
        assert_eq!(replicas, Some(3));
    }

    #[test]
    fn the_decision_sees_the_gate_the_restore_step_set() {
        let seen = RefCell::new(Vec::new());
        let watching = |o: &Observed| {
            seen.borrow_mut().push(o.input.restore.clone());
            decide(o)
        };
        // No restore asked for: open.
        let obs = observations("{instances: 1}", true);
        let planned = plan(&obs, &config(), &watching, &mut SmallRng::seed_from_u64(1));
        assert_eq!(seen.borrow().last(), Some(&RestoreGate::Open));
        assert!(planned.restore_job.is_none());
        // A restore whose first member is not up: the decision waits for it, no Job yet.
        let obs = observations(
            "{instances: 1, restoreFrom: {s3: {storage: {bucket: b}, path: p}}}",
            true,
        );
        let planned = plan(&obs, &config(), &watching, &mut SmallRng::seed_from_u64(1));
        let gate = seen.borrow().last().cloned().expect("decided");
        assert!(matches!(gate, RestoreGate::Waiting { .. }), "{gate:?}");
        assert_ne!(gate, RestoreGate::not_planned());
        assert_eq!(planned.topology.expect("ran").observed.input.restore, gate);
        assert_eq!(
            planned.status.restore.map(|r| r.phase.is_some()),
            Some(true)
        );
    }

    #[test]
    fn what_the_decision_asks_of_kubernetes_is_planned_against_the_pods() {
        let mut obs = observations("{instances: 2}", true);
        obs.cluster
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(SWITCHOVER_ANNOTATION.into(), "1".into());
        obs.workloads.pods = vec![
            serde_yaml::from_str("metadata: {name: orders-0}").unwrap(),
            serde_yaml::from_str("metadata: {name: orders-1}").unwrap(),
        ];
        let done = |o: &Observed| Decision {
            switchover_complete: true,
            update_next: Some(1),
            labels: [(0, Some(crate::topology::Role::Primary))].into(),
            ..decide(o)
        };
        let plan = plan(&obs, &config(), &done, &mut SmallRng::seed_from_u64(1));
        assert_eq!(
            plan.kubernetes,
            KubernetesChanges {
                labels: vec![("orders-0".into(), Some("primary"))],
                labels_after_switchover: Vec::new(),
                replace_pod: Some("orders-1".into()),
                clear_annotations: vec![SWITCHOVER_ANNOTATION],
            }
        );
    }

    #[test]
    fn an_expiring_certificate_is_named_with_what_renews_it() {
        let now: jiff::Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        let c = crate::cluster::testing::valid_cluster("spec: {tls: {issuerRef: {name: ca}}}");
        let soon = Expiring {
            holder: Holder::Secret,
            end: "2026-12-09T12:00:00Z".parse().unwrap(),
        };
        let w = expiry_warning(&soon, &c, now);
        assert_eq!(w.reason(), "CertificateExpiring");
        assert!(!w.degrades());
        assert_eq!(
            w.to_string(),
            "the certificate in Secret orders-member-tls ends at 2026-12-09T12:00:00Z; cert-manager renews it: kubectl describe certificate orders-member"
        );
        let ended = Expiring {
            holder: Holder::Member(2),
            end: "2026-12-06T00:00:00Z".parse().unwrap(),
        };
        let w = expiry_warning(&ended, &c, now);
        assert_eq!(w.reason(), "CertificateExpired");
        assert!(w.degrades());
        assert!(
            w.to_string().starts_with(
                "the certificate member orders-2 serves ended at 2026-12-06T00:00:00Z"
            ),
            "{w}"
        );
    }
}
