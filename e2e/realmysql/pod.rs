//! What a Kubernetes pod spec asks a kubelet to do, resolved for one pod: the volumes' contents,
//! and per container its argv, environment, mounts and user. Pure apart from writing the volumes.
//! Anything of the spec this harness does not implement is an error, never silently ignored.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, KeyToPath, Pod, PodSpec, Secret, Volume};

/// The pod spec with everything it refers to.
#[derive(Clone, Debug)]
pub struct PodSource {
    pub spec: PodSpec,
    /// Names of the StatefulSet's `volumeClaimTemplates`: persistent per member.
    pub claims: Vec<String>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

impl PodSource {
    /// The pod template of `sts`, with the ConfigMaps and Secrets it may refer to.
    pub fn from_statefulset(
        sts: &StatefulSet,
        config_maps: &[ConfigMap],
        secrets: &[Secret],
    ) -> Self {
        let spec = sts.spec.as_ref().expect("StatefulSet has a spec");
        let claims = spec
            .volume_claim_templates
            .iter()
            .flatten()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        let template = spec.template.spec.clone().expect("pod template has a spec");
        Self::with_objects(template, claims, config_maps, secrets)
    }

    /// The first ConfigMap or Secret a volume names that was not supplied: a kubelet does not
    /// start the pod's containers until it exists (the pod stays ContainerCreating).
    pub fn missing_source(&self) -> Option<String> {
        self.spec.volumes.iter().flatten().find_map(|v| {
            if let Some(cm) = &v.config_map {
                (!self.config_maps.contains_key(&cm.name)).then(|| format!("ConfigMap {}", cm.name))
            } else {
                let secret = v.secret.as_ref()?.secret_name.clone().unwrap_or_default();
                (!self.secrets.contains_key(&secret)).then(|| format!("Secret {secret}"))
            }
        })
    }

    /// A pod as the API holds it (what a kubelet runs): its `persistentVolumeClaim` volumes are
    /// the member's claims, kept across pod restarts.
    pub fn from_pod(pod: &Pod, config_maps: &[ConfigMap], secrets: &[Secret]) -> Self {
        let mut spec = pod.spec.clone().expect("a pod has a spec");
        let (claims, volumes): (Vec<Volume>, Vec<Volume>) = spec
            .volumes
            .take()
            .unwrap_or_default()
            .into_iter()
            .partition(|v| v.persistent_volume_claim.is_some());
        spec.volumes = Some(volumes);
        let claims = claims.into_iter().map(|v| v.name).collect();
        Self::with_objects(spec, claims, config_maps, secrets)
    }

    fn with_objects(
        spec: PodSpec,
        claims: Vec<String>,
        config_maps: &[ConfigMap],
        secrets: &[Secret],
    ) -> Self {
        PodSource {
            spec,
            claims,
            config_maps: config_maps
                .iter()
                .map(|c| {
                    (
                        c.metadata.name.clone().unwrap_or_default(),
                        c.data.clone().unwrap_or_default(),
                    )
                })
                .collect(),
            secrets: secrets
                .iter()
                .map(|s| {
                    let mut data: BTreeMap<String, Vec<u8>> = s
                        .data
                        .iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.0.clone()))
                        .collect();
                    for (k, v) in s.string_data.iter().flatten() {
                        data.insert(k.clone(), v.clone().into_bytes());
                    }
                    (s.metadata.name.clone().unwrap_or_default(), data)
                })
                .collect(),
        }
    }

    fn secret_key(&self, secret: &str, key: &str) -> Result<Vec<u8>, String> {
        self.secrets
            .get(secret)
            .ok_or_else(|| format!("Secret {secret} was not supplied"))?
            .get(key)
            .cloned()
            .ok_or_else(|| format!("Secret {secret} has no key {key}"))
    }
}

/// The pod's identity, for `fieldRef`.
#[derive(Clone, Debug)]
pub struct PodMeta {
    pub name: String,
    pub namespace: String,
    pub ip: String,
}

/// One bind mount of a container.
#[derive(Clone, Debug)]
pub struct MountPlan {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub target: String,
    pub read_only: bool,
}

