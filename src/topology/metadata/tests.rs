//! The metadata plan from typed fixtures: a new schema, a true one, members replaced, absent
//! and gone, a schema MySQL Shell wrote, and versions the operator refuses.

use std::collections::BTreeSet;

use super::*;
use crate::topology::observe::{ClusterInput, GroupMemberRow, Member, MemberState, Reach, Role};
use crate::version::ServerVersion;

const GROUP: &str = "cccccccc-cccc-cccc-cccc-cccccccccccc";

fn uuid(o: u32) -> String {
    format!("00000000-0000-0000-0000-{:012}", o + 1)
}

fn host(o: u32) -> String {
    format!("db-{o}.db-instances.ns.svc.cluster.local")
}

fn instance(o: u32) -> Instance {
    Instance {
        server_uuid: uuid(o),
        host: host(o),
        port: 3306,
        x_port: 33060,
        group_port: 3306,
    }
}

fn router() -> RouterRow {
    RouterRow {
        name: "db-router".into(),
        address: "db-router.ns.svc.cluster.local".into(),
        user: "innodb_router".into(),
    }
}

fn desired(members: &[u32]) -> Desired {
    Desired {
        cluster_name: "db".into(),
        group_name: GROUP.into(),
        members: members.iter().map(|&o| instance(o)).collect(),
        absent_hosts: BTreeSet::new(),
        router: router(),
    }
}

const V220: SchemaVersion = SchemaVersion {
    major: 2,
    minor: 2,
    patch: 0,
};

fn stored_row(id: u32, cluster: &str, o: u32) -> StoredInstance {
    let a = format!("{}:3306", host(o));
    StoredInstance {
        instance_id: id,
        cluster_id: cluster.into(),
        server_uuid: uuid(o),
        address: Some(a.clone()),
        endpoint: Some(a),
        xendpoint: Some(format!("{}:33060", host(o))),
    }
}

/// The schema as the operator leaves it for `members`.
fn true_schema(members: &[u32]) -> Stored {
    Stored {
        version: Some(V220),
        clusters: vec![StoredCluster {
            cluster_id: GROUP.into(),
            cluster_name: "db".into(),
            group_name: Some(GROUP.into()),
        }],
        instances: members
            .iter()
            .map(|&o| stored_row(o + 1, GROUP, o))
            .collect(),
        router: Some(StoredRouter {
            router_name: "db-router".into(),
            address: "db-router.ns.svc.cluster.local".into(),
            cluster_id: Some(GROUP.into()),
        }),
    }
}

fn texts(statements: &[Statement]) -> Vec<String> {
    statements.iter().map(|s| s.sql().to_string()).collect()
}

#[test]
fn a_new_group_gets_the_schema_its_row_its_members_and_the_routers_registration() {
    let plan = texts(&plan(&Stored::default(), &desired(&[0, 1, 2])).unwrap());
    let ddl = ddl::create();
    assert_eq!(&plan[..ddl.len()], ddl.as_slice());
    let rest = &plan[ddl.len()..];
    assert!(rest[0].starts_with("GRANT INSERT, UPDATE, DELETE ON mysql_innodb_cluster_metadata.routers TO 'innodb_router'@'%'"), "{rest:?}");
    assert!(
        rest[1].contains(".v2_routers TO 'innodb_router'"),
        "{rest:?}"
    );
    assert_eq!(rest[2], "START TRANSACTION");
    assert!(rest[3].starts_with("INSERT INTO mysql_innodb_cluster_metadata.clusters"));
    assert!(
        rest[3].contains(&format!("VALUES ('{GROUP}', 'db',")),
        "{}",
        rest[3]
    );
    assert!(
        rest[3].contains(&format!(
            "JSON_OBJECT('group_replication_group_name', '{GROUP}')"
        )),
        "{}",
        rest[3]
    );
    for (o, s) in rest[4..7].iter().enumerate() {
        assert!(
            s.starts_with("INSERT INTO mysql_innodb_cluster_metadata.instances"),
            "{s}"
        );
        assert!(s.contains(&format!("'{}'", uuid(o as u32))), "{s}");
        assert!(
            s.contains(&format!(
                "JSON_OBJECT('mysqlClassic', '{h}:3306', 'mysqlX', '{h}:33060', 'grLocal', '{h}:3306')",
                h = host(o as u32)
            )),
            "{s}"
        );
        assert!(s.contains("'group-member'"), "{s}");
    }
    assert!(rest[7].contains(&format!("VALUES ({OPERATOR_ROUTER_ID}, 'db-router', 'MySQL Router', 'db-router.ns.svc.cluster.local'")), "{}", rest[7]);
    assert_eq!(rest[8], "COMMIT");
    assert_eq!(rest.len(), 9);
}

