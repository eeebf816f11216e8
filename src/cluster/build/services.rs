//! The member Services: `C-instances` (headless, SRV records for every member), `C` (read-write,
//! the primary) and `C-ro` (ONLINE secondaries).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cluster::validate::ValidCluster;
use crate::objects::names::{Component, ROLE_LABEL, ROLE_PRIMARY, ROLE_SECONDARY};
use crate::objects::{GR_PORT, MYSQL_PORT, MYSQLX_PORT};

/// A named TCP port; the name makes DNS publish `_<name>._tcp.<service>` SRV records.
pub(crate) fn port(name: &str, port: i32, target: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(target)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

fn client_ports() -> Vec<ServicePort> {
    vec![
        port("mysql", MYSQL_PORT, MYSQL_PORT),
        port("mysqlx", MYSQLX_PORT, MYSQLX_PORT),
    ]
}

/// `C-instances`: headless, publishes not-ready members too (a RECOVERING member must be
/// resolvable by its peers), named ports `mysql`, `mysqlx`, `gr`.
pub(crate) fn instances(c: &ValidCluster) -> Service {
    let mut ports = client_ports();
    ports.push(port("gr", GR_PORT, GR_PORT));
    Service {
        metadata: c.meta(c.names.instances_service(), Component::Database),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(c.names.pod_selector(Component::Database)),
            ports: Some(ports),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn by_role(c: &ValidCluster, name: String, role: &str) -> Service {
    let mut selector: BTreeMap<String, String> = c.names.pod_selector(Component::Database);
    selector.insert(ROLE_LABEL.to_string(), role.to_string());
    Service {
        metadata: c.meta(name, Component::Database),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(selector),
            ports: Some(client_ports()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `C`: the read-write Service, selecting the pod labelled primary.
pub(crate) fn read_write(c: &ValidCluster) -> Service {
    by_role(c, c.names.rw_service(), ROLE_PRIMARY)
}

/// `C-ro`: the read-only Service, selecting ONLINE secondaries.
pub(crate) fn read_only(c: &ValidCluster) -> Service {
    by_role(c, c.names.ro_service(), ROLE_SECONDARY)
}
