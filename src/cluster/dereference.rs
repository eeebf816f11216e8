//! Part of [`super::gather`]: read what the cluster refers to or has made before (credentials
//! Secrets, the TLS Secret, the group name, the backup to restore from). All reads, no writes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{Api, Client};
use uuid::Uuid;

use super::build::mycnf::MYCNF_KEY;
use super::build::tls_secrets::{FoundSecret, FoundTls, PREVIOUS_CA_UNTIL_ANNOTATION};
use super::restore_plan::{self, RestoreLocation, Unresolved};
use crate::api::{Backup, MySQLCluster};
use crate::certs::cert_manager::Certificate;
use crate::credentials::SecretText;
use crate::objects::accounts::Account;
use crate::objects::names::Names;
use crate::objects::tls::{TLS_CERT_KEY, TlsSource};

/// What the cluster refers to, as found in the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dereferenced {
    /// The Group Replication group name: kept in status, recovered from the existing config when
    /// status was lost, or new for a new cluster.
    pub group_name: Uuid,
    /// Accounts whose credentials Secret already exists (never regenerated).
    pub existing_accounts: BTreeSet<Account>,
    /// Keys of the TLS Secret named by the spec (or issued by cert-manager), `None` when it
    /// does not exist.
    pub tls_secret_keys: Option<Vec<String>>,
    /// Why cert-manager has not issued the members' certificate yet (`spec.tls.issuerRef`
    /// without its Secret); `None` otherwise.
    pub certificate_pending: Option<String>,
    /// The operator CA's Secrets (read whatever `spec.tls` says: they are cheap, and a spec
    /// that switches back finds its CA).
    pub tls: FoundTls,
    /// When the certificate the members mount ends (the user's Secret or the operator's);
    /// `None` when there is none or it cannot be read.
    pub member_certificate_end: Option<jiff::Timestamp>,
    /// The operator's members' Secret trusts the previous CA beside a new one (it says until
    /// when): the operator's CA was made anew.
    pub previous_ca_trusted: bool,
    /// Where the backup of `spec.restoreFrom` is, or why it cannot be used; `None` without
    /// `restoreFrom`, or once the restore is over (nothing is read then).
    pub restore: Option<Result<RestoreLocation, Unresolved>>,
}

/// The credentials Secrets that exist, as read once by [`dereference`]: the SQL operations take
/// their accounts from them (a second read of each Secret per reconcile cost the API server four
/// requests more).
#[derive(Debug)]
pub(crate) struct AccountSecrets(BTreeMap<Account, SecretText>);

impl AccountSecrets {
    /// The Secret of `account`, when it exists.
    pub(crate) fn get(&self, account: Account) -> Option<&SecretText> {
        self.0.get(&account)
    }
}

/// A read that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DereferenceError {
    #[error("reading {kind} {name}: {source}")]
    Read {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the MySQLCluster has no namespace")]
    NoNamespace,
}

/// Reads everything the cluster refers to, and the credentials Secrets that exist.
pub(crate) async fn dereference(
    client: &Client,
    cluster: &MySQLCluster,
) -> Result<(Dereferenced, AccountSecrets), DereferenceError> {
    let ns = cluster
        .metadata
        .namespace
        .as_deref()
        .ok_or(DereferenceError::NoNamespace)?;
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let names = Names::new(name, ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);

    let mut accounts = BTreeMap::new();
    for account in Account::ALL {
        let secret_name = names.secret(account.suffix());
        if let Some(secret) = get_opt(&secrets, "Secret", &secret_name).await? {
            accounts.insert(account, SecretText::from(secret));
        }
    }
    let source = TlsSource::of(&cluster.spec.tls);
    let user_tls = match &source.outside_secret(&names) {
        None => None,
        Some(secret_name) => get_opt(&secrets, "Secret", secret_name)
            .await?
            .map(FoundSecret::from_secret),
    };
    let certificate_pending = match (&source, &user_tls) {
        (TlsSource::CertManager(_), None) => {
            let certificates: Api<Certificate> = Api::namespaced(client.clone(), ns);
            // A missing Certificate kind (no cert-manager) reads as no Certificate: the apply
            // then says what to install.
            let found = certificates
                .get_opt(&names.member_certificate())
                .await
                .ok()
                .flatten();
            Some(pending_message(&names, found.as_ref()))
        }
        _ => None,
    };
    let tls_secret_keys = user_tls.as_ref().map(|s| s.data.keys().cloned().collect());
    let tls = FoundTls {
        ca: get_opt(&secrets, "Secret", &names.ca_secret())
            .await?
            .map(FoundSecret::from_secret),
        member: get_opt(&secrets, "Secret", &names.member_tls_secret())
            .await?
            .map(FoundSecret::from_secret),
    };
    let status_group = cluster
        .status
        .as_ref()
        .and_then(|s| s.group_name.as_deref());
    let group_name = match status_group.and_then(|g| Uuid::parse_str(g).ok()) {
        Some(g) => g,
        None => {
            let existing = get_opt(&config_maps, "ConfigMap", &names.config_map()).await?;
            existing
                .and_then(|cm| cm.data)
                .and_then(|d| d.get(MYCNF_KEY).and_then(|cnf| group_name_in_mycnf(cnf)))
                .unwrap_or_else(Uuid::new_v4)
        }
    };
    let restore = restore_location(client, cluster, ns).await?;
    let member_certificate_end = certificate_end(user_tls.as_ref().or(tls.member.as_ref()));
    let previous_ca_trusted = user_tls.is_none()
        && tls
            .member
            .as_ref()
            .is_some_and(|m| m.annotations.contains_key(PREVIOUS_CA_UNTIL_ANNOTATION));
    let deref = Dereferenced {
        group_name,
        existing_accounts: accounts.keys().copied().collect(),
        tls_secret_keys,
        certificate_pending,
        tls,
        member_certificate_end,
        previous_ca_trusted,
        restore,
    };
    Ok((deref, AccountSecrets(accounts)))
}

