//! `store`: the shared pool store, a compacted Kafka topic that holds the certificate
//! authorities and identity pools of every replica (the `store` module). Absent: the file's own
//! `certificate_authorities` are the configuration, as without replicas.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Issues;

const AT: &str = "store";

/// The default topic name: the leading underscore keeps it beside Kafka's own internal topics.
pub const DEFAULT_TOPIC: &str = "_kafka_mtls_proxy_pools";
const DEFAULT_REPLICATION_FACTOR: i16 = 3;
const DEFAULT_MIN_INSYNC_REPLICAS: i16 = 2;
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Where the chains and CRLs of the store's CAs are written, next to the configuration file.
pub const DEFAULT_DIRECTORY: &str = "pool-store";

/// `store:` as written.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<i16>,
    /// `host:port` of the brokers to bootstrap from (default: `upstream.bootstrap_servers`):
    /// another listener of the same cluster, e.g. one where the proxy signs in as itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<Vec<String>>,
    /// How long an API write waits for its record to come back through the local tail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_timeout_ms: Option<u64>,
    /// Where the PEM text of the store's CAs is written for the trust store (default
    /// `pool-store/` beside the configuration file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Before `upstream.proxy_login`: the proxy's own SCRAM user. Still read as
    /// `upstream.proxy_login`, with a warning (`config::proxy_login`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<RawStoreSasl>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStoreSasl {
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// `store`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub topic: String,
    pub replication_factor: i16,
    pub min_insync_replicas: i16,
    pub write_timeout: Duration,
    pub directory: PathBuf,
    /// `None`: the upstream's bootstrap servers.
    pub bootstrap_servers: Option<Vec<(String, u16)>>,
}

/// Kafka's rule for topic names (`Topic.validate`).
fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub(super) fn check(
    issues: &mut Issues,
    raw: Option<&RawStore>,
    config_file: &Path,
) -> Option<StoreConfig> {
    let raw = raw?;
    let errors_before = issues.errors.len();
    let topic = raw
        .topic
        .clone()
        .unwrap_or_else(|| DEFAULT_TOPIC.to_string());
    if !valid_topic(&topic) {
        issues.error(
            format!("{AT}.topic"),
            format!(
                "`{topic}` is not a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -, not . or ..)"
            ),
        );
    }
    let replication_factor = raw.replication_factor.unwrap_or(DEFAULT_REPLICATION_FACTOR);
    if replication_factor < 1 {
        issues.error(format!("{AT}.replication_factor"), "must be at least 1");
    }
    let min_insync_replicas = raw
        .min_insync_replicas
        .unwrap_or(DEFAULT_MIN_INSYNC_REPLICAS.min(replication_factor));
    if min_insync_replicas < 1 || min_insync_replicas > replication_factor {
        issues.error(
            format!("{AT}.min_insync_replicas"),
            format!("must be between 1 and replication_factor ({replication_factor})"),
        );
    }
    let write_timeout = match raw.write_timeout_ms {
        Some(0) => {
            issues.error(format!("{AT}.write_timeout_ms"), "must be more than 0");
            DEFAULT_WRITE_TIMEOUT
        }
        Some(ms) => Duration::from_millis(ms),
        None => DEFAULT_WRITE_TIMEOUT,
    };
    let directory = raw.directory.clone().unwrap_or_else(|| {
        let dir = match config_file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        dir.join(DEFAULT_DIRECTORY)
    });
    let bootstrap_servers = raw.bootstrap_servers.as_ref().map(|servers| {
        if servers.is_empty() {
            issues.error(
                format!("{AT}.bootstrap_servers"),
                "must name at least one broker",
            );
        }
        servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let parsed = super::split_host_port(s);
                if parsed.is_none() {
                    issues.error(
                        format!("{AT}.bootstrap_servers[{i}]"),
                        format!("`{s}` is not host:port"),
                    );
                }
                parsed
            })
            .collect()
    });
    (issues.errors.len() == errors_before).then_some(StoreConfig {
        topic,
        replication_factor,
        min_insync_replicas,
        write_timeout,
        directory,
        bootstrap_servers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_yaml(yaml: &str) -> (Option<StoreConfig>, Vec<String>) {
        let raw: RawStore = serde_saphyr::from_str(yaml).unwrap();
        let mut issues = Issues::default();
        let config = check(&mut issues, Some(&raw), Path::new("/etc/proxy/proxy.yaml"));
        let errors = issues
            .errors
            .iter()
            .map(|i| format!("{}: {}", i.field, i.reason))
            .collect();
        (config, errors)
    }

    #[test]
    fn defaults_name_the_topic_and_a_directory_beside_the_file() {
        let (config, errors) = check_yaml("{}");
        assert!(errors.is_empty(), "{errors:?}");
        let config = config.unwrap();
        assert_eq!(config.topic, DEFAULT_TOPIC);
        assert_eq!(
            (config.replication_factor, config.min_insync_replicas),
            (3, 2)
        );
        assert_eq!(config.directory, Path::new("/etc/proxy/pool-store"));
        assert!(config.bootstrap_servers.is_none());
        // One broker: min.insync.replicas follows the replication factor down.
        let (config, _) = check_yaml("replication_factor: 1");
        assert_eq!(config.unwrap().min_insync_replicas, 1);
    }

    #[test]
    fn every_bad_setting_is_named() {
        let (config, errors) = check_yaml(
            "topic: 'no spaces'\nreplication_factor: 2\nmin_insync_replicas: 3\n\
             write_timeout_ms: 0\nbootstrap_servers: [nohost]",
        );
        assert!(config.is_none());
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "store.topic",
                "store.min_insync_replicas",
                "store.write_timeout_ms",
                "store.bootstrap_servers[0]"
            ],
            "{errors:?}"
        );
    }
}
