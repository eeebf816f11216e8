//! Builder tests from YAML fixtures: each object a cluster needs, for MySQL 8.0 and 8.4.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use rand::SeedableRng;

use super::mycnf::{self, is_managed_option};
use super::{BuildInputs, Kind, Object, build, router, services, statefulset};
use crate::cluster::testing::{GROUP_NAME, valid_cluster};
use crate::objects::accounts::Account;
use crate::objects::names::{ROLE_LABEL, ROLE_PRIMARY, ROLE_SECONDARY};

fn testdata(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cluster/build/testdata")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares with a golden file; `UPDATE_GOLDEN=1 cargo test` rewrites it.
fn golden(name: &str, actual: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/cluster/build/testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    pretty_assertions::assert_eq!(
        testdata(name),
        actual,
        "golden file {name}: UPDATE_GOLDEN=1 to accept"
    );
}

fn pod_spec(c: &super::ValidCluster) -> PodSpec {
    statefulset::statefulset(c, c.instances)
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
}

fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
}

#[test]
fn mycnf_for_84_matches_golden_and_omits_removed_options() {
    let c = valid_cluster(
        "spec: {version: '8.4.7', instances: 3, mycnf: {innodb_buffer_pool_size: 1G}}",
    );
    let cnf = mycnf::mycnf(&c);
    golden("my-8.4.cnf", &cnf);
    for removed in [
        "binlog_transaction_dependency_tracking",
        "transaction_write_set_extraction",
        "master_info_repository",
        "relay_log_info_repository",
        "group_replication_ip_whitelist",
        "default_authentication_plugin",
    ] {
        assert!(
            !cnf.contains(removed),
            "8.4 removed {removed}, mysqld would not start"
        );
    }
}

#[test]
fn mycnf_for_97_matches_golden_and_has_no_option_97_refuses() {
    let c = valid_cluster("spec: {version: '9.7.4', mycnf: {max_connections: '500'}}");
    let cnf = mycnf::mycnf(&c);
    golden("my-9.7.cnf", &cnf);
    for line in cnf
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let key = line.split('=').next().unwrap();
        assert!(
            !c.series.removed(key),
            "9.7 aborts on {key}, mysqld would not start"
        );
    }
}

#[test]
fn mycnf_for_80_matches_golden() {
    let c = valid_cluster("spec: {version: '8.0.40', instances: 5, groupCommunicationStack: XCOM}");
    let cnf = mycnf::mycnf(&c);
    golden("my-8.0-xcom.cnf", &cnf);
    assert!(cnf.contains("binlog_transaction_dependency_tracking=WRITESET"));
    assert!(cnf.contains("orders-4.orders-instances.db.svc.cluster.local:33061"));
    // XCom admits the members by name, whatever network their pods are on.
    let allowlist = (0..5)
        .map(|i| format!("orders-{i}.orders-instances.db.svc.cluster.local"))
        .collect::<Vec<_>>()
        .join(",");
    assert!(
        cnf.contains(&format!(
            "\nloose_group_replication_ip_allowlist={allowlist}\n"
        )),
        "{cnf}"
    );
}

/// A scale changes the members' seeds and allowlist in the my.cnf but not the hash that rolls
/// the pods: the operator sets those on running members (`topology::membership`). A setting read
/// only at start still rolls them.
#[test]
fn a_scale_rolls_no_pod_and_a_setting_read_at_start_does() {
    let hash = |spec: &str| statefulset::config_hash(&valid_cluster(spec));
    let three = "spec: {instances: 3, groupCommunicationStack: XCOM}";
    let five = "spec: {instances: 5, groupCommunicationStack: XCOM}";
    assert_ne!(
        mycnf::mycnf(&valid_cluster(three)),
        mycnf::mycnf(&valid_cluster(five))
    );
    assert_eq!(hash(three), hash(five));
    assert_ne!(
        hash(three),
        hash(
            "spec: {instances: 3, groupCommunicationStack: XCOM, mycnf: {max_connections: '500'}}"
        )
    );
}

/// What the operator sets on running members is what a member's my.cnf says, to the byte
/// (otherwise it would set it again at every tick).
#[test]
fn the_members_settings_at_runtime_are_the_mycnfs() {
    let c = valid_cluster("spec: {instances: 3, groupCommunicationStack: XCOM}");
    let cnf = mycnf::mycnf(&c);
    let input = crate::topology::ClusterInput {
        name: c.names.cluster.clone(),
        namespace: c.names.namespace.clone(),
        cluster_domain: c.domain.clone(),
        stack: c.stack,
        ..crate::topology::ClusterInput::for_test(3)
    };
    let want = crate::topology::membership::wanted(&input);
    let value = |key: &str| {
        cnf.lines()
            .find_map(|l| l.strip_prefix(&format!("loose_group_replication_{key}=")))
            .map(str::to_string)
    };
    assert_eq!(value("group_seeds"), Some(want.seeds));
    assert_eq!(value("ip_allowlist"), want.allowlist);
}

