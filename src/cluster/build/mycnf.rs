//! The server configuration: a my.cnf shared by every member (its own settings, server_id,
//! report_host and local address, are added by the init container from its pod ordinal), and
//! the ConfigMap that carries it with the member's scripts.

use std::fmt::Write as _;

use k8s_openapi::api::core::v1::ConfigMap;

use super::member_scripts::{
    INIT_SCRIPT_KEY, PRE_STOP_SCRIPT_KEY, RUN_SCRIPT_KEY, init_script, pre_stop_script, run_script,
};
use crate::api::cluster::CommunicationStack;
use crate::cluster::validate::ValidCluster;
use crate::objects::names::Component;
use crate::objects::{MYSQL_PORT, MYSQLX_PORT};
use crate::topology::membership;

/// Key of the shared my.cnf in the ConfigMap.
pub const MYCNF_KEY: &str = "my.cnf";
/// Where the member's generated configuration is (an emptyDir the init container writes).
pub(crate) const CONF_DIR: &str = "/etc/mysql/conf.d";
/// The member's whole configuration: the shared my.cnf and its own settings. mysqld reads this
/// file only (`--defaults-file`), never the image's own configuration.
pub(crate) const MEMBER_CNF: &str = "/etc/mysql/conf.d/member.cnf";
/// Where the ConfigMap is mounted.
pub(crate) const TEMPLATE_DIR: &str = "/etc/innodb-operator";
/// Where the data volume is mounted.
pub(crate) const DATA_MOUNT: &str = "/var/lib/mysql";
/// The data directory: a directory of the volume (whose root may hold `lost+found`), which
/// exists only once initialised.
pub(crate) const DATA_DIR: &str = "/var/lib/mysql/data";
/// Where mysqld's socket and pid file are (an emptyDir).
pub(crate) const RUN_DIR: &str = "/var/run/mysqld";
/// mysqld's socket, for the probes.
pub(crate) const SOCKET: &str = "/var/run/mysqld/mysqld.sock";
/// Where the members' TLS Secret (`kubernetes.io/tls`: `tls.crt`, `tls.key`, `ca.crt`) is
/// mounted.
pub(crate) const TLS_DIR: &str = "/etc/mysql/tls";
/// Added to a pod's ordinal to make its server_id (0 is not allowed for replication).
pub(crate) const SERVER_ID_OFFSET: i32 = 1000;

/// Settings the operator owns; `spec.mycnf` may not set them.
pub(crate) const MANAGED_OPTIONS: &[&str] = &[
    "server_id",
    "server-id",
    "report_host",
    "report_port",
    "gtid_mode",
    "enforce_gtid_consistency",
    "log_bin",
    "relay_log",
    "relay-log",
    "skip_log_bin",
    "disable_log_bin",
    "binlog_format",
    "datadir",
    "socket",
    "pid_file",
    "pid-file",
    "mysqlx_socket",
    "port",
    "mysqlx_port",
    "plugin_load_add",
    "disabled_storage_engines",
    "super_read_only",
    "read_only",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "require_secure_transport",
    "clone_ssl_ca",
    "clone_ssl_cert",
    "clone_ssl_key",
];

/// Whether `spec.mycnf` may set `key` (after stripping a `loose_`/`loose-` prefix).
pub(crate) fn is_managed_option(key: &str) -> bool {
    let k = key
        .strip_prefix("loose_")
        .or_else(|| key.strip_prefix("loose-"))
        .unwrap_or(key);
    let normalized = k.replace('-', "_");
    MANAGED_OPTIONS
        .iter()
        .any(|m| m.replace('-', "_") == normalized)
        || normalized.starts_with("group_replication_")
}

/// `group_replication_member_expel_timeout`, the server's default written out: how long a
/// suspected member may stay UNREACHABLE before it is expelled. The topology sets it to 0 on the
/// survivors while a member is provably gone, then back to this (`topology::expel`).
pub(crate) const EXPEL_TIMEOUT_S: u32 = 5;

/// The shared my.cnf for every member of `c`: [`read_at_start`], then the group's members.
pub fn mycnf(c: &ValidCluster) -> String {
    let mut s = read_at_start(c);
    members(&mut s, c);
    s
}

/// The my.cnf's settings that a running member takes only when mysqld starts: the server, Group
/// Replication, then `spec.mycnf`. A change of these rolls the pods (the configuration hash);
/// the group's members are not among them.
pub(crate) fn read_at_start(c: &ValidCluster) -> String {
    let mut s = String::new();
    server(&mut s, c);
    group_replication(&mut s, c);
    if !c.mycnf_extra.is_empty() {
        s.push_str("\n# From spec.mycnf.\n");
        for (k, v) in &c.mycnf_extra {
            line(&mut s, k, v);
        }
    }
    s
}

/// The group's members, for a member's next start: the seeds and, on XCOM, the allowlist. The
/// operator sets the same on running members when `spec.instances` changes
/// (`topology::membership`), so a scale restarts nobody.
fn members(s: &mut String, c: &ValidCluster) {
    let hosts: Vec<String> = (0..c.instances)
        .map(|i| c.names.pod_fqdn(i, &c.domain))
        .collect();
    let settings = membership::Settings::of(&hosts, c.stack);
    s.push_str(
        "\n# The group's members (set on running members by the operator when spec.instances changes).\n",
    );
    gr(s, "group_seeds", settings.seeds);
    if let Some(allowlist) = settings.allowlist {
        // XCOM connects on its own port and admits only the allowlist (the MYSQL stack
        // authenticates members as SQL users instead): the members' host names, as the manual
        // advises (every seed). Not AUTOMATIC: that admits only RFC 1918 subnets the member has
        // an interface on, which refused every address of a pod network outside them, the
        // member's own included (found on real MySQL 9.7 on 198.18.0.0/15: "Connection attempt
        // from IP address ::ffff:198.18.0.2 refused. Address is not in the IP allowlist", no
        // group), and the pods of other nodes where each node has its own pod subnet.
        gr(s, "ip_allowlist", allowlist);
    }
}

