//! How far the store's tail is, for `/readyz` and the metrics.
//!
//! - Until the replica has read the topic to the end it saw at start, it is **not ready**
//!   (`/readyz` 503): it would enforce pools that may be out of date or missing.
//! - Once it has, a topic it cannot read makes it **degraded**, not down (`/readyz` 200 with
//!   `"status":"degraded"` and the reason): it keeps enforcing the last state it applied, and
//!   taking every replica out of the load balancer because Kafka's internal topic is
//!   unreachable would turn a management outage into a data-path outage.

use std::sync::Mutex;

/// The store's part of the readiness verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreReadiness {
    Ready,
    /// Not read to its end yet: not ready.
    CatchingUp(String),
    /// Read to its end once, unreadable now: serving the last applied state.
    Degraded(String),
}

#[derive(Debug, Default)]
struct Inner {
    /// The end offset seen when the tail (re)started, before the replica first caught up.
    target: Option<i64>,
    /// The next offset to apply.
    next: i64,
    caught_up: bool,
    /// Why the topic cannot be read now.
    error: Option<String>,
}

/// Shared between the tail (which writes it) and `/readyz` (which reads it).
#[derive(Debug, Default)]
pub struct StoreStatus {
    inner: Mutex<Inner>,
}

impl StoreStatus {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The topic's end at (re)start; reached once, the replica is caught up for good.
    pub fn set_target(&self, end: i64) {
        self.with(|s| {
            if !s.caught_up {
                s.target = Some(end);
                s.caught_up = s.next >= end;
            }
        });
    }

    /// The tail applied everything before `next`; the topic is readable. Whether the replica
    /// has caught up (now or before).
    pub fn advanced(&self, next: i64) -> bool {
        self.with(|s| {
            s.next = next;
            s.error = None;
            if s.target.is_some_and(|t| next >= t) {
                s.caught_up = true;
            }
            s.caught_up
        })
    }

    /// Whether applying up to `next` reaches the end the replica must read before it is ready.
    pub fn reaches_target(&self, next: i64) -> bool {
        self.with(|s| s.target.is_some_and(|t| next >= t))
    }

    pub fn failed(&self, reason: String) {
        self.with(|s| s.error = Some(reason));
    }

    pub fn caught_up(&self) -> bool {
        self.with(|s| s.caught_up)
    }

    pub fn readiness(&self) -> StoreReadiness {
        self.with(|s| match (&s.error, s.caught_up) {
            (None, true) => StoreReadiness::Ready,
            (Some(e), true) => StoreReadiness::Degraded(format!(
                "the pool store topic cannot be read ({e}); serving the pools applied up to offset {}",
                s.next
            )),
            (error, false) => StoreReadiness::CatchingUp(match (error, s.target) {
                (Some(e), _) => format!("the pool store topic cannot be read yet: {e}"),
                (None, Some(t)) => format!(
                    "reading the pool store topic: offset {} of {t}",
                    s.next
                ),
                (None, None) => "connecting to the pool store topic".to_string(),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_until_the_end_seen_at_start_is_reached() {
        let s = StoreStatus::default();
        assert!(matches!(s.readiness(), StoreReadiness::CatchingUp(r) if r.contains("connecting")));
        s.set_target(5);
        assert!(!s.reaches_target(3) && s.reaches_target(5));
        assert!(!s.advanced(3));
        assert!(
            matches!(s.readiness(), StoreReadiness::CatchingUp(r) if r.contains("offset 3 of 5"))
        );
        assert!(s.advanced(5));
        assert_eq!(s.readiness(), StoreReadiness::Ready);
    }

    #[test]
    fn an_empty_topic_is_caught_up_at_once() {
        let s = StoreStatus::default();
        s.set_target(0);
        assert_eq!(s.readiness(), StoreReadiness::Ready);
    }

    #[test]
    fn unreadable_before_catching_up_is_not_ready_and_after_is_degraded() {
        let s = StoreStatus::default();
        s.failed("connection refused".into());
        assert!(
            matches!(s.readiness(), StoreReadiness::CatchingUp(r) if r.contains("connection refused"))
        );
        s.set_target(2);
        s.advanced(2);
        s.failed("connection refused".into());
        match s.readiness() {
            StoreReadiness::Degraded(r) => {
                assert!(
                    r.contains("connection refused") && r.contains("offset 2"),
                    "{r}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A new end seen after a reconnect does not make a caught-up replica not ready again.
        s.set_target(10);
        s.advanced(2);
        assert_eq!(s.readiness(), StoreReadiness::Ready);
    }
}