#[test]
fn mycnf_has_the_group_replication_essentials() {
    let c = valid_cluster("spec: {}");
    let cnf = mycnf::mycnf(&c);
    for line in [
        "gtid_mode=ON",
        "enforce_gtid_consistency=ON",
        "plugin_load_add=group_replication.so",
        "plugin_load_add=mysql_clone.so",
        "loose_group_replication_start_on_boot=OFF",
        "loose_group_replication_bootstrap_group=OFF",
        "loose_group_replication_communication_stack=MYSQL",
    ] {
        assert!(cnf.lines().any(|l| l == line), "missing {line}");
    }
    assert!(cnf.contains(&format!("loose_group_replication_group_name={GROUP_NAME}")));
    let seeds = cnf
        .lines()
        .find_map(|l| l.strip_prefix("loose_group_replication_group_seeds="))
        .unwrap();
    assert_eq!(seeds.split(',').count(), 3);
    assert!(
        seeds.split(',').all(|s| s.ends_with(":3306")),
        "MYSQL stack uses the SQL port: {seeds}"
    );
    assert!(
        !cnf.contains("bootstrap_group=ON"),
        "never bootstrap from an option file"
    );
}

#[test]
fn managed_options_are_recognised_with_prefixes() {
    for k in [
        "server_id",
        "server-id",
        "loose_server_id",
        "loose-group_replication_group_seeds",
        "gtid-mode",
    ] {
        assert!(is_managed_option(k), "{k}");
    }
    for k in [
        "innodb_buffer_pool_size",
        "max_connections",
        "loose_innodb_x",
    ] {
        assert!(!is_managed_option(k), "{k}");
    }
}

#[test]
fn instances_service_publishes_srv_for_every_member() {
    let c = valid_cluster("spec: {}");
    let svc = services::instances(&c);
    assert_eq!(svc.metadata.name.as_deref(), Some("orders-instances"));
    let spec = svc.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    let ports: Vec<_> = spec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.port))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("mysql".into(), 3306),
            ("mysqlx".into(), 33060),
            ("gr".into(), 33061)
        ]
    );
}

#[test]
fn rw_and_ro_services_select_by_role() {
    let c = valid_cluster("spec: {}");
    let rw = services::read_write(&c);
    let ro = services::read_only(&c);
    assert_eq!(rw.metadata.name.as_deref(), Some("orders"));
    assert_eq!(ro.metadata.name.as_deref(), Some("orders-ro"));
    assert_eq!(rw.spec.unwrap().selector.unwrap()[ROLE_LABEL], ROLE_PRIMARY);
    assert_eq!(
        ro.spec.unwrap().selector.unwrap()[ROLE_LABEL],
        ROLE_SECONDARY
    );
}

#[test]
fn statefulset_is_restricted_and_spreads_members() {
    let c = valid_cluster(
        "spec: {instances: 5, storage: {size: 50Gi, storageClassName: fast}, podTemplate: {priorityClassName: db, tolerations: [{key: dedicated, operator: Exists}]}}",
    );
    let sts = statefulset::statefulset(&c, c.instances);
    let spec = sts.spec.clone().unwrap();
    assert_eq!(spec.replicas, Some(5));
    assert_eq!(spec.service_name.as_deref(), Some("orders-instances"));
    let claim = &spec.volume_claim_templates.unwrap()[0];
    let claim_spec = claim.spec.as_ref().unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        claim_spec
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0,
        "50Gi"
    );
    let pod = spec.template.spec.unwrap();
    let psc = pod.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    for c in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
    }
    let anti = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    let term = &anti
        .preferred_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
    assert_eq!(pod.priority_class_name.as_deref(), Some("db"));
    assert_eq!(pod.tolerations.unwrap().len(), 1);
}