#[test]
fn a_true_schema_needs_nothing() {
    assert_eq!(
        plan(&true_schema(&[0, 1, 2]), &desired(&[0, 1, 2])).unwrap(),
        vec![]
    );
}

#[test]
fn a_member_with_new_data_replaces_its_row_and_a_member_gone_loses_its_own() {
    let mut want = desired(&[0, 1]);
    want.members[1].server_uuid = "11111111-0000-0000-0000-000000000002".into();
    let plan = texts(&plan(&true_schema(&[0, 1, 2]), &want).unwrap());
    assert_eq!(
        plan,
        vec![
            "START TRANSACTION".to_string(),
            "DELETE FROM mysql_innodb_cluster_metadata.instances WHERE instance_id = 2".into(),
            "DELETE FROM mysql_innodb_cluster_metadata.instances WHERE instance_id = 3".into(),
            plan[3].clone(),
            "COMMIT".into(),
        ]
    );
    assert!(
        plan[3].contains("'11111111-0000-0000-0000-000000000002'"),
        "{}",
        plan[3]
    );
}

#[test]
fn a_member_out_of_the_group_for_now_keeps_its_row() {
    let mut want = desired(&[0, 1]);
    want.absent_hosts.insert(host(2));
    assert_eq!(plan(&true_schema(&[0, 1, 2]), &want).unwrap(), vec![]);
}

#[test]
fn a_schema_shell_wrote_keeps_its_cluster_row_and_gets_the_stable_endpoints() {
    let shell_id = "9d0e7c54-0000-4000-8000-000000000001";
    let mut stored = true_schema(&[0, 1, 2]);
    stored.clusters = vec![StoredCluster {
        cluster_id: shell_id.into(),
        cluster_name: "production".into(),
        group_name: Some(GROUP.into()),
    }];
    stored.instances = (0..3).map(|o| stored_row(10 + o, shell_id, o)).collect();
    stored.instances[0].address = Some("10.0.0.7:3306".into());
    stored.instances[0].endpoint = Some("10.0.0.7:3306".into());
    stored.router = None;
    let plan = texts(&plan(&stored, &desired(&[0, 1, 2])).unwrap());
    assert_eq!(plan.len(), 4, "{plan:#?}");
    assert!(!plan.iter().any(|s| s.contains(".clusters")), "{plan:#?}");
    assert!(plan[1].starts_with(&format!(
        "UPDATE mysql_innodb_cluster_metadata.instances SET address = '{h}:3306', instance_name = '{h}:3306'",
        h = host(0)
    )), "{}", plan[1]);
    assert!(plan[1].ends_with("WHERE instance_id = 10"), "{}", plan[1]);
    assert!(
        plan[2].contains(&format!("'{shell_id}', '{{}}')")),
        "router row in Shell's cluster: {}",
        plan[2]
    );
}

#[test]
fn a_row_of_another_group_goes_with_its_instances() {
    let mut stored = true_schema(&[0]);
    stored.clusters[0].cluster_id = "old".into();
    stored.clusters[0].group_name = Some("dddddddd-dddd-dddd-dddd-dddddddddddd".into());
    stored.instances[0].cluster_id = "old".into();
    stored.router.as_mut().unwrap().cluster_id = Some("old".into());
    let plan = texts(&plan(&stored, &desired(&[0])).unwrap());
    assert_eq!(
        plan[1],
        "DELETE FROM mysql_innodb_cluster_metadata.instances WHERE cluster_id = 'old'"
    );
    assert_eq!(
        plan[2],
        "DELETE FROM mysql_innodb_cluster_metadata.clusters WHERE cluster_id = 'old'"
    );
    assert!(plan[3].starts_with("INSERT INTO mysql_innodb_cluster_metadata.clusters"));
    assert!(plan[4].starts_with("INSERT INTO mysql_innodb_cluster_metadata.instances"));
    assert!(
        plan[5].starts_with("UPDATE mysql_innodb_cluster_metadata.routers SET"),
        "{}",
        plan[5]
    );
    assert!(
        plan[5].contains(&format!("cluster_id = '{GROUP}'")),
        "{}",
        plan[5]
    );
}

