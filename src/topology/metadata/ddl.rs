//! The InnoDB Cluster metadata schema the operator creates on a new group: the part of version
//! 2.2.0 that MySQL Router reads and writes (see `METADATA.md`). Column names and types are the
//! interface Router queries; the text is this project's own.
//!
//! Every statement can run again: tables are `IF NOT EXISTS`, views `OR REPLACE`, and the
//! `schema_version` view comes last, so a schema cut short (the operator stopped half way) has
//! no version yet and is completed on the next pass.

/// The schema's name, fixed by Router.
pub const SCHEMA: &str = "mysql_innodb_cluster_metadata";

/// The version the operator writes: the newest one that needs no table Router 9.7 does not read
/// (2.3.0 adds routing guidelines, 2.4.0 router statistics).
pub const VERSION: super::SchemaVersion = super::SchemaVersion {
    major: 2,
    minor: 2,
    patch: 0,
};

const ASCII_ID: &str = "CHARACTER SET ascii COLLATE ascii_general_ci";

/// The tables, parents before children (foreign keys).
/// Long (94 lines) on purpose: six `CREATE TABLE` statements as data, one column a line.
fn tables() -> [String; 6] {
    [
        // One row per cluster; a group's row carries its group name in `attributes`.
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.clusters (\
             cluster_id CHAR(36) {ASCII_ID} NOT NULL, \
             cluster_name VARCHAR(63) NOT NULL, \
             description TEXT, \
             options JSON, \
             attributes JSON, \
             cluster_type ENUM('gr', 'ar') NOT NULL, \
             primary_mode ENUM('pm', 'mm') NOT NULL DEFAULT 'pm', \
             router_options JSON, \
             clusterset_id VARCHAR(36) {ASCII_ID} DEFAULT NULL, \
             PRIMARY KEY (cluster_id), \
             UNIQUE KEY (cluster_name)\
             ) DEFAULT CHARSET = utf8mb4"
        ),
        // One row per member: Router matches `mysql_server_uuid` with the group's member ids
        // and connects to the `addresses` it finds here.
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.instances (\
             instance_id INT UNSIGNED NOT NULL AUTO_INCREMENT, \
             cluster_id CHAR(36) {ASCII_ID} NOT NULL, \
             address VARCHAR(265) {ASCII_ID}, \
             mysql_server_uuid CHAR(36) NOT NULL, \
             instance_name VARCHAR(265) NOT NULL, \
             addresses JSON NOT NULL, \
             attributes JSON, \
             description TEXT, \
             instance_type ENUM('group-member', 'async-member', 'read-replica') NOT NULL, \
             PRIMARY KEY (instance_id, cluster_id), \
             FOREIGN KEY (cluster_id) REFERENCES {SCHEMA}.clusters (cluster_id)\
             ) DEFAULT CHARSET = utf8mb4"
        ),
        // Routers: registered by the operator (its Deployment's row) or by `--bootstrap`;
        // Router itself updates `version`, `last_check_in` and `attributes`.
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.routers (\
             router_id INT UNSIGNED NOT NULL AUTO_INCREMENT, \
             router_name VARCHAR(265) NOT NULL, \
             product_name VARCHAR(128) NOT NULL, \
             address VARCHAR(256) {ASCII_ID} NOT NULL, \
             version VARCHAR(12) DEFAULT NULL, \
             last_check_in TIMESTAMP NULL DEFAULT NULL, \
             attributes JSON, \
             cluster_id CHAR(36) {ASCII_ID} DEFAULT NULL, \
             options JSON DEFAULT NULL, \
             clusterset_id VARCHAR(36) {ASCII_ID} DEFAULT NULL, \
             PRIMARY KEY (router_id), \
             UNIQUE KEY (address, router_name)\
             ) DEFAULT CHARSET = utf8mb4"
        ),
        // ClusterSets: the operator makes none, but Router asks whether the cluster is in one
        // (`v2_cs_members`) on every refresh and at bootstrap.
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.clustersets (\
             clusterset_id VARCHAR(36) {ASCII_ID} NOT NULL, \
             domain_name VARCHAR(63) NOT NULL, \
             options JSON, \
             attributes JSON, \
             router_options JSON, \
             topology_type ENUM('SINGLE-PRIMARY-STAR'), \
             PRIMARY KEY (clusterset_id)\
             ) DEFAULT CHARSET = utf8mb4"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.clusterset_views (\
             clusterset_id VARCHAR(36) {ASCII_ID} NOT NULL, \
             view_id BIGINT UNSIGNED NOT NULL, \
             topology_type ENUM('SINGLE-PRIMARY-TREE'), \
             view_change_reason VARCHAR(32) NOT NULL, \
             view_change_time TIMESTAMP(6) NOT NULL, \
             view_change_info JSON NOT NULL, \
             attributes JSON NOT NULL, \
             PRIMARY KEY (clusterset_id, view_id), \
             FOREIGN KEY (clusterset_id) REFERENCES {SCHEMA}.clustersets (clusterset_id)\
             ) DEFAULT CHARSET = utf8mb4"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {SCHEMA}.clusterset_members (\
             clusterset_id VARCHAR(36) {ASCII_ID} NOT NULL, \
             view_id BIGINT UNSIGNED NOT NULL, \
             cluster_id VARCHAR(36) {ASCII_ID} NOT NULL, \
             master_cluster_id VARCHAR(36) {ASCII_ID}, \
             primary_cluster BOOL NOT NULL, \
             attributes JSON NOT NULL, \
             PRIMARY KEY (clusterset_id, view_id, cluster_id), \
             FOREIGN KEY (clusterset_id, view_id) \
             REFERENCES {SCHEMA}.clusterset_views (clusterset_id, view_id)\
             ) DEFAULT CHARSET = utf8mb4"
        ),
    ]
}

