//! The Kubernetes manifests (`deploy/kubernetes/gateway`, `deploy/kubernetes/sidecar`) agree
//! with the configuration they carry, without a Kubernetes cluster.
//!
//! For each layout the proxy's ConfigMap is written, with the Secret's files (the placeholders
//! replaced by a development PKI from `kafka-mtls-proxy pki`), into a temporary directory laid
//! out as the container sees its mounts, and loaded with the proxy's own loader. Then: every
//! port the configuration binds is a containerPort and the other way round; the probes hit
//! `/healthz` and `/readyz` on the admin port; every file the configuration names comes from a
//! mounted ConfigMap or Secret key; the Services target declared ports and expose each client
//! port on its own number; the grace period outlasts the drain and the preStop sleep; a
//! PodDisruptionBudget keeps a pod; the container runs non-root on a read-only root.
//!
//! [`broken_manifests_are_caught`] breaks one thing at a time and checks that it is reported.
//! [`a_kubernetes_symlink_swap_of_the_mounted_volume_is_reloaded`] pins the reload the
//! manifests rely on: a ConfigMap or Secret update arrives as the kubelet's `..data` swap.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kafka_mtls_proxy::config::{self, AdminTokenSource, AuditDestination, Config};
use serde_json::{Value, json};

mod support {
    pub mod kubernetes;
}
use support::kubernetes::{
    MountedFile, container_ports, kind, labels, mounted_files, name, of_kind, read_manifests,
    resolve_port, rewrite_mount_paths, selects,
};

/// The proxy's container in either layout.
const PROXY_CONTAINER: &str = "kafka-mtls-proxy";

/// The development PKI file that stands in for each Secret key the manifests use.
const SECRET_STAND_INS: &[(&str, &str)] = &[
    ("server.pem", "server.pem"),
    ("server.key", "server.key"),
    ("client-ca.pem", "acme-internal-client-ca.pem"),
];

/// What a Secret value must contain: the manifests carry placeholders, never key material.
const PLACEHOLDER: &str = "PLACEHOLDER";

fn layout_dir(layout: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(layout)
}

fn manifests(layout: &str) -> Vec<Value> {
    read_manifests(&layout_dir(layout))
        .into_iter()
        .map(|(_, doc)| doc)
        .collect()
}

/// A development PKI whose server certificate also names `host`, one per host for the whole
/// test binary (generating one takes a while).
fn pki_for(host: &str) -> Arc<tempfile::TempDir> {
    static CACHE: Mutex<Option<HashMap<String, Arc<tempfile::TempDir>>>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(host.to_string())
        .or_insert_with(|| {
            let dir = tempfile::tempdir().unwrap();
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
                .arg("pki")
                .arg("--out")
                .arg(dir.path())
                .args([
                    "--force",
                    "--validity-days",
                    "365",
                    "--password",
                    "k8s-test",
                ])
                .args(["--no-jks", "--host", host])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "kafka-mtls-proxy pki failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Arc::new(dir)
        })
        .clone()
}

/// The one workload (Deployment, StatefulSet, DaemonSet) with the proxy container.
fn proxy_workload(docs: &[Value]) -> Option<&Value> {
    docs.iter().find(|d| {
        ["Deployment", "StatefulSet", "DaemonSet"].contains(&kind(d))
            && d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == PROXY_CONTAINER))
    })
}

