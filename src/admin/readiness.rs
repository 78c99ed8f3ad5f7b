//! What the core tells the admin server about its own state, and the `/readyz` verdict.
//!
//! Liveness and readiness are different questions. `/healthz` answers "is the process alive"
//! and never looks here: restarting a proxy because its upstream is down would only add a
//! second outage. `/readyz` answers "should traffic be sent here now": the configuration is
//! loaded, the listeners are bound, the proxy is not shutting down, and an upstream bootstrap
//! server accepts TCP connections (checked by the admin server itself, see
//! [`UpstreamProbe`](super::UpstreamProbe)).
//!
//! With a shared pool store, the replica is not ready until it has read the store's topic to
//! its end, and **degraded** — `200` with `"status":"degraded"` and the reason — when it
//! cannot read the topic afterwards: it keeps enforcing the pools it applied last
//! ([`crate::store::StoreStatus`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;

use crate::store::{StoreReadiness, StoreStatus};

/// Readiness flags the core sets as it starts, reloads and stops. All start `false` except
/// `shutting_down`, so a proxy that has not finished starting is never reported ready.
///
/// Each flag is an independent fact published on its own, so `Relaxed` atomics suffice: no
/// other memory is handed over through them.
#[derive(Debug, Default)]
pub struct Readiness {
    config_loaded: AtomicBool,
    listeners_bound: AtomicBool,
    shutting_down: AtomicBool,
    /// The shared pool store's tail, when there is one.
    store: OnceLock<Arc<StoreStatus>>,
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// A configuration is loaded and in force (a failed reload keeps the previous one: leave
    /// this `true` then).
    pub fn set_config_loaded(&self, loaded: bool) {
        self.config_loaded.store(loaded, Ordering::Relaxed);
    }

    /// The bootstrap listener is bound and accepting.
    pub fn set_listeners_bound(&self, bound: bool) {
        self.listeners_bound.store(bound, Ordering::Relaxed);
    }

    /// Shutdown has begun: report not ready so load balancers stop sending new clients while
    /// the open connections drain.
    pub fn set_shutting_down(&self, shutting_down: bool) {
        self.shutting_down.store(shutting_down, Ordering::Relaxed);
    }

    /// Take the shared pool store's state into the verdict.
    pub fn set_store(&self, status: Arc<StoreStatus>) {
        let _ = self.store.set(status);
    }

    pub fn config_loaded(&self) -> bool {
        self.config_loaded.load(Ordering::Relaxed)
    }

    pub fn listeners_bound(&self) -> bool {
        self.listeners_bound.load(Ordering::Relaxed)
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// The verdict, given the result of the upstream check (`Err` says why it failed).
    pub fn report(&self, upstream: Result<(), String>) -> ReadinessReport {
        let mut not_ready = Vec::new();
        if !self.config_loaded() {
            not_ready.push(NotReady {
                check: "config_loaded",
                reason: "no configuration is loaded yet".to_string(),
            });
        }
        if !self.listeners_bound() {
            not_ready.push(NotReady {
                check: "listeners_bound",
                reason: "the proxy's listeners are not bound yet".to_string(),
            });
        }
        if self.shutting_down() {
            not_ready.push(NotReady {
                check: "not_shutting_down",
                reason: "the proxy is shutting down and draining its connections".to_string(),
            });
        }
        if let Err(reason) = upstream {
            not_ready.push(NotReady {
                check: "upstream_reachable",
                reason,
            });
        }
        let mut degraded = Vec::new();
        match self.store.get().map(|s| s.readiness()) {
            None | Some(StoreReadiness::Ready) => {}
            Some(StoreReadiness::CatchingUp(reason)) => not_ready.push(NotReady {
                check: "pool_store",
                reason,
            }),
            Some(StoreReadiness::Degraded(reason)) => degraded.push(NotReady {
                check: "pool_store",
                reason,
            }),
        }
        ReadinessReport {
            status: match (not_ready.is_empty(), degraded.is_empty()) {
                (false, _) => "not_ready",
                (true, false) => "degraded",
                (true, true) => "ready",
            },
            not_ready,
            degraded,
        }
    }
}

/// The JSON body of `/readyz`, e.g.
/// `{"status":"not_ready","not_ready":[{"check":"upstream_reachable","reason":"…"}]}`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// `ready`, `degraded` (ready, serving an older state; see `degraded`) or `not_ready`.
    pub status: &'static str,
    /// Every failed check, in a fixed order; empty when ready.
    pub not_ready: Vec<NotReady>,
    /// Checks that failed without making the proxy unready (the pool store's topic unread
    /// after it was read once); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<NotReady>,
}

impl ReadinessReport {
    pub fn is_ready(&self) -> bool {
        self.not_ready.is_empty()
    }
}

/// One failed readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct NotReady {
    /// `config_loaded`, `listeners_bound`, `not_shutting_down`, `upstream_reachable` or
    /// `pool_store`.
    pub check: &'static str,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(report: &ReadinessReport) -> Vec<&'static str> {
        report.not_ready.iter().map(|n| n.check).collect()
    }

    #[test]
    fn a_fresh_handle_is_not_ready_and_says_why() {
        let r = Readiness::new();
        let report = r.report(Err("refused".into()));
        assert!(!report.is_ready());
        assert_eq!(
            checks(&report),
            ["config_loaded", "listeners_bound", "upstream_reachable"]
        );
        assert_eq!(report.status, "not_ready");
    }

    #[test]
    fn ready_once_every_flag_is_set_and_not_while_shutting_down() {
        let r = Readiness::new();
        r.set_config_loaded(true);
        r.set_listeners_bound(true);
        let report = r.report(Ok(()));
        assert!(report.is_ready());
        assert_eq!(report.status, "ready");
        r.set_shutting_down(true);
        assert_eq!(checks(&r.report(Ok(()))), ["not_shutting_down"]);
    }

    #[test]
    fn the_pool_store_is_not_ready_until_read_then_degraded_when_unreadable() {
        let r = Readiness::new();
        r.set_config_loaded(true);
        r.set_listeners_bound(true);
        let store = Arc::new(StoreStatus::default());
        r.set_store(store.clone());
        store.set_target(3);
        let report = r.report(Ok(()));
        assert_eq!(checks(&report), ["pool_store"]);
        assert!(!report.is_ready());
        store.advanced(3);
        let report = r.report(Ok(()));
        assert!(report.is_ready());
        assert_eq!(report.status, "ready");
        store.failed("broker down".into());
        let report = r.report(Ok(()));
        assert!(
            report.is_ready(),
            "degraded is still ready: it serves its last state"
        );
        assert_eq!(report.status, "degraded");
        assert!(report.degraded[0].reason.contains("broker down"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["degraded"][0]["check"], "pool_store");
    }
}
