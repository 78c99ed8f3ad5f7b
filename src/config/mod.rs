//! Configuration: the YAML file, parsed once into typed, checked structs.
//!
//! [`load`] reads the file, deserializes it into the [`raw`] schema (unknown keys are errors),
//! then checks every field and collects **every** problem in one pass, each with its field path
//! and reason, so an operator fixes a broken file in one round. What comes out, [`Config`], is
//! ready to use: certificates parsed, CEL filters compiled, defaults filled in. Nothing
//! downstream re-validates.
//!
//! Relative paths in the file are resolved against the working directory of the process (the
//! example configuration is written to be run from the repository root).

mod permissions;
pub mod raw;
mod tls_files;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use crate::acl::{AclRule, RuleSpec};
use crate::kafka::frame::DEFAULT_MAX_FRAME_BYTES;
use crate::pools::{CaPools, ExternalIdentifier, Filter, Pool};
use raw::RawConfig;

pub use tls_files::{
    load_ca_bundle, load_certified_key, load_crls, load_crls_bytes, load_pem_certificates,
};

/// Default limits. Each is the value a Kafka broker uses where one exists.
pub mod defaults {
    /// Kafka's `socket.request.max.bytes`.
    pub const MAX_FRAME_BYTES: usize = super::DEFAULT_MAX_FRAME_BYTES;
    pub const MAX_CONNECTIONS: usize = 10_000;
    pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
    /// Kafka's `connections.max.idle.ms`.
    pub const IDLE_TIMEOUT_MS: u64 = 600_000;
    /// Requests a client may have in flight on one connection before the proxy stops reading
    /// from it (back-pressure, not an error).
    pub const MAX_IN_FLIGHT_REQUESTS: usize = 1_000;
    pub const POOL_CACHE_ENTRIES: usize = 10_000;
    /// Confluent Cloud's `identity_pools_per_certificate_authority` quota.
    pub const POOLS_PER_CA: usize = 100;
    /// Per-broker listeners the proxy opens at most: a broker (or an attacker in its place)
    /// listing thousands of node ids must not exhaust the proxy's file descriptors.
    pub const MAX_BROKER_LISTENERS: usize = 1_000;
    /// How long shutdown waits for connections to deliver the answers already in flight.
    pub const DRAIN_TIMEOUT_MS: u64 = 30_000;
    pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 10_000;
    pub const AUDIT_QUEUE_CAPACITY: usize = 10_000;
    pub const AUDIT_PATH: &str = "audit.log";
    pub const AUDIT_SOURCE: &str = "kafka-mtls-proxy";
    pub const RELOAD_WATCH_INTERVAL_MS: u64 = 2_000;
    pub const CRL_REFRESH_INTERVAL_MS: u64 = 24 * 60 * 60 * 1_000;
    pub const CRL_FETCH_TIMEOUT_MS: u64 = 10_000;
    /// A CRL download larger than this is refused (a CA's CRL is kilobytes to a few MB).
    pub const CRL_MAX_BYTES: u64 = 32 * 1024 * 1024;
    /// Confluent allows 1 to 4 certificates in a CA chain.
    pub const MAX_CA_CHAIN: usize = 4;
    /// The admin server's address when `admin:` is present without `listen`: loopback,
    /// because its endpoints have no authentication.
    pub const ADMIN_LISTEN: &str = "127.0.0.1:9644";
    /// oauthbearer key ring and token defaults: the oauth module's (see there why).
    pub use crate::oauth::keyring::defaults::{
        OAUTH_PUBLISH_AHEAD_MS, OAUTH_ROTATE_EVERY_MS, OAUTH_TOKEN_LIFETIME_MS,
    };
    /// Kafka's default `sasl.oauthbearer.jwks.endpoint.refresh.ms`.
    pub const KAFKA_JWKS_REFRESH_MS: u64 = 60 * 60 * 1_000;
}

/// Everything the proxy needs to run, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from.
    pub source: PathBuf,
    pub listener: ListenerConfig,
    pub server_tls: ServerTlsConfig,
    pub upstream: UpstreamConfig,
    pub audit: AuditConfig,
    pub limits: Limits,
    pub log: LogConfig,
    pub reload: ReloadConfig,
    pub revocation: RevocationConfig,
    pub authorities: Vec<CertificateAuthority>,
    /// The admin HTTP server; `None` when the file has no `admin` section.
    pub admin: Option<AdminConfig>,
    /// Proxy-side ACLs (global part; certificate authorities and pools carry their own).
    pub authorization: AuthorizationConfig,
    /// Things that load but are probably not what the operator meant (e.g. an empty filter).
    pub warnings: Vec<Issue>,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub bootstrap: SocketAddr,
    pub advertised_host: String,
    pub broker_bind: IpAddr,
    pub broker_ports: BrokerPorts,
}

/// Port-per-broker mapping: how a node id becomes the proxy port clients dial.
#[derive(Debug, Clone)]
pub struct BrokerPorts {
    pub first_port: u16,
    pub node_ports: BTreeMap<i32, u16>,
}

impl BrokerPorts {
    /// The proxy port for `node_id`, or `None` when it would fall outside the port range.
    pub fn port_for(&self, node_id: i32) -> Option<u16> {
        if let Some(port) = self.node_ports.get(&node_id) {
            return Some(*port);
        }
        if node_id < 0 {
            return None;
        }
        u16::try_from(i64::from(self.first_port) + i64::from(node_id)).ok()
    }
}

#[derive(Clone)]
pub struct ServerTlsConfig {
    pub certificate_chain_path: PathBuf,
    pub private_key_path: PathBuf,
    pub certified_key: Arc<CertifiedKey>,
    pub tls13_only: bool,
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfig")
            .field("certificate_chain_path", &self.certificate_chain_path)
            .field("private_key_path", &self.private_key_path)
            .field("tls13_only", &self.tls13_only)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// `(host, port)` pairs, tried in order.
    pub bootstrap_servers: Vec<(String, u16)>,
    /// Files the upstream TLS settings were read from (for the reload watch).
    pub tls_files: Vec<PathBuf>,
    pub tls: Option<UpstreamTlsConfig>,
    pub connect_timeout: Duration,
    /// Who the proxy is to the brokers on behalf of a connection's primary pool.
    pub identity: UpstreamIdentity,
}