/// Everything wrong with a layout's manifests, as sentences; empty when they agree.
fn check(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(workload) = proxy_workload(docs) else {
        return vec![format!(
            "no Deployment or StatefulSet has a container named {PROXY_CONTAINER}"
        )];
    };
    let pod = &workload["spec"]["template"]["spec"];
    let pod_labels = labels(&workload["spec"]["template"]["metadata"]["labels"]);
    let containers = pod["containers"].as_array().cloned().unwrap_or_default();
    let proxy = containers
        .iter()
        .find(|c| c["name"] == PROXY_CONTAINER)
        .unwrap();
    check_workload(workload, &pod_labels, &mut problems);
    check_security(pod, proxy, &mut problems);

    // The configuration file, as the container is told to run it.
    let words: Vec<&str> = ["command", "args"]
        .iter()
        .flat_map(|k| proxy[*k].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    if !words.contains(&"run") {
        problems.push(format!(
            "the container does not run the proxy (`run`): {words:?}"
        ));
    }
    let Some(config_path) = words
        .windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1].to_string())
    else {
        problems.push(format!(
            "the container's command names no --config: {words:?}"
        ));
        return problems;
    };
    let (files, sub_paths) = mounted_files(docs, pod, proxy);
    for mount in sub_paths {
        problems.push(format!(
            "{mount} is a subPath mount: it never sees a ConfigMap or Secret update, so the \
             proxy's file watch cannot reload it"
        ));
    }
    let Some(config_file) = files.get(&config_path).filter(|f| f.kind == "ConfigMap") else {
        problems.push(format!(
            "--config {config_path} is not a key of a ConfigMap mounted in the container"
        ));
        return problems;
    };

    // Write the mounted files where the container would see them, under a temporary root.
    let raw = match config::parse_yaml(Path::new(&config_path), &config_file.content) {
        Ok(raw) => raw,
        Err(e) => {
            problems.push(format!("the ConfigMap's configuration does not parse: {e}"));
            return problems;
        }
    };
    let pki = pki_for(
        raw.listener
            .advertised_host
            .as_deref()
            .unwrap_or("localhost"),
    );
    let root = tempfile::tempdir().unwrap();
    let mount_paths: Vec<String> = files
        .values()
        .map(|f| f.mount_path.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for (path, file) in &files {
        let content = if *path == config_path {
            rewrite_mount_paths(&file.content, &mount_paths, root.path())
        } else if file.kind == "Secret" {
            secret_stand_in(file, pki.path(), &mut problems)
        } else {
            file.content.clone()
        };
        let target = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, content).unwrap();
    }
    let config = match config::load(&root.path().join(config_path.trim_start_matches('/'))) {
        Ok(config) => config,
        Err(e) => {
            problems.push(format!("the ConfigMap's configuration does not load: {e}"));
            return problems;
        }
    };
    for warning in &config.warnings {
        problems.push(format!("the configuration loads with a warning: {warning}"));
    }

    check_files(&config, root.path(), &files, pod, proxy, &mut problems);
    let client_ports = check_ports(&config, proxy, &mut problems);
    check_services(docs, pod, &pod_labels, &client_ports, &mut problems);
    check_drain(&config, pod, proxy, &mut problems);
    check_pod_ports(&config, &containers, &mut problems);
    check_disruption_budget(docs, workload, &pod_labels, &mut problems);
    check_network_policies(docs, &pod_labels, &client_ports, &mut problems);
    problems
}

/// The development PKI file standing in for a Secret key, after checking that the manifest
/// carries a placeholder there.
fn secret_stand_in(file: &MountedFile, pki: &Path, problems: &mut Vec<String>) -> String {
    if !file.content.contains(PLACEHOLDER) {
        problems.push(format!(
            "Secret {}: {} is not a marked placeholder ({PLACEHOLDER}): no key material in the \
             repository",
            file.object, file.key
        ));
    }
    match SECRET_STAND_INS.iter().find(|(key, _)| *key == file.key) {
        Some((_, stand_in)) => std::fs::read_to_string(pki.join(stand_in)).unwrap(),
        None => {
            problems.push(format!(
                "Secret {}: key {} has no development stand-in (add it to SECRET_STAND_INS)",
                file.object, file.key
            ));
            file.content.clone()
        }
    }
}

fn check_workload(
    workload: &Value,
    pod_labels: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    let selector = labels(&workload["spec"]["selector"]["matchLabels"]);
    if !selects(&selector, pod_labels) {
        problems.push(format!(
            "{} {}: spec.selector does not match its pod labels",
            kind(workload),
            name(workload)
        ));
    }
    if kind(workload) == "Deployment" && workload["spec"]["replicas"].as_u64().unwrap_or(1) < 2 {
        problems.push(
            "the gateway Deployment has fewer than 2 replicas: nothing serves while one drains"
                .to_string(),
        );
    }
}

