//! Statement builders and row parsers, checked against what the servers answer.

use super::*;
use crate::topology::member::{MemberStatus, Role};

fn caps(version: &str, stack: bool) -> Capabilities {
    let plugins = vec![
        ("group_replication".to_string(), "ACTIVE".to_string()),
        ("clone".to_string(), "DISABLED".to_string()),
    ];
    let variables = if stack {
        vec!["group_replication_communication_stack".to_string()]
    } else {
        vec![]
    };
    Capabilities::from_probe(version, &plugins, &variables).unwrap()
}

fn creds(user: &str, password: &str) -> Credentials {
    Credentials {
        user: user.into(),
        password: password.into(),
    }
}

#[test]
fn capabilities_come_from_probes_not_vendor_strings() {
    let c80 = caps("8.0.28", true);
    assert!(c80.group_replication);
    assert!(!c80.clone, "a DISABLED plugin is not available");
    assert!(!caps("8.0.26", false).communication_stack);
    assert_eq!(
        Capabilities::from_probe("8.0.20", &[], &[]),
        Err(SqlError::TooOld(ServerVersion::new(8, 0, 20)))
    );
    // MariaDB answers the probes without a group_replication plugin.
    let maria = Capabilities::from_probe("10.11.6-MariaDB-0+deb12u1", &[], &[]).unwrap();
    assert!(!maria.group_replication);
}

#[test]
fn secrets_are_quoted_and_never_shown() {
    let s = recovery_credentials(&creds("gr_recovery", "p'w\\d")).unwrap();
    assert_eq!(
        s.sql(),
        "CHANGE REPLICATION SOURCE TO SOURCE_USER = 'gr_recovery', SOURCE_PASSWORD = 'p''w\\\\d' \
         FOR CHANNEL 'group_replication_recovery'"
    );
    assert!(!s.to_string().contains("p''w"));
    assert!(!format!("{s:?}").contains("p''w"));
    assert!(s.to_string().contains("'<redacted>'"));
    assert!(!format!("{:?}", creds("u", "hunter2")).contains("hunter2"));
    assert_eq!(
        recovery_credentials(&creds("u", "a\0b")),
        Err(SqlError::BadPassword)
    );
}

fn accounts() -> Accounts {
    Accounts {
        recovery: creds("gr", "x"),
        router: creds("router", "y"),
        backup: creds("backup", "z"),
    }
}

#[test]
fn recovery_account_gets_the_stream_privilege_only_where_it_exists() {
    let accounts = accounts();
    let with = account_statements(&caps("8.4.0", true), &accounts).unwrap();
    let without = account_statements(&caps("8.0.25", false), &accounts).unwrap();
    assert_eq!(
        with[1].sql(),
        "GRANT REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN, GROUP_REPLICATION_STREAM ON *.* TO 'gr'@'%'"
    );
    assert_eq!(
        without[1].sql(),
        "GRANT REPLICATION SLAVE, CONNECTION_ADMIN, BACKUP_ADMIN ON *.* TO 'gr'@'%'"
    );
    assert_eq!(
        with[0].to_string(),
        "CREATE USER IF NOT EXISTS 'gr'@'%' IDENTIFIED BY '<redacted>'"
    );
    assert!(with.iter().all(|s| !s.sql().contains("sql_log_bin")));
}

#[test]
fn the_local_recovery_account_is_unlogged_and_like_the_replicated_one() {
    let accounts = accounts();
    let caps = caps("9.7.4", true);
    let local = local_recovery_account(&caps, &accounts.recovery).unwrap();
    let replicated = account_statements(&caps, &accounts).unwrap();
    let shown: Vec<String> = local.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "SET SESSION sql_log_bin = 0".to_string(),
            replicated[0].to_string(),
            replicated[1].to_string(),
            "SET SESSION sql_log_bin = 1".to_string(),
        ]
    );
    assert_eq!(local[1].sql(), replicated[0].sql());
    assert_eq!(
        select_account_exists("g'r"),
        "SELECT COUNT(*) FROM mysql.user WHERE User = 'g''r' AND Host = '%'"
    );
}

#[test]
fn admin_holds_what_it_grants_and_nothing_broader() {
    let grants = admin_grants("iop").join("\n");
    let accounts = account_statements(&caps("8.4.0", true), &accounts()).unwrap();
    for statement in accounts.iter().filter(|s| s.sql().starts_with("GRANT ")) {
        let privileges = statement.sql()["GRANT ".len()..]
            .split(" ON ")
            .next()
            .unwrap();
        for p in privileges.split(", ") {
            assert!(grants.contains(p), "admin cannot grant {p}: {grants}");
        }
    }
    assert!(grants.matches("WITH GRANT OPTION").count() == 3);
    let [global, dynamic, metadata] = admin_grants("iop");
    let global = format!("{global}\n{dynamic}");
    for broad in [
        "ALL", "SUPER", "INSERT", "UPDATE", "DELETE", "DROP", "CREATE,", "SHUTDOWN",
    ] {
        assert!(!global.contains(broad), "{broad} in {global}");
    }
    // Data changes and DDL only in the metadata schema, and no more than it needs.
    assert!(
        metadata.ends_with("ON mysql_innodb_cluster_metadata.* TO 'iop'@'%' WITH GRANT OPTION"),
        "{metadata}"
    );
    for broad in ["ALL", "SUPER", "ALTER", "INDEX", "ROUTINE", "*.*"] {
        assert!(!metadata.contains(broad), "{broad} in {metadata}");
    }
    // What the metadata plan grants the Router account, the admin holds.
    for p in ["INSERT", "UPDATE", "DELETE"] {
        assert!(metadata.contains(p), "{metadata}");
    }
    assert!(admin_grants("o'x")[0].contains("TO 'o''x'@'%'"), "{grants}");
}