#[test]
fn probes_tolerate_recovery() {
    let c = valid_cluster("spec: {}");
    let spec = pod_spec(&c);
    let mysql = container(&spec, "mysql");
    let startup = mysql.startup_probe.as_ref().unwrap();
    // A member may spend a long time in crash recovery or receiving a clone.
    assert!(startup.period_seconds.unwrap() * startup.failure_threshold.unwrap() >= 3600);
    let liveness = mysql.liveness_probe.as_ref().unwrap();
    let cmd = liveness.exec.as_ref().unwrap().command.as_ref().unwrap();
    assert_eq!(cmd[0], "mysqladmin");
    assert!(
        cmd.contains(&"ping".to_string()),
        "liveness must only ask whether mysqld runs"
    );
    assert!(
        !cmd.iter().any(|a| a.contains("member_state")),
        "liveness must not depend on the GR state"
    );
}

#[test]
fn secrets_are_referenced_never_inlined() {
    let c = valid_cluster("spec: {}");
    let spec = pod_spec(&c);
    assert!(
        container(&spec, "mysql").env.is_none(),
        "the server's container sees no password"
    );
    let init = container(&spec, "init-member");
    let env = init.env.as_ref().unwrap();
    let (pod_name, secrets) = env.split_first().unwrap();
    assert_eq!(pod_name.name, "POD_NAME");
    let field = pod_name.value_from.as_ref().unwrap().field_ref.as_ref();
    assert_eq!(field.unwrap().field_path, "metadata.name");
    let refs: Vec<(&str, &str)> = secrets
        .iter()
        .map(|e| {
            assert!(e.value.is_none(), "{} must come from a Secret", e.name);
            let r = e.value_from.as_ref().unwrap().secret_key_ref.as_ref();
            (e.name.as_str(), r.unwrap().name.as_str())
        })
        .collect();
    assert_eq!(
        refs,
        vec![
            ("INNODB_ROOT_PASSWORD", "orders-root"),
            ("INNODB_ADMIN_PASSWORD", "orders-admin")
        ]
    );
}

#[test]
fn members_run_the_operators_scripts_not_an_image_entrypoint() {
    let c = valid_cluster("spec: {}");
    let spec = pod_spec(&c);
    let command = |name: &str| container(&spec, name).command.clone().unwrap().join(" ");
    assert_eq!(
        command("init-member"),
        "sh /etc/innodb-operator/init-member.sh"
    );
    assert_eq!(command("mysql"), "sh /etc/innodb-operator/run-mysqld.sh");
    assert!(container(&spec, "mysql").args.is_none());
    let pre_stop = container(&spec, "mysql")
        .lifecycle
        .clone()
        .and_then(|l| l.pre_stop)
        .and_then(|h| h.exec)
        .and_then(|e| e.command)
        .map(|c| c.join(" "));
    assert_eq!(
        pre_stop.as_deref(),
        Some("sh /etc/innodb-operator/pre-stop.sh")
    );
    let data = |name: &str| {
        container(&spec, name)
            .volume_mounts
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.name == "data")
            .map(|m| (m.mount_path, m.read_only))
    };
    assert_eq!(data("init-member"), Some(("/var/lib/mysql".into(), None)));
    assert_eq!(data("mysql"), Some(("/var/lib/mysql".into(), None)));
    let cm = mycnf::config_map(&c);
    let keys: Vec<&String> = cm.data.as_ref().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["init-member.sh", "my.cnf", "pre-stop.sh", "run-mysqld.sh"]
    );
}

#[test]
fn the_statefulset_records_the_version_its_members_run() {
    let c = valid_cluster("spec: {version: '8.4.7'}");
    let sts = statefulset::statefulset(&c, c.instances);
    let deployed = statefulset::deployed(&sts).unwrap();
    assert_eq!(deployed.version.to_string(), "8.4.7");
    assert_eq!(deployed.image, "mysql:8.4.7");
    let mut unannotated = sts;
    unannotated.metadata.annotations = None;
    assert_eq!(statefulset::deployed(&unannotated), None);
}

/// The Secret the members' `tls` volume mounts.
fn tls_volume_secret(spec: &PodSpec) -> Option<&str> {
    spec.volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == "tls")?
        .secret
        .as_ref()?
        .secret_name
        .as_deref()
}

#[test]
fn tls_secret_is_mounted_and_configured() {
    let c = valid_cluster("spec: {tls: {secretName: orders-tls}}");
    let spec = pod_spec(&c);
    assert_eq!(tls_volume_secret(&spec), Some("orders-tls"));
    assert!(mycnf::mycnf(&c).contains("ssl_cert=/etc/mysql/tls/tls.crt"));
}

