//! The YAML schema exactly as an operator writes it.
//!
//! These structs only describe shape: every field is checked and turned into the typed
//! [`Config`](super::Config) by [`super::load`]. `deny_unknown_fields` everywhere, so a typo is an
//! error rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

fn default_first_port() -> u16 {
    9093
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listener: RawListener,
    pub tls: RawServerTls,
    pub upstream: RawUpstream,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub reload: RawReload,
    #[serde(default)]
    pub revocation: RawRevocation,
    #[serde(default)]
    pub certificate_authorities: Vec<RawCertificateAuthority>,
    /// Absent: no admin server.
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    /// Proxy-side ACLs: off unless enabled here or on a certificate authority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RawAuthorization>,
    /// The shared pool store (the `store` module); absent: this file's CAs and pools are the ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<super::RawStore>,
}

/// `authorization` (global) and `certificate_authorities[].authorization`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuthorization {
    /// Check every request against the pools' ACLs. Global default false; on a certificate
    /// authority, absent means "as the global setting".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Rules for every connection (global) or every pool of the certificate authority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RawAclRule>,
}

/// One ACL rule as written (checked into [`crate::acl::AclRule`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAclRule {
    /// `allow` (default) or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    pub operations: Vec<String>,
    pub resource_type: String,
    /// `literal` (default) or `prefixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_type: Option<String>,
    /// `*` (literal) for every resource of the type; optional for `cluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawRevocation {
    /// How often `crl_url`s are fetched again (default 24 hours).
    #[serde(default)]
    pub crl_refresh_interval_ms: Option<u64>,
    /// How long one fetch may take (default 10 s).
    #[serde(default)]
    pub crl_fetch_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// `reevaluate` (default): on reload, re-check live connections and close those no longer
    /// admitted; `keep`: new configuration applies to new connections only.
    #[serde(default)]
    pub existing_connections: Option<String>,
    /// How often the configuration and every file it names are checked for changes; 0 turns
    /// the file watch off (SIGHUP still reloads).
    #[serde(default)]
    pub watch_interval_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// `host:port` the bootstrap listener binds, e.g. `0.0.0.0:9092`.
    pub bootstrap: String,
    /// Host name clients are told to use for every broker. Must be in the server certificate.
    /// Required in port-per-broker mode; unused (and optional) with `sni`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_host: Option<String>,
    /// Address the per-broker listeners bind; defaults to the bootstrap listener's address.
    #[serde(default)]
    pub broker_bind_address: Option<String>,
    #[serde(default)]
    pub broker_ports: RawBrokerPorts,
    /// What clients are told for each broker when it is not what the proxy binds (a load
    /// balancer or a Kubernetes Service in front). Absent: `advertised_host` and the bound ports.
    #[serde(default)]
    pub advertised: Option<RawAdvertised>,
    /// Absent: no PROXY protocol; every connection's socket address is the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<RawProxyProtocol>,
    /// Absent: port-per-broker. Present: every broker on the bootstrap port, routed by the TLS
    /// server name; no per-broker ports are bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<RawSni>,
}

/// `listener.sni`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSni {
    /// The server name clients bootstrap with, e.g. `bootstrap.kafka.example.com`.
    pub bootstrap: String,
    /// Every broker's name, `{id}` standing for its node id: `broker-{id}.kafka.example.com`.
    pub broker_pattern: String,
    /// The port clients are told for every broker. Absent: the bootstrap port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertised_port: Option<u16>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdvertised {
    /// Node N is advertised on `first_port + N` (with `advertised_host`).
    #[serde(default)]
    pub first_port: Option<u16>,
    /// Explicit node id → advertised port entries; they win over `first_port + N`.
    #[serde(default)]
    pub node_ports: BTreeMap<i32, u16>,
    /// Explicit node id → `host:port` entries; they win over everything else.
    #[serde(default)]
    pub nodes: BTreeMap<i32, String>,
}