fn check_security(pod: &Value, proxy: &Value, problems: &mut Vec<String>) {
    let container = &proxy["securityContext"];
    let non_root = container["runAsNonRoot"]
        .as_bool()
        .or_else(|| pod["securityContext"]["runAsNonRoot"].as_bool());
    if non_root != Some(true) {
        problems.push("the proxy container does not set runAsNonRoot: true".to_string());
    }
    if container["readOnlyRootFilesystem"] != json!(true) {
        problems.push("the proxy container's readOnlyRootFilesystem is not true".to_string());
    }
    if container["allowPrivilegeEscalation"] != json!(false) {
        problems.push("the proxy container's allowPrivilegeEscalation is not false".to_string());
    }
    for part in ["requests", "limits"] {
        if proxy["resources"][part]["memory"].is_null() {
            problems.push(format!(
                "the proxy container has no resources.{part}.memory"
            ));
        }
    }
}

/// Every file the configuration names is a mounted ConfigMap or Secret key; a file it writes
/// (the audit log) is on a writable volume, the root being read-only.
fn check_files(
    config: &Config,
    root: &Path,
    files: &BTreeMap<String, MountedFile>,
    pod: &Value,
    proxy: &Value,
    problems: &mut Vec<String>,
) {
    let in_container = |path: &Path| {
        path.strip_prefix(root)
            .ok()
            .map(|p| format!("/{}", p.display()))
    };
    let mut named = config.watched_files();
    if let Some(AdminTokenSource::File(token)) = &config.reloadable.admin_token {
        named.push(token.clone());
    }
    for file in named {
        if !in_container(&file).is_some_and(|p| files.contains_key(&p)) {
            problems.push(format!(
                "{} is named by the configuration but is no key of a ConfigMap or Secret \
                 mounted in the container",
                file.display()
            ));
        }
    }
    if let AuditDestination::File(path) = &config.startup.audit.destination {
        let writable: Vec<String> = proxy["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| {
                let volume = pod["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|v| v["name"] == m["name"]);
                m["readOnly"] != json!(true)
                    && volume.is_none_or(|v| {
                        v["emptyDir"].is_object() || v["persistentVolumeClaim"].is_object()
                    })
            })
            .filter_map(|m| m["mountPath"].as_str().map(str::to_string))
            .collect();
        let inside = in_container(path).unwrap_or_else(|| path.display().to_string());
        if !writable
            .iter()
            .any(|m| inside.starts_with(&format!("{}/", m.trim_end_matches('/'))))
        {
            problems.push(format!(
                "audit.path {inside} is a file, but not on a writable volume (the root file \
                 system is read-only): use \"-\" for standard output, or mount an emptyDir"
            ));
        }
    }
}

/// The ports the configuration binds are exactly the container's; returns the client ports
/// (bootstrap and brokers) with the field that binds each.
fn check_ports(
    config: &Config,
    proxy: &Value,
    problems: &mut Vec<String>,
) -> BTreeMap<u16, String> {
    let listener = &config.startup.listener;
    let mut client = BTreeMap::new();
    client.insert(listener.bootstrap.port(), "listener.bootstrap".to_string());
    if listener.broker_ports.node_ports.is_empty() {
        problems.push(
            "listener.broker_ports.node_ports is empty: declare each broker's node id and port, \
             so that the ports to expose are known"
                .to_string(),
        );
    }
    for (node, port) in &listener.broker_ports.node_ports {
        client.insert(*port, format!("listener.broker_ports.node_ports.{node}"));
    }
    let mut addresses = vec![
        ("listener.bootstrap", listener.bootstrap.ip()),
        ("listener.broker_bind_address", listener.broker_bind),
    ];
    let mut bound = client.clone();
    let admin_port = match &config.startup.admin {
        Some(admin) => {
            bound.insert(admin.listen.port(), "admin.listen".to_string());
            addresses.push(("admin.listen", admin.listen.ip()));
            Some(admin.listen.port())
        }
        None => {
            problems.push("no admin section: the probes need /healthz and /readyz".to_string());
            None
        }
    };
    for (field, ip) in addresses {
        if !ip.is_unspecified() {
            problems.push(format!(
                "{field} binds {ip}: in a pod it must bind 0.0.0.0, the address the kubelet \
                 and Services reach"
            ));
        }
    }
    let declared = container_ports(proxy);
    for (port, field) in &bound {
        if !declared.contains_key(port) {
            problems.push(format!(
                "{field} binds port {port}, but the container does not declare it"
            ));
        }
    }
    for (port, port_name) in &declared {
        if !bound.contains_key(port) {
            problems.push(format!(
                "containerPort {port} ({port_name}) is bound by nothing in the configuration"
            ));
        }
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &proxy[probe]["httpGet"];
        if get.is_null() {
            problems.push(format!("the proxy container has no {probe}.httpGet"));
            continue;
        }
        if get["path"] != path {
            problems.push(format!("{probe} gets {}, not {path}", get["path"]));
        }
        let port = resolve_port(&get["port"], &declared);
        if port.is_none() || port != admin_port {
            problems.push(format!(
                "{probe} hits port {}, not the admin listener's ({admin_port:?})",
                get["port"]
            ));
        }
    }
    client
}

