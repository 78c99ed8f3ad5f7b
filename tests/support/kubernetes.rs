//! Reading Kubernetes manifests just enough to check them against the proxy's configuration:
//! multi-document YAML as JSON values, the pod template of a workload, which files a
//! container sees under its volume mounts (and from which ConfigMap or Secret key), and how a
//! port reference (a number or a port name) resolves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine;
use serde_json::Value;

/// Every document of every `*.yaml` file of `dir` but `kustomization.yaml`, with the file it
/// came from.
pub fn read_manifests(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let parsed: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
        docs.extend(
            parsed
                .into_iter()
                .filter(|d| !d.is_null())
                .map(|d| (name.clone(), d)),
        );
    }
    docs
}

pub fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

/// The documents of `kind`.
pub fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

/// The document of `kind` named `name`.
pub fn find<'a>(docs: &'a [Value], wanted: &str, wanted_name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| kind(d) == wanted && name(d) == wanted_name)
}

/// A label selector's `matchLabels` (or a Service's plain selector) as pairs.
pub fn labels(map: &Value) -> BTreeMap<String, String> {
    map.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every pair of a non-empty `selector` is among `pod_labels`.
pub fn selects(selector: &BTreeMap<String, String>, pod_labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| pod_labels.get(k).is_some_and(|p| p == v))
}

/// `containerPort` → port name of one container.
pub fn container_ports(container: &Value) -> BTreeMap<u16, String> {
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p["containerPort"].as_u64()?).ok()?;
            Some((port, p["name"].as_str().unwrap_or_default().to_string()))
        })
        .collect()
}

/// A `port` / `targetPort` reference: a number, or the name of one of `ports`.
pub fn resolve_port(reference: &Value, ports: &BTreeMap<u16, String>) -> Option<u16> {
    match reference {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => match s.parse::<u16>() {
            Ok(n) => Some(n),
            Err(_) => ports
                .iter()
                .find(|(_, name)| *name == s)
                .map(|(port, _)| *port),
        },
        _ => None,
    }
}

/// Where a mounted file comes from.
#[derive(Debug, Clone)]
pub struct MountedFile {
    /// `ConfigMap` or `Secret`.
    pub kind: &'static str,
    /// The object's name.
    pub object: String,
    /// The key of the object's data.
    pub key: String,
    /// The text as the manifest carries it (placeholders for a Secret).
    pub content: String,
    /// The `volumeMounts[].mountPath` it is under.
    pub mount_path: String,
}

/// One ConfigMap or Secret source of a volume: its keys (all, or the `items`) and the path
/// of each relative to the mount.
fn source_files(docs: &[Value], kind: &'static str, source: &Value) -> Vec<(String, MountedFile)> {
    let object_name = source["name"]
        .as_str()
        .or_else(|| source["secretName"].as_str())
        .unwrap_or_default()
        .to_string();
    let Some(object) = find(docs, kind, &object_name) else {
        return Vec::new();
    };
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in object["data"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default().to_string();
        let text = if kind == "Secret" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .unwrap_or_else(|e| panic!("Secret {object_name}: data.{key} is not base64: {e}"));
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            text
        };
        data.insert(key.clone(), text);
    }
    for (key, value) in object["stringData"].as_object().into_iter().flatten() {
        data.insert(key.clone(), value.as_str().unwrap_or_default().to_string());
    }
    let file = |key: &str, path: &str| {
        data.get(key).map(|content| {
            (
                path.to_string(),
                MountedFile {
                    kind,
                    object: object_name.clone(),
                    key: key.to_string(),
                    content: content.clone(),
                    mount_path: String::new(),
                },
            )
        })
    };
    match source["items"].as_array() {
        Some(items) => items
            .iter()
            .filter_map(|i| file(i["key"].as_str()?, i["path"].as_str()?))
            .collect(),
        None => data.keys().filter_map(|k| file(k, k)).collect(),
    }
}

/// Every file `container` sees through its ConfigMap, Secret and projected volume mounts, by
/// absolute path, and the mount paths that use `subPath` (those never see an update).
pub fn mounted_files(
    docs: &[Value],
    pod: &Value,
    container: &Value,
) -> (BTreeMap<String, MountedFile>, Vec<String>) {
    let volumes = pod["volumes"].as_array().cloned().unwrap_or_default();
    let mut files = BTreeMap::new();
    let mut sub_paths = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let mount_path = mount["mountPath"].as_str().unwrap_or_default();
        let Some(volume) = volumes.iter().find(|v| v["name"] == mount["name"]) else {
            continue;
        };
        let mut found = Vec::new();
        if volume["configMap"].is_object() {
            found.extend(source_files(docs, "ConfigMap", &volume["configMap"]));
        }
        if volume["secret"].is_object() {
            found.extend(source_files(docs, "Secret", &volume["secret"]));
        }
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if source["configMap"].is_object() {
                found.extend(source_files(docs, "ConfigMap", &source["configMap"]));
            }
            if source["secret"].is_object() {
                found.extend(source_files(docs, "Secret", &source["secret"]));
            }
        }
        if let Some(sub) = mount["subPath"].as_str() {
            sub_paths.push(mount_path.to_string());
            found.retain(|(path, _)| path == sub);
            for (_, file) in found {
                files.insert(
                    mount_path.to_string(),
                    MountedFile {
                        mount_path: mount_path.to_string(),
                        ..file
                    },
                );
            }
            continue;
        }
        for (path, file) in found {
            files.insert(
                format!("{}/{path}", mount_path.trim_end_matches('/')),
                MountedFile {
                    mount_path: mount_path.to_string(),
                    ..file
                },
            );
        }
    }
    (files, sub_paths)
}

/// `text` with every absolute path under one of `mount_paths` moved under `root`, in one pass
/// (so a mount path that is a prefix of another is not rewritten twice).
pub fn rewrite_mount_paths(text: &str, mount_paths: &[String], root: &Path) -> String {
    let mut mounts: Vec<&String> = mount_paths.iter().collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    let root = root.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let starts_a_path =
            c == '/' && !previous.is_some_and(|p| p.is_alphanumeric() || "/._-".contains(p));
        if starts_a_path
            && let Some(mount) = mounts.iter().find(|m| {
                rest.strip_prefix(m.as_str()).is_some_and(|after| {
                    after
                        .chars()
                        .next()
                        .is_none_or(|n| !(n.is_alphanumeric() || "._-".contains(n)))
                })
            })
        {
            out.push_str(&root);
            out.push_str(mount);
            rest = &rest[mount.len()..];
            previous = mount.chars().last();
            continue;
        }
        out.push(c);
        previous = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}
