//! The TLS side of the proxy: who may connect, and as which identity pools.
//!
//! - [`trust`]: the configured certificate authorities as verifiers, and the one function that
//!   turns a presented chain into a [`Verdict`] (chain checks, then pool resolution).
//! - [`acceptor`]: a rustls server configuration per connection whose client-certificate
//!   verifier records the verdict, so the connection knows *why* a handshake failed and which
//!   pools it was admitted to. A certificate that verifies but matches no pool is refused
//!   inside the handshake with an `access_denied` alert, so Java clients fail fast with
//!   `SslAuthenticationException` instead of retrying.
//! - [`sni`]: reading the ClientHello first (SNI routing) and refusing an unknown server name
//!   with `unrecognized_name`.
//! - [`explain`]: that verdict spelled out for an operator (each CA's check, each pool's
//!   result), for the `explain` command and `POST /iam/v2/explain`.

pub mod acceptor;
pub mod crl;
pub mod explain;
pub mod sni;
pub mod trust;

pub use acceptor::{HandshakeOutcome, TlsAcceptorFactory};
pub use trust::{RefusalReason, TrustStore, Verdict};

/// The crypto provider every rustls object of the proxy uses. Named explicitly (never the
/// process default) because a second provider in the dependency graph makes
/// `ServerConfig::builder()` panic.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