/// Each Service over the pods targets ports a container declares, and together they expose
/// every client port on its own number: clients dial `advertised_host:port` as advertised.
fn check_services(
    docs: &[Value],
    pod: &Value,
    pod_labels: &BTreeMap<String, String>,
    client_ports: &BTreeMap<u16, String>,
    problems: &mut Vec<String>,
) {
    let declared: BTreeMap<u16, String> = pod["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(container_ports)
        .collect();
    let mut exposed = BTreeSet::new();
    for service in of_kind(docs, "Service") {
        if !selects(&labels(&service["spec"]["selector"]), pod_labels) {
            problems.push(format!(
                "Service {}: selects no pod of the layout",
                name(service)
            ));
            continue;
        }
        for port in service["spec"]["ports"].as_array().into_iter().flatten() {
            let target = if port["targetPort"].is_null() {
                &port["port"]
            } else {
                &port["targetPort"]
            };
            match resolve_port(target, &declared).filter(|p| declared.contains_key(p)) {
                Some(target) => {
                    if port["port"].as_u64() == Some(u64::from(target)) {
                        exposed.insert(target);
                    }
                }
                None => problems.push(format!(
                    "Service {}: port {} targets {target}, which no container of the pod \
                     declares",
                    name(service),
                    port["name"]
                )),
            }
        }
    }
    for (port, field) in client_ports {
        if !exposed.contains(port) {
            problems.push(format!(
                "port {port} ({field}) is not exposed by a Service on the same port number \
                 (clients dial advertised_host:{port})"
            ));
        }
    }
}

/// The kubelet's SIGKILL comes after the preStop sleep and the whole drain.
fn check_drain(config: &Config, pod: &Value, proxy: &Value, problems: &mut Vec<String>) {
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    let pre_stop = &proxy["lifecycle"]["preStop"];
    let exec_sleep = || {
        let words: Vec<&str> = pre_stop["exec"]["command"]
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let at = words.iter().position(|w| w.ends_with("sleep"))?;
        words.get(at + 1)?.parse::<u64>().ok()
    };
    let Some(sleep) = pre_stop["sleep"]["seconds"].as_u64().or_else(exec_sleep) else {
        problems.push(
            "the proxy container has no preStop sleep: SIGTERM would stop it accepting before \
             the endpoints are removed"
                .to_string(),
        );
        return;
    };
    let drain = config.reloadable.limits.drain_timeout.as_secs_f64();
    if grace as f64 <= drain + sleep as f64 {
        problems.push(format!(
            "terminationGracePeriodSeconds {grace} is not more than limits.drain_timeout_ms \
             ({drain} s) + the preStop sleep ({sleep} s)"
        ));
    }
}

/// Containers of one pod share its ports: none may be declared twice. A loopback upstream (the
/// sidecar's broker) is a port another container of the pod declares.
fn check_pod_ports(config: &Config, containers: &[Value], problems: &mut Vec<String>) {
    let mut owner: BTreeMap<u16, String> = BTreeMap::new();
    for container in containers {
        let container_name = container["name"].as_str().unwrap_or_default().to_string();
        for port in container_ports(container).into_keys() {
            if let Some(first) = owner.insert(port, container_name.clone()) {
                problems.push(format!(
                    "port {port} is declared by containers {first} and {container_name}: they \
                     share the pod's network"
                ));
            }
        }
    }
    for (host, port) in &config.reloadable.upstream.bootstrap_servers {
        let loopback =
            host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if loopback
            && owner
                .get(port)
                .is_none_or(|c| c.as_str() == PROXY_CONTAINER)
        {
            problems.push(format!(
                "upstream.bootstrap_servers names {host}:{port}, but no other container of the \
                 pod declares port {port}"
            ));
        }
    }
}

fn check_disruption_budget(
    docs: &[Value],
    workload: &Value,
    pod_labels: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    let replicas = workload["spec"]["replicas"].as_u64().unwrap_or(1);
    let budgets: Vec<&Value> = of_kind(docs, "PodDisruptionBudget")
        .into_iter()
        .filter(|b| selects(&labels(&b["spec"]["selector"]["matchLabels"]), pod_labels))
        .collect();
    if budgets.is_empty() {
        problems.push("no PodDisruptionBudget selects the proxy's pods".to_string());
    }
    for budget in budgets {
        let spec = &budget["spec"];
        let keeps_one = match (
            spec["minAvailable"].as_u64(),
            spec["maxUnavailable"].as_u64(),
        ) {
            (Some(min), _) => min >= 1,
            (None, Some(max)) => max < replicas,
            _ => false,
        };
        if !keeps_one {
            problems.push(format!(
                "PodDisruptionBudget {} does not keep at least one pod (minAvailable ≥ 1, or \
                 maxUnavailable < {replicas} replicas, as numbers)",
                name(budget)
            ));
        }
    }
}

/// A NetworkPolicy over the pods lets anyone reach every client port (an ingress rule without
/// `from`): the Service's clients come from anywhere.
fn check_network_policies(
    docs: &[Value],
    pod_labels: &BTreeMap<String, String>,
    client_ports: &BTreeMap<u16, String>,
    problems: &mut Vec<String>,
) {
    for policy in of_kind(docs, "NetworkPolicy") {
        if !selects(
            &labels(&policy["spec"]["podSelector"]["matchLabels"]),
            pod_labels,
        ) {
            continue;
        }
        let open: BTreeSet<u16> = policy["spec"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|rule| rule["from"].is_null())
            .flat_map(|rule| rule["ports"].as_array().into_iter().flatten())
            .filter_map(|p| resolve_port(&p["port"], &BTreeMap::new()))
            .collect();
        for (port, field) in client_ports {
            if !open.contains(port) {
                problems.push(format!(
                    "NetworkPolicy {}: port {port} ({field}) is not open to clients",
                    name(policy)
                ));
            }
        }
    }
}

/// `kustomization.yaml` lists every manifest of the directory, and names the proxy's image.
fn check_kustomization(layout: &str) -> Vec<String> {
    let dir = layout_dir(layout);
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let kustomization: Value = serde_saphyr::from_str(&text).unwrap();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let files: BTreeSet<String> = read_manifests(&dir).into_iter().map(|(f, _)| f).collect();
    let mut problems = Vec::new();
    if listed != files {
        problems.push(format!(
            "{layout}/kustomization.yaml lists {listed:?}, the directory has {files:?}"
        ));
    }
    let docs = manifests(layout);
    let image = proxy_workload(&docs).and_then(|w| {
        w["spec"]["template"]["spec"]["containers"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == PROXY_CONTAINER)?["image"]
            .as_str()
            .map(|i| i.split(':').next().unwrap_or_default().to_string())
    });
    let named = kustomization["images"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|i| i["name"].as_str() == image.as_deref());
    if !named {
        problems.push(format!(
            "{layout}/kustomization.yaml's images do not name the proxy's image {image:?}"
        ));
    }
    problems
}

#[test]
fn gateway_manifests_agree_with_their_config() {
    let mut problems = check(&manifests("gateway"));
    problems.extend(check_kustomization("gateway"));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn sidecar_manifests_agree_with_their_config() {
    let mut problems = check(&manifests("sidecar"));
    problems.extend(check_kustomization("sidecar"));
    assert!(problems.is_empty(), "{problems:#?}");
}

// ---------------------------------------------------------------------------------------------
// Each check can fail: one thing broken at a time must be reported.
// ---------------------------------------------------------------------------------------------

/// A change to a layout's parsed manifests.
type Breakage = Box<dyn Fn(&mut Vec<Value>)>;

/// `docs`' document of `kind`/`name`, for changing.
fn doc_mut<'a>(docs: &'a mut [Value], wanted_kind: &str, wanted_name: &str) -> &'a mut Value {
    docs.iter_mut()
        .find(|d| kind(d) == wanted_kind && name(d) == wanted_name)
        .unwrap_or_else(|| panic!("no {wanted_kind} {wanted_name}"))
}

