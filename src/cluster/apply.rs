//! Carrying out the plan's objects: server-side apply of the desired objects with one field
//! manager, create-only for Secrets, and pruning of what the cluster no longer needs.
//!
//! The decisions (apply, skip, refuse, prune) are pure functions; the I/O around them is thin.
//! An object whose applied hash is unchanged is not written again, so a steady cluster causes no
//! API writes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::build::tls_secrets::TlsWrites;
use super::build::{Desired, Kind, Object};
use crate::certs::cert_manager::Certificate;
use crate::objects::FIELD_MANAGER;
use crate::objects::names::{APPLIED_HASH_ANNOTATION, Names};

/// What to do with one desired object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// It is missing or differs: apply it.
    Apply,
    /// It is exactly as last applied: no write.
    Skip,
    /// An object of that name exists and belongs to someone else: do not take it over.
    Conflict,
}

/// What happened to a cluster's objects in one apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// `Kind/name` of each object written.
    pub(crate) applied: Vec<String>,
    /// `Kind/name` of each object deleted because the cluster no longer needs it.
    pub(crate) pruned: Vec<String>,
    /// Names of the Secrets created.
    pub(crate) created_secrets: Vec<String>,
    /// Names of the certificate Secrets renewed.
    pub(crate) renewed_secrets: Vec<String>,
}

impl Outcome {
    /// Number of writes this apply made.
    pub(crate) fn writes(&self) -> usize {
        self.applied.len()
            + self.pruned.len()
            + self.created_secrets.len()
            + self.renewed_secrets.len()
    }
}

/// A write or read that failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error("{kind:?} {name} exists and is not managed by this MySQLCluster: delete or rename it")]
    Conflict { kind: Kind, name: String },
    #[error(
        "cert-manager's Certificate kind (cert-manager.io/v1) is not served by the API server: install cert-manager, or set spec.tls.secretName instead of spec.tls.issuerRef"
    )]
    CertManagerMissing,
    #[error("applying {kind:?} {name}: {source}")]
    Apply {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {kind:?} objects of the cluster: {source}")]
    List {
        kind: Kind,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind:?} {name}, which the cluster no longer needs: {source}")]
    Prune {
        kind: Kind,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("creating Secret {name}: {source}")]
    CreateSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("renewing the certificate in Secret {name}: {source}")]
    RenewSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("serializing {kind:?} {name}: {source}")]
    Serialize {
        kind: Kind,
        name: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Creates `secret` unless it exists; whether it was created.
async fn create_secret(
    secrets: &Api<Secret>,
    secret: &Secret,
    outcome: &mut Outcome,
) -> Result<bool, ApplyError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    match secrets.create(&PostParams::default(), secret).await {
        Ok(_) => {
            outcome.created_secrets.push(name);
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(source) => Err(ApplyError::CreateSecret { name, source }),
    }
}

/// Writes the operator CA's Secrets: a new CA first (when one exists already, another writer
/// was first and the certificates signed by this one are not written); new certificates are
/// created, renewed ones replace the old (their data and validity annotations).
async fn write_tls(
    secrets: &Api<Secret>,
    tls: &TlsWrites,
    outcome: &mut Outcome,
) -> Result<(), ApplyError> {
    if let Some(ca) = &tls.new_ca
        && !create_secret(secrets, ca, outcome).await?
    {
        return Ok(());
    }
    for secret in &tls.create {
        create_secret(secrets, secret, outcome).await?;
    }
    for secret in &tls.renew {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({
            "metadata": {"annotations": secret.metadata.annotations},
            "data": secret.data,
        });
        secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|source| ApplyError::RenewSecret {
                name: name.clone(),
                source,
            })?;
        outcome.renewed_secrets.push(name);
    }
    Ok(())
}

/// Hash of an object as it will be applied (without the hash annotation itself).
pub(crate) fn object_hash<K: Serialize>(obj: &K) -> Result<String, serde_json::Error> {
    let json = serde_json::to_vec(obj)?;
    Ok(hex::encode(&Sha256::digest(json)[..12]))
}

/// Whether `meta` belongs to the cluster with uid `owner_uid`.
pub(crate) fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true))
}

/// Decides what to do with a desired object given the metadata of the existing one.
pub(crate) fn decide(desired_hash: &str, existing: Option<&ObjectMeta>, owner_uid: &str) -> Step {
    match existing {
        None => Step::Apply,
        Some(meta) if !owned_by(meta, owner_uid) => Step::Conflict,
        Some(meta) => {
            let applied = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION));
            if applied.map(String::as_str) == Some(desired_hash) {
                Step::Skip
            } else {
                Step::Apply
            }
        }
    }
}

/// Names of the existing objects (found by the cluster's labels) to delete: owned by the
/// cluster and not desired any more.
pub(crate) fn prune_plan(
    desired: &BTreeSet<String>,
    existing: &[ObjectMeta],
    owner_uid: &str,
) -> Vec<String> {
    existing
        .iter()
        .filter(|m| owned_by(m, owner_uid) && m.deletion_timestamp.is_none())
        .filter_map(|m| m.name.clone())
        .filter(|n| !desired.contains(n))
        .collect()
}

