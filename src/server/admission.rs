//! Admission at accept: a client over `limits.max_connections` is accepted and closed at once,
//! counted and logged (at most once per [`REFUSAL_LOG_INTERVAL`]), instead of waiting unseen in
//! the kernel's accept queue until its own timeout. Connections already open are unaffected.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::warn;

use crate::metrics::{ConnectionRefusal, Metrics};
use crate::upstream::Target;

/// At most one refusal line per interval: a client retrying in a loop must not flood the log.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The permit of an admitted connection, or `None`: the caller closes the socket at once.
pub(crate) fn admit(
    connections: &Arc<Semaphore>,
    max_connections: usize,
    refusals: &Throttle,
    metrics: &Metrics,
    target: Target,
    peer: SocketAddr,
) -> Option<OwnedSemaphorePermit> {
    // `Closed` cannot happen (the semaphore is never closed); refusing is the safe answer.
    let Ok(permit) = connections.clone().try_acquire_owned() else {
        metrics.connection_refused(target, ConnectionRefusal::MaxConnections);
        if let Some(suppressed) = refusals.allow(Instant::now()) {
            warn!(
                %peer,
                max = max_connections,
                refused_since_last_line = suppressed,
                "connection refused: limits.max_connections reached (closed before TLS)"
            );
        }
        return None;
    };
    Some(permit)
}

/// Lets one event through per interval and counts the ones held back in between.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    state: Mutex<ThrottleState>,
}

#[derive(Debug, Default)]
struct ThrottleState {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(ThrottleState::default()),
        }
    }

    /// `Some(n)` when this event may be logged, `n` being how many were held back since the
    /// last one that was; `None` when it is held back.
    pub fn allow(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update of two integers.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match s.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                s.suppressed += 1;
                None
            }
            _ => {
                s.last = Some(now);
                Some(std::mem::take(&mut s.suppressed))
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_then_the_count_held_back() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        assert_eq!(t.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
    }

    #[tokio::test]
    async fn over_the_limit_is_refused_and_counted_and_a_freed_permit_admits_again() {
        let connections = Arc::new(Semaphore::new(1));
        let metrics = Metrics::new();
        let throttle = Throttle::new(REFUSAL_LOG_INTERVAL);
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let try_admit = || {
            admit(
                &connections,
                1,
                &throttle,
                &metrics,
                Target::Bootstrap,
                peer,
            )
        };
        let first = try_admit().unwrap();
        assert!(try_admit().is_none());
        let series = "kafka_mtls_proxy_connections_refused_total{listener=\"bootstrap\",reason=\"max_connections\"} 1";
        assert!(metrics.encode().contains(series), "{}", metrics.encode());
        drop(first);
        assert!(try_admit().is_some());
    }
}