/// Set the value at a JSON pointer of one document (`null` removes an object key or an array
/// element).
fn set(
    wanted_kind: &'static str,
    wanted_name: &'static str,
    pointer: &'static str,
    value: Value,
) -> Breakage {
    Box::new(move |docs| {
        let (parent, last) = pointer.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let last = last.as_str();
        let doc = doc_mut(docs, wanted_kind, wanted_name);
        let parent = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{wanted_kind} {wanted_name}: no {parent}"));
        match (parent, value.is_null()) {
            (Value::Array(a), true) => {
                a.remove(last.parse().unwrap());
            }
            (Value::Array(a), false) => a[last.parse::<usize>().unwrap()] = value.clone(),
            (Value::Object(o), true) => {
                assert!(o.remove(last).is_some(), "{pointer}: nothing to remove");
            }
            (Value::Object(o), false) => {
                o.insert(last.to_string(), value.clone());
            }
            _ => panic!("{pointer}: not in an object or array"),
        }
    })
}

/// Replace `from` (which must be there) with `to` in the proxy configuration of ConfigMap
/// `config_map`.
fn edit_config(config_map: &'static str, from: &'static str, to: &'static str) -> Breakage {
    Box::new(move |docs| {
        let text = &mut doc_mut(docs, "ConfigMap", config_map)["data"]["proxy.yaml"];
        let old = text.as_str().unwrap().to_string();
        assert!(old.contains(from), "{config_map}: no `{from}` to replace");
        *text = Value::String(old.replacen(from, to, 1));
    })
}

