//! Upstream health: which listeners' brokers are known not to answer.
//!
//! A client whose connection completes the mTLS handshake and is then closed because no broker
//! answers has, to its Kafka library, *connected*: librdkafka and the Java client then
//! reconnect at once instead of backing off. So while a [`Target`]'s broker (a bootstrap
//! server for the bootstrap listener, node N for N's listener) is known down, new connections
//! on its listener are closed before the TLS handshake — the nearest a proxy that has already
//! accepted the TCP connection can come to the refused connect a down broker gives — and the
//! listener then closes its port (`server::closed_while_down`: with SNI routing only once the
//! whole cluster is down; it probes the broker itself while no client can arrive).
//!
//! Every upstream connect attempt reports here ([`UpstreamHealth::record`]); a connect that
//! fails to reach the broker (TCP refused or timed out) marks the target down. While it is
//! down, a client arriving once the probe interval has passed becomes the *probe*: the proxy
//! dials the broker before that client's handshake (one probe at a time per target), serves
//! the client if the broker answers, and otherwise waits twice as long (up to the maximum)
//! before the next probe. So a broker that is back serves clients again within
//! `upstream.health.max_probe_interval_ms`, and a down broker sees at most one dial per
//! interval from the proxy, however many clients try.
//!
//! Only reachability counts: a broker that answers but refuses TLS or the pool's credentials is
//! up (its clients get the precise error from the data path).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::Target;
use crate::config::HealthSettings;

/// Whether a new client connection on a listener may go on to its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The broker is not known down.
    Serve,
    /// Known down and a probe is due: the caller probes, [`UpstreamHealth::record`]s its
    /// result, then calls [`UpstreamHealth::probe_done`] (also when cancelled), and serves the
    /// client if the broker answered.
    Probe,
    /// Known down: close the connection before the handshake.
    Refuse,
}

/// A change of a target's health, to be logged once (not once per connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    WentDown,
    CameBack {
        down_for: Duration,
        /// Connections refused while it was down.
        refused: u64,
    },
}

/// Targets known down; a target not listed is up (or untried).
#[derive(Debug, Default)]
pub struct UpstreamHealth {
    /// A std mutex: held for one map operation, never across an await (a probe runs unlocked,
    /// marked by `probing`).
    down: Mutex<HashMap<Target, Down>>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    /// The wait before the next probe, doubled after each failed one.
    interval: Duration,
    next_probe: Instant,
    /// One probe at a time: clients arriving meanwhile are refused.
    probing: bool,
    refused: u64,
}

impl UpstreamHealth {
    /// May a new client of `target`'s listener go on to its handshake at `now`?
    pub fn admit(&self, target: Target, settings: &HealthSettings, now: Instant) -> Admission {
        if !settings.refuse_when_down {
            return Admission::Serve;
        }
        let Ok(mut down) = self.down.lock() else {
            return Admission::Serve;
        };
        let Some(d) = down.get_mut(&target) else {
            return Admission::Serve;
        };
        if d.probing || now < d.next_probe {
            d.refused += 1;
            return Admission::Refuse;
        }
        d.probing = true;
        Admission::Probe
    }

    /// The result of a connect attempt (or probe) to `target`'s broker: `reachable` is false
    /// when the broker could not be reached at all. Returns the change to log, if any.
    pub fn record(
        &self,
        target: Target,
        reachable: bool,
        settings: &HealthSettings,
        now: Instant,
    ) -> Option<Change> {
        let Ok(mut down) = self.down.lock() else {
            return None;
        };
        match (reachable, down.get_mut(&target)) {
            (true, None) => None,
            (true, Some(_)) => down.remove(&target).map(|d| Change::CameBack {
                down_for: now.duration_since(d.since),
                refused: d.refused,
            }),
            (false, None) => {
                down.insert(
                    target,
                    Down {
                        since: now,
                        interval: settings.probe_interval,
                        next_probe: now + settings.probe_interval,
                        probing: false,
                        refused: 0,
                    },
                );
                Some(Change::WentDown)
            }
            (false, Some(d)) => {
                // Still down (a probe, or a connection admitted before it went down): wait
                // longer before asking the broker again.
                d.interval = (d.interval * 2).min(settings.max_probe_interval);
                d.next_probe = now + d.interval;
                None
            }
        }
    }

    /// The probe of `target` ended, with or without a result: the next due client may probe.
    /// (Only the probe clears this: a connection admitted before the broker went down that
    /// fails meanwhile must not start a second probe.)
    pub fn probe_done(&self, target: Target) {
        if let Ok(mut down) = self.down.lock()
            && let Some(d) = down.get_mut(&target)
        {
            d.probing = false;
        }
    }

