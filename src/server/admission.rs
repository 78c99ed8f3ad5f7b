//! Admission at accept: a client over `limits.max_connections` is accepted and closed at once,
//! counted and logged (repeats rate-limited with a count, as every noisy warning is:
//! [`crate::log_limit`]), instead of waiting unseen in the kernel's accept queue until its own
//! timeout. Connections already open are unaffected.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::warn;

use crate::log_limit::{Level, warnings};
use crate::metrics::{ConnectionRefusal, Metrics, listener_label};
use crate::upstream::Target;

const REFUSED: &str = "connection refused: limits.max_connections reached (closed before TLS)";

/// The permit of an admitted connection, or `None`: the caller closes the socket at once.
pub(crate) fn admit(
    connections: &Arc<Semaphore>,
    max_connections: usize,
    metrics: &Metrics,
    target: Target,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    // `Closed` cannot happen (the semaphore is never closed); refusing is the safe answer.
    let Ok(permit) = connections.clone().try_acquire_owned() else {
        metrics.connection_refused(target, ConnectionRefusal::MaxConnections);
        if warnings().admit(Level::Warn, REFUSED, &listener_label(target)) {
            warn!(%peer, max = max_connections, "{REFUSED}");
        }
        return None;
    };
    Some(permit)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn over_the_limit_is_refused_and_counted_and_a_freed_permit_admits_again() {
        let connections = Arc::new(Semaphore::new(1));
        let metrics = Metrics::new();
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let try_admit = || admit(&connections, 1, &metrics, Target::Bootstrap, peer);
        let first = try_admit().unwrap();
        assert!(try_admit().is_none());
        let series = "kafka_mtls_proxy_connections_refused_total{listener=\"bootstrap\",reason=\"max_connections\"} 1";
        assert!(metrics.encode().contains(series), "{}", metrics.encode());
        drop(first);
        assert!(try_admit().is_some());
    }
}
