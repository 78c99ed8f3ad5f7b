//! Repeated identical warnings, rate-limited with a count.
//!
//! A failure that every connection meets (an unreachable broker, a client with a bad
//! certificate that reconnects every 50 ms) would otherwise write one identical warning per
//! connection. [`RepeatLimiter`] lets the first occurrence of a `(message, key)` through, counts
//! the ones that follow within [`REPEAT_WINDOW`], and reports the count as one line per window
//! while the repeats go on:
//!
//! ```text
//! WARN closing: no upstream connection (57 more in the last 10 s) repeated="closing: no upstream connection" key="bootstrap" suppressed=57
//! ```
//!
//! The summary line is the message followed by ` (N more in the last 10 s)`, at the level of
//! the original; its `repeated`, `key` and `suppressed` fields carry the same facts for
//! structured logs. A key that has been quiet for a whole window is forgotten, so its next
//! occurrence is logged in full again.
//!
//! Summaries are written when the next occurrence after the window comes, or by
//! [`flush_periodically`] (the server runs it) when none does.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The window a count covers, and the most often one `(message, key)` is written.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// At most this many `(message, key)` pairs are counted at once; past it, new pairs are logged
/// every time (never silently dropped) until old ones are forgotten.
pub const MAX_KEYS: usize = 1_024;

/// How bad a limited warning is: the summary goes out at the same level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warn,
    Error,
}

/// The limiter the proxy's noisy call sites share (see [`flush_periodically`]).
pub fn warnings() -> &'static RepeatLimiter {
    static WARNINGS: LazyLock<RepeatLimiter> =
        LazyLock::new(|| RepeatLimiter::new(REPEAT_WINDOW, MAX_KEYS));
    &WARNINGS
}

