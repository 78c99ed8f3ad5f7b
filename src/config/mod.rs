//! Configuration: the YAML file, parsed once into typed, checked structs.
//!
//! [`load`] reads the file, deserializes it into the [`raw`] schema (unknown keys are errors),
//! reads every file, secret and directory it names (`sources`), then checks every field and
//! collects **every** problem in one pass, each with its field path and reason, so an operator
//! fixes a broken file in one round. What comes out, [`Config`], is ready to use: certificates
//! parsed, CEL filters compiled, defaults filled in. Nothing downstream re-validates.
//!
//! A [`Config`] is two parts, by what a reload can change:
//! - [`StartupConfig`]: what is bound or process-wide (listeners, the connection limit, audit,
//!   log, the admin server, the oauthbearer key ring). A reload compares it with the running
//!   one and reports what takes effect only at restart
//!   ([`StartupConfig::restart_only_changes`]).
//! - [`ReloadableConfig`]: what a configuration generation carries (server TLS, upstream, the
//!   per-connection limits, CAs and pools, ACLs, ...). Every connection uses its generation's.
//!
//! One module per section of the file holds its typed structs and the check that builds them
//! from the raw section; the checks do no I/O of their own.
//!
//! Relative paths in the file are resolved against the working directory of the process (the
//! example configuration is written to be run from the repository root).

mod admin;
mod audit;
mod authorities;
mod authorization;
mod certificate_facts;
pub mod defaults;
pub mod files;
mod limits;
mod listener;
mod log;
mod oauthbearer;
mod pem;
mod permissions;
mod proxy_login;
pub mod raw;
mod reload;
mod revocation;
mod server_tls;
mod sni;
mod sources;
mod startup;
mod store;
mod upstream;
mod upstream_identity;

use std::fmt;
use std::path::{Path, PathBuf};

use raw::RawConfig;
use sources::Sources;

pub use admin::{AdminConfig, AdminTokenSource};
pub use audit::{AuditConfig, AuditDestination, AuditRotation};
pub use authorities::CertificateAuthority;
pub use authorization::{AuthorizationConfig, CaAuthorization};
pub use certificate_facts::{
    CertificateExpiry, MAX_DISTRIBUTION_POINTS, crl_distribution_points, unix_now,
};
pub use limits::{Limits, StartupLimits};
pub use listener::{AdvertisedBrokers, BrokerPorts, ListenerConfig, ProxyProtocolConfig};
pub use log::{LogConfig, LogFormat};
pub use pem::{load_crls, load_crls_bytes, load_pem_certificates};
pub use proxy_login::{DEFAULT_SUBJECT as DEFAULT_PROXY_SUBJECT, ProxyLogin};
pub use reload::{ExistingConnections, ReloadConfig};
pub use revocation::RevocationConfig;
pub use server_tls::ServerTlsConfig;
pub use sni::{BrokerNamePattern, SniConfig, SniRoute};
pub use startup::StartupConfig;
pub use store::{DEFAULT_TOPIC, RawStore, RawStoreSasl, StoreConfig};
pub use upstream::{HealthSettings, UpstreamConfig, UpstreamTlsConfig, resolves, split_host_port};
pub use upstream_identity::{ScramCredential, SecretSource, UpstreamIdentity};

/// Everything the proxy needs to run, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from.
    pub source: PathBuf,
    /// What a running proxy keeps until it restarts.
    pub startup: StartupConfig,
    /// What a reload replaces.
    pub reloadable: ReloadableConfig,
    /// Things that load but are probably not what the operator meant (e.g. an empty filter).
    pub warnings: Vec<Issue>,
}

/// The part of a [`Config`] a reload replaces: a configuration generation carries it, and every
/// connection uses its generation's values from start to end.
#[derive(Debug, Clone)]
pub struct ReloadableConfig {
    pub server_tls: ServerTlsConfig,
    pub upstream: UpstreamConfig,
    pub limits: Limits,
    pub reload: ReloadConfig,
    pub revocation: RevocationConfig,
    pub authorities: Vec<CertificateAuthority>,
    /// Where the bearer token that IAM API writes require comes from (`admin.token_file` /
    /// `admin.token_env`); `None`: read-only. Looked up in the current generation at every
    /// write, so a reload can point it elsewhere.
    pub admin_token: Option<AdminTokenSource>,
    /// Proxy-side ACLs (global part; certificate authorities and pools carry their own).
    pub authorization: AuthorizationConfig,
}

