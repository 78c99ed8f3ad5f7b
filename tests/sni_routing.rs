//! SNI routing through a live proxy (in-process) in front of a fake three-broker cluster, with
//! `listener.sni: {bootstrap: bootstrap.kafka.test, broker_pattern: broker-{id}.kafka.test}`
//! and a wildcard server certificate (`*.kafka.test`).
//!
//! - The bootstrap name reaches the cluster; its Metadata answer names every broker as
//!   `broker-<id>.kafka.test` on the proxy's one port, and no upstream address.
//! - A broker's name reaches that broker (each fake answers an unknown api key with its node
//!   id).
//! - A name of no broker, a foreign name, and a malformed id get the TLS alert
//!   `unrecognized_name`, and a metric.
//! - A broker that joins the cluster later is served at once: its name is looked up with the
//!   cluster before the handshake, with no Metadata request from any client in between.
//! - A routed broker known down is refused before the handshake (`upstream.health`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, ResponseHeader,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::fake_broker::parse_fake_request;
use support::kafka_client::{KafkaConn, decode, raw_request};
use support::logs::{assert_no_foreign_panics, init_logging};
use support::proxy::{FakeListener, Pki, ServerTask, framed, request};

/// The api key each fake broker answers with its own node id: unknown to Kafka, so the proxy
/// relays it untouched.
const WHO_ARE_YOU: i16 = 9999;
const DOMAIN: &str = "kafka.test";

/// Node ids the cluster's Metadata answers name, and where each broker is.
type Members = Arc<Mutex<Vec<(i32, SocketAddr)>>>;

/// One fake broker of the cluster: answers Metadata with the cluster's current members, and
/// [`WHO_ARE_YOU`] with `node:<id>`.
async fn fake_broker(node_id: i32, members: Members) -> FakeListener {
    FakeListener::start(move |socket, _| serve_fake(socket, node_id, members.clone())).await
}

async fn serve_fake(mut socket: TcpStream, node_id: i32, members: Members) {
    loop {
        let Ok(size) = socket.read_i32().await else {
            return;
        };
        let mut frame = vec![0u8; usize::try_from(size).unwrap_or(0)];
        if socket.read_exact(&mut frame).await.is_err() {
            return;
        }
        let Some(req) = parse_fake_request(&frame) else {
            return;
        };
        let reply = if req.api_key == ApiKey::Metadata as i16 {
            let version = req.api_version;
            let mut out = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(req.correlation_id)
                .encode(&mut out, ApiKey::Metadata.response_header_version(version))
                .unwrap();
            let brokers = members
                .lock()
                .unwrap()
                .iter()
                .map(|(id, addr)| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(*id))
                        .with_host(StrBytes::from_string(addr.ip().to_string()))
                        .with_port(i32::from(addr.port()))
                })
                .collect();
            MetadataResponse::default()
                .with_brokers(brokers)
                .with_controller_id(BrokerId(1))
                .encode(&mut out, version)
                .unwrap();
            framed(&out)
        } else if req.api_key == WHO_ARE_YOU {
            let mut out = Vec::new();
            out.put_i32(req.correlation_id);
            out.put_slice(format!("node:{node_id}").as_bytes());
            framed(&out)
        } else {
            return;
        };
        if socket.write_all(&reply).await.is_err() {
            return;
        }
    }
}

