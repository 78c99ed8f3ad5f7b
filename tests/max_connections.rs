//! `limits.max_connections` through a live proxy (in-process, in front of a fake broker): a
//! client over the limit is closed at once, before any TLS, and counted; the clients already
//! admitted keep working; a freed slot admits the next client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::time::{Duration, Instant};

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::kafka_client::{CLOSE_WITHIN, KafkaConn};
use support::test_proxy::{TestProxy, good_round_trip};

const REFUSED: &str =
    "kafka_mtls_proxy_connections_refused_total{listener=\"bootstrap\",reason=\"max_connections\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_connections_a_client_is_closed_at_once_and_counted_and_the_others_keep_working() {
    let proxy = TestProxy::start_with("max-connections", "  max_connections: 2\n", true).await;
    let (server, fake, broker_port, tls) = (
        &proxy.server,
        &proxy.fake,
        proxy.broker_port,
        &proxy.good_tls,
    );
    let connect = || KafkaConn::connect(server.addr, tls.clone());

    let mut first = connect().await.unwrap();
    good_round_trip(&mut first, 1, broker_port, fake.addr)
        .await
        .unwrap();
    let mut second = connect().await.unwrap();
    good_round_trip(&mut second, 2, broker_port, fake.addr)
        .await
        .unwrap();

    // The third is closed during its handshake, not left waiting: the error is the proxy's
    // close, not the client's handshake timeout.
    let started = Instant::now();
    let third = connect().await;
    let error = third
        .err()
        .expect("a third client was admitted over max_connections 2");
    assert_ne!(error.kind(), std::io::ErrorKind::TimedOut, "{error}");
    assert!(started.elapsed() < CLOSE_WITHIN, "{:?}", started.elapsed());
    assert_eq!(server.metric(REFUSED).await, Some(1.0));

    // The admitted clients are unaffected.
    good_round_trip(&mut first, 3, broker_port, fake.addr)
        .await
        .unwrap();
    good_round_trip(&mut second, 4, broker_port, fake.addr)
        .await
        .unwrap();

    // One leaves: once the proxy has seen it go, a new client is admitted.
    drop(first);
    let deadline = Instant::now() + CLOSE_WITHIN;
    let mut fourth = loop {
        match connect().await {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no client admitted after one left: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    good_round_trip(&mut fourth, 5, broker_port, fake.addr)
        .await
        .unwrap();
    good_round_trip(&mut second, 6, broker_port, fake.addr)
        .await
        .unwrap();
    drop((second, fourth));
    proxy.server.stop().await;
}
