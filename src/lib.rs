//! kafka-mtls-proxy: certificate identity in front of self-hosted Apache Kafka.
//!
//! The modules follow the path of one client connection (ARCHITECTURE.md draws it):
//!
//! - [`config`]: the typed YAML configuration, loaded and validated once, one module per
//!   section; its startup part (bound or process-wide) and its reloadable part (what a
//!   configuration generation carries) are two types.
//! - [`server`]: the bootstrap and per-broker listeners, accept loop, limits, shutdown.
//! - [`reload`], [`generation`]: configuration generations — built, published to sessions,
//!   replaced whole by a reload, which re-evaluates the connections already open.
//! - [`tls`]: the rustls server side, client-certificate verification against the configured
//!   certificate authorities, and the per-connection verdict (spelled out for operators by
//!   `tls::explain`, behind the `explain` command and `POST /iam/v2/explain`).
//! - [`identity`]: a client certificate's attributes (CN, RFC 4514 DN, SANs, serial, digests).
//! - [`pools`]: identity pools, their CEL filters, and resolution to principals.
//! - [`session`]: one client connection: handshake → identity → upstream → the two pumps,
//!   through the filter chain (local answers, ACLs, ApiVersions, broker addresses); the
//!   in-flight manager; KIP-368 re-authentication; one place that reports how a session ended.
//! - [`kafka`]: Kafka framing, request headers, `ApiKey`/`ErrorCode`, responses decoded once,
//!   API versions and broker-address rewriting.
//! - [`upstream`]: connections to the real brokers and the node id ↔ proxy port book, and the
//!   per-pool upstream identity (SASL/SCRAM as the connection's primary pool); which brokers
//!   are down (their listeners refuse clients before the handshake).
//! - [`oauth`]: the proxy as its own OAuth issuer (ES256 JWTs, JWKS, key rotation), used by
//!   [`upstream`] in `mode: oauthbearer`.
//! - [`scram`]: the client side of SCRAM-SHA-256/512 (RFC 5802), used by [`upstream`].
//! - [`acl`]: proxy-side ACLs: the pools' rules, each request checked and refused the way a
//!   broker refuses it.
//! - [`audit`]: one CloudEvents-shaped JSON line per authentication attempt, written by one
//!   task to a file rotated by size and re-opened on SIGHUP.
//! - [`metrics`]: the Prometheus metrics the core reports events to.
//! - [`log_limit`]: repeated identical warnings written once, then counted per 10 s.
//! - [`admin`]: the optional admin HTTP server (`/healthz`, `/readyz`, `/metrics`), and the
//!   iam/v2 API that manages certificate authorities and identity pools live.
//! - [`store`]: the shared pool store: the CAs and pools of every replica in a compacted Kafka
//!   topic, tailed by each replica and installed through [`reload`].
//!
//! The operator tools (`explain`'s file and printing, `pki`, the `pools` and `cas` commands) are
//! part of the binary (`src/tools/`), not of this library.

pub mod acl;
pub mod admin;
pub mod audit;
pub mod config;
pub mod expiry;
pub mod generation;
pub mod identity;
pub mod kafka;
pub mod log_limit;
pub mod metrics;
pub mod oauth;
pub mod pools;
pub mod reload;
pub mod scram;
pub mod server;
pub mod session;
pub mod store;
pub mod tls;
pub mod upstream;

#[cfg(test)]
pub(crate) mod test_support;