fn write_config(pki: &Pki, upstream: SocketAddr) -> std::path::PathBuf {
    let yaml = format!(
        r#"listener:
  bootstrap: "127.0.0.1:0"
  advertised_host: unused.example
  sni:
    bootstrap: bootstrap.{DOMAIN}
    broker_pattern: "broker-{{id}}.{DOMAIN}"
    advertised_port: 9092
{tls}
upstream:
  bootstrap_servers:
    - "{upstream}"
  connect_timeout_ms: 2000
  health:
    probe_interval_ms: 60000
    max_probe_interval_ms: 60000
audit:
  path: "off"
limits:
  handshake_timeout_ms: 5000
log:
  format: plain
  level: debug
{certificate_authorities}
"#,
        tls = pki.tls_yaml(),
        certificate_authorities = pki.certificate_authorities_yaml(),
    );
    let path = pki.path("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Which broker a connection with `server_name` reaches: `node:<id>`.
async fn who_answers(
    proxy: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Result<String, String> {
    let mut conn = KafkaConn::connect_named(proxy, tls.clone(), server_name)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let answer = conn
        .round_trip(&raw_request(WHO_ARE_YOU, 0, 77, "sni-test", b""))
        .await?;
    Ok(String::from_utf8_lossy(&answer[4..]).into_owned())
}

/// The TLS alert a refused handshake carried.
async fn refusal(proxy: SocketAddr, tls: &Arc<rustls::ClientConfig>, server_name: &str) -> String {
    match KafkaConn::connect_named(proxy, tls.clone(), server_name).await {
        Ok(_) => panic!("{server_name}: the handshake must fail"),
        Err(e) => match e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::AlertReceived(alert)) => format!("{alert:?}"),
            _ => format!("not an alert: {e}"),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_names_route_to_their_brokers() {
    init_logging();
    let members: Members = Arc::new(Mutex::new(Vec::new()));
    let mut brokers = Vec::new();
    for id in 1..=3 {
        brokers.push(fake_broker(id, members.clone()).await);
    }
    // Brokers 1 and 2 are the cluster; 3 joins later.
    members
        .lock()
        .unwrap()
        .extend([(1, brokers[0].addr), (2, brokers[1].addr)]);
    let pki = Pki::generate_with_hosts("sni-routing", &[&format!("*.{DOMAIN}")]);
    let server = ServerTask::start(&write_config(&pki, brokers[0].addr)).await;
    let proxy = server.addr;
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);

    // Bootstrap: Metadata names every broker by the pattern, on the advertised port.
    let mut conn = KafkaConn::connect_named(proxy, tls.clone(), &format!("bootstrap.{DOMAIN}"))
        .await
        .unwrap();
    let frame = request(
        ApiKey::Metadata,
        12,
        5,
        "sni-test",
        &MetadataRequest::default().with_topics(None),
    );
    let answer = conn.round_trip(&frame).await.unwrap();
    let (_, body) = decode::<MetadataResponse>(&answer, ApiKey::Metadata, 12).unwrap();
    let named: Vec<(i32, String, i32)> = body
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect();
    assert_eq!(
        named,
        vec![
            (1, format!("broker-1.{DOMAIN}"), 9092),
            (2, format!("broker-2.{DOMAIN}"), 9092)
        ]
    );
    let text = String::from_utf8_lossy(&answer);
    for b in &brokers {
        assert!(!text.contains(&b.addr.port().to_string()), "{text}");
    }
    drop(conn);

    // Each broker's name reaches that broker, whatever the case.
    assert_eq!(
        who_answers(proxy, &tls, &format!("broker-2.{DOMAIN}"))
            .await
            .unwrap(),
        "node:2"
    );
    assert_eq!(
        who_answers(proxy, &tls, &format!("BROKER-1.{DOMAIN}"))
            .await
            .unwrap(),
        "node:1"
    );

    // Names of no broker: unrecognized_name, before any certificate.
    for name in [
        format!("broker-9.{DOMAIN}"),
        format!("broker-01.{DOMAIN}"),
        format!("kafka.{DOMAIN}"),
    ] {
        assert_eq!(
            refusal(proxy, &tls, &name).await,
            "UnrecognisedName",
            "{name}"
        );
    }

    // Broker 3 joins. The last refresh (for broker-9) may have been under a second ago: the
    // proxy asks at most once a second.
    members.lock().unwrap().push((3, brokers[2].addr));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        who_answers(proxy, &tls, &format!("broker-3.{DOMAIN}"))
            .await
            .unwrap(),
        "node:3",
        "a broker that joined later is served at once"
    );

    // Broker 2 goes away: its first client finds it down, the next is refused before the
    // handshake (a reset, no alert), while broker 1 is still served.
    let gone = brokers.remove(1);
    drop(gone);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        who_answers(proxy, &tls, &format!("broker-2.{DOMAIN}"))
            .await
            .is_err()
    );
    let refused = KafkaConn::connect_named(proxy, tls.clone(), &format!("broker-2.{DOMAIN}"))
        .await
        .err()
        .expect("a client of a broker known down is refused");
    assert!(
        refused
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .is_none(),
        "refused before TLS, not by an alert: {refused}"
    );
    assert_eq!(
        who_answers(proxy, &tls, &format!("broker-1.{DOMAIN}"))
            .await
            .unwrap(),
        "node:1"
    );

    server.stop().await;
    assert_no_foreign_panics();
}