#[test]
fn clone_and_switchover_statements() {
    let stmts = clone_statements(
        "db-0.db-instances.ns.svc.cluster.local",
        3306,
        &creds("gr", "pw"),
    )
    .unwrap();
    assert_eq!(
        stmts[0].sql(),
        "SET GLOBAL clone_valid_donor_list = 'db-0.db-instances.ns.svc.cluster.local:3306'"
    );
    assert_eq!(stmts[1].sql(), "SET GLOBAL super_read_only = OFF");
    assert_eq!(
        stmts[2].sql(),
        "CLONE INSTANCE FROM 'gr'@'db-0.db-instances.ns.svc.cluster.local':3306 IDENTIFIED BY 'pw'"
    );
    assert_eq!(stmts.len(), 3, "the clone is the last statement");
    assert!(!stmts[2].to_string().contains("'pw'"));
    let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    assert_eq!(
        set_as_primary(false, uuid, 30).sql(),
        format!("SELECT group_replication_set_as_primary('{uuid}')")
    );
    assert_eq!(
        set_as_primary(true, uuid, 30).sql(),
        format!("SELECT group_replication_set_as_primary('{uuid}', 30)")
    );
    assert!(group_supports_primary_timeout(["8.0.29", "8.4.2"]));
    assert!(!group_supports_primary_timeout(["8.4.2", "8.0.28"]));
    assert!(!group_supports_primary_timeout(["8.4.2", ""]));
    let force = force_members_statements(&["a:3306".into(), "b:3306".into()]);
    assert_eq!(
        force[0].sql(),
        "SET GLOBAL group_replication_force_members = 'a:3306,b:3306'"
    );
    assert_eq!(
        force[1].sql(),
        "SET GLOBAL group_replication_force_members = ''"
    );
}

#[test]
fn probe_queries_name_what_they_probe() {
    assert_eq!(
        select_plugins(),
        "SELECT PLUGIN_NAME, PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ('group_replication', 'clone')"
    );
    assert!(select_variables().ends_with(
        "IN ('group_replication_communication_stack', 'group_replication_member_expel_timeout', \
         'group_replication_group_name', 'offline_mode', 'group_replication_group_seeds', \
         'group_replication_ip_allowlist')"
    ));
}

#[test]
fn the_served_certificates_end_is_read_as_openssl_prints_it() {
    let rows = |v: &str| vec![("Ssl_server_not_after".to_string(), v.to_string())];
    assert_eq!(
        certificate_end(&rows("Jun  1 12:00:00 2027 GMT")),
        Some("2027-06-01T12:00:00Z".parse().unwrap())
    );
    assert_eq!(
        certificate_end(&rows("Dec 31 23:59:59 2026 GMT")),
        Some("2026-12-31T23:59:59Z".parse().unwrap())
    );
    // Without TLS the value is empty; anything else unreadable is unknown, not a panic.
    for bad in [
        "",
        "Jun 1 12:00 2027 GMT",
        "Foo  1 12:00:00 2027 GMT",
        "Feb 30 12:00:00 2027 GMT",
    ] {
        assert_eq!(certificate_end(&rows(bad)), None, "{bad:?}");
    }
    assert_eq!(certificate_end(&[]), None);
}

#[test]
fn offline_mode_is_read_from_the_probe_and_turned_off() {
    let rows = |v: Option<&str>| vec![("offline_mode".to_string(), v.map(String::from))];
    assert!(offline_mode(&rows(Some("ON"))));
    assert!(!offline_mode(&rows(Some("OFF"))));
    assert!(!offline_mode(&rows(None)));
    // MariaDB and old servers have no such variable: nothing to admit.
    assert!(!offline_mode(&[]));
    assert_eq!(admit_clients().sql(), "SET GLOBAL offline_mode = OFF");
}