fn assert_caught(layout: &str, breakages: Vec<(&str, Breakage)>) {
    let pristine = manifests(layout);
    assert!(check(&pristine).is_empty(), "{:#?}", check(&pristine));
    for (expected, breakage) in breakages {
        let mut docs = pristine.clone();
        breakage(&mut docs);
        let problems = check(&docs);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{layout}: expected a problem containing {expected:?}, got {problems:#?}"
        );
    }
}

#[test]
fn broken_manifests_are_caught() {
    const DEPLOYMENT: &str = "kafka-mtls-proxy-gateway";
    const CM: &str = "kafka-mtls-proxy-gateway";
    let gateway: Vec<(&str, Breakage)> = vec![
        (
            "node_ports.2 binds port 9095, but the container does not declare it",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/containers/0/ports/3",
                Value::Null,
            ),
        ),
        (
            "containerPort 9999 (extra) is bound by nothing",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/containers/0/ports/3",
                json!({"name": "extra", "containerPort": 9999}),
            ),
        ),
        (
            "node_ports.2 binds port 9096",
            edit_config(CM, "2: 9095", "2: 9096"),
        ),
        (
            "node_ports is empty",
            edit_config(
                CM,
                "node_ports:\n      0: 9093\n      1: 9094\n      2: 9095",
                "node_ports: {}",
            ),
        ),
        (
            "listener.bootstrap binds 127.0.0.1",
            edit_config(CM, "bootstrap: 0.0.0.0:9092", "bootstrap: 127.0.0.1:9092"),
        ),
        (
            "admin.listen binds 127.0.0.1",
            edit_config(CM, "listen: 0.0.0.0:9644", "listen: 127.0.0.1:9644"),
        ),
        (
            "livenessProbe gets \"/health\"",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/containers/0/livenessProbe/httpGet/path",
                json!("/health"),
            ),
        ),
        (
            "readinessProbe hits port \"bootstrap\"",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/containers/0/readinessProbe/httpGet/port",
                json!("bootstrap"),
            ),
        ),
        (
            "tls.certificate_chain",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/volumes/0/projected/sources/1/secret/items/0/path",
                json!("tls/cert.pem"),
            ),
        ),
        (
            "key ca.crt has no development stand-in",
            Box::new(|docs: &mut Vec<Value>| {
                let data =
                    &mut doc_mut(docs, "Secret", "kafka-mtls-proxy-gateway-tls")["stringData"];
                let ca = data
                    .as_object_mut()
                    .unwrap()
                    .remove("client-ca.pem")
                    .unwrap();
                data["ca.crt"] = ca;
                doc_mut(docs, "Deployment", DEPLOYMENT)
                    .pointer_mut("/spec/template/spec/volumes/0/projected/sources/1/secret/items/2")
                    .unwrap()["key"] = json!("ca.crt");
            }),
        ),
        (
            "is not a marked placeholder",
            set(
                "Secret",
                "kafka-mtls-proxy-gateway-tls",
                "/stringData/server.key",
                json!("-----BEGIN PRIVATE KEY-----"),
            ),
        ),
        (
            "is a subPath mount",
            Box::new(|docs: &mut Vec<Value>| {
                let mount = doc_mut(docs, "Deployment", DEPLOYMENT)
                    .pointer_mut("/spec/template/spec/containers/0/volumeMounts/0")
                    .unwrap();
                mount["mountPath"] = json!("/etc/kafka-mtls-proxy/proxy.yaml");
                mount["subPath"] = json!("proxy.yaml");
            }),
        ),
        (
            "audit.path",
            edit_config(CM, "path: \"-\"", "path: /var/log/audit.log"),
        ),
        (
            "targets \"broker-9\", which no container",
            set(
                "Service",
                "kafka-mtls-proxy-gateway",
                "/spec/ports/3/targetPort",
                json!("broker-9"),
            ),
        ),
        (
            "port 9095 (listener.broker_ports.node_ports.2) is not exposed",
            set(
                "Service",
                "kafka-mtls-proxy-gateway",
                "/spec/ports/3/port",
                json!(19095),
            ),
        ),
        (
            "Service kafka-mtls-proxy-gateway-admin: selects no pod",
            set(
                "Service",
                "kafka-mtls-proxy-gateway-admin",
                "/spec/selector/app.kubernetes.io~1component",
                json!("other"),
            ),
        ),
        (
            "terminationGracePeriodSeconds 35 is not more than",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/terminationGracePeriodSeconds",
                json!(35),
            ),
        ),
        (
            "terminationGracePeriodSeconds 45 is not more than limits.drain_timeout_ms (40 s)",
            edit_config(CM, "drain_timeout_ms: 30000", "drain_timeout_ms: 40000"),
        ),
        (
            "no preStop sleep",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/containers/0/lifecycle",
                Value::Null,
            ),
        ),
        (
            "no PodDisruptionBudget selects",
            set(
                "PodDisruptionBudget",
                DEPLOYMENT,
                "/spec/selector/matchLabels/app.kubernetes.io~1component",
                json!("other"),
            ),
        ),
        (
            "does not keep at least one pod",
            set(
                "PodDisruptionBudget",
                DEPLOYMENT,
                "/spec/minAvailable",
                json!(0),
            ),
        ),
        (
            "fewer than 2 replicas",
            set("Deployment", DEPLOYMENT, "/spec/replicas", json!(1)),
        ),
        (
            "readOnlyRootFilesystem is not true",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem",
                json!(false),
            ),
        ),
        (
            "runAsNonRoot",
            set(
                "Deployment",
                DEPLOYMENT,
                "/spec/template/spec/securityContext/runAsNonRoot",
                Value::Null,
            ),
        ),
        (
            "does not load",
            edit_config(CM, "min_version: \"1.2\"", "min_version: \"1.1\""),
        ),
    ];
    assert_caught("gateway", gateway);

    let sidecar: Vec<(&str, Breakage)> = vec![
        (
            "NetworkPolicy kafka: port 9095 (listener.broker_ports.node_ports.2) is not open",
            set(
                "NetworkPolicy",
                "kafka",
                "/spec/ingress/0/ports/3",
                Value::Null,
            ),
        ),
        (
            "port 9093 is declared by containers kafka and kafka-mtls-proxy",
            set(
                "StatefulSet",
                "kafka",
                "/spec/template/spec/containers/0/ports/1/containerPort",
                json!(9093),
            ),
        ),
        (
            "upstream.bootstrap_servers names 127.0.0.1:19099",
            edit_config(
                "kafka-mtls-proxy-sidecar",
                "127.0.0.1:19092",
                "127.0.0.1:19099",
            ),
        ),
    ];
    assert_caught("sidecar", sidecar);
}