/// `CREATE OR REPLACE SQL SECURITY INVOKER VIEW schema.name AS body`: a consumer reads with
/// its own privileges.
fn view(name: &str, body: &str) -> String {
    format!("CREATE OR REPLACE SQL SECURITY INVOKER VIEW {SCHEMA}.{name} AS {body}")
}

/// The server's own UUID, in a view (a view may not read `@@server_uuid`).
const THIS_SERVER_UUID: &str = "(SELECT CONVERT(variable_value USING utf8mb4) \
     COLLATE utf8mb4_general_ci FROM performance_schema.global_variables \
     WHERE variable_name = 'server_uuid')";

/// The `v2_` views Router reads (its public interface), dependencies first.
/// Long (90 lines) on purpose: nine `CREATE OR REPLACE VIEW` statements as data.
fn views() -> [String; 9] {
    [
        view(
            "v2_clusters",
            &format!(
                "SELECT cluster_type, primary_mode, cluster_id, cluster_name, router_options \
                 FROM {SCHEMA}.clusters"
            ),
        ),
        view(
            "v2_gr_clusters",
            &format!(
                "SELECT cluster_type, primary_mode, cluster_id, cluster_name, \
                 attributes->>'$.group_replication_group_name' AS group_name, attributes, \
                 options, router_options, description, clusterset_id \
                 FROM {SCHEMA}.clusters WHERE cluster_type = 'gr'"
            ),
        ),
        view(
            "v2_instances",
            &format!(
                "SELECT instance_id, cluster_id, instance_name AS label, mysql_server_uuid, \
                 address, addresses->>'$.mysqlClassic' AS endpoint, \
                 addresses->>'$.mysqlX' AS xendpoint, \
                 JSON_INSERT(attributes, '$.instance_type', instance_type) AS attributes, \
                 instance_type FROM {SCHEMA}.instances"
            ),
        ),
        view(
            "v2_this_instance",
            &format!(
                "SELECT i.cluster_id, i.instance_id, i.instance_type, c.cluster_name, \
                 c.cluster_type FROM {SCHEMA}.v2_instances i \
                 JOIN {SCHEMA}.clusters c ON i.cluster_id = c.cluster_id \
                 WHERE i.mysql_server_uuid = {THIS_SERVER_UUID}"
            ),
        ),
        view(
            "v2_routers",
            &format!(
                "SELECT router_id, cluster_id, router_name, product_name, address, version, \
                 last_check_in, attributes, options, clusterset_id FROM {SCHEMA}.routers"
            ),
        ),
        // A router's options: its cluster's, overridden by its own.
        view(
            "v2_router_options",
            &format!(
                "SELECT r.router_id, CONCAT(r.address, '::', r.router_name) AS router_label, \
                 r.cluster_id, r.clusterset_id, JSON_MERGE_PATCH(\
                 COALESCE((SELECT c.router_options FROM {SCHEMA}.clusters c \
                 WHERE c.cluster_id = r.cluster_id), '{{}}'), \
                 COALESCE(r.options, '{{}}')) AS router_options FROM {SCHEMA}.routers r"
            ),
        ),
        view(
            "v2_cs_clustersets",
            &format!(
                "SELECT v.view_id, v.topology_type AS async_topology_type, s.clusterset_id, \
                 s.domain_name, s.attributes, s.options, s.router_options \
                 FROM {SCHEMA}.clustersets s JOIN {SCHEMA}.clusterset_views v \
                 ON s.clusterset_id = v.clusterset_id \
                 WHERE v.view_id = (SELECT MAX(w.view_id) FROM {SCHEMA}.clusterset_views w \
                 WHERE w.clusterset_id = s.clusterset_id)"
            ),
        ),
        view(
            "v2_cs_members",
            &format!(
                "SELECT (SELECT MAX(w.view_id) FROM {SCHEMA}.clusterset_views w \
                 WHERE w.clusterset_id = c.clusterset_id) AS view_id, \
                 c.clusterset_id, c.cluster_id, c.cluster_name, \
                 IF(m.primary_cluster, 'PRIMARY', \
                 IF(m.primary_cluster IS NULL, NULL, 'REPLICA')) AS member_role, \
                 m.master_cluster_id, (m.view_id IS NULL) AS invalidated \
                 FROM {SCHEMA}.clusters c LEFT JOIN {SCHEMA}.clusterset_members m \
                 ON m.clusterset_id = c.clusterset_id AND m.cluster_id = c.cluster_id \
                 AND m.view_id = (SELECT MAX(n.view_id) FROM {SCHEMA}.clusterset_members n \
                 WHERE n.clusterset_id = c.clusterset_id) \
                 WHERE c.clusterset_id IS NOT NULL"
            ),
        ),
        // Last: its presence says the schema is complete.
        format!(
            "CREATE OR REPLACE SQL SECURITY INVOKER VIEW {SCHEMA}.schema_version \
             (major, minor, patch) AS SELECT {}, {}, {}",
            VERSION.major, VERSION.minor, VERSION.patch
        ),
    ]
}

