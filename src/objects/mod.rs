//! What every object the operator makes shares, whichever reconcile makes it: names and labels,
//! the MySQL accounts, the ports, the pod security settings and the field manager. Both the
//! cluster's builder ([`crate::cluster::build`]) and the data-path Jobs
//! ([`crate::backup_controller::job`]) use it; it uses neither.

pub mod accounts;
pub mod names;
pub mod operator_pods;
pub(crate) mod pod_security;
pub mod tls;

/// Classic protocol port.
pub const MYSQL_PORT: i32 = 3306;
/// X protocol port.
pub(crate) const MYSQLX_PORT: i32 = 33060;
/// Group communication port of the XCOM stack.
pub(crate) const GR_PORT: i32 =
    crate::api::cluster::CommunicationStack::XCOM.local_address_port() as i32;

/// The field manager of every write the operator makes.
pub(crate) const FIELD_MANAGER: &str = "innodb-operator";