#[test]
fn mount_paths_are_rewritten_once() {
    let mounts = vec!["/etc/p".to_string(), "/etc/p-tls".to_string()];
    let root = Path::new("/tmp/r");
    let text =
        "a: /etc/p/x.pem\nb: \"/etc/p-tls/k.key\"\nc: /etc/px/no\nd: /other/etc/p/no\ne: /etc/p\n";
    assert_eq!(
        rewrite_mount_paths(text, &mounts, root),
        "a: /tmp/r/etc/p/x.pem\nb: \"/tmp/r/etc/p-tls/k.key\"\nc: /etc/px/no\nd: /other/etc/p/no\ne: /tmp/r/etc/p\n"
    );
}

// ---------------------------------------------------------------------------------------------
// The reload the manifests rely on: a ConfigMap or Secret update is a symlink swap.
// ---------------------------------------------------------------------------------------------

/// Write one generation of a mounted volume as the kubelet does: the files in a timestamped
/// directory `vol/..<stamp>`, reached through `vol/..data`.
fn write_volume_generation(vol: &Path, stamp: &str, pki: &Path, drain_timeout_ms: u64) {
    let generation = vol.join(stamp);
    std::fs::create_dir_all(generation.join("tls")).unwrap();
    for (key, stand_in) in SECRET_STAND_INS {
        std::fs::copy(pki.join(stand_in), generation.join("tls").join(key)).unwrap();
    }
    let tls = vol.join("tls");
    let text = format!(
        r#"listener:
  bootstrap: 127.0.0.1:0
  advertised_host: localhost
tls:
  certificate_chain: "{tls}/server.pem"
  private_key: "{tls}/server.key"
upstream:
  bootstrap_servers: [127.0.0.1:9]
audit:
  path: "off"
reload:
  watch_interval_ms: 50
limits:
  drain_timeout_ms: {drain_timeout_ms}
certificate_authorities:
  - id: ca-acme
    display_name: Acme Internal Client CA
    certificate_chain: "{tls}/client-ca.pem"
    identity_pools:
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client"'
"#,
        tls = tls.display(),
    );
    std::fs::write(generation.join("proxy.yaml"), text).unwrap();
    // The kubelet's atomic step: a new `..data` link renamed over the old one.
    let next = vol.join("..data_tmp");
    std::os::unix::fs::symlink(stamp, &next).unwrap();
    std::fs::rename(&next, vol.join("..data")).unwrap();
}

