//! `limits`: how much the proxy takes on, in two parts: the process-wide limits fixed at start,
//! and the per-connection ones each configuration generation carries.

use std::time::Duration;

use super::raw::RawLimits;
use super::{Issues, defaults};

/// The limits a running proxy cannot change: they size what is set up at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupLimits {
    /// The connection semaphore's size.
    pub max_connections: usize,
    pub max_broker_listeners: usize,
    /// The request memory budget's size: request bytes held across every connection.
    pub max_buffered_request_bytes: usize,
}

/// The limits a reload can change: each connection uses those of its configuration generation,
/// and shutdown waits `drain_timeout` of the generation current then.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    /// How long a client may leave a started request frame without sending a byte.
    pub request_stall_timeout: Duration,
    pub max_in_flight_requests: usize,
    pub pool_cache_entries: usize,
    pub pools_per_ca: usize,
    pub drain_timeout: Duration,
}

/// Check `limits`; a value that is not positive is an error, and its default stands in.
pub(super) fn check(issues: &mut Issues, l: &RawLimits) -> (StartupLimits, Limits) {
    // In the order of the file's keys, so the issues are too.
    let max_frame_bytes = issues.positive(
        "limits.max_frame_bytes",
        l.max_frame_bytes,
        defaults::MAX_FRAME_BYTES,
    );
    let max_connections = issues.positive(
        "limits.max_connections",
        l.max_connections,
        defaults::MAX_CONNECTIONS,
    );
    let handshake_timeout = Duration::from_millis(issues.positive(
        "limits.handshake_timeout_ms",
        l.handshake_timeout_ms,
        defaults::HANDSHAKE_TIMEOUT_MS,
    ));
    let idle_timeout = Duration::from_millis(issues.positive(
        "limits.idle_timeout_ms",
        l.idle_timeout_ms,
        defaults::IDLE_TIMEOUT_MS,
    ));
    let max_in_flight_requests = issues.positive(
        "limits.max_in_flight_requests",
        l.max_in_flight_requests,
        defaults::MAX_IN_FLIGHT_REQUESTS,
    );
    let pool_cache_entries = issues.positive(
        "limits.pool_cache_entries",
        l.pool_cache_entries,
        defaults::POOL_CACHE_ENTRIES,
    );
    let pools_per_ca = issues.positive(
        "limits.pools_per_ca",
        l.pools_per_ca,
        defaults::POOLS_PER_CA,
    );
    let max_broker_listeners = issues.positive(
        "limits.max_broker_listeners",
        l.max_broker_listeners,
        defaults::MAX_BROKER_LISTENERS,
    );
    let drain_timeout = Duration::from_millis(issues.positive(
        "limits.drain_timeout_ms",
        l.drain_timeout_ms,
        defaults::DRAIN_TIMEOUT_MS,
    ));
    let max_buffered_request_bytes = issues.positive(
        "limits.max_buffered_request_bytes",
        l.max_buffered_request_bytes,
        defaults::MAX_BUFFERED_REQUEST_BYTES,
    );
    if max_buffered_request_bytes < max_frame_bytes {
        // The budget is strict: a frame larger than all of it could never be read.
        issues.error(
            "limits.max_buffered_request_bytes",
            format!(
                "must be at least limits.max_frame_bytes ({max_frame_bytes}), so that the \
                 largest request can be held (got {max_buffered_request_bytes})"
            ),
        );
    }
    let request_stall_timeout = Duration::from_millis(issues.positive(
        "limits.request_stall_timeout_ms",
        l.request_stall_timeout_ms,
        defaults::REQUEST_STALL_TIMEOUT_MS,
    ));
    (
        StartupLimits {
            max_connections,
            max_broker_listeners,
            max_buffered_request_bytes,
        },
        Limits {
            max_frame_bytes,
            handshake_timeout,
            idle_timeout,
            request_stall_timeout,
            max_in_flight_requests,
            pool_cache_entries,
            pools_per_ca,
            drain_timeout,
        },
    )
}