/// `upstream.identity`.
#[derive(Debug, Clone, Default)]
pub enum UpstreamIdentity {
    /// The proxy connects as itself (plaintext, or its TLS client certificate); no SASL.
    #[default]
    None,
    /// SASL/SCRAM as the primary pool's broker user, before any client frame is forwarded.
    Scram {
        mechanism: crate::scram::Mechanism,
        /// Pool id → credentials. Every configured pool has an entry (checked at load).
        credentials: BTreeMap<String, ScramCredential>,
    },
    /// SASL/OAUTHBEARER with a JWT the proxy signs itself, naming the primary pool as `sub`
    /// (see [`crate::oauth`]). `token` may change on reload; `keys` only at restart.
    OAuthBearer {
        token: crate::oauth::TokenSettings,
        keys: crate::oauth::KeySettings,
    },
}

/// One pool's broker user and where its password is read from (at each connect, so a rotated
/// secret is picked up without a reload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub username: String,
    pub password: SecretSource,
}

/// A reference to a secret. `Debug` shows the reference, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

impl SecretSource {
    /// Read the secret now. A file's trailing line break is not part of the password.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        let value = match self {
            SecretSource::Env(name) => std::env::var_os(name)
                .ok_or_else(|| format!("environment variable {name} is not set"))?
                .into_encoded_bytes(),
            SecretSource::File(path) => {
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?
            }
        };
        let mut value = value;
        while value.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            value.pop();
        }
        if value.is_empty() {
            return Err(match self {
                SecretSource::Env(name) => format!("environment variable {name} is empty"),
                SecretSource::File(path) => format!("{} is empty", path.display()),
            });
        }
        Ok(value)
    }
}

#[derive(Clone)]
pub struct UpstreamTlsConfig {
    pub roots: Arc<rustls::RootCertStore>,
    pub client_key: Option<Arc<CertifiedKey>>,
    pub server_name: Option<String>,
}

impl fmt::Debug for UpstreamTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTlsConfig")
            .field("roots", &self.roots.len())
            .field("client_key", &self.client_key.is_some())
            .field("server_name", &self.server_name)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDestination {
    File(PathBuf),
    Stdout,
    Off,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub destination: AuditDestination,
    pub source: String,
    pub queue_capacity: usize,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_connections: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_in_flight_requests: usize,
    pub pool_cache_entries: usize,
    pub pools_per_ca: usize,
    pub max_broker_listeners: usize,
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct RevocationConfig {
    pub crl_refresh_interval: Duration,
    pub crl_fetch_timeout: Duration,
}

/// What a configuration reload does to connections that are already open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingConnections {
    /// Keep them as they are; the new configuration applies to new connections.
    Keep,
    /// Re-check each one against the new certificate authorities and pools; close those that
    /// are no longer admitted (a removed pool must not keep access forever).
    Reevaluate,
}

#[derive(Debug, Clone)]
pub struct ReloadConfig {
    pub existing_connections: ExistingConnections,
    /// `None`: no file watch (SIGHUP only).
    pub watch_interval: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

/// The admin HTTP server (health, readiness, metrics, the IAM API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Where the bearer token that IAM API writes require comes from; `None`: read-only.
    pub token: Option<AdminTokenSource>,
}

/// Where the admin API's bearer token is read from. It is read again for every write, so a
/// token file can be rotated without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenSource {
    /// `admin.token_file`.
    File(PathBuf),
    /// `admin.token_env`: the name of an environment variable.
    Env(String),
}

impl AdminTokenSource {
    /// The token (surrounding whitespace, such as a file's final newline, removed), or why it
    /// cannot be had.
    pub fn read(&self) -> Result<String, String> {
        let token = match self {
            AdminTokenSource::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read: {e}", path.display()))?,
            AdminTokenSource::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable `{name}` is not set (or not UTF-8)"))?,
        };
        let token = token.trim();
        if token.is_empty() {
            return Err(match self {
                AdminTokenSource::File(path) => format!("{}: is empty", path.display()),
                AdminTokenSource::Env(name) => format!("environment variable `{name}` is empty"),
            });
        }
        Ok(token.to_string())
    }

    /// The configuration key it came from, for messages.
    pub fn field(&self) -> &'static str {
        match self {
            AdminTokenSource::File(_) => "admin.token_file",
            AdminTokenSource::Env(_) => "admin.token_env",
        }
    }
}

/// `authorization` at the top level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationConfig {
    /// Enforce ACLs for certificate authorities that do not say otherwise.
    pub enabled: bool,
    /// Rules for every connection.
    pub rules: Vec<AclRule>,
}

/// `certificate_authorities[].authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaAuthorization {
    /// `None`: as the global setting.
    pub enabled: Option<bool>,
    /// Rules for every pool of this certificate authority.
    pub rules: Vec<AclRule>,
}

/// A trusted client certificate authority and the identity pools it admits.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub certificate_chain_path: PathBuf,
    /// 1 to 4 CA certificates, as in the file.
    pub certificates: Vec<CertificateDer<'static>>,
    pub crl_chain_path: Option<PathBuf>,
    /// CRLs from `crl_chain` (CRLs fetched from `crl_url` are kept by the proxy, not here).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub crl_url: Option<String>,
    pub require_crl: bool,
    pub pools: CaPools,
    pub authorization: CaAuthorization,
}

/// One problem (or warning) found in a configuration: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Dotted path of the field, e.g. `certificate_authorities[0].identity_pools[1].filter`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration file: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Not YAML, wrong types, or an unknown key (the message carries line and column).
    #[error("{file}: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: {} problem(s) found:\n{}", issues.len(), display_issues(file, issues))]
    Invalid { file: PathBuf, issues: Vec<Issue> },
}

