//! `upstream`: the real cluster: its bootstrap servers, TLS to the brokers, the connect timeout
//! (and, in [`super::upstream_identity`], who the proxy is to the brokers).

use std::fmt;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;

use super::raw::{RawUpstream, RawUpstreamHealth, RawUpstreamTls};
use super::sources::Sources;
use super::upstream_identity::UpstreamIdentity;
use super::{Issues, defaults, pem};

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
    /// The proxy's own login (`upstream.proxy_login`): the store's, and SNI discovery's in
    /// the SASL modes.
    pub proxy_login: Option<super::ProxyLogin>,
    pub health: HealthSettings,
}

/// `upstream.health`: while a listener's broker does not answer, new clients of that listener
/// are refused as a down broker would refuse them (the listener closes its port; the SNI
/// listener resets them before the TLS handshake until the whole cluster is down), and the
/// broker is re-checked at most every `probe_interval` (doubling up to `max_probe_interval`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// `false`: every client gets the handshake, and a close when no broker answers.
    pub refuse_when_down: bool,
    pub probe_interval: Duration,
    pub max_probe_interval: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            refuse_when_down: true,
            probe_interval: Duration::from_millis(defaults::UPSTREAM_PROBE_INTERVAL_MS),
            max_probe_interval: Duration::from_millis(defaults::UPSTREAM_MAX_PROBE_INTERVAL_MS),
        }
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

/// Check `upstream` (its `identity` is checked apart: it needs the pools; `None` here).
pub(super) fn check(
    issues: &mut Issues,
    u: &RawUpstream,
    sources: &Sources,
) -> Option<UpstreamConfig> {
    let servers = bootstrap_servers(issues, u);
    let tls = u.tls.as_ref().and_then(|t| tls(issues, t, sources));
    let connect_timeout = Duration::from_millis(issues.positive(
        "upstream.connect_timeout_ms",
        u.connect_timeout_ms,
        defaults::UPSTREAM_CONNECT_TIMEOUT_MS,
    ));
    let health = health(issues, &u.health);
    if u.tls.is_some() && tls.is_none() {
        return None;
    }
    Some(UpstreamConfig {
        bootstrap_servers: servers,
        tls_files: tls_files(u),
        tls,
        connect_timeout,
        identity: UpstreamIdentity::None,
        proxy_login: None,
        health,
    })
}

/// `upstream.health`: positive intervals, the first no longer than the longest.
fn health(issues: &mut Issues, h: &RawUpstreamHealth) -> HealthSettings {
    let first = issues.positive(
        "upstream.health.probe_interval_ms",
        h.probe_interval_ms,
        defaults::UPSTREAM_PROBE_INTERVAL_MS,
    );
    let max = issues.positive(
        "upstream.health.max_probe_interval_ms",
        h.max_probe_interval_ms,
        defaults::UPSTREAM_MAX_PROBE_INTERVAL_MS.max(first),
    );
    if first > max {
        issues.error(
            "upstream.health.max_probe_interval_ms",
            format!("must be at least probe_interval_ms ({first}), got {max}"),
        );
    }
    HealthSettings {
        refuse_when_down: h.refuse_when_down.unwrap_or(true),
        probe_interval: Duration::from_millis(first),
        max_probe_interval: Duration::from_millis(max.max(first)),
    }
}

/// `upstream.bootstrap_servers`: at least one, each `host:port` (the bad ones are left out).
fn bootstrap_servers(issues: &mut Issues, u: &RawUpstream) -> Vec<(String, u16)> {
    let mut servers = Vec::new();
    if u.bootstrap_servers.is_empty() {
        issues.error("upstream.bootstrap_servers", "list at least one host:port");
    }
    for (i, s) in u.bootstrap_servers.iter().enumerate() {
        match split_host_port(s) {
            Some(hp) => servers.push(hp),
            None => issues.error(
                format!("upstream.bootstrap_servers[{i}]"),
                format!("`{s}` is not host:port"),
            ),
        }
    }
    servers
}

/// `upstream.tls`: the brokers' CA, the proxy's optional client certificate, the name to
/// verify. `None` when any of them is unusable.
fn tls(issues: &mut Issues, t: &RawUpstreamTls, sources: &Sources) -> Option<UpstreamTlsConfig> {
    let roots = trust_roots(issues, t, sources);
    let client_key = client_key(issues, t, sources);
    if let Some(name) = &t.server_name
        && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
    {
        issues.error(
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

/// `upstream.tls.ca`: the trust anchors for the brokers' certificates.
fn trust_roots(
    issues: &mut Issues,
    t: &RawUpstreamTls,
    sources: &Sources,
) -> Option<Arc<rustls::RootCertStore>> {
    match pem::pem_certificates(sources.file(&t.ca)) {
        Ok(certs) => {
            let mut store = rustls::RootCertStore::empty();
            let (_, ignored) = store.add_parsable_certificates(certs);
            if ignored > 0 || store.is_empty() {
                issues.error(
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
            issues.error("upstream.tls.ca", reason);
            None
        }
    }
}

/// The proxy's client certificate for the brokers: `Some(None)` when not configured, `None`
/// when it cannot be used.
fn client_key(
    issues: &mut Issues,
    t: &RawUpstreamTls,
    sources: &Sources,
) -> Option<Option<Arc<CertifiedKey>>> {
    match (&t.certificate_chain, &t.private_key) {
        (None, None) => Some(None),
        (Some(chain), Some(key)) => {
            match pem::certified_key(sources.file(chain), sources.file(key)) {
                Ok(k) => Some(Some(Arc::new(k))),
                Err((field, reason)) => {
                    issues.error(format!("upstream.tls.{field}"), reason);
                    None
                }
            }
        }
        _ => {
            issues.error(
                "upstream.tls",
                "certificate_chain and private_key go together: set both or neither",
            );
            None
        }
    }
}

/// The files the upstream TLS settings are read from, for the reload watch.
fn tls_files(u: &RawUpstream) -> Vec<PathBuf> {
    u.tls
        .iter()
        .flat_map(|t| {
            std::iter::once(t.ca.clone())
                .chain(t.certificate_chain.clone())
                .chain(t.private_key.clone())
        })
        .collect()
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