#[test]
fn duplicate_rows_of_one_member_are_cut_to_one() {
    let mut stored = true_schema(&[0]);
    stored.instances.push(stored_row(7, GROUP, 0));
    let plan = texts(&plan(&stored, &desired(&[0])).unwrap());
    assert_eq!(
        plan[1],
        "DELETE FROM mysql_innodb_cluster_metadata.instances WHERE instance_id = 7"
    );
    assert_eq!(plan.len(), 3);
}

#[test]
fn versions_other_than_2_2_or_later_2_x_are_refused_and_later_ones_kept() {
    let at = |major, minor| {
        let mut s = true_schema(&[0]);
        s.version = Some(SchemaVersion {
            major,
            minor,
            patch: 0,
        });
        plan(&s, &desired(&[0]))
    };
    assert_eq!(at(0, 0), Err(MetadataError::UpgradeRunning));
    for (major, minor) in [(1, 0), (2, 1), (3, 0)] {
        let err = at(major, minor).unwrap_err();
        assert!(err.to_string().contains("dba.upgradeMetadata()"), "{err}");
    }
    assert_eq!(at(2, 4), Ok(vec![]));
}

#[test]
fn names_are_quoted() {
    let mut want = desired(&[0]);
    want.cluster_name = "o'x".into();
    want.router.user = "r'u".into();
    let plan = texts(&plan(&Stored::default(), &want).unwrap());
    assert!(plan.iter().any(|s| s.contains("'o''x'")));
    assert!(plan.iter().any(|s| s.contains("TO 'r''u'@'%'")));
}

fn member(o: u32, primary: u32, group: &[u32]) -> Member {
    let rows = group
        .iter()
        .map(|&g| GroupMemberRow {
            member_id: uuid(g),
            host: host(g),
            port: 3306,
            state: crate::topology::member::MemberStatus::Online,
            role: Some(if g == primary {
                Role::Primary
            } else {
                Role::Secondary
            }),
            version: "9.7.4".into(),
        })
        .collect();
    Member {
        ordinal: o,
        reach: Reach::Reachable(Box::new(MemberState {
            super_read_only: o != primary,
            group_name: Some(GROUP.into()),
            ..MemberState::for_test(uuid(o), ServerVersion::new(9, 7, 4), rows)
        })),
    }
}

#[test]
fn the_desired_metadata_is_the_primarys_view_with_absent_members_named() {
    let mut input = ClusterInput {
        namespace: "ns".into(),
        group_name: GROUP.into(),
        member_certificate_end: None,
        ..ClusterInput::for_test(3)
    };
    input.stack = crate::api::cluster::CommunicationStack::XCOM;
    let observed = Observed {
        input,
        members: vec![
            member(0, 1, &[0, 1]),
            member(1, 1, &[0, 1]),
            Member {
                ordinal: 2,
                reach: Reach::NoPod,
            },
        ],
    };
    let (at, want) = Desired::from_observed(&observed, 33060, router()).unwrap();
    assert_eq!(at, 1);
    assert_eq!(want.group_name, GROUP);
    assert_eq!(want.cluster_name, "db");
    assert_eq!(want.members.len(), 2);
    assert_eq!(
        want.members[1].group_address(),
        format!("{}:33061", host(1))
    );
    assert_eq!(want.absent_hosts, BTreeSet::from([host(2)]));
}

#[test]
fn without_a_writable_primary_nothing_is_desired() {
    let input = ClusterInput {
        namespace: "ns".into(),
        ..ClusterInput::for_test(2)
    };
    let mut observed = Observed {
        input,
        members: vec![member(0, 9, &[0, 1]), member(1, 9, &[0, 1])],
    };
    assert!(Desired::from_observed(&observed, 33060, router()).is_none());
    observed.members[0] = member(0, 0, &[0]);
    if let Reach::Reachable(s) = &mut observed.members[0].reach {
        s.super_read_only = true;
    }
    assert!(Desired::from_observed(&observed, 33060, router()).is_none());
}