/// What the status says while cert-manager has not issued the members' certificate.
fn pending_message(names: &Names, certificate: Option<&Certificate>) -> String {
    let waiting = format!(
        "waiting for cert-manager to issue Certificate {} into Secret {}",
        names.member_certificate(),
        names.issued_member_tls_secret()
    );
    match certificate.and_then(Certificate::not_ready) {
        Some(why) => format!(
            "{waiting}: {why} (kubectl describe certificate {})",
            names.member_certificate()
        ),
        None => format!("{waiting}; the members start once it exists"),
    }
}

/// Resolves `spec.restoreFrom` while the restore has not succeeded.
async fn restore_location(
    client: &Client,
    cluster: &MySQLCluster,
    ns: &str,
) -> Result<Option<Result<RestoreLocation, Unresolved>>, DereferenceError> {
    let Some(from) = &cluster.spec.restore_from else {
        return Ok(None);
    };
    let done = cluster
        .status
        .as_ref()
        .and_then(|s| s.restore.as_ref())
        .and_then(|r| r.phase)
        == Some(crate::api::cluster::RestorePhase::Succeeded);
    if done {
        return Ok(None);
    }
    let name = match (&from.backup, &from.s3) {
        (_, Some(s3)) => return Ok(Some(Ok(restore_plan::from_s3(s3)))),
        (Some(name), None) => name,
        (None, None) => return Ok(None),
    };
    let backups: Api<Backup> = Api::namespaced(client.clone(), ns);
    let backup = get_opt(&backups, "Backup", name).await?;
    let source_cluster = match &backup {
        Some(b) if b.spec.storage.is_none() => {
            let clusters: Api<MySQLCluster> = Api::namespaced(client.clone(), ns);
            get_opt(&clusters, "MySQLCluster", &b.spec.cluster_name).await?
        }
        _ => None,
    };
    Ok(Some(restore_plan::locate(
        name,
        backup.as_ref(),
        source_cluster.as_ref(),
        cluster,
    )))
}

async fn get_opt<K>(
    api: &Api<K>,
    kind: &'static str,
    name: &str,
) -> Result<Option<K>, DereferenceError>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name)
        .await
        .map_err(|source| DereferenceError::Read {
            kind,
            name: name.to_string(),
            source,
        })
}

/// The group name written in an existing my.cnf, if any.
pub fn group_name_in_mycnf(mycnf: &str) -> Option<Uuid> {
    mycnf.lines().find_map(|l| {
        let v = l
            .trim()
            .strip_prefix("loose_group_replication_group_name=")?;
        Uuid::parse_str(v.trim()).ok()
    })
}

/// When the certificate (`tls.crt`) of `secret` ends; `None` without one, or when it cannot be
/// read (validation says what is wrong with a user's Secret).
fn certificate_end(secret: Option<&FoundSecret>) -> Option<jiff::Timestamp> {
    let pem = secret?.data.get(TLS_CERT_KEY)?;
    crate::certs::inspect::not_after(pem).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_group_name_in_an_old_config() {
        let cnf = "[mysqld]\nport=3306\nloose_group_replication_group_name=6f1c8d8e-4a59-4bd4-9a3e-2f0d7d5d1a10\n";
        assert_eq!(
            group_name_in_mycnf(cnf).unwrap().to_string(),
            "6f1c8d8e-4a59-4bd4-9a3e-2f0d7d5d1a10"
        );
        assert_eq!(
            group_name_in_mycnf("[mysqld]\nloose_group_replication_group_name=nope\n"),
            None
        );
    }
}