    /// When `target` may next be probed; `None` when it is not known down.
    pub fn next_probe(&self, target: Target) -> Option<Instant> {
        self.down.lock().ok()?.get(&target).map(|d| d.next_probe)
    }

    /// Is `target` known down now? (For tests and diagnostics.)
    pub fn is_down(&self, target: Target) -> bool {
        self.down
            .lock()
            .map(|d| d.contains_key(&target))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HealthSettings {
        HealthSettings {
            refuse_when_down: true,
            probe_interval: Duration::from_millis(250),
            max_probe_interval: Duration::from_millis(1_000),
        }
    }

    const B: Target = Target::Bootstrap;

    #[tokio::test(start_paused = true)]
    async fn up_until_a_connect_fails_then_refused_until_a_probe_is_due() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        assert_eq!(h.admit(B, &s, t0), Admission::Serve);
        assert_eq!(h.record(B, false, &s, t0), Some(Change::WentDown));
        assert_eq!(h.admit(B, &s, t0), Admission::Refuse);
        let just_before = t0 + Duration::from_millis(249);
        assert_eq!(h.admit(B, &s, just_before), Admission::Refuse);
        let due = t0 + Duration::from_millis(250);
        assert_eq!(h.admit(B, &s, due), Admission::Probe);
        // One probe at a time.
        assert_eq!(h.admit(B, &s, due), Admission::Refuse);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_double_the_interval_up_to_the_maximum() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        h.record(B, false, &s, t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            // Find when the next probe is admitted, to the millisecond.
            let start = now;
            while h.admit(B, &s, now) != Admission::Probe {
                now += Duration::from_millis(1);
            }
            waits.push((now - start).as_millis());
            assert_eq!(h.record(B, false, &s, now), None, "still down: no new line");
            h.probe_done(B);
        }
        assert_eq!(waits, vec![250, 500, 1_000, 1_000, 1_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_successful_probe_brings_it_back_once_with_the_refusal_count() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        h.record(B, false, &s, t0);
        for _ in 0..3 {
            assert_eq!(h.admit(B, &s, t0), Admission::Refuse);
        }
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(h.admit(B, &s, t1), Admission::Probe);
        assert_eq!(
            h.record(B, true, &s, t1),
            Some(Change::CameBack {
                down_for: Duration::from_millis(300),
                refused: 3
            })
        );
        assert_eq!(
            h.record(B, true, &s, t1),
            None,
            "already up: no second line"
        );
        assert_eq!(h.admit(B, &s, t1), Admission::Serve);
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_probe_is_known_while_down_and_none_once_back() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        assert_eq!(h.next_probe(B), None);
        h.record(B, false, &s, t0);
        assert_eq!(h.next_probe(B), Some(t0 + Duration::from_millis(250)));
        let due = t0 + Duration::from_millis(250);
        assert_eq!(h.admit(B, &s, due), Admission::Probe);
        h.record(B, false, &s, due);
        h.probe_done(B);
        assert_eq!(h.next_probe(B), Some(due + Duration::from_millis(500)));
        h.record(B, true, &s, due);
        assert_eq!(h.next_probe(B), None);
    }

    #[tokio::test(start_paused = true)]
    async fn targets_are_apart() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        h.record(Target::Node(1), false, &s, t0);
        assert_eq!(h.admit(Target::Node(1), &s, t0), Admission::Refuse);
        assert_eq!(h.admit(Target::Node(2), &s, t0), Admission::Serve);
        assert_eq!(h.admit(B, &s, t0), Admission::Serve);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_lets_the_next_client_probe() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        h.record(B, false, &s, t0);
        let due = t0 + Duration::from_millis(250);
        assert_eq!(h.admit(B, &s, due), Admission::Probe);
        h.probe_done(B);
        assert_eq!(h.admit(B, &s, due), Admission::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn another_connection_failing_during_a_probe_does_not_start_a_second() {
        let (h, s, t0) = (UpstreamHealth::default(), settings(), Instant::now());
        h.record(B, false, &s, t0);
        let due = t0 + Duration::from_millis(250);
        assert_eq!(h.admit(B, &s, due), Admission::Probe);
        // A connection admitted before the broker went down fails now.
        h.record(B, false, &s, due);
        let later = due + Duration::from_secs(5);
        assert_eq!(
            h.admit(B, &s, later),
            Admission::Refuse,
            "the probe is still out"
        );
        h.probe_done(B);
        assert_eq!(h.admit(B, &s, later), Admission::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn switched_off_it_serves_every_client() {
        let (h, t0) = (UpstreamHealth::default(), Instant::now());
        let s = HealthSettings {
            refuse_when_down: false,
            ..settings()
        };
        h.record(B, false, &s, t0);
        assert_eq!(h.admit(B, &s, t0), Admission::Serve);
    }
}