impl ConfigError {
    /// Every problem as `FILE: FIELD: REASON` lines, for `check-config`.
    pub fn issues(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { file, issues } => issues
                .iter()
                .map(|i| format!("{}: {}", file.display(), i))
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

fn display_issues(file: &Path, issues: &[Issue]) -> String {
    issues
        .iter()
        .map(|i| format!("  {}: {}", file.display(), i))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Read, parse and check a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let raw = parse_yaml(path, &text)?;
    from_raw(path, &raw)
}

/// Deserialize the YAML text (shape only).
pub fn parse_yaml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    serde_saphyr::from_str::<RawConfig>(text).map_err(|e| ConfigError::Syntax {
        file: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Check a deserialized configuration and build the typed one. `path` names the file in errors.
pub fn from_raw(path: &Path, raw: &RawConfig) -> Result<Config, ConfigError> {
    let mut v = Checker::default();
    let limits = v.limits(raw);
    let listener = v.listener(raw);
    let server_tls = v.server_tls(raw, listener.as_ref().map(|l| l.advertised_host.as_str()));
    let upstream = v.upstream(raw);
    let audit = v.audit(raw);
    let log = v.log(raw);
    let reload = v.reload(raw);
    let revocation = RevocationConfig {
        crl_refresh_interval: Duration::from_millis(v.positive(
            "revocation.crl_refresh_interval_ms",
            raw.revocation.crl_refresh_interval_ms,
            defaults::CRL_REFRESH_INTERVAL_MS,
        )),
        crl_fetch_timeout: Duration::from_millis(v.positive(
            "revocation.crl_fetch_timeout_ms",
            raw.revocation.crl_fetch_timeout_ms,
            defaults::CRL_FETCH_TIMEOUT_MS,
        )),
    };
    let authorities = v.authorities(raw, &limits);
    let identity = v.upstream_identity(raw, &authorities);
    let upstream = upstream.map(|mut u| {
        u.identity = identity.unwrap_or_default();
        u
    });
    let admin = v.admin(raw, listener.as_ref());
    let authorization = v.authorization(raw, &authorities);
    match (listener, server_tls, upstream, audit, log, reload) {
        (
            Some(listener),
            Some(server_tls),
            Some(upstream),
            Some(audit),
            Some(log),
            Some(reload),
        ) if v.errors.is_empty() => Ok(Config {
            source: path.to_path_buf(),
            listener,
            server_tls,
            upstream,
            audit,
            limits,
            log,
            reload,
            revocation,
            authorities,
            admin,
            authorization,
            warnings: v.warnings,
        }),
        _ => Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            issues: v.errors,
        }),
    }
}

/// Collects errors and warnings while building typed values.
#[derive(Default)]
struct Checker {
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
}

impl Checker {
    fn error(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(Issue {
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn warn(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(Issue {
            field: field.into(),
            reason: reason.into(),
        });
    }

    fn positive<T: Copy + PartialOrd + Default + fmt::Display>(
        &mut self,
        field: &str,
        value: Option<T>,
        default: T,
    ) -> T {
        match value {
            Some(v) if v <= T::default() => {
                self.error(field, format!("must be greater than 0 (got {v})"));
                default
            }
            Some(v) => v,
            None => default,
        }
    }

    fn limits(&mut self, raw: &RawConfig) -> Limits {
        let l = &raw.limits;
        Limits {
            max_frame_bytes: self.positive(
                "limits.max_frame_bytes",
                l.max_frame_bytes,
                defaults::MAX_FRAME_BYTES,
            ),
            max_connections: self.positive(
                "limits.max_connections",
                l.max_connections,
                defaults::MAX_CONNECTIONS,
            ),
            handshake_timeout: Duration::from_millis(self.positive(
                "limits.handshake_timeout_ms",
                l.handshake_timeout_ms,
                defaults::HANDSHAKE_TIMEOUT_MS,
            )),
            idle_timeout: Duration::from_millis(self.positive(
                "limits.idle_timeout_ms",
                l.idle_timeout_ms,
                defaults::IDLE_TIMEOUT_MS,
            )),
            max_in_flight_requests: self.positive(
                "limits.max_in_flight_requests",
                l.max_in_flight_requests,
                defaults::MAX_IN_FLIGHT_REQUESTS,
            ),
            pool_cache_entries: self.positive(
                "limits.pool_cache_entries",
                l.pool_cache_entries,
                defaults::POOL_CACHE_ENTRIES,
            ),
            pools_per_ca: self.positive(
                "limits.pools_per_ca",
                l.pools_per_ca,
                defaults::POOLS_PER_CA,
            ),
            max_broker_listeners: self.positive(
                "limits.max_broker_listeners",
                l.max_broker_listeners,
                defaults::MAX_BROKER_LISTENERS,
            ),
            drain_timeout: Duration::from_millis(self.positive(
                "limits.drain_timeout_ms",
                l.drain_timeout_ms,
                defaults::DRAIN_TIMEOUT_MS,
            )),
        }
    }

    fn listener(&mut self, raw: &RawConfig) -> Option<ListenerConfig> {
        let l = &raw.listener;
        let bootstrap = match l.bootstrap.parse::<SocketAddr>() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    "listener.bootstrap",
                    format!(
                        "`{}` is not an IP:port address (e.g. 0.0.0.0:9092)",
                        l.bootstrap
                    ),
                );
                None
            }
        };
        let advertised_host = l.advertised_host.trim().to_string();
        if advertised_host.is_empty() {
            self.error("listener.advertised_host", "must not be empty");
        } else if advertised_host.contains(':') && advertised_host.parse::<IpAddr>().is_err() {
            self.error(
                "listener.advertised_host",
                "a host name or IP address without a port",
            );
        }
        let broker_bind = match &l.broker_bind_address {
            Some(text) => match text.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.error(
                        "listener.broker_bind_address",
                        format!("`{text}` is not an IP address"),
                    );
                    None
                }
            },
            None => bootstrap.map(|a| a.ip()),
        };
        let ports = &l.broker_ports;
        if ports.first_port == 0 {
            self.error("listener.broker_ports.first_port", "must be a port above 0");
        }
        let mut seen = HashSet::new();
        for (node, port) in &ports.node_ports {
            let field = format!("listener.broker_ports.node_ports.{node}");
            if *port == 0 {
                self.error(&field, "must be a port above 0");
            }
            if !seen.insert(*port) {
                self.error(&field, format!("port {port} is assigned to two node ids"));
            }
            if bootstrap.is_some_and(|b| b.port() == *port) {
                self.error(&field, format!("port {port} is the bootstrap port"));
            }
        }
        Some(ListenerConfig {
            bootstrap: bootstrap?,
            advertised_host,
            broker_bind: broker_bind?,
            broker_ports: BrokerPorts {
                first_port: ports.first_port,
                node_ports: ports.node_ports.clone(),
            },
        })
    }