/// `listener.proxy_protocol`: PROXY protocol v1/v2 headers from trusted load balancers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyProtocol {
    /// CIDR ranges (`10.0.0.0/8`) or single addresses whose connections may carry a header.
    pub trusted_sources: Vec<String>,
    /// A connection from a trusted source must start with a header (default true).
    #[serde(default = "default_true")]
    pub required: bool,
    /// A connection from anywhere else without a header is served as a direct client
    /// (default true); false refuses it.
    #[serde(default = "default_true")]
    pub allow_direct: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawBrokerPorts {
    /// The broker with node id N is served on `first_port + N`.
    #[serde(default = "default_first_port")]
    pub first_port: u16,
    /// Explicit node id → port entries; they win over `first_port + N` (for large node ids).
    #[serde(default)]
    pub node_ports: BTreeMap<i32, u16>,
}

impl Default for RawBrokerPorts {
    fn default() -> Self {
        Self {
            first_port: default_first_port(),
            node_ports: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    /// PEM: the proxy's certificate, then its intermediates.
    pub certificate_chain: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: PathBuf,
    /// `"1.2"` (default: TLS 1.2 and 1.3) or `"1.3"` (TLS 1.3 only).
    #[serde(default)]
    pub min_version: Option<String>,
    /// Warn this many days before the server certificate or a CA certificate expires
    /// (default 30; 0: never).
    #[serde(default)]
    pub expiry_warning_days: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `host:port` of one or more brokers of the real cluster.
    pub bootstrap_servers: Vec<String>,
    /// Absent: plaintext to the brokers.
    #[serde(default)]
    pub tls: Option<RawUpstreamTls>,
    #[serde(default)]
    pub connect_timeout_ms: Option<u64>,
    /// Who the proxy is to the brokers; absent: `mode: none`.
    #[serde(default)]
    pub identity: Option<RawUpstreamIdentity>,
    /// What the proxy does while a broker does not answer.
    #[serde(default)]
    pub health: RawUpstreamHealth,
    /// The proxy's own login on the cluster (the shared pool store, SNI discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_login: Option<RawProxyLogin>,
}

/// `upstream.proxy_login`: who the proxy is when it asks the cluster for itself. SCRAM: a
/// broker user and a password reference; OAUTHBEARER: a subject the proxy signs a token for.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawProxyLogin {
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER` (default: the upstream identity's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mechanism: Option<String>,
    /// The SCRAM user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// The token's `sub` (OAUTHBEARER; default `kafka-mtls-proxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// `upstream.health`: refusing clients before the handshake while their broker is down.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamHealth {
    #[serde(default)]
    pub refuse_when_down: Option<bool>,
    #[serde(default)]
    pub probe_interval_ms: Option<u64>,
    #[serde(default)]
    pub max_probe_interval_ms: Option<u64>,
}

/// `upstream.identity`: how the proxy authenticates to the brokers on behalf of a pool.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamIdentity {
    /// `none` (the default), `scram` or `oauthbearer`.
    #[serde(default)]
    pub mode: Option<String>,
    /// `SCRAM-SHA-256` or `SCRAM-SHA-512` (scram mode).
    #[serde(default)]
    pub mechanism: Option<String>,
    /// Pool id → the broker-side user it authenticates as (scram mode).
    #[serde(default)]
    pub credentials: BTreeMap<String, RawScramCredential>,
    /// The tokens' `iss` (oauthbearer mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The tokens' `aud` (oauthbearer mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The tokens' `scope` claim, when the brokers check one (oauthbearer mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `exp - iat` of every token (oauthbearer mode; default 15 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_ms: Option<u64>,
    /// How long each signing key signs (oauthbearer mode; default 24 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate_every_ms: Option<u64>,
    /// How long a new key is in the JWKS before it signs (oauthbearer mode; default 65 min).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_ahead_ms: Option<u64>,
    /// Directory of the signing keys (PKCS#8 PEM, mode 0600); absent: keys in memory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_dir: Option<PathBuf>,
    /// SASL extensions sent with every token, after `identityPoolId` (oauthbearer mode).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
}

