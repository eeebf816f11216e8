//! The cluster's objects from the operator's own builder (`innodb_operator::cluster::build`), and
//! the pod source the harness runs from them, unchanged: the member pod's init container and
//! its supervisor script need no image entrypoint, so they run on the Debian root filesystem.

use std::collections::BTreeSet;

use innodb_operator::api::MySQLCluster;
use innodb_operator::cluster::build::tls_secrets::{self, FoundTls};
use innodb_operator::cluster::build::{self, Object, ValidCluster};
use innodb_operator::cluster::dereference::Dereferenced;
use innodb_operator::cluster::validate::validate;
use innodb_operator::objects::accounts::Account;
use innodb_operator::objects::tls::{CA_CERT_KEY, TLS_CERT_KEY};
use innodb_operator::topology::sql::{Accounts, Credentials};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::realmysql::pod::PodSource;

pub const NAMESPACE: &str = "db";
pub const DOMAIN: &str = "cluster.local";

/// A built cluster: its validated spec, objects and Secrets (with the generated passwords).
pub struct Built {
    pub cluster: ValidCluster,
    pub statefulset: StatefulSet,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
}

/// Builds cluster `name` with `spec` (YAML flow mapping) as the operator would.
pub fn build(name: &str, spec: &str) -> Built {
    let yaml = format!(
        "apiVersion: innodb-operator.io/v1alpha1\nkind: MySQLCluster\n\
         metadata: {{name: {name}, namespace: {NAMESPACE}, uid: 0b7c4a52-1f0e-4c57-9d55-3e8a3c1c9e01}}\n\
         spec: {spec}\n"
    );
    let c: MySQLCluster = serde_yaml::from_str(&yaml).expect("cluster YAML");
    let deref = Dereferenced {
        group_name: uuid::Uuid::new_v4(),
        existing_accounts: BTreeSet::new(),
        tls_secret_keys: None,
        certificate_pending: None,
        tls: Default::default(),
        member_certificate_end: None,
        previous_ca_trusted: false,
        restore: None,
    };
    let cluster = validate(&c, &deref, None, DOMAIN).expect("valid cluster");
    let desired = build::build(
        &cluster,
        build::BuildInputs::from_spec(&cluster),
        &BTreeSet::new(),
        &mut rand::rng(),
    );
    // The operator CA's Secrets as the first reconcile makes them (none with a user Secret).
    let tls = tls_secrets::tls_writes(
        &cluster,
        &FoundTls::default(),
        jiff::Timestamp::now(),
        &mut rand::rng(),
    )
    .expect("certificates");
    let mut statefulset = None;
    let mut config_maps = Vec::new();
    for o in desired.objects {
        match o {
            Object::StatefulSet(s) => statefulset = Some(s),
            Object::ConfigMap(c) => config_maps.push(c),
            _ => {}
        }
    }
    Built {
        cluster,
        statefulset: statefulset.expect("a member StatefulSet"),
        config_maps,
        secrets: desired
            .secrets
            .into_iter()
            .chain(tls.new_ca)
            .chain(tls.create)
            .collect(),
    }
}

impl Built {
    pub fn credentials(&self, account: Account) -> Credentials {
        let name = self.cluster.names.secret(account.suffix());
        let secret = self
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))
            .expect("secret built");
        let data = secret.data.as_ref().expect("secret data");
        let text = |k: &str| String::from_utf8(data[k].0.clone()).expect("UTF-8");
        Credentials {
            user: text("username"),
            password: text("password"),
        }
    }

    /// The CA the members' certificate is signed by (`ca.crt` of their TLS Secret), `None`
    /// when the spec names a Secret of its own this harness was not given.
    pub fn member_ca(&self) -> Option<Vec<u8>> {
        self.member_tls(CA_CERT_KEY)
    }

    /// When the members' certificate ends, read from it as the operator's dereference does.
    pub fn member_certificate_end(&self) -> Option<jiff::Timestamp> {
        innodb_operator::certs::inspect::not_after(&self.member_tls(TLS_CERT_KEY)?).ok()
    }

    /// `key` of the members' TLS Secret.
    fn member_tls(&self, key: &str) -> Option<Vec<u8>> {
        let name = self.cluster.member_tls_secret();
        let secret = self
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()))?;
        Some(secret.data.as_ref()?.get(key)?.0.clone())
    }

    pub fn accounts(&self) -> Accounts {
        Accounts {
            recovery: self.credentials(Account::Replication),
            router: self.credentials(Account::Router),
            backup: self.credentials(Account::Backup),
        }
    }

    /// `spec.instances` changed to `instances`: the ConfigMap's my.cnf says so (the only object
    /// of the pods that names the members); the same Secrets, group name and certificates.
    pub fn scale_to(&mut self, instances: u32) {
        use innodb_operator::cluster::build::mycnf::{self, MYCNF_KEY};
        self.cluster.instances = instances as i32;
        let cnf = mycnf::mycnf(&self.cluster);
        let config_map = self
            .config_maps
            .iter_mut()
            .find(|c| c.data.as_ref().is_some_and(|d| d.contains_key(MYCNF_KEY)))
            .expect("the members' ConfigMap");
        config_map
            .data
            .as_mut()
            .unwrap()
            .insert(MYCNF_KEY.into(), cnf);
    }

    /// The pod source the harness runs: the built StatefulSet's pod template as it is.
    pub fn pod_source(&self) -> PodSource {
        PodSource::from_statefulset(&self.statefulset, &self.config_maps, &self.secrets)
    }
}