    fn server_tls(
        &mut self,
        raw: &RawConfig,
        advertised_host: Option<&str>,
    ) -> Option<ServerTlsConfig> {
        let t = &raw.tls;
        let tls13_only = match t.min_version.as_deref() {
            None | Some("1.2") => false,
            Some("1.3") => true,
            Some(other) => {
                self.error(
                    "tls.min_version",
                    format!("`{other}` is not supported; use \"1.2\" or \"1.3\""),
                );
                false
            }
        };
        match load_certified_key(&t.certificate_chain, &t.private_key) {
            Ok(key) => {
                if let Some(host) = advertised_host
                    && let Some(leaf) = key.cert.first()
                    && !tls_files::certificate_names_host(leaf, host)
                {
                    self.warn(
                        "tls.certificate_chain",
                        format!(
                            "the server certificate does not name `{host}` (listener.advertised_host); \
                             Java clients verify the host name and will refuse the connection"
                        ),
                    );
                }
                Some(ServerTlsConfig {
                    certificate_chain_path: t.certificate_chain.clone(),
                    private_key_path: t.private_key.clone(),
                    certified_key: Arc::new(key),
                    tls13_only,
                })
            }
            Err((field, reason)) => {
                self.error(format!("tls.{field}"), reason);
                None
            }
        }
    }

    fn upstream(&mut self, raw: &RawConfig) -> Option<UpstreamConfig> {
        let u = &raw.upstream;
        let mut servers = Vec::new();
        if u.bootstrap_servers.is_empty() {
            self.error("upstream.bootstrap_servers", "list at least one host:port");
        }
        for (i, s) in u.bootstrap_servers.iter().enumerate() {
            match split_host_port(s) {
                Some(hp) => servers.push(hp),
                None => self.error(
                    format!("upstream.bootstrap_servers[{i}]"),
                    format!("`{s}` is not host:port"),
                ),
            }
        }
        let tls = match &u.tls {
            None => None,
            Some(t) => {
                let roots = match load_pem_certificates(&t.ca) {
                    Ok(certs) => {
                        let mut store = rustls::RootCertStore::empty();
                        let (_, ignored) = store.add_parsable_certificates(certs);
                        if ignored > 0 || store.is_empty() {
                            self.error(
                                "upstream.tls.ca",
                                format!(
                                    "{}: {ignored} certificate(s) could not be used as trust anchors",
                                    t.ca.display()
                                ),
                            );
                        }
                        Some(Arc::new(store))
                    }
                    Err(reason) => {
                        self.error("upstream.tls.ca", reason);
                        None
                    }
                };
                let client_key = match (&t.certificate_chain, &t.private_key) {
                    (None, None) => Some(None),
                    (Some(chain), Some(key)) => match load_certified_key(chain, key) {
                        Ok(k) => Some(Some(Arc::new(k))),
                        Err((field, reason)) => {
                            self.error(format!("upstream.tls.{field}"), reason);
                            None
                        }
                    },
                    _ => {
                        self.error(
                            "upstream.tls",
                            "certificate_chain and private_key go together: set both or neither",
                        );
                        None
                    }
                };
                if let Some(name) = &t.server_name
                    && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
                {
                    self.error(
                        "upstream.tls.server_name",
                        format!("`{name}` is not a valid DNS name or IP address"),
                    );
                }
                match (roots, client_key) {
                    (Some(roots), Some(client_key)) => Some(UpstreamTlsConfig {
                        roots,
                        client_key,
                        server_name: t.server_name.clone(),
                    }),
                    _ => None,
                }
            }
        };
        let connect_timeout = Duration::from_millis(self.positive(
            "upstream.connect_timeout_ms",
            u.connect_timeout_ms,
            defaults::UPSTREAM_CONNECT_TIMEOUT_MS,
        ));
        if u.tls.is_some() && tls.is_none() {
            return None;
        }
        let tls_files = u
            .tls
            .iter()
            .flat_map(|t| {
                std::iter::once(t.ca.clone())
                    .chain(t.certificate_chain.clone())
                    .chain(t.private_key.clone())
            })
            .collect();
        Some(UpstreamConfig {
            bootstrap_servers: servers,
            tls_files,
            tls,
            connect_timeout,
            identity: UpstreamIdentity::None,
        })
    }

