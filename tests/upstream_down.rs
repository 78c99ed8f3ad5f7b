//! A listener whose broker is down stops listening, so clients are refused as the broker itself
//! would refuse them; it listens and serves again once the broker is back, within the longest
//! probe interval; a listener whose broker is up keeps serving meanwhile.
//!
//! The bootstrap listener's upstream is a relay in front of the fake broker, which the test
//! stops and starts; the fake names itself for node [`NODE_ID`], so the broker listener's
//! upstream stays up throughout.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::fake_broker::{FakeBroker, NODE_ID};
use support::kafka_client::KafkaConn;
use support::logs::{init_logging, wait_for_log};
use support::proxy::{Pki, ServerTask};
use support::test_proxy::{free_port, good_round_trip, write_config};

const PROBE_INTERVAL: Duration = Duration::from_millis(100);
const MAX_PROBE_INTERVAL: Duration = Duration::from_millis(400);
const CLOSED: &str = "kafka_mtls_proxy_listener_closed{listener=\"bootstrap\"}";

/// Relays TCP from a fixed port to the fake broker until dropped (which closes the port and
/// every relayed connection).
struct Relay(JoinHandle<()>);

impl Relay {
    async fn start(port: u16, to: SocketAddr) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        Relay(tokio::spawn(async move {
            let mut relayed = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                relayed.spawn(async move {
                    if let Ok(mut broker) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
                    }
                });
            }
        }))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A plain TCP connection to `addr` that sends nothing: the proxy must close it (EOF or reset)
/// without a byte, well before the handshake timeout (5 s) would.
async fn closed_before_handshake(addr: SocketAddr) -> Result<(), String> {
    let mut tcp = match TcpStream::connect(addr).await {
        Ok(tcp) => tcp,
        // The reset can win the race with the connect's completion.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
        Err(e) => return Err(format!("connect: {e}")),
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
        Ok(Ok(n)) => Err(format!("{n} bytes came back")),
        Err(_) => Err("still open after 2 s: the proxy waited for a TLS handshake".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_upstream_refuses_before_the_handshake_and_serves_again_when_back() {
    init_logging();
    let pki = Pki::generate("upstream-down");
    let fake = FakeBroker::start().await;
    let relay_port = free_port();
    let relay = Relay::start(relay_port, fake.addr).await;
    let broker_port = free_port();
    let first_port = broker_port - u16::try_from(NODE_ID).unwrap();
    let path = write_config(
        &pki,
        "127.0.0.1:0".parse().unwrap(),
        first_port,
        SocketAddr::from(([127, 0, 0, 1], relay_port)),
        "info",
    );
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "  connect_timeout_ms: 3000\n",
        &format!(
            "  connect_timeout_ms: 3000\n  health:\n    probe_interval_ms: {}\n    \
             max_probe_interval_ms: {}\n",
            PROBE_INTERVAL.as_millis(),
            MAX_PROBE_INTERVAL.as_millis()
        ),
    ) + "admin:\n  listen: \"127.0.0.1:0\"\n";
    std::fs::write(&path, yaml).unwrap();
    let server = ServerTask::start(&path).await;
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);
    let broker_addr = SocketAddr::from(([127, 0, 0, 1], broker_port));

    // Up: the bootstrap listener serves, and Metadata opens the broker's listener.
    let mut conn = KafkaConn::connect(server.addr, tls.clone()).await.unwrap();
    good_round_trip(&mut conn, 1, broker_port, fake.addr)
        .await
        .unwrap();
    drop(conn);

    drop(relay);
    // The first client after the broker went away finds out the hard way (handshake, then a
    // close): that is what tells the proxy.
    if let Ok(mut conn) = KafkaConn::connect(server.addr, tls.clone()).await {
        assert!(
            good_round_trip(&mut conn, 10, broker_port, fake.addr)
                .await
                .is_err()
        );
    }
    assert!(
        wait_for_log(
            "upstream down: refusing new connections",
            Duration::from_secs(5)
        )
        .await,
        "no log line saying the bootstrap upstream went down"
    );
    // The next client is closed before the handshake, and closes the listener: from then on
    // a connect is refused by the kernel, as the broker's own port refuses it, for as long as
    // the broker stays away (several probe intervals).
    closed_before_handshake(server.addr).await.unwrap();
    assert!(
        wait_for_log(
            "listener closed while its broker is down",
            Duration::from_secs(5)
        )
        .await,
        "no log line saying the bootstrap listener closed"
    );
    let down_until = Instant::now() + 3 * MAX_PROBE_INTERVAL;
    let mut refused = 0;
    while Instant::now() < down_until {
        let refusal = TcpStream::connect(server.addr)
            .await
            .expect_err("the closed listener took a connection");
        assert_eq!(refusal.kind(), std::io::ErrorKind::ConnectionRefused);
        refused += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused > 3);
    assert_eq!(server.metric(CLOSED).await, Some(1.0));

    // The broker's own listener has its own upstream, which is up: it serves throughout.
    let mut conn = KafkaConn::connect(broker_addr, tls.clone()).await.unwrap();
    good_round_trip(&mut conn, 20, broker_port, fake.addr)
        .await
        .unwrap();
    drop(conn);

    // Back: the proxy finds out by itself (no client can arrive at a closed port), within the
    // longest probe interval (plus a loaded machine's slack), listens again, and serves.
    // Another process took the port meanwhile: the proxy says so and keeps trying. (Reuse-addr,
    // as the proxy binds: a connection the proxy closed may leave the port in TIME_WAIT.)
    let squatter = tokio::net::TcpSocket::new_v4().unwrap();
    squatter.set_reuseaddr(true).unwrap();
    squatter.bind(server.addr).unwrap();
    let squatter = squatter.listen(16).unwrap();
    let _relay = Relay::start(relay_port, fake.addr).await;
    assert!(
        wait_for_log(
            "cannot listen again after the broker came back",
            MAX_PROBE_INTERVAL + Duration::from_secs(2)
        )
        .await,
        "no error saying the port is taken"
    );
    assert_eq!(server.metric(CLOSED).await, Some(1.0));
    drop(squatter);
    assert!(
        wait_for_log(
            "broker reachable again: listening",
            MAX_PROBE_INTERVAL + Duration::from_secs(2)
        )
        .await,
        "the listener did not open again after the broker came back"
    );
    let mut conn = KafkaConn::connect(server.addr, tls.clone()).await.unwrap();
    good_round_trip(&mut conn, 30, broker_port, fake.addr)
        .await
        .unwrap();
    assert_eq!(server.metric(CLOSED).await, Some(0.0));
    assert!(
        wait_for_log(
            "upstream reachable again: serving new connections",
            Duration::from_secs(2)
        )
        .await
    );
    server.stop().await;
}