#[test]
fn every_member_path_uses_the_cluster_certificates() {
    let opted_out = mycnf::mycnf(&valid_cluster("spec: {tls: {allowCleartextClients: true}}"));
    assert!(
        opted_out
            .lines()
            .any(|l| l == "require_secure_transport=OFF")
    );
    let c = valid_cluster("spec: {}");
    let spec = pod_spec(&c);
    assert_eq!(
        tls_volume_secret(&spec),
        Some("orders-tls"),
        "the operator CA's member certificate by default"
    );
    let cnf = mycnf::mycnf(&c);
    for expected in [
        "ssl_ca=/etc/mysql/tls/ca.crt",
        "ssl_cert=/etc/mysql/tls/tls.crt",
        "ssl_key=/etc/mysql/tls/tls.key",
        "require_secure_transport=ON",
        "loose_clone_ssl_ca=/etc/mysql/tls/ca.crt",
        "loose_group_replication_ssl_mode=VERIFY_IDENTITY",
        "loose_group_replication_recovery_use_ssl=ON",
        "loose_group_replication_recovery_ssl_verify_server_cert=ON",
        "loose_group_replication_recovery_ssl_ca=/etc/mysql/tls/ca.crt",
        "loose_group_replication_recovery_ssl_cert=/etc/mysql/tls/tls.crt",
    ] {
        assert!(cnf.lines().any(|l| l == expected), "{expected} in\n{cnf}");
    }
    for managed in [
        "require_secure_transport",
        "clone_ssl_key",
        "loose_clone_ssl_ca",
    ] {
        assert!(mycnf::is_managed_option(managed), "{managed}");
    }
}