    /// `upstream.identity`: the mode, the mechanism, and one credential per configured pool.
    /// Secrets are checked for presence here and read again at every connect.
    fn upstream_identity(
        &mut self,
        raw: &RawConfig,
        authorities: &[CertificateAuthority],
    ) -> Option<UpstreamIdentity> {
        let Some(id) = &raw.upstream.identity else {
            return Some(UpstreamIdentity::None);
        };
        let at = "upstream.identity";
        match id.mode.as_deref().unwrap_or("none") {
            "none" => {
                // `&`, not `&&`: both kinds of misplaced key are reported.
                let ok = self.no_scram_keys(id) & self.no_oauthbearer_keys(id);
                ok.then_some(UpstreamIdentity::None)
            }
            "oauthbearer" => self.oauthbearer(raw, id),
            "scram" => {
                if !self.no_oauthbearer_keys(id) {
                    return None;
                }
                let mechanism = match id.mechanism.as_deref() {
                    None => {
                        self.error(
                            format!("{at}.mechanism"),
                            "required in scram mode: SCRAM-SHA-256 or SCRAM-SHA-512",
                        );
                        None
                    }
                    Some(m) => {
                        let parsed = crate::scram::Mechanism::parse(m);
                        if parsed.is_none() {
                            self.error(
                                format!("{at}.mechanism"),
                                format!("unknown mechanism `{m}` (SCRAM-SHA-256 or SCRAM-SHA-512)"),
                            );
                        }
                        parsed
                    }
                };
                let pool_ids: Vec<&str> = authorities
                    .iter()
                    .flat_map(|ca| ca.pools.pools.iter().map(|p| p.id.as_str()))
                    .collect();
                let mut credentials = BTreeMap::new();
                let mut ok = true;
                for (pool, c) in &id.credentials {
                    let field = format!("{at}.credentials.{pool}");
                    if !pool_ids.contains(&pool.as_str()) {
                        self.error(&field, format!("no identity pool has the id `{pool}`"));
                        ok = false;
                    }
                    if let Err(e) = crate::scram::ScramClient::new(
                        crate::scram::Mechanism::Sha256,
                        &c.username,
                        String::new(),
                    ) {
                        self.error(format!("{field}.username"), e.to_string());
                        ok = false;
                    }
                    let source = match (&c.password_env, &c.password_file) {
                        (Some(env), None) if !env.is_empty() => SecretSource::Env(env.clone()),
                        (None, Some(file)) => SecretSource::File(file.clone()),
                        (Some(_), None) => {
                            self.error(format!("{field}.password_env"), "must not be empty");
                            ok = false;
                            continue;
                        }
                        (Some(_), Some(_)) => {
                            self.error(
                                &field,
                                "set one of password_env and password_file, not both",
                            );
                            ok = false;
                            continue;
                        }
                        (None, None) => {
                            self.error(
                                &field,
                                "set password_env or password_file (passwords are never written \
                                 in the configuration)",
                            );
                            ok = false;
                            continue;
                        }
                    };
                    if let Err(reason) = source.read() {
                        let sub = match source {
                            SecretSource::Env(_) => "password_env",
                            SecretSource::File(_) => "password_file",
                        };
                        self.error(format!("{field}.{sub}"), reason);
                        ok = false;
                    }
                    credentials.insert(
                        pool.clone(),
                        ScramCredential {
                            username: c.username.clone(),
                            password: source,
                        },
                    );
                }
                for pool in &pool_ids {
                    if !id.credentials.contains_key(*pool) {
                        self.error(
                            format!("{at}.credentials"),
                            format!(
                                "identity pool `{pool}` has no credentials: in scram mode every \
                                 pool needs a broker user"
                            ),
                        );
                        ok = false;
                    }
                }
                match (mechanism, ok) {
                    (Some(mechanism), true) => Some(UpstreamIdentity::Scram {
                        mechanism,
                        credentials,
                    }),
                    _ => None,
                }
            }
            other => {
                self.error(
                    format!("{at}.mode"),
                    format!("unknown mode `{other}` (none, scram or oauthbearer)"),
                );
                None
            }
        }
    }

    /// Whether `upstream.identity` is free of the keys only `mode: scram` reads (reported when
    /// not).
    fn no_scram_keys(&mut self, id: &raw::RawUpstreamIdentity) -> bool {
        let set = id.mechanism.is_some() || !id.credentials.is_empty();
        if set {
            self.error(
                "upstream.identity.mode",
                "mechanism and credentials apply only to `mode: scram`",
            );
        }
        !set
    }

    /// Whether `upstream.identity` is free of the keys only `mode: oauthbearer` reads (the
    /// first one found is reported).
    fn no_oauthbearer_keys(&mut self, id: &raw::RawUpstreamIdentity) -> bool {
        let Some(key) = oauth_only_keys(id).first().copied() else {
            return true;
        };
        self.error(
            format!("upstream.identity.{key}"),
            "applies only to `mode: oauthbearer`",
        );
        false
    }