/// One pool's broker credentials. The password is a reference (an environment variable or a
/// file), never the secret itself.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawScramCredential {
    pub username: String,
    #[serde(default)]
    pub password_env: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// PEM bundle of the CA(s) that issued the brokers' certificates.
    pub ca: PathBuf,
    /// The proxy's own client certificate for brokers that require one (with `private_key`).
    #[serde(default)]
    pub certificate_chain: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// Name to verify the brokers' certificates against, instead of the host they are dialled by.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    /// File to append JSON lines to; `-` for standard output; `off` to disable.
    #[serde(default)]
    pub path: Option<String>,
    /// The CloudEvents `source` attribute of every record.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub queue_capacity: Option<usize>,
    /// Rotate the file before a record would take it past this size (default 100 MiB);
    /// 0: never (external rotation, e.g. logrotate, with a SIGHUP to re-open the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    /// Rotated files kept, `PATH.1` (newest) to `PATH.N` (default 5); older ones are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_frame_bytes: Option<usize>,
    #[serde(default)]
    pub max_connections: Option<usize>,
    #[serde(default)]
    pub handshake_timeout_ms: Option<u64>,
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_in_flight_requests: Option<usize>,
    #[serde(default)]
    pub pool_cache_entries: Option<usize>,
    #[serde(default)]
    pub pools_per_ca: Option<usize>,
    #[serde(default)]
    pub max_broker_listeners: Option<usize>,
    #[serde(default)]
    pub drain_timeout_ms: Option<u64>,
    /// The request memory budget: request bytes held across every client connection.
    #[serde(default)]
    pub max_buffered_request_bytes: Option<usize>,
    /// How long a client may leave a started request frame without sending a byte.
    #[serde(default)]
    pub request_stall_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `plain` (default) or `json`.
    #[serde(default)]
    pub format: Option<String>,
    /// A tracing filter such as `info` or `kafka_mtls_proxy=debug`; `RUST_LOG` wins.
    #[serde(default)]
    pub level: Option<String>,
}

/// The admin HTTP server (`/healthz`, `/readyz`, `/metrics`, the IAM API). `admin: {}` enables
/// it on the default address.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `IP:port` to listen on; defaults to loopback, `127.0.0.1:9644`.
    #[serde(default)]
    pub listen: Option<String>,
    /// File holding the bearer token that writes to the IAM API (`/iam/v2/...`) require.
    /// Without `token_file` or `token_env` the IAM API is read-only.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Name of an environment variable holding that token (instead of `token_file`).
    #[serde(default)]
    pub token_env: Option<String>,
}

/// Confluent's field names, so a CA block from Confluent Cloud loads as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertificateAuthority {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// PEM file (`.pem`) with 1 to 4 CA certificates.
    pub certificate_chain: PathBuf,
    /// Certificate revocation lists issued by this CA's certificates: a PEM file (one or more
    /// `X509 CRL` blocks) or a DER file.
    #[serde(default)]
    pub crl_chain: Option<PathBuf>,
    /// `http://` URL of a CRL, fetched at start and every `revocation.crl_refresh_interval_ms`;
    /// the last good CRL is kept when a fetch fails.
    #[serde(default)]
    pub crl_url: Option<String>,
    /// Refuse certificates whose revocation status cannot be determined (no CRL for their
    /// issuer, or an expired CRL). Default false: CRLs are checked when there are some.
    #[serde(default)]
    pub require_crl_on_client_certificate: bool,
    #[serde(default)]
    pub identity_pools: Vec<RawIdentityPool>,
    /// Proxy-side ACLs for this CA's pools: whether they are enforced, and rules for all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RawAuthorization>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentityPool {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// `CN`, `DN`, `SERIAL`, `SAN` or `SHA1`.
    pub external_identifier: String,
    /// CEL filter; empty never matches.
    #[serde(default)]
    pub filter: String,
    /// When several pools match, the one with the highest priority (then the smallest pool id)
    /// is the connection's primary pool: its upstream identity is what the broker sees.
    /// Absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// This pool's ACL rules (enforced when `authorization.enabled`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acls: Vec<RawAclRule>,
}
