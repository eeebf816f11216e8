//! The cluster's objects from the operator's own builder (`innodb_operator::cluster::build`), and
//! the pod source the harness runs from them.
//!
//! Stand-in: the built member pod still relies on the official image's `docker-entrypoint.sh`
//! (the main container has `args: [mysqld]` and no `command`), which a Debian root filesystem does
//! not have. Until the pod spec stops relying on it (issue 11, item 2), [`runnable`] adds what the
//! entrypoint did: an `initialize` init container (`mysqld --initialize-insecure` with an init
//! file that creates the operator's account with the operator's own statements) and a small
//! supervisor as the main command (restarts mysqld on exit code 16, as clone needs). A spec whose
//! main container has its own `command` is run unchanged.

use std::collections::{BTreeMap, BTreeSet};

use innodb_operator::api::MySQLCluster;
use innodb_operator::cluster::build::secrets::Account;
use innodb_operator::cluster::build::{self, Object, ValidCluster};
use innodb_operator::cluster::dereference::Dereferenced;
use innodb_operator::cluster::validate::validate;
use innodb_operator::topology::sql::{self, Accounts, Credentials};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Secret, SecretVolumeSource, Volume, VolumeMount,
};

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
        restore: None,
    };
    let cluster = validate(&c, &deref, DOMAIN).expect("valid cluster");
    let desired = build::build(&cluster, &BTreeSet::new(), &mut rand::rng());
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
        secrets: desired.secrets,
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

    pub fn accounts(&self) -> Accounts {
        Accounts {
            recovery: self.credentials(Account::Replication),
            router: self.credentials(Account::Router),
            backup: self.credentials(Account::Backup),
        }
    }

    /// The pod source the harness runs (see the module doc for the stand-in).
    pub fn pod_source(&self) -> PodSource {
        let mut source =
            PodSource::from_statefulset(&self.statefulset, &self.config_maps, &self.secrets);
        runnable(self, &mut source);
        source
    }
}

const INIT_SQL_VOLUME: &str = "iop-init-sql";
const INIT_SQL_DIR: &str = "/etc/iop-init";

/// Restarts mysqld when it exits with 16 (the restart a clone asks for), forwarding SIGTERM.
/// Kubernetes expands `$(VAR)` in `command`/`args` and turns `$$` into `$`, so the script names
/// its own PID `$BASHPID`: `$$` would reach bash as a lone `$`.
const SUPERVISOR: &str = r#"export MYSQLD_PARENT_PID=$BASHPID
child=0
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  "$@" & child=$!
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done
  [ "$rc" -eq 16 ] || exit "$rc"
  echo "supervisor: mysqld asked for a restart (exit 16)"
done"#;

/// Initialises an empty data directory with the init file (the operator's account, no binlog).
const INITIALIZE: &str = r#"set -eu
if [ -d /var/lib/mysql/mysql ]; then echo "initialize: data directory present"; exit 0; fi
mysqld --initialize-insecure --init-file=/etc/iop-init/init.sql
echo "initialize: done""#;

/// The statements the pod's first start runs for the operator's account (SQL.md, last table).
fn init_sql(admin: &Credentials) -> String {
    let user = sql::quote(&admin.user).expect("user");
    let password = sql::quote(&admin.password).expect("password");
    let mut s = format!(
        "SET SESSION sql_log_bin = 0;\nCREATE USER IF NOT EXISTS {user}@'%' IDENTIFIED BY {password};\n"
    );
    for g in sql::admin_grants(&admin.user) {
        s.push_str(&g);
        s.push_str(";\n");
    }
    s
}

fn runnable(built: &Built, source: &mut PodSource) {
    let spec = &mut source.spec;
    let main = spec
        .containers
        .iter_mut()
        .find(|c| c.name == "mysql")
        .expect("mysql container");
    if main.command.is_some() {
        return;
    }
    main.command = Some(vec![
        "bash".into(),
        "-c".into(),
        SUPERVISOR.into(),
        "supervisor".into(),
    ]);
    let mounts_of = |names: &[&str]| -> Vec<VolumeMount> {
        main_mounts(main)
            .into_iter()
            .filter(|m| names.contains(&m.name.as_str()))
            .collect()
    };
    let mut mounts = mounts_of(&["data", "conf-d", "run", "tmp"]);
    mounts.push(VolumeMount {
        name: INIT_SQL_VOLUME.into(),
        mount_path: INIT_SQL_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    let initialize = Container {
        name: "initialize".into(),
        image: main.image.clone(),
        command: Some(vec!["bash".into(), "-c".into(), INITIALIZE.into()]),
        volume_mounts: Some(mounts),
        security_context: main.security_context.clone(),
        ..Default::default()
    };
    spec.init_containers
        .get_or_insert_with(Vec::new)
        .push(initialize);
    let secret = format!("{}-init-sql", built.cluster.names.statefulset());
    spec.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: INIT_SQL_VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.clone()),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    });
    let sql = init_sql(&built.credentials(Account::Admin));
    source.secrets.insert(
        secret,
        BTreeMap::from([("init.sql".to_string(), sql.into_bytes())]),
    );
}

fn main_mounts(c: &Container) -> Vec<VolumeMount> {
    c.volume_mounts.clone().unwrap_or_default()
}