#[tokio::test]
async fn a_kubernetes_symlink_swap_of_the_mounted_volume_is_reloaded() {
    let pki = pki_for("localhost");
    let vol = tempfile::tempdir().unwrap();
    let vol = vol.path();
    write_volume_generation(vol, "..2026_12_06_01_00_00.000000001", pki.path(), 600_000);
    // The names the configuration uses are links through `..data`, as in a projected volume.
    std::os::unix::fs::symlink("..data/proxy.yaml", vol.join("proxy.yaml")).unwrap();
    std::os::unix::fs::symlink("..data/tls", vol.join("tls")).unwrap();

    let config = config::load(&vol.join("proxy.yaml")).unwrap();
    let server = kafka_mtls_proxy::server::Server::bind(config)
        .await
        .unwrap();
    let ctx = server.reloader().clone();
    let watch = tokio::spawn(kafka_mtls_proxy::reload::watch_files(ctx.clone()));
    // On this single-threaded runtime the watch now runs to its first sleep: it has taken
    // the files' stamps before they change.
    tokio::task::yield_now().await;
    let drain = || ctx.current().config.limits.drain_timeout;
    assert_eq!(drain(), std::time::Duration::from_secs(600));

    // The update: a new generation directory and the swap; the old one goes, as it does.
    write_volume_generation(vol, "..2026_12_06_01_01_00.000000002", pki.path(), 250);
    std::fs::remove_dir_all(vol.join("..2026_12_06_01_00_00.000000001")).unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while drain() != std::time::Duration::from_millis(250) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    watch.abort();
    assert_eq!(
        drain(),
        std::time::Duration::from_millis(250),
        "the file watch did not reload after the symlink swap"
    );
}
