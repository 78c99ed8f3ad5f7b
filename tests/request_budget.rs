//! The request memory budget under attack, through a live proxy: admitted clients each send
//! most of a large frame and stall, while a well-behaved client keeps working.
//!
//! Before the budget, every such client held its partial frame until the idle timeout (a
//! previous session measured 20 × 95 MiB → 1.99 GB RSS). Now the frames held together never
//! exceed `limits.max_buffered_request_bytes`, the clients beyond it are not read, each staller
//! is closed `limits.request_stall_timeout_ms` after its last byte, and the good client's small
//! requests never wait.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::kafka_client::KafkaConn;
use support::logs::{assert_no_foreign_panics, wait_for_close_reason};
use support::test_proxy::{GoodClient, MAX_FRAME_BYTES, TestProxy};

/// Three of the largest frames.
const BUDGET: usize = 3 * (MAX_FRAME_BYTES + 4);
const STALL: Duration = Duration::from_millis(1500);
/// Twice as many stalling clients as the budget holds frames.
const STALLERS: usize = 6;
/// What each staller sends of its frame before it stops.
const SENT: usize = MAX_FRAME_BYTES * 9 / 10;

async fn start_proxy() -> TestProxy {
    let limits = format!(
        "  max_buffered_request_bytes: {BUDGET}\n  request_stall_timeout_ms: {}\n",
        STALL.as_millis()
    );
    TestProxy::start_with("request-budget", &limits, true).await
}

/// The value of the unlabelled metric `name` on the proxy's `/metrics`.
async fn metric(proxy: &TestProxy, name: &str) -> i64 {
    // Counters and gauges of byte counts: whole numbers, exact in an f64.
    #[allow(clippy::cast_possible_truncation, reason = "whole numbers below 2^53")]
    let value = proxy
        .server
        .metric(&format!("kafka_mtls_proxy_{name}"))
        .await
        .unwrap_or_else(|| panic!("no {name} in /metrics")) as i64;
    value
}

/// Sends the start of a [`MAX_FRAME_BYTES`] ApiVersions frame (a filter wants it, so it is
/// held whole, against the budget), [`SENT`] bytes of it, then stalls, keeping the connection
/// open until the proxy closes it. Returns when the proxy closed it.
async fn stall(mut conn: KafkaConn) -> Instant {
    let mut bytes = i32::try_from(MAX_FRAME_BYTES)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    // Header v2: api key 18, version 3, correlation id 1, client id "evil".
    bytes.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 4]);
    bytes.extend_from_slice(b"evil");
    bytes.resize(4 + SENT, 0);
    // A client the proxy does not read (the budget is spent) blocks here until it is.
    let _ = conn.stream.write_all(&bytes).await;
    let _ = conn.stream.flush().await;
    let mut buf = [0u8; 64];
    match conn.stream.read(&mut buf).await {
        Ok(0) | Err(_) => Instant::now(),
        Ok(_) => panic!("the proxy answered a frame that never ended"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_large_frames_hold_at_most_the_budget_and_are_closed_while_a_good_client_works() {
    let proxy = Arc::new(start_proxy().await);
    let good = GoodClient::start(&proxy).await;

    // Sample the budget gauge all along.
    let peak = Arc::new(AtomicI64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let (proxy, peak, sampling) = (proxy.clone(), peak.clone(), sampling.clone());
        async move {
            while sampling.load(Ordering::Relaxed) {
                let held = metric(&proxy, "request_budget_held_bytes").await;
                peak.fetch_max(held, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });

    let attack = Instant::now();
    let mut stallers = Vec::new();
    for _ in 0..STALLERS {
        let conn = proxy.connect_good().await;
        let local = conn.local;
        stallers.push((local, tokio::spawn(stall(conn))));
    }
    // While the budget is spent and clients wait for it, the good client keeps going.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&proxy, "request_budget_waits_total").await == 0 {
        assert!(
            Instant::now() < deadline,
            "no client ever waited for the budget"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    good.wait_for_progress("with the budget spent").await;

    // Every staller is closed for stalling: the first ones after the stall timeout, the
    // others once they got budget, sent their bytes and stalled in turn.
    for (local, staller) in stallers {
        let closed = tokio::time::timeout(Duration::from_secs(30), staller)
            .await
            .expect("a stalling client was never closed")
            .unwrap();
        assert!(
            closed - attack >= STALL,
            "closed after {:?}, before the stall timeout",
            closed - attack
        );
        let reason = wait_for_close_reason(local, Duration::from_secs(5)).await;
        assert!(
            reason.contains("reason=client stalled in the middle of a frame (")
                && reason.contains(&format!(
                    " of {} bytes received, then nothing for 1500 ms",
                    MAX_FRAME_BYTES + 4
                )),
            "{reason}"
        );
    }
    good.wait_for_progress("after the attack").await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();

    let peak = usize::try_from(peak.load(Ordering::Relaxed)).unwrap();
    assert!(
        peak <= BUDGET,
        "held {peak} bytes, over the budget of {BUDGET}"
    );
    assert!(
        peak >= 2 * MAX_FRAME_BYTES,
        "the attack never filled the budget ({peak})"
    );
    assert_eq!(metric(&proxy, "request_budget_held_bytes").await, 0);
    assert_eq!(
        metric(&proxy, "clients_stalled_total").await,
        i64::try_from(STALLERS).unwrap()
    );
    assert!(good.finish().await >= 6);
    proxy.assert_alive().await;
    Arc::into_inner(proxy).unwrap().stop().await;
    assert_no_foreign_panics();
}
