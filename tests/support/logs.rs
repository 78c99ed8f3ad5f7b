//! What the in-process proxies of a test binary logged, read back: why a connection was closed,
//! waiting for a line; and panics anywhere outside the tests themselves, which tokio (or the
//! proxy's `catch_unwind`) would otherwise swallow.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use super::proxy::{capture_logs, captured_logs};

/// Panics raised outside the test files, `tests/…` (so in the proxy or kafka-protocol), as
/// `message at location`.
/// A panic in a connection task does not kill the process (tokio catches it), and one inside
/// the proxy's `catch_unwind` does not even end the connection, so only this hook sees them.
static FOREIGN_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// [`capture_logs`], and a panic hook that records [`FOREIGN_PANICS`].
pub fn init_logging() {
    capture_logs();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            // Locations in this crate's test files are relative (`tests/…`); the proxy's are
            // `src/…`, and other crates' are absolute paths.
            if !location.starts_with("tests/") {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                FOREIGN_PANICS
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!("{message} at {location}"));
            }
            default_hook(info);
        }));
    });
}

/// Fails if anything outside the test files panicked (in any test of this binary so far).
pub fn assert_no_foreign_panics() {
    let panics = FOREIGN_PANICS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        panics.is_empty(),
        "the proxy (or a crate under it) panicked: {panics:#?}"
    );
}

/// What the proxy logged when it closed the connection from `client` (its `peer` field).
pub fn close_reason_in(logs: &str, client: SocketAddr) -> String {
    let peer = format!("peer={client}");
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&peer) && l.contains("connection closed"))
        .collect();
    if lines.is_empty() {
        format!("(the proxy logged no close for {client})")
    } else {
        lines.join("\n")
    }
}

/// [`close_reason_in`] the logs of the in-process proxies, after a moment for the log to land.
pub async fn close_reason(client: SocketAddr) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    close_reason_in(&captured_logs(), client)
}

/// [`close_reason_in`] the logs of the in-process proxies, once they hold a close for `client`
/// (or after `within`).
pub async fn wait_for_close_reason(client: SocketAddr, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let peer = format!("peer={client}");
    loop {
        let logs = captured_logs();
        let closed = logs
            .lines()
            .any(|l| l.contains(&peer) && l.contains("connection closed"));
        if closed || Instant::now() > deadline {
            return close_reason_in(&logs, client);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the captured logs contain `needle`.
pub async fn wait_for_log(needle: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if captured_logs().contains(needle) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