impl Config {
    /// The configuration file and every file it names: what the reload watch looks at.
    pub fn watched_files(&self) -> Vec<PathBuf> {
        self.reloadable.watched_files(&self.source)
    }
}

impl ReloadableConfig {
    /// `config_file` and every file this configuration names: what the reload watch looks at.
    pub fn watched_files(&self, config_file: &Path) -> Vec<PathBuf> {
        let mut files = vec![
            config_file.to_path_buf(),
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

/// What a secret that cannot be read now (a SCRAM password, the admin token: a variable unset
/// or empty, a file missing or empty) makes of a configuration.
///
/// The proxy reads secrets again at use, so a configuration can be checked without them; only
/// starting or reloading on one would fail at every use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AbsentSecrets {
    /// An error: the configuration is refused (`run`, reloads, `check-config --strict`).
    #[default]
    Refuse,
    /// A warning at the same field, with the same reason (`check-config`, e.g. in CI).
    Warn,
}

/// Read, parse and check a configuration file; a secret that cannot be read is an error.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, AbsentSecrets::Refuse)
}

/// [`load`], with `absent_secrets` deciding what an unreadable secret is.
pub fn load_with(path: &Path, absent_secrets: AbsentSecrets) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    let raw = parse_yaml(path, &text)?;
    check(path, &raw, &Sources::read(&raw), absent_secrets)
}

/// [`load`], with `authorities` (the shared pool store's) in place of the file's
/// `certificate_authorities`: the file's other sections and the store's CAs and pools.
pub fn load_with_authorities(
    path: &Path,
    authorities: Vec<raw::RawCertificateAuthority>,
) -> Result<Config, ConfigError> {
    let mut raw = read_raw(path)?;
    raw.certificate_authorities = authorities;
    from_raw(path, &raw)
}

/// Read and deserialize the file (shape only).
pub fn read_raw(path: &Path) -> Result<raw::RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse_yaml(path, &text)
}