#[test]
fn the_expel_timeout_is_read_from_the_probe_and_set_as_a_number() {
    let rows = |v: Option<&str>| {
        vec![
            (
                "group_replication_communication_stack".to_string(),
                Some("MYSQL".to_string()),
            ),
            (
                "group_replication_member_expel_timeout".to_string(),
                v.map(String::from),
            ),
        ]
    };
    assert_eq!(expel_timeout(&rows(Some("5"))), Some(5));
    assert_eq!(expel_timeout(&rows(Some("0"))), Some(0));
    assert_eq!(expel_timeout(&rows(Some("x"))), None);
    assert_eq!(expel_timeout(&rows(None)), None);
    assert_eq!(expel_timeout(&[]), None);
    assert_eq!(
        set_expel_timeout(0).sql(),
        "SET GLOBAL group_replication_member_expel_timeout = 0"
    );
}

#[test]
fn the_membership_settings_are_read_as_said_and_set_in_one_statement() {
    let rows = vec![
        (
            "group_replication_group_seeds".to_string(),
            Some("a:3306,b:3306".to_string()),
        ),
        ("group_replication_ip_allowlist".to_string(), None),
    ];
    assert_eq!(
        variable(&rows, "group_replication_group_seeds").as_deref(),
        Some("a:3306,b:3306")
    );
    // Known to the server but empty: said as empty, not as absent.
    assert_eq!(
        variable(&rows, "group_replication_ip_allowlist").as_deref(),
        Some("")
    );
    assert_eq!(variable(&[], "group_replication_group_seeds"), None);
    let mysql = crate::topology::membership::Settings {
        seeds: "a:3306,b:3306".into(),
        allowlist: None,
    };
    assert_eq!(
        set_membership(&mysql).sql(),
        "SET GLOBAL group_replication_group_seeds = 'a:3306,b:3306'"
    );
    let xcom = crate::topology::membership::Settings {
        seeds: "a:33061".into(),
        allowlist: Some("a".into()),
    };
    assert_eq!(
        set_membership(&xcom).sql(),
        "SET GLOBAL group_replication_group_seeds = 'a:33061', \
         group_replication_ip_allowlist = 'a'"
    );
}

#[test]
fn the_group_name_is_read_from_the_probe_in_lowercase() {
    let rows = |v: Option<&str>| {
        vec![(
            "group_replication_group_name".to_string(),
            v.map(String::from),
        )]
    };
    assert_eq!(
        group_name(&rows(Some("AAAAAAAA-0000-4000-8000-00000000000A"))).as_deref(),
        Some("aaaaaaaa-0000-4000-8000-00000000000a")
    );
    assert_eq!(group_name(&rows(Some(""))), None);
    assert_eq!(group_name(&rows(None)), None);
    assert_eq!(group_name(&[]), None);
}

#[test]
fn member_rows_parse_for_80_and_84() {
    let rows = parse_members(vec![
        (
            "AAAAAAAA-0000-0000-0000-000000000001".into(),
            "db-0.db-instances.ns.svc.cluster.local".into(),
            Some(3306),
            "ONLINE".into(),
            "PRIMARY".into(),
            "8.4.2".into(),
        ),
        (
            "aaaaaaaa-0000-0000-0000-000000000002".into(),
            "db-1.db-instances.ns.svc.cluster.local".into(),
            Some(3306),
            "UNREACHABLE".into(),
            "SECONDARY".into(),
            "8.0.36".into(),
        ),
    ])
    .unwrap();
    assert_eq!(rows[0].member_id, "aaaaaaaa-0000-0000-0000-000000000001");
    assert_eq!(rows[0].role, Some(Role::Primary));
    assert_eq!(rows[1].state, MemberStatus::Unreachable);
    // GR stopped: the server's own row, OFFLINE, no host, no role, NULL port.
    let offline = parse_members(vec![(
        "aaaaaaaa-0000-0000-0000-000000000003".into(),
        String::new(),
        None,
        "OFFLINE".into(),
        String::new(),
        String::new(),
    )])
    .unwrap();
    assert_eq!(offline[0].role, None);
    assert_eq!(offline[0].state, MemberStatus::Offline);
    assert!(matches!(
        parse_members(vec![(
            "x".into(),
            "h".into(),
            None,
            "WEIRD".into(),
            String::new(),
            String::new()
        )]),
        Err(SqlError::BadState(_))
    ));
    assert!(matches!(
        parse_members(vec![(
            "x".into(),
            "h".into(),
            None,
            "ONLINE".into(),
            "BOSS".into(),
            String::new()
        )]),
        Err(SqlError::BadRole(_))
    ));
    let row = |state: &str, error_no: Option<u32>, message: Option<&str>| {
        (state.to_string(), error_no, message.map(String::from))
    };
    assert!(clone_running(&[row("In Progress", Some(0), None)]));
    assert!(!clone_running(&[row("Completed", Some(0), None)]));
    let failed = [row("Failed", Some(3862), Some("Clone Donor Error: 2013"))];
    assert!(!clone_running(&failed));
    assert_eq!(
        clone_failure(&failed).map(|f| f.to_string()).as_deref(),
        Some("ERROR 3862: Clone Donor Error: 2013")
    );
    assert_eq!(clone_failure(&[row("Completed", Some(0), None)]), None);
    assert!(parse_bool("ON") && parse_bool("1") && !parse_bool("0") && !parse_bool("OFF"));
}