    /// `upstream.identity` in oauthbearer mode: the token claims, the key schedule, the
    /// extensions, and the admin server that must serve the JWKS.
    fn oauthbearer(
        &mut self,
        raw: &RawConfig,
        id: &raw::RawUpstreamIdentity,
    ) -> Option<UpstreamIdentity> {
        let at = "upstream.identity";
        let mut ok = self.no_scram_keys(id);
        let required = |v: &mut Self, field: &str, value: &Option<String>| match value
            .as_deref()
            .map(str::trim)
        {
            Some(s) if !s.is_empty() => Some(s.to_owned()),
            Some(_) => {
                v.error(format!("{at}.{field}"), "must not be empty");
                None
            }
            None => {
                v.error(
                    format!("{at}.{field}"),
                    format!(
                        "required in oauthbearer mode: the brokers' \
                         sasl.oauthbearer.expected.{field}"
                    ),
                );
                None
            }
        };
        let issuer = required(self, "issuer", &id.issuer);
        let audience = required(self, "audience", &id.audience);
        let scope = match id.scope.as_deref().map(str::trim) {
            Some("") => {
                self.error(format!("{at}.scope"), "must not be empty (or leave it out)");
                ok = false;
                None
            }
            other => other.map(str::to_owned),
        };
        let ms = |v: &mut Self, field: &str, value: Option<u64>, default: u64| {
            Duration::from_millis(v.positive(&format!("{at}.{field}"), value, default))
        };
        let token_lifetime = ms(
            self,
            "token_lifetime_ms",
            id.token_lifetime_ms,
            defaults::OAUTH_TOKEN_LIFETIME_MS,
        );
        if token_lifetime < Duration::from_secs(1) {
            // `exp` is in whole seconds.
            self.error(
                format!("{at}.token_lifetime_ms"),
                "must be at least 1000 (JWT times are whole seconds)",
            );
            ok = false;
        }
        let rotate_every = ms(
            self,
            "rotate_every_ms",
            id.rotate_every_ms,
            defaults::OAUTH_ROTATE_EVERY_MS,
        );
        let publish_ahead = ms(
            self,
            "publish_ahead_ms",
            id.publish_ahead_ms,
            defaults::OAUTH_PUBLISH_AHEAD_MS,
        );
        if publish_ahead >= rotate_every {
            self.error(
                format!("{at}.publish_ahead_ms"),
                format!(
                    "must be less than rotate_every_ms ({} ms): a key is published ahead of \
                     the rotation that makes it the signer",
                    rotate_every.as_millis()
                ),
            );
            ok = false;
        } else if publish_ahead < Duration::from_millis(defaults::KAFKA_JWKS_REFRESH_MS) {
            self.warn(
                format!("{at}.publish_ahead_ms"),
                "shorter than Kafka's default JWKS refresh (1 hour): a broker refuses a token \
                 with an unknown kid (Apache Kafka 4.4 refetches the JWKS only then), so the \
                 first upstream login after each rotation fails with \
                 SASL_AUTHENTICATION_FAILED; keep it above the brokers' \
                 sasl.oauthbearer.jwks.endpoint.refresh.ms",
            );
        }
        if let Some(dir) = &id.keys_dir {
            match std::fs::metadata(dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    self.error(
                        format!("{at}.keys_dir"),
                        format!("{} is not a directory", dir.display()),
                    );
                    ok = false;
                }
                Err(e) => {
                    self.error(
                        format!("{at}.keys_dir"),
                        format!("{}: {e} (create it, mode 0700)", dir.display()),
                    );
                    ok = false;
                }
            }
        }
        let extensions = match crate::oauth::Extensions::new(&id.extensions) {
            Ok(e) => Some(e),
            Err(problems) => {
                for (name, problem) in problems {
                    self.error(format!("{at}.extensions.{name}"), problem.to_string());
                }
                None
            }
        };
        match &raw.admin {
            None => {
                self.error(
                    format!("{at}.mode"),
                    "oauthbearer needs the admin server (an `admin:` section): the brokers \
                     fetch the proxy's public keys from its /.well-known/jwks.json",
                );
                ok = false;
            }
            Some(admin) => {
                let listen = admin.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN);
                if listen
                    .parse::<SocketAddr>()
                    .is_ok_and(|a| a.ip().is_loopback())
                {
                    self.warn(
                        "admin.listen",
                        format!(
                            "`{listen}` is a loopback address: brokers on other machines cannot \
                             fetch /.well-known/jwks.json for upstream.identity.mode: oauthbearer"
                        ),
                    );
                }
            }
        }
        match (issuer, audience, extensions, ok) {
            (Some(issuer), Some(audience), Some(extensions), true) => {
                Some(UpstreamIdentity::OAuthBearer {
                    token: crate::oauth::TokenSettings {
                        issuer,
                        audience,
                        scope,
                        extensions,
                    },
                    keys: crate::oauth::KeySettings {
                        rotate_every,
                        publish_ahead,
                        token_lifetime,
                        keys_dir: id.keys_dir.clone(),
                    },
                })
            }
            _ => None,
        }
    }

    fn audit(&mut self, raw: &RawConfig) -> Option<AuditConfig> {
        let a = &raw.audit;
        let destination = match a.path.as_deref().unwrap_or(defaults::AUDIT_PATH).trim() {
            "" => {
                self.error("audit.path", "must not be empty (use `off` to disable)");
                return None;
            }
            "-" => AuditDestination::Stdout,
            "off" => AuditDestination::Off,
            p => AuditDestination::File(PathBuf::from(p)),
        };
        Some(AuditConfig {
            destination,
            source: a
                .source
                .clone()
                .unwrap_or_else(|| defaults::AUDIT_SOURCE.to_string()),
            queue_capacity: self.positive(
                "audit.queue_capacity",
                a.queue_capacity,
                defaults::AUDIT_QUEUE_CAPACITY,
            ),
        })
    }

    fn log(&mut self, raw: &RawConfig) -> Option<LogConfig> {
        let format = match raw.log.format.as_deref() {
            None | Some("plain") => LogFormat::Plain,
            Some("json") => LogFormat::Json,
            Some(other) => {
                self.error(
                    "log.format",
                    format!("`{other}` is not a log format; use plain or json"),
                );
                return None;
            }
        };
        Some(LogConfig {
            format,
            level: raw.log.level.clone().unwrap_or_else(|| "info".to_string()),
        })
    }

    fn reload(&mut self, raw: &RawConfig) -> Option<ReloadConfig> {
        let existing_connections = match raw.reload.existing_connections.as_deref() {
            None | Some("reevaluate") => ExistingConnections::Reevaluate,
            Some("keep") => ExistingConnections::Keep,
            Some(other) => {
                self.error(
                    "reload.existing_connections",
                    format!("`{other}` is not a choice; use keep or reevaluate"),
                );
                return None;
            }
        };
        let ms = raw
            .reload
            .watch_interval_ms
            .unwrap_or(defaults::RELOAD_WATCH_INTERVAL_MS);
        Some(ReloadConfig {
            existing_connections,
            watch_interval: (ms > 0).then(|| Duration::from_millis(ms)),
        })
    }

    /// `None` when there is no `admin` section, or when it is wrong (then with an error).
    fn admin(&mut self, raw: &RawConfig, listener: Option<&ListenerConfig>) -> Option<AdminConfig> {
        let a = raw.admin.as_ref()?;
        let text = a.listen.as_deref().unwrap_or(defaults::ADMIN_LISTEN).trim();
        let Ok(listen) = text.parse::<SocketAddr>() else {
            self.error(
                "admin.listen",
                format!("`{text}` is not an IP:port address (e.g. 127.0.0.1:9644)"),
            );
            return None;
        };
        // Caught here rather than as a bind error at start, which would not name the field.
        // Port 0 (any free port) cannot collide.
        if let Some(l) = listener
            && listen.port() != 0
        {
            let overlaps = |ip: IpAddr| {
                ip == listen.ip() || ip.is_unspecified() || listen.ip().is_unspecified()
            };
            if listen.port() == l.bootstrap.port() && overlaps(l.bootstrap.ip()) {
                self.error(
                    "admin.listen",
                    format!("`{listen}` is also the bootstrap listener (listener.bootstrap)"),
                );
                return None;
            }
            if let Some((node, _)) = l
                .broker_ports
                .node_ports
                .iter()
                .find(|(_, port)| **port == listen.port())
                && overlaps(l.broker_bind)
            {
                self.error(
                    "admin.listen",
                    format!(
                        "port {} is also the port of broker {node} \
                         (listener.broker_ports.node_ports)",
                        listen.port()
                    ),
                );
                return None;
            }
        }
        let token = self.admin_token(a);
        Some(AdminConfig { listen, token })
    }

    /// `admin.token_file` / `admin.token_env`: at most one, and the token readable now.
    fn admin_token(&mut self, a: &raw::RawAdmin) -> Option<AdminTokenSource> {
        let source = match (&a.token_file, &a.token_env) {
            (None, None) => return None,
            (Some(_), Some(_)) => {
                self.error(
                    "admin",
                    "token_file and token_env are two ways to give the same token: set one",
                );
                return None;
            }
            (Some(path), None) => AdminTokenSource::File(path.clone()),
            (None, Some(name)) if name.trim().is_empty() => {
                self.error("admin.token_env", "must name an environment variable");
                return None;
            }
            (None, Some(name)) => AdminTokenSource::Env(name.trim().to_string()),
        };
        match source.read() {
            Ok(token) if token.len() < MIN_ADMIN_TOKEN_LEN => self.warn(
                source.field(),
                format!(
                    "the admin token is {} characters long; use at least {MIN_ADMIN_TOKEN_LEN} \
                     random ones (e.g. `openssl rand -hex 32`)",
                    token.len()
                ),
            ),
            Ok(_) => {}
            Err(reason) => self.error(source.field(), reason),
        }
        Some(source)
    }

    fn authorities(&mut self, raw: &RawConfig, limits: &Limits) -> Vec<CertificateAuthority> {
        if raw.certificate_authorities.is_empty() {
            self.error(
                "certificate_authorities",
                "configure at least one certificate authority: without one every client is refused",
            );
        }
        let mut ca_ids = HashSet::new();
        let mut pool_ids: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for (i, ca) in raw.certificate_authorities.iter().enumerate() {
            let at = format!("certificate_authorities[{i}]");
            if let Err(reason) = check_id(&ca.id) {
                self.error(format!("{at}.id"), reason);
            } else if !ca_ids.insert(ca.id.clone()) {
                self.error(
                    format!("{at}.id"),
                    format!("duplicate certificate authority id `{}`", ca.id),
                );
            }
            if ca.display_name.trim().is_empty() {
                self.error(format!("{at}.display_name"), "must not be empty");
            }
            let certificates = match load_ca_bundle(&ca.certificate_chain) {
                Ok(certs) => Some(certs),
                Err(reason) => {
                    self.error(format!("{at}.certificate_chain"), reason);
                    None
                }
            };
            let crls = match &ca.crl_chain {
                None => Some(Vec::new()),
                Some(path) => match load_crls(path) {
                    Ok(crls) => Some(crls),
                    Err(reason) => {
                        self.error(format!("{at}.crl_chain"), reason);
                        None
                    }
                },
            };
            if let Some(url) = &ca.crl_url
                && let Err(reason) = check_crl_url(url)
            {
                self.error(format!("{at}.crl_url"), reason);
            }
            if ca.require_crl_on_client_certificate
                && ca.crl_chain.is_none()
                && ca.crl_url.is_none()
            {
                self.error(
                    format!("{at}.require_crl_on_client_certificate"),
                    "needs a crl_chain or a crl_url: without a CRL every certificate would be refused",
                );
            }
            if ca.identity_pools.is_empty() {
                self.warn(
                    format!("{at}.identity_pools"),
                    "no identity pools: every certificate of this CA will be refused",
                );
            }
            if ca.identity_pools.len() > limits.pools_per_ca {
                self.error(
                    format!("{at}.identity_pools"),
                    format!(
                        "{} pools exceed limits.pools_per_ca ({})",
                        ca.identity_pools.len(),
                        limits.pools_per_ca
                    ),
                );
            }
            let authorization = CaAuthorization {
                enabled: ca.authorization.as_ref().and_then(|a| a.enabled),
                rules: ca
                    .authorization
                    .as_ref()
                    .map(|a| self.acl_rules(&format!("{at}.authorization.rules"), &a.rules))
                    .unwrap_or_default(),
            };
            let mut pools = Vec::new();
            for (j, p) in ca.identity_pools.iter().enumerate() {
                let at = format!("{at}.identity_pools[{j}]");
                if let Some(pool) = self.pool(&at, p, &ca.id, &mut pool_ids) {
                    pools.push(pool);
                }
            }
            if let (Some(certificates), Some(crls)) = (certificates, crls) {
                out.push(CertificateAuthority {
                    id: ca.id.clone(),
                    display_name: ca.display_name.clone(),
                    description: ca.description.clone(),
                    certificate_chain_path: ca.certificate_chain.clone(),
                    certificates,
                    crl_chain_path: ca.crl_chain.clone(),
                    crls,
                    crl_url: ca.crl_url.clone(),
                    require_crl: ca.require_crl_on_client_certificate,
                    pools: CaPools {
                        ca_id: ca.id.clone(),
                        pools,
                    },
                    authorization,
                });
            }
        }
        out
    }

    /// Check a list of ACL rules; every problem names the rule's index and field.
    fn acl_rules(&mut self, at: &str, raw: &[raw::RawAclRule]) -> Vec<AclRule> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let spec = RuleSpec {
                permission: r.permission.as_deref(),
                operations: &r.operations,
                resource_type: &r.resource_type,
                pattern_type: r.pattern_type.as_deref(),
                resource_name: r.resource_name.as_deref(),
            };
            match AclRule::parse(&spec) {
                Ok(rule) => out.push(rule),
                Err(errors) => {
                    for e in errors {
                        self.error(format!("{at}[{i}].{}", e.field), e.reason);
                    }
                }
            }
        }
        out
    }

    /// The global `authorization` section. Warns when ACLs are enforced somewhere but a pool
    /// that would be checked has no rule at all: its clients can do nothing.
    fn authorization(
        &mut self,
        raw: &RawConfig,
        authorities: &[CertificateAuthority],
    ) -> AuthorizationConfig {
        let config = AuthorizationConfig {
            enabled: raw
                .authorization
                .as_ref()
                .and_then(|a| a.enabled)
                .unwrap_or(false),
            rules: raw
                .authorization
                .as_ref()
                .map(|a| self.acl_rules("authorization.rules", &a.rules))
                .unwrap_or_default(),
        };
        for (i, ca) in authorities.iter().enumerate() {
            if !ca.authorization.enabled.unwrap_or(config.enabled) {
                continue;
            }
            if !config.rules.is_empty() || !ca.authorization.rules.is_empty() {
                continue;
            }
            for (j, pool) in ca.pools.pools.iter().enumerate() {
                if pool.acls.is_empty() {
                    self.warn(
                        format!("certificate_authorities[{i}].identity_pools[{j}].acls"),
                        format!(
                            "ACLs are enforced for certificate authority `{}` but pool `{}` has                              no rule: its clients will be refused every request",
                            ca.id, pool.id
                        ),
                    );
                }
            }
        }
        config
    }

    fn pool(
        &mut self,
        at: &str,
        p: &raw::RawIdentityPool,
        ca_id: &str,
        pool_ids: &mut BTreeMap<String, String>,
    ) -> Option<Pool> {
        let mut ok = true;
        if let Err(reason) = check_id(&p.id) {
            self.error(format!("{at}.id"), reason);
            ok = false;
        } else if let Some(other_ca) = pool_ids.insert(p.id.clone(), ca_id.to_string()) {
            self.error(
                format!("{at}.id"),
                format!(
                    "duplicate identity pool id `{}` (also in certificate authority `{other_ca}`); \
                     pool ids are principals (User:<id>) and must be unique",
                    p.id
                ),
            );
            ok = false;
        }
        if p.display_name.trim().is_empty() {
            self.error(format!("{at}.display_name"), "must not be empty");
        }
        let external_identifier = match p.external_identifier.parse::<ExternalIdentifier>() {
            Ok(e) => Some(e),
            Err(e) => {
                self.error(format!("{at}.external_identifier"), e.to_string());
                None
            }
        };
        let filter = match Filter::compile(&p.filter) {
            Ok(f) => {
                if f.is_empty() {
                    self.warn(
                        format!("{at}.filter"),
                        format!(
                            "pool `{}` has an empty filter, which never matches (as in Confluent Cloud)",
                            p.id
                        ),
                    );
                }
                Some(f)
            }
            Err(e) => {
                self.error(format!("{at}.filter"), format!("pool `{}`: {e}", p.id));
                None
            }
        };
        let acls = self.acl_rules(&format!("{at}.acls"), &p.acls);
        if !ok {
            return None;
        }
        Some(Pool {
            id: p.id.clone(),
            display_name: p.display_name.clone(),
            description: p.description.clone(),
            external_identifier: external_identifier?,
            filter: filter?,
            priority: p.priority.unwrap_or(0),
            acls,
        })
    }
}