/// One container, resolved.
#[derive(Clone, Debug)]
pub struct ContainerPlan {
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<MountPlan>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub read_only_root: bool,
}

/// Where a pod's volumes live on the host.
#[derive(Clone, Debug)]
pub struct VolumeDirs {
    /// Per pod start: emptyDir, configMap and secret volumes.
    pub pod: PathBuf,
    /// Per member, kept across pod restarts: the claims.
    pub claims: PathBuf,
}

impl VolumeDirs {
    pub fn path(&self, source: &PodSource, name: &str) -> PathBuf {
        if source.claims.iter().any(|c| c == name) {
            self.claims.join(name)
        } else {
            self.pod.join(name)
        }
    }
}

fn fs_group(spec: &PodSpec) -> Option<u32> {
    spec.security_context
        .as_ref()
        .and_then(|s| s.fs_group)
        .map(|g| g as u32)
}

/// Writes the pod's volumes (a fresh `dirs.pod` must not exist yet); the claims are created when
/// missing and kept otherwise.
pub fn prepare_volumes(source: &PodSource, dirs: &VolumeDirs) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    fs::create_dir_all(&dirs.pod).map_err(|e| io("pod dir", e))?;
    let group = fs_group(&source.spec);
    let own = |path: &Path, mode: u32| -> Result<(), String> {
        chown(path, Some(0), group).map_err(|e| io("chown", e))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io("chmod", e))
    };
    for claim in &source.claims {
        let dir = dirs.claims.join(claim);
        if !dir.exists() {
            fs::create_dir_all(&dir).map_err(|e| io("claim dir", e))?;
            // A fresh volume owned by the pod's fsGroup, group-writable, setgid (fsGroup semantics).
            own(&dir, if group.is_some() { 0o2775 } else { 0o755 })?;
        }
    }
    for volume in source.spec.volumes.iter().flatten() {
        let dir = dirs.pod.join(&volume.name);
        fs::create_dir_all(&dir).map_err(|e| io("volume dir", e))?;
        write_volume(source, volume, &dir, group)?;
    }
    Ok(())
}