#[test]
fn config_changes_roll_the_members() {
    let a = valid_cluster("spec: {}");
    let b = valid_cluster("spec: {mycnf: {max_connections: '900'}}");
    let hash = |c| {
        statefulset::statefulset(c, c.instances)
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[statefulset::CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_ne!(hash(&a), hash(&b));
    assert_eq!(hash(&a), hash(&valid_cluster("spec: {}")));
}

#[test]
fn pdb_allows_one_member_down() {
    let c = valid_cluster("spec: {}");
    let pdb = statefulset::pdb(&c).spec.unwrap();
    assert_eq!(
        pdb.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
}

#[test]
fn router_routes_through_the_role_services() {
    let c = valid_cluster("spec: {router: {instances: 3, mode: static}}");
    let conf = super::router_conf::router_conf(&c);
    golden("mysqlrouter.conf", &conf);
    let d = router::deployment(&c, None).spec.unwrap();
    assert_eq!(d.replicas, Some(3));
    let headless = router::headless_service(&c);
    assert_eq!(headless.metadata.name.as_deref(), Some("orders-router"));
    let hspec = headless.spec.unwrap();
    assert_eq!(hspec.cluster_ip.as_deref(), Some("None"));
    let names: Vec<_> = hspec
        .ports
        .unwrap()
        .into_iter()
        .map(|p| p.name.unwrap())
        .collect();
    assert!(names.contains(&"mysql".to_string()) && names.contains(&"mysqlx".to_string()));
    let lb = router::lb_service(&c);
    assert_eq!(lb.spec.unwrap().cluster_ip, None);
}

#[test]
fn every_object_is_labelled_and_owned() {
    let c = valid_cluster("spec: {networkPolicy: {enabled: true}}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let desired = build(&c, BuildInputs::from_spec(&c), &BTreeSet::new(), &mut rng);
    let mut seen = BTreeSet::new();
    for o in &desired.objects {
        let m = o.meta();
        let labels = m.labels.as_ref().unwrap();
        for key in [
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/component",
        ] {
            assert!(labels.contains_key(key), "{} lacks {key}", o.name());
        }
        let owner = &m.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("MySQLCluster", Some(true))
        );
        assert!(
            seen.insert((o.kind(), o.name().to_string())),
            "duplicate {}",
            o.name()
        );
    }
    let kinds: BTreeSet<Kind> = desired.objects.iter().map(Object::kind).collect();
    assert_eq!(kinds, Kind::ALL.into_iter().collect());
    assert_eq!(desired.secrets.len(), Account::ALL.len());
}

#[test]
fn router_objects_go_when_routers_are_disabled() {
    let c = valid_cluster("spec: {router: {instances: 0}}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let all = BTreeSet::from(Account::ALL);
    let desired = build(&c, BuildInputs::from_spec(&c), &all, &mut rng);
    assert!(desired.objects.iter().all(|o| !o.name().contains("router")));
    assert!(
        desired.secrets.is_empty(),
        "existing Secrets are never rebuilt"
    );
}

/// Long (88 lines) on purpose: one Router in metadata-cache mode read end to end (its
/// configuration, state file, container, probes, account, ports, and a scale of the members),
/// each check a few lines.
#[test]
fn metadata_cache_routers_follow_the_group_with_the_router_account_from_its_secret() {
    let c = valid_cluster("spec: {router: {instances: 2, mode: metadataCache}}");
    let cm = router::config_map(&c);
    let data = cm.data.unwrap();
    golden("mysqlrouter-metadata-cache.conf", &data["mysqlrouter.conf"]);
    golden("start-router.sh", &data["start-router.sh"]);
    let state: serde_json::Value = serde_json::from_str(&data["state.json"]).unwrap();
    assert_eq!(
        state["metadata-cache"]["group-replication-id"],
        c.group_name.to_string()
    );
    assert_eq!(
        state["metadata-cache"]["cluster-metadata-servers"][2],
        "mysql://orders-2.orders-instances.db.svc.cluster.local:3306"
    );
    let d = router::deployment(&c, None).spec.unwrap();
    let pod = d.template.spec.unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.command.as_ref().unwrap(),
        &["sh", "/etc/mysqlrouter/start-router.sh"]
    );
    // Router closes rw while there is no primary: the probes ask the REST API instead.
    let exec = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let p = p.as_ref().unwrap();
        assert!(p.tcp_socket.is_none());
        p.exec.as_ref().unwrap().command.clone().unwrap()
    };
    assert_eq!(
        exec(&container.readiness_probe),
        ["bash", "/etc/mysqlrouter/probe-router.sh"]
    );
    assert_eq!(
        exec(&container.liveness_probe),
        ["bash", "/etc/mysqlrouter/probe-router.sh", "live"]
    );
    let probe = &data["probe-router.sh"];
    assert!(
        probe.contains("/api/20190715/metadata/orders/status"),
        "{probe}"
    );
    assert!(
        probe.contains("$(cat /etc/mysqlrouter-account/password)"),
        "the REST password is read from the Secret's file: {probe}"
    );
    assert!(
        container.env.is_none(),
        "the password is a file, never the environment"
    );
    let secrets: Vec<_> = pod
        .volumes
        .unwrap()
        .into_iter()
        .filter_map(|v| v.secret)
        .map(|s| s.secret_name.unwrap())
        .collect();
    assert_eq!(
        secrets,
        ["orders-router", "orders-tls"],
        "the Router account's password, and the CA Router verifies members with"
    );
    let ports: Vec<i32> = container
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| p.container_port)
        .collect();
    assert_eq!(ports, [6446, 6447, 6448, 6449, 6450]);
    let lb = router::lb_service(&c).spec.unwrap().ports.unwrap();
    assert!(
        lb.iter()
            .any(|p| p.name.as_deref() == Some("mysql-rw-split"))
    );
    // Scaling the members changes the state file's seed, not the pods.
    let scaled = valid_cluster("spec: {instances: 5, router: {instances: 2, mode: metadataCache}}");
    let hash = |c: &super::ValidCluster| {
        router::deployment(c, None)
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()
    };
    assert_eq!(hash(&c), hash(&scaled));
}

#[test]
fn a_renewed_member_certificate_restarts_the_routers() {
    let c = valid_cluster("spec: {}");
    let template = |end: Option<&str>| {
        router::deployment(&c, end.map(|e| e.parse().unwrap()))
            .spec
            .unwrap()
            .template
    };
    let annotations = |end| template(end).metadata.unwrap().annotations.unwrap();
    assert!(!annotations(None).contains_key(router::CERTIFICATE_END_ANNOTATION));
    assert_eq!(
        annotations(Some("2027-06-01T12:00:00Z"))[router::CERTIFICATE_END_ANNOTATION],
        "2027-06-01T12:00:00Z"
    );
    assert_ne!(
        template(Some("2027-06-01T12:00:00Z")),
        template(Some("2027-10-01T12:00:00Z")),
        "a new certificate is a new pod template: the Deployment rolls the Routers"
    );
}

#[test]
fn static_routers_keep_their_four_ports_and_liveness() {
    let c = valid_cluster("spec: {router: {mode: static}}");
    let d = router::deployment(&c, None).spec.unwrap();
    let container = &d.template.spec.unwrap().containers[0];
    assert!(container.liveness_probe.is_some());
    assert_eq!(container.ports.as_ref().unwrap().len(), 4);
}

#[test]
fn new_clusters_route_by_the_metadata() {
    let c = valid_cluster("spec: {}");
    assert_eq!(
        c.router_mode,
        crate::api::cluster::RouterMode::MetadataCache
    );
}