/// How often [`flush_periodically`] looks for windows that are over: a summary is written at
/// most this late.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Write the due summaries of [`warnings`] as their windows end, forever (the server aborts it).
pub async fn flush_periodically() {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for summary in warnings().due(Instant::now()) {
            summary.log();
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct RepeatLimiter {
    window: Duration,
    max_keys: usize,
    /// A std mutex: held for one map operation, never across an await.
    seen: Mutex<HashMap<(&'static str, String), Seen>>,
}

#[derive(Debug)]
struct Seen {
    level: Level,
    window_start: Instant,
    suppressed: u64,
}

/// Repeats of one `(message, key)` that were not written, to be reported in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressed {
    pub message: &'static str,
    pub key: String,
    pub level: Level,
    pub count: u64,
    pub window: Duration,
}

impl Suppressed {
    /// Write the summary line (format in the module documentation).
    pub fn log(&self) {
        let (message, key, count) = (self.message, self.key.as_str(), self.count);
        let secs = self.window.as_secs();
        match self.level {
            Level::Warn => tracing::warn!(
                repeated = message,
                key,
                suppressed = count,
                "{message} ({count} more in the last {secs} s)"
            ),
            Level::Error => tracing::error!(
                repeated = message,
                key,
                suppressed = count,
                "{message} ({count} more in the last {secs} s)"
            ),
        }
    }
}

impl RepeatLimiter {
    pub fn new(window: Duration, max_keys: usize) -> Self {
        Self {
            window,
            max_keys,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// An occurrence of `message` for `key` now: `true` when the caller should write it. When
    /// the last window of this pair ended with repeats, their summary is written first.
    pub fn admit(&self, level: Level, message: &'static str, key: &str) -> bool {
        let (admitted, summary) = self.admit_at(level, message, key, Instant::now());
        if let Some(summary) = summary {
            summary.log();
        }
        admitted
    }

    /// [`Self::admit`] at `now`, returning the summary instead of writing it.
    pub fn admit_at(
        &self,
        level: Level,
        message: &'static str,
        key: &str,
        now: Instant,
    ) -> (bool, Option<Suppressed>) {
        let Ok(mut seen) = self.seen.lock() else {
            return (true, None);
        };
        let pair = (message, key.to_string());
        match seen.get_mut(&pair) {
            Some(s) if now.duration_since(s.window_start) < self.window => {
                s.suppressed += 1;
                (false, None)
            }
            Some(s) => {
                // The window is over: report its repeats, and this one opens a new window.
                let summary = self.summary(&pair, s);
                s.window_start = now;
                s.suppressed = 0;
                (true, summary)
            }
            None => {
                if seen.len() < self.max_keys {
                    seen.insert(
                        pair,
                        Seen {
                            level,
                            window_start: now,
                            suppressed: 0,
                        },
                    );
                }
                (true, None)
            }
        }
    }

    /// The summaries of every window that is over at `now`; pairs quiet for a whole window
    /// are forgotten.
    pub fn due(&self, now: Instant) -> Vec<Suppressed> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        seen.retain(|pair, s| {
            if now.duration_since(s.window_start) < self.window {
                return true;
            }
            match self.summary(pair, s) {
                Some(summary) => {
                    out.push(summary);
                    // Repeats are still coming: keep counting them in a new window.
                    s.window_start = now;
                    s.suppressed = 0;
                    true
                }
                None => false,
            }
        });
        out
    }

    fn summary(&self, (message, key): &(&'static str, String), s: &Seen) -> Option<Suppressed> {
        (s.suppressed > 0).then(|| Suppressed {
            message,
            key: key.clone(),
            level: s.level,
            count: s.suppressed,
            window: self.window,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "closing: no upstream connection";

    fn limiter() -> RepeatLimiter {
        RepeatLimiter::new(Duration::from_secs(10), 4)
    }

    #[tokio::test(start_paused = true)]
    async fn first_is_written_repeats_are_counted_and_summarised_once_per_window() {
        let l = limiter();
        let t0 = Instant::now();
        assert_eq!(l.admit_at(Level::Warn, MSG, "bootstrap", t0), (true, None));
        for i in 1..=57 {
            let at = t0 + Duration::from_millis(100 * i);
            assert_eq!(l.admit_at(Level::Warn, MSG, "bootstrap", at), (false, None));
        }
        // Not yet over: nothing due.
        assert!(l.due(t0 + Duration::from_millis(9_999)).is_empty());
        let due = l.due(t0 + Duration::from_secs(10));
        assert_eq!(
            due,
            vec![Suppressed {
                message: MSG,
                key: "bootstrap".into(),
                level: Level::Warn,
                count: 57,
                window: Duration::from_secs(10),
            }]
        );
        // Still noisy: counted in the new window, not written.
        let t1 = t0 + Duration::from_secs(11);
        assert_eq!(l.admit_at(Level::Warn, MSG, "bootstrap", t1), (false, None));
        assert_eq!(l.due(t0 + Duration::from_secs(20))[0].count, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_pair_is_forgotten_and_written_in_full_again() {
        let l = limiter();
        let t0 = Instant::now();
        assert!(l.admit_at(Level::Warn, MSG, "k", t0).0);
        assert!(l.due(t0 + Duration::from_secs(10)).is_empty());
        assert!(
            l.admit_at(Level::Warn, MSG, "k", t0 + Duration::from_secs(11))
                .0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_occurrence_after_the_window_carries_the_summary() {
        let l = limiter();
        let t0 = Instant::now();
        l.admit_at(Level::Error, MSG, "k", t0);
        l.admit_at(Level::Error, MSG, "k", t0 + Duration::from_secs(1));
        l.admit_at(Level::Error, MSG, "k", t0 + Duration::from_secs(2));
        let (written, summary) = l.admit_at(Level::Error, MSG, "k", t0 + Duration::from_secs(12));
        assert!(written);
        let summary = summary.map(|s| (s.count, s.level));
        assert_eq!(summary, Some((2, Level::Error)));
        // That occurrence opened a new window with nothing suppressed yet.
        assert!(l.due(t0 + Duration::from_secs(30)).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn keys_and_messages_are_limited_apart() {
        let l = limiter();
        let t0 = Instant::now();
        assert!(l.admit_at(Level::Warn, MSG, "broker-1", t0).0);
        assert!(l.admit_at(Level::Warn, MSG, "broker-2", t0).0);
        assert!(l.admit_at(Level::Warn, "client refused", "broker-1", t0).0);
        assert!(!l.admit_at(Level::Warn, MSG, "broker-1", t0).0);
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_key_bound_new_pairs_are_always_written() {
        let l = limiter();
        let t0 = Instant::now();
        for k in ["a", "b", "c", "d"] {
            assert!(l.admit_at(Level::Warn, MSG, k, t0).0);
        }
        assert!(l.admit_at(Level::Warn, MSG, "e", t0).0);
        assert!(l.admit_at(Level::Warn, MSG, "e", t0).0);
        assert!(!l.admit_at(Level::Warn, MSG, "a", t0).0);
    }
}