fn write_volume(
    source: &PodSource,
    volume: &Volume,
    dir: &Path,
    group: Option<u32>,
) -> Result<(), String> {
    let name = &volume.name;
    let chown_group = |path: &Path| chown(path, Some(0), group).map_err(|e| format!("{e}"));
    if volume.empty_dir.is_some() {
        chown_group(dir)?;
        let mode = if group.is_some() { 0o2777 } else { 0o777 };
        return fs::set_permissions(dir, fs::Permissions::from_mode(mode))
            .map_err(|e| e.to_string());
    }
    let (files, default_mode, items): (BTreeMap<String, Vec<u8>>, _, _) =
        if let Some(cm) = &volume.config_map {
            let data = source
                .config_maps
                .get(&cm.name)
                .ok_or_else(|| format!("ConfigMap {} (volume {name}) was not supplied", cm.name))?;
            let files = data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            (files, cm.default_mode, cm.items.clone())
        } else if let Some(s) = &volume.secret {
            let secret = s.secret_name.clone().unwrap_or_default();
            let data = source
                .secrets
                .get(&secret)
                .ok_or_else(|| format!("Secret {secret} (volume {name}) was not supplied"))?;
            (data.clone(), s.default_mode, s.items.clone())
        } else {
            return Err(format!(
                "volume {name}: only emptyDir, configMap, secret and claims are implemented"
            ));
        };
    chown_group(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    for (path, bytes, mode) in projected(files, default_mode.unwrap_or(0o644), items)? {
        let file = dir.join(&path);
        fs::write(&file, bytes).map_err(|e| format!("volume {name} file {path}: {e}"))?;
        chown_group(&file)?;
        // With an fsGroup the kubelet makes the files group-readable.
        let mode = (mode as u32) | if group.is_some() { 0o040 } else { 0 };
        fs::set_permissions(&file, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The files of a configMap/secret volume: every key, or only `items` (with their paths/modes).
fn projected(
    files: BTreeMap<String, Vec<u8>>,
    default_mode: i32,
    items: Option<Vec<KeyToPath>>,
) -> Result<Vec<(String, Vec<u8>, i32)>, String> {
    match items {
        None => Ok(files
            .into_iter()
            .map(|(k, v)| (k, v, default_mode))
            .collect()),
        Some(items) => items
            .into_iter()
            .map(|i| {
                let bytes = files
                    .get(&i.key)
                    .cloned()
                    .ok_or(format!("no key {}", i.key))?;
                Ok((i.path, bytes, i.mode.unwrap_or(default_mode)))
            })
            .collect(),
    }
}

/// Resolves `container` of the pod.
pub fn plan(
    source: &PodSource,
    meta: &PodMeta,
    container: &Container,
    dirs: &VolumeDirs,
) -> Result<ContainerPlan, String> {
    let what = |m: String| format!("container {}: {m}", container.name);
    if container.env_from.is_some() {
        return Err(what("envFrom is not implemented".into()));
    }
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("HOSTNAME".into(), meta.name.clone()),
    ];
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => expand(v, &env),
            (None, None) => String::new(),
            (None, Some(from)) => {
                if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.name" => meta.name.clone(),
                        "metadata.namespace" => meta.namespace.clone(),
                        "status.podIP" => meta.ip.clone(),
                        other => return Err(what(format!("fieldRef {other} is not implemented"))),
                    }
                } else if let Some(s) = &from.secret_key_ref {
                    let bytes = source.secret_key(&s.name, &s.key).map_err(what)?;
                    String::from_utf8(bytes).map_err(|_| what(format!("{} is not UTF-8", s.key)))?
                } else if let Some(c) = &from.config_map_key_ref {
                    source
                        .config_maps
                        .get(&c.name)
                        .and_then(|d| d.get(&c.key))
                        .cloned()
                        .ok_or_else(|| {
                            what(format!("ConfigMap {} key {} missing", c.name, c.key))
                        })?
                } else {
                    return Err(what(format!(
                        "env {}: this valueFrom is not implemented",
                        var.name
                    )));
                }
            }
        };
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), value));
    }
    // The image has no entrypoint and no default command: command + args, or args alone.
    let argv: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .map(|a| expand(a, &env))
        .collect();
    if argv.is_empty() {
        return Err(what("neither command nor args".into()));
    }
    let mut mounts = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let declared = source.claims.contains(&m.name)
            || source
                .spec
                .volumes
                .iter()
                .flatten()
                .any(|v| v.name == m.name);
        if !declared {
            return Err(what(format!("volumeMount {} names no volume", m.name)));
        }
        let mut host = dirs.path(source, &m.name);
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            host = host.join(sub);
        }
        mounts.push(MountPlan {
            source: host,
            target: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    let pod_sc = source.spec.security_context.clone().unwrap_or_default();
    let sc = container.security_context.clone().unwrap_or_default();
    let uid = sc.run_as_user.or(pod_sc.run_as_user).unwrap_or(0) as u32;
    let gid = sc.run_as_group.or(pod_sc.run_as_group).unwrap_or(0) as u32;
    let mut groups: Vec<u32> = fs_group(&source.spec).into_iter().collect();
    groups.extend(
        pod_sc
            .supplemental_groups
            .iter()
            .flatten()
            .map(|&g| g as u32),
    );
    Ok(ContainerPlan {
        name: container.name.clone(),
        argv,
        env,
        mounts,
        uid,
        gid,
        groups,
        read_only_root: sc.read_only_root_filesystem.unwrap_or(false),
    })
}

/// Kubernetes' `$(VAR)` expansion (`$$` escapes; unknown references stay as written).
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some((_, v)) = env.iter().rev().find(|(k, _)| *k == inner[..end])
        {
            out.push_str(v);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn expansion_follows_kubernetes() {
        let env = vec![("A".to_string(), "x".to_string())];
        assert_eq!(super::expand("$(A)-$(B)-$$(A)-$", &env), "x-$(B)-$(A)-$");
    }
}