/// The `[mysqld]` settings of the server itself.
fn server(s: &mut String, c: &ValidCluster) {
    s.push_str("# Generated by innodb-operator from the MySQLCluster spec. Do not edit: changes are overwritten.\n");
    s.push_str("# The init container adds this member's own settings (server_id, report_host, local address).\n");
    s.push_str("[mysqld]\n");
    line(s, "datadir", DATA_DIR);
    line(s, "socket", SOCKET);
    line(s, "pid_file", format!("{RUN_DIR}/mysqld.pid"));
    line(s, "mysqlx_socket", format!("{RUN_DIR}/mysqlx.sock"));
    // Server-side file import and export are off: the restore loads with LOAD DATA LOCAL.
    line(s, "secure_file_priv", "NULL");
    line(s, "port", MYSQL_PORT);
    line(s, "mysqlx_port", MYSQLX_PORT);
    line(s, "report_port", MYSQL_PORT);
    line(s, "gtid_mode", "ON");
    line(s, "enforce_gtid_consistency", "ON");
    line(s, "log_bin", "binlog");
    // Named apart from the host name (9.7 warns about the default, and a pod's host name is not
    // what names its data).
    line(s, "relay_log", "relay-bin");
    // Accounts are '%' and 'localhost': no reverse DNS lookup for every operator connection.
    line(s, "skip_name_resolve", "ON");
    line(s, "skip_replica_start", "ON");
    line(
        s,
        "disabled_storage_engines",
        "MyISAM,BLACKHOLE,FEDERATED,ARCHIVE,MEMORY",
    );
    line(s, "plugin_load_add", "group_replication.so");
    line(s, "plugin_load_add", "mysql_clone.so");
    if c.series.needs_writeset_option() {
        line(s, "binlog_transaction_dependency_tracking", "WRITESET");
    }
    tls(s, c.require_secure_transport);
}

/// The member's certificate for every path: clients (which must use TLS unless the spec allows
/// cleartext clients), and clone. The Group Replication side is in [`group_replication`].
fn tls(s: &mut String, require_secure_transport: bool) {
    s.push_str("\n# TLS: every path uses the cluster's certificates (see spec.tls).\n");
    line(s, "ssl_ca", format!("{TLS_DIR}/ca.crt"));
    line(s, "ssl_cert", format!("{TLS_DIR}/tls.crt"));
    line(s, "ssl_key", format!("{TLS_DIR}/tls.key"));
    let on_off = |b| if b { "ON" } else { "OFF" };
    line(
        s,
        "require_secure_transport",
        on_off(require_secure_transport),
    );
    // A clone's donor connection (`loose_`: the clone plugin is loaded by plugin_load_add).
    line(s, "loose_clone_ssl_ca", format!("{TLS_DIR}/ca.crt"));
    line(s, "loose_clone_ssl_cert", format!("{TLS_DIR}/tls.crt"));
    line(s, "loose_clone_ssl_key", format!("{TLS_DIR}/tls.key"));
}

/// The Group Replication settings, but for the group's members ([`members`]).
fn group_replication(s: &mut String, c: &ValidCluster) {
    let stack = c.stack;
    let stack_name = match stack {
        CommunicationStack::MYSQL => "MYSQL",
        CommunicationStack::XCOM => "XCOM",
    };
    s.push_str("\n# Group Replication. `loose_` lets mysqld start before the plugin is loaded.\n");
    gr(s, "group_name", c.group_name.to_string());
    gr(s, "start_on_boot", "OFF");
    gr(s, "bootstrap_group", "OFF");
    gr(s, "single_primary_mode", "ON");
    gr(s, "communication_stack", stack_name);
    gr(s, "consistency", "BEFORE_ON_PRIMARY_FAILOVER");
    gr(s, "exit_state_action", "OFFLINE_MODE");
    gr(s, "member_expel_timeout", EXPEL_TIMEOUT_S);
    // Group communication (XCom over its port, or the MYSQL stack) and distributed recovery
    // verify that the peer's certificate is the cluster CA's and names the host connected to
    // (every member certificate names `*.C-instances.NS.svc.DOMAIN`).
    gr(s, "ssl_mode", "VERIFY_IDENTITY");
    gr(s, "tls_source", "MYSQL_MAIN");
    gr(s, "recovery_use_ssl", "ON");
    gr(s, "recovery_ssl_verify_server_cert", "ON");
    gr(s, "recovery_ssl_ca", format!("{TLS_DIR}/ca.crt"));
    gr(s, "recovery_ssl_cert", format!("{TLS_DIR}/tls.crt"));
    gr(s, "recovery_ssl_key", format!("{TLS_DIR}/tls.key"));
}

fn line(s: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(s, "{key}={value}");
}

fn gr(s: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(s, "loose_group_replication_{key}={value}");
}

/// The ConfigMap holding [`mycnf`] and the member's scripts.
pub fn config_map(c: &ValidCluster) -> ConfigMap {
    ConfigMap {
        metadata: c.meta(c.names.config_map(), Component::Database),
        data: Some(
            [
                (MYCNF_KEY.to_string(), mycnf(c)),
                (INIT_SCRIPT_KEY.to_string(), init_script(c)),
                (RUN_SCRIPT_KEY.to_string(), run_script()),
                (PRE_STOP_SCRIPT_KEY.to_string(), pre_stop_script()),
            ]
            .into(),
        ),
        ..Default::default()
    }
}