/// CRL URLs are fetched over plain HTTP (CRLs are signed; distribution points are http).
fn check_crl_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "`{url}`: only http:// CRL URLs are supported (a CRL is signed by its CA; use crl_chain for a local file)"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// The oauthbearer-only keys set in `id`, for the other modes' checks.
fn oauth_only_keys(id: &raw::RawUpstreamIdentity) -> Vec<&'static str> {
    [
        ("issuer", id.issuer.is_some()),
        ("audience", id.audience.is_some()),
        ("scope", id.scope.is_some()),
        ("token_lifetime_ms", id.token_lifetime_ms.is_some()),
        ("rotate_every_ms", id.rotate_every_ms.is_some()),
        ("publish_ahead_ms", id.publish_ahead_ms.is_some()),
        ("keys_dir", id.keys_dir.is_some()),
        ("extensions", !id.extensions.is_empty()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect()
}

/// Shorter admin tokens load, with a warning.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Ids become principals (`User:<id>`) and audit fields: keep them to a safe alphabet.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > 128 {
        return Err(format!("`{id}` is longer than 128 characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{id}` contains `{c}`; use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}

impl Config {
    /// The configuration file and every file it names: what the reload watch looks at.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        let mut files = vec![
            self.source.clone(),
            self.server_tls.certificate_chain_path.clone(),
            self.server_tls.private_key_path.clone(),
        ];
        files.extend(
            self.authorities
                .iter()
                .map(|a| a.certificate_chain_path.clone()),
        );
        files.extend(
            self.authorities
                .iter()
                .filter_map(|a| a.crl_chain_path.clone()),
        );
        files.extend(self.upstream.tls_files.iter().cloned());
        files
    }
}

/// `host:port` or `[v6]:port` → (host, port).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let s = s.trim();
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host.to_string(), port))
}

/// Resolve `(host, port)` now (used by `check-config` to warn about unreachable names).
pub fn resolves(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .map(|mut a| a.next().is_some())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests;