/// Deserialize the YAML text (shape only).
pub fn parse_yaml(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    serde_saphyr::from_str::<RawConfig>(text).map_err(|e| ConfigError::Syntax {
        file: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Read what a deserialized configuration names, check it and build the typed one. `path`
/// names the file in errors; a secret that cannot be read is an error.
pub fn from_raw(path: &Path, raw: &RawConfig) -> Result<Config, ConfigError> {
    check(path, raw, &Sources::read(raw), AbsentSecrets::Refuse)
}

/// Check a deserialized configuration against what was read for it, and build the typed one.
/// Every section is checked, in the order of the file's main dependencies, so every problem is
/// reported at once.
fn check(
    path: &Path,
    raw: &RawConfig,
    sources: &Sources,
    absent_secrets: AbsentSecrets,
) -> Result<Config, ConfigError> {
    let mut issues = Issues {
        absent_secrets,
        ..Issues::default()
    };
    let (startup_limits, limits) = limits::check(&mut issues, &raw.limits);
    let listener = listener::check(&mut issues, &raw.listener);
    let advertised_hosts = listener.as_ref().map(advertised_hosts).unwrap_or_default();
    let server_tls = server_tls::check(&mut issues, &raw.tls, &advertised_hosts, sources);
    let upstream = upstream::check(&mut issues, &raw.upstream, sources);
    let audit = audit::check(&mut issues, &raw.audit);
    let log = log::check(&mut issues, &raw.log);
    let reload = reload::check(&mut issues, &raw.reload);
    let revocation = revocation::check(&mut issues, &raw.revocation);
    let authorities = authorities::check(&mut issues, raw, &limits, sources);
    let identity = upstream_identity::check(&mut issues, raw, &authorities, sources);
    let (identity, oauth_keys) = identity.unwrap_or_default();
    let proxy_login = proxy_login::check(&mut issues, raw, &identity, &authorities, sources);
    if let (Some(l), Ok(None), UpstreamIdentity::Scram { .. }) =
        (&listener, &proxy_login, &identity)
        && l.sni.is_some()
    {
        issues.warn(
            "upstream.proxy_login",
            "not set: with listener.sni in scram mode, the server name of a broker this proxy \
             has not seen yet cannot be looked up before the handshake (the client is \
             handshaked, signed in as its pool, then closed if there is no such broker, \
             instead of the alert unrecognized_name); add upstream.proxy_login with username \
             and password_env or password_file",
        );
    }
    let upstream = upstream.map(|u| UpstreamConfig {
        identity,
        proxy_login: proxy_login.unwrap_or_default(),
        ..u
    });
    let admin = admin::check(&mut issues, raw.admin.as_ref(), listener.as_ref(), sources);
    let (admin, admin_token) = match admin {
        Some((admin, token)) => (Some(admin), token),
        None => (None, None),
    };
    let authorization = authorization::check(&mut issues, raw, &authorities);
    let store = store::check(&mut issues, raw.store.as_ref(), path);
    match (listener, server_tls, upstream, audit, log, reload) {
        (
            Some(listener),
            Some(server_tls),
            Some(upstream),
            Some(audit),
            Some(log),
            Some(reload),
        ) if issues.errors.is_empty() => Ok(Config {
            source: path.to_path_buf(),
            startup: StartupConfig {
                listener,
                limits: startup_limits,
                audit,
                log,
                admin,
                oauth_keys,
                store,
            },
            reloadable: ReloadableConfig {
                server_tls,
                upstream,
                limits,
                reload,
                revocation,
                authorities,
                admin_token,
                authorization,
            },
            warnings: issues.warnings,
        }),
        _ => Err(ConfigError::Invalid {
            file: path.to_path_buf(),
            issues: issues.errors,
        }),
    }
}

/// Every host name clients are told, each with the field that names it, without repeats: the
/// server certificate should carry them all.
fn advertised_hosts(l: &ListenerConfig) -> Vec<(String, String)> {
    if let Some(sni) = &l.sni {
        // Every name a client may be told: the bootstrap name and the pattern with the
        // narrowest and the widest node id (a wildcard covers both only when `{id}` is in its
        // first label; a list of names covers only the brokers it lists).
        let pattern = &sni.broker_pattern;
        let mut hosts = vec![("listener.sni.bootstrap".to_string(), sni.bootstrap.clone())];
        for id in [0, i32::MAX] {
            hosts.push((
                format!("listener.sni.broker_pattern `{pattern}`, node {id}"),
                pattern.name_for(id),
            ));
        }
        return hosts;
    }
    let mut hosts: Vec<(String, String)> = l
        .advertised_host
        .iter()
        .map(|host| ("listener.advertised_host".to_string(), host.clone()))
        .collect();
    for (node, (host, _)) in &l.advertised.nodes {
        if !hosts.iter().any(|(_, h)| h == host) {
            hosts.push((format!("listener.advertised.nodes.{node}"), host.clone()));
        }
    }
    hosts
}

/// Collects errors and warnings while the section checks build typed values.
#[derive(Default)]
struct Issues {
    errors: Vec<Issue>,
    warnings: Vec<Issue>,
    absent_secrets: AbsentSecrets,
}

impl Issues {
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

    /// A secret that cannot be read now: an error or a warning, as the load was asked
    /// ([`AbsentSecrets`]). Whether it was an error.
    fn secret(&mut self, field: impl Into<String>, reason: impl Into<String>) -> bool {
        match self.absent_secrets {
            AbsentSecrets::Refuse => self.error(field, reason),
            AbsentSecrets::Warn => self.warn(field, reason),
        }
        self.absent_secrets == AbsentSecrets::Refuse
    }

    /// `value` when it is above zero, else `default` (with an error when it was given).
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
}

#[cfg(test)]
mod tests;
