//! Default values of the optional settings. Each limit is the value a Kafka broker uses where one
//! exists.

use crate::kafka::frame::DEFAULT_MAX_FRAME_BYTES;

/// Kafka's `socket.request.max.bytes`.
pub const MAX_FRAME_BYTES: usize = DEFAULT_MAX_FRAME_BYTES;
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
/// The request memory budget (Kafka's `queued.max.request.bytes`, unlimited there).
pub const MAX_BUFFERED_REQUEST_BYTES: usize =
    crate::kafka::budget::DEFAULT_MAX_BUFFERED_REQUEST_BYTES;
/// A client that starts a request frame and then sends nothing for this long is closed, and
/// the memory budget its frame held goes back to the others.
pub const REQUEST_STALL_TIMEOUT_MS: u64 = 30_000;
/// How long shutdown waits for connections to deliver the answers already in flight.
pub const DRAIN_TIMEOUT_MS: u64 = 30_000;
pub const UPSTREAM_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// The first re-check of a broker found down; doubles after each failed check.
pub const UPSTREAM_PROBE_INTERVAL_MS: u64 = 250;
/// The longest wait between re-checks: a broker that is back serves clients within this.
pub const UPSTREAM_MAX_PROBE_INTERVAL_MS: u64 = 2_000;
pub const AUDIT_QUEUE_CAPACITY: usize = 10_000;
pub const AUDIT_PATH: &str = "audit.log";
/// About 40 seconds of records at 1,700 authentications per second.
pub const AUDIT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Rotated audit files kept, as logback's and log4j's default rollover strategies keep a few.
pub const AUDIT_MAX_FILES: usize = 5;
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