/// Applies `desired` for the cluster `names` whose uid is `owner_uid`.
pub(crate) async fn apply(
    client: &Client,
    names: &Names,
    owner_uid: &str,
    desired: &Desired,
) -> Result<Outcome, ApplyError> {
    let mut outcome = Outcome::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    for secret in &desired.secrets {
        create_secret(&secrets, secret, &mut outcome).await?;
    }
    write_tls(&secrets, &desired.tls, &mut outcome).await?;
    // The cluster's objects of each kind, one list each: what decides every apply below (one
    // metadata read per object cost the API server ten requests a reconcile), then what to prune.
    let mut existing = BTreeMap::new();
    for kind in Kind::ALL {
        existing.insert(kind, list(client, names, kind).await?);
    }
    for object in &desired.objects {
        let kind = object.kind();
        let listed = existing[&kind]
            .iter()
            .find(|m| m.name.as_deref() == Some(object.name()));
        let written = match object {
            Object::ConfigMap(o) => apply_one(client, names, owner_uid, kind, listed, o).await?,
            Object::Service(o) => apply_one(client, names, owner_uid, kind, listed, o).await?,
            Object::StatefulSet(o) => apply_one(client, names, owner_uid, kind, listed, o).await?,
            Object::PodDisruptionBudget(o) => {
                apply_one(client, names, owner_uid, kind, listed, o).await?
            }
            Object::Deployment(o) => apply_one(client, names, owner_uid, kind, listed, o).await?,
            Object::NetworkPolicy(o) => {
                apply_one(client, names, owner_uid, kind, listed, o).await?
            }
        };
        if written {
            outcome
                .applied
                .push(format!("{:?}/{}", object.kind(), object.name()));
        }
    }
    prune(client, names, owner_uid, desired, existing, &mut outcome).await?;
    if let Some(certificate) = &desired.certificate {
        apply_certificate(client, names, owner_uid, certificate, &mut outcome).await?;
    }
    Ok(outcome)
}

/// Deletes the `existing` objects (listed per kind) that the cluster owns and `desired` no
/// longer holds.
async fn prune(
    client: &Client,
    names: &Names,
    owner_uid: &str,
    desired: &Desired,
    existing: BTreeMap<Kind, Vec<ObjectMeta>>,
    outcome: &mut Outcome,
) -> Result<(), ApplyError> {
    let mut wanted: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    for o in &desired.objects {
        wanted
            .entry(o.kind())
            .or_default()
            .insert(o.name().to_string());
    }
    for (kind, metas) in existing {
        let want = wanted.remove(&kind).unwrap_or_default();
        for name in prune_plan(&want, &metas, owner_uid) {
            match kind {
                Kind::ConfigMap => delete::<ConfigMap>(client, names, kind, &name).await?,
                Kind::Service => delete::<Service>(client, names, kind, &name).await?,
                Kind::StatefulSet => delete::<StatefulSet>(client, names, kind, &name).await?,
                Kind::PodDisruptionBudget => {
                    delete::<PodDisruptionBudget>(client, names, kind, &name).await?
                }
                Kind::Deployment => delete::<Deployment>(client, names, kind, &name).await?,
                Kind::Certificate => delete::<Certificate>(client, names, kind, &name).await?,
                Kind::NetworkPolicy => delete::<NetworkPolicy>(client, names, kind, &name).await?,
            }
            outcome.pruned.push(format!("{kind:?}/{name}"));
        }
    }
    Ok(())
}

/// Applies the cert-manager Certificate: apart from the other objects, as its kind exists only
/// where cert-manager is installed (its absence is an error that says so).
async fn apply_certificate(
    client: &Client,
    names: &Names,
    owner_uid: &str,
    certificate: &Certificate,
    outcome: &mut Outcome,
) -> Result<(), ApplyError> {
    let kind = Kind::Certificate;
    match apply_one(client, names, owner_uid, kind, None, certificate).await {
        Ok(true) => outcome.applied.push(format!(
            "{kind:?}/{}",
            certificate.meta().name.as_deref().unwrap_or_default()
        )),
        Ok(false) => {}
        Err(ApplyError::Apply {
            source: kube::Error::Api(e),
            ..
        }) if e.code == 404 => return Err(ApplyError::CertManagerMissing),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A namespaced kind of object the cluster owns: applied, listed and pruned through an `Api`.
trait OwnedKind:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
{
}

impl<K> OwnedKind for K where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
{
}

/// Applies one object of `kind` unless it is unchanged; returns whether it wrote. `listed` is
/// the object's metadata among the cluster's labelled objects; an object missing there may
/// still exist (without the labels: someone else's), so it is read before it is applied.
async fn apply_one<K>(
    client: &Client,
    names: &Names,
    owner_uid: &str,
    kind: Kind,
    listed: Option<&ObjectMeta>,
    obj: &K,
) -> Result<bool, ApplyError>
where
    K: OwnedKind + Serialize,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let hash = object_hash(obj).map_err(|source| ApplyError::Serialize {
        kind,
        name: name.clone(),
        source,
    })?;
    let api: Api<K> = Api::namespaced(client.clone(), &names.namespace);
    let apply_err = |source| ApplyError::Apply {
        kind,
        name: name.clone(),
        source,
    };
    let read;
    let existing = match listed {
        Some(meta) => Some(meta),
        None => {
            read = api.get_metadata_opt(&name).await.map_err(apply_err)?;
            read.as_ref().map(|o| &o.metadata)
        }
    };
    match decide(&hash, existing, owner_uid) {
        Step::Skip => return Ok(false),
        Step::Conflict => return Err(ApplyError::Conflict { kind, name }),
        Step::Apply => {}
    }
    let mut obj = obj.clone();
    obj.meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH_ANNOTATION.to_string(), hash);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .map_err(apply_err)?;
    tracing::info!(kind = ?kind, %name, "applied");
    Ok(true)
}

