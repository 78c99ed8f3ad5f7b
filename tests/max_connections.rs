//! `limits.max_connections` through a live proxy (in-process, in front of a fake broker): a
//! client over the limit is closed at once, before any TLS, and counted; the clients already
//! admitted keep working; a freed slot admits the next client.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::fake_broker::{FakeBroker, NODE_ID};
use support::kafka_client::{CLOSE_WITHIN, KafkaConn};
use support::logs::init_logging;
use support::proxy::{Pki, ServerTask};
use support::test_proxy::{free_port, good_round_trip, write_config};

const REFUSED: &str =
    "kafka_mtls_proxy_connections_refused_total{listener=\"bootstrap\",reason=\"max_connections\"}";

/// The value of `series` in the proxy's `/metrics`, 0 when absent.
async fn metric(admin: SocketAddr, series: &str) -> f64 {
    let mut tcp = TcpStream::connect(admin).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    raw.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_connections_a_client_is_closed_at_once_and_counted_and_the_others_keep_working() {
    init_logging();
    let pki = Pki::generate("max-connections");
    let fake = FakeBroker::start().await;
    let broker_port = free_port();
    let first_port = broker_port - u16::try_from(NODE_ID).unwrap();
    let path = write_config(
        &pki,
        "127.0.0.1:0".parse().unwrap(),
        first_port,
        fake.addr,
        "info",
    );
    let yaml = std::fs::read_to_string(&path).unwrap();
    let yaml = yaml.replacen("limits:\n", "limits:\n  max_connections: 2\n", 1)
        + "admin:\n  listen: 127.0.0.1:0\n";
    std::fs::write(&path, yaml).unwrap();
    let server = ServerTask::start(&path).await;
    let admin = server.admin_addr.unwrap();
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);
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
    assert_eq!(metric(admin, REFUSED).await, 1.0);

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
    server.stop().await;
}