/// Every statement that creates the schema, in order.
pub fn create() -> Vec<String> {
    let mut all = vec![format!(
        "CREATE DATABASE IF NOT EXISTS {SCHEMA} DEFAULT CHARACTER SET utf8mb4"
    )];
    all.extend(tables());
    all.extend(views());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_version_comes_last_and_every_statement_can_run_again() {
        let all = create();
        assert!(all.last().unwrap().contains(".schema_version"));
        assert!(all.last().unwrap().ends_with("SELECT 2, 2, 0"));
        for s in &all {
            assert!(
                s.contains("IF NOT EXISTS") || s.starts_with("CREATE OR REPLACE"),
                "{s}"
            );
            assert!(s.contains(SCHEMA), "every name is qualified: {s}");
        }
    }

    #[test]
    fn views_follow_the_tables_they_read() {
        let all = create();
        let at = |needle: &str| all.iter().position(|s| s.contains(needle)).unwrap();
        assert!(
            at("TABLE IF NOT EXISTS mysql_innodb_cluster_metadata.instances")
                < at("VIEW mysql_innodb_cluster_metadata.v2_instances")
        );
        assert!(
            at("VIEW mysql_innodb_cluster_metadata.v2_instances")
                < at("VIEW mysql_innodb_cluster_metadata.v2_this_instance")
        );
        assert!(
            at("clusterset_members (") < at("VIEW mysql_innodb_cluster_metadata.v2_cs_members")
        );
    }
}