/// The metadata of the cluster's objects of `kind`, found by its labels.
async fn list(client: &Client, names: &Names, kind: Kind) -> Result<Vec<ObjectMeta>, ApplyError> {
    match kind {
        Kind::ConfigMap => list_of::<ConfigMap>(client, names, kind).await,
        Kind::Service => list_of::<Service>(client, names, kind).await,
        Kind::StatefulSet => list_of::<StatefulSet>(client, names, kind).await,
        Kind::PodDisruptionBudget => list_of::<PodDisruptionBudget>(client, names, kind).await,
        Kind::Deployment => list_of::<Deployment>(client, names, kind).await,
        Kind::Certificate => list_of::<Certificate>(client, names, kind).await,
        Kind::NetworkPolicy => list_of::<NetworkPolicy>(client, names, kind).await,
    }
}

async fn list_of<K>(
    client: &Client,
    names: &Names,
    kind: Kind,
) -> Result<Vec<ObjectMeta>, ApplyError>
where
    K: OwnedKind,
{
    let api: Api<K> = Api::namespaced(client.clone(), &names.namespace);
    let listed = api
        .list_metadata(&ListParams::default().labels(&names.selector_string()))
        .await
        .map_err(|source| ApplyError::List { kind, source })?;
    Ok(listed.items.into_iter().map(|o| o.metadata).collect())
}

/// Deletes `name`, which the cluster no longer needs (gone already is fine).
async fn delete<K>(client: &Client, names: &Names, kind: Kind, name: &str) -> Result<(), ApplyError>
where
    K: OwnedKind,
{
    let api: Api<K> = Api::namespaced(client.clone(), &names.namespace);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => tracing::info!(kind = ?kind, %name, "pruned"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            return Err(ApplyError::Prune {
                kind,
                name: name.to_string(),
                source,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(name: &str, owner: Option<&str>, hash: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            annotations: hash
                .map(|h| [(APPLIED_HASH_ANNOTATION.to_string(), h.to_string())].into()),
            ..Default::default()
        }
    }

    #[test]
    fn applies_missing_and_changed_skips_unchanged_refuses_foreign() {
        assert_eq!(decide("h1", None, "u"), Step::Apply);
        assert_eq!(
            decide("h1", Some(&meta("a", Some("u"), Some("h1"))), "u"),
            Step::Skip
        );
        assert_eq!(
            decide("h2", Some(&meta("a", Some("u"), Some("h1"))), "u"),
            Step::Apply
        );
        assert_eq!(
            decide("h1", Some(&meta("a", Some("u"), None)), "u"),
            Step::Apply
        );
        assert_eq!(
            decide("h1", Some(&meta("a", None, Some("h1"))), "u"),
            Step::Conflict
        );
        assert_eq!(
            decide("h1", Some(&meta("a", Some("other"), Some("h1"))), "u"),
            Step::Conflict
        );
    }

    #[test]
    fn prunes_only_owned_undesired_objects() {
        let want: BTreeSet<String> = ["keep".to_string()].into();
        let mut terminating = meta("going", Some("u"), None);
        terminating.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        let existing = vec![
            meta("keep", Some("u"), None),
            meta("old-router", Some("u"), None),
            meta("users-object", None, None),
            meta("other-cluster", Some("v"), None),
            terminating,
        ];
        assert_eq!(
            prune_plan(&want, &existing, "u"),
            vec!["old-router".to_string()]
        );
    }

    #[test]
    fn hash_changes_with_content_and_is_stable() {
        let a = ConfigMap {
            data: Some([("k".to_string(), "v".to_string())].into()),
            ..Default::default()
        };
        let mut b = a.clone();
        assert_eq!(object_hash(&a).unwrap(), object_hash(&b).unwrap());
        b.data = Some([("k".to_string(), "w".to_string())].into());
        assert_ne!(object_hash(&a).unwrap(), object_hash(&b).unwrap());
    }
}
