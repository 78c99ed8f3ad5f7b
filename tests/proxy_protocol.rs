//! PROXY protocol through a live proxy (in-process, in front of a fake broker), with
//! `listener.proxy_protocol.trusted_sources: [127.0.0.1/32]`. Loopback has all of 127/8, so a
//! client bound to 127.0.0.2 is an untrusted source on the same machine.
//!
//! - A trusted source sending a v2 header is admitted and audited with the header's address,
//!   and the balancer's (the socket's) as `viaAddress`.
//! - An untrusted source sending a forged header is refused before TLS, logged and counted.
//! - A trusted source without a header (required) is refused with a clear log line.
//! - An untrusted source without a header is a direct client, audited with its own address.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::fake_broker::{FakeBroker, NODE_ID};
use support::kafka_client::{KafkaConn, decode};
use support::logs::{assert_no_foreign_panics, init_logging, wait_for_log};
use support::proxy::{Pki, ServerTask, request};
use support::test_proxy::{ADVERTISED_HOST, free_port};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The client the forged and the genuine headers name.
const REAL_CLIENT: &str = "192.0.2.7:51234";

struct Setup {
    pki: Pki,
    _fake: FakeBroker,
    server: ServerTask,
    audit: PathBuf,
}

async fn start() -> Setup {
    init_logging();
    let pki = Pki::generate("proxy-protocol");
    let fake = FakeBroker::start().await;
    let first_port = free_port() - u16::try_from(NODE_ID).unwrap();
    let audit = pki.path("audit.log");
    let yaml = format!(
        r#"listener:
  bootstrap: "127.0.0.1:0"
  advertised_host: "{ADVERTISED_HOST}"
  broker_ports:
    first_port: {first_port}
  proxy_protocol:
    trusted_sources: ["127.0.0.1/32"]
{tls}
upstream:
  bootstrap_servers:
    - "{upstream}"
  connect_timeout_ms: 3000
audit:
  path: "{audit}"
limits:
  handshake_timeout_ms: 5000
admin:
  listen: 127.0.0.1:0
log:
  format: plain
  level: info
{certificate_authorities}
"#,
        tls = pki.tls_yaml(),
        upstream = fake.addr,
        audit = audit.display(),
        certificate_authorities = pki.certificate_authorities_yaml(),
    );
    let path = pki.path("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    let server = ServerTask::start(&path).await;
    Setup {
        pki,
        _fake: fake,
        server,
        audit,
    }
}

/// A TCP connection to `to` from `from_ip` (any free port).
async fn connect_from(from_ip: &str, to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(format!("{from_ip}:0").parse().unwrap())
        .unwrap();
    let tcp = socket.connect(to).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// A v2 PROXY TCP4 header naming `source` as the client and `destination` as the balancer's
/// listener.
fn v2_header(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (source, destination) else {
        panic!("IPv4 only here");
    };
    let mut out = V2_SIGNATURE.to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
    out.extend_from_slice(&s.ip().octets());
    out.extend_from_slice(&d.ip().octets());
    out.extend_from_slice(&s.port().to_be_bytes());
    out.extend_from_slice(&d.port().to_be_bytes());
    out
}

/// The TLS handshake and one ApiVersions round trip on `tcp`.
async fn kafka_round_trip(setup: &Setup, tcp: TcpStream) -> Result<(), String> {
    let local = tcp.local_addr().unwrap();
    let tls = setup
        .pki
        .client_config("acme-client", rustls::DEFAULT_VERSIONS);
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
    )
    .await
    .map_err(|_| "TLS handshake timed out".to_string())?
    .map_err(|e| format!("TLS handshake: {e}"))?;
    let mut conn = KafkaConn { stream, local };
    let frame = request(
        ApiKey::ApiVersions,
        3,
        1,
        "good",
        &ApiVersionsRequest::default(),
    );
    let response = conn.round_trip(&frame).await?;
    let (corr, _) = decode::<ApiVersionsResponse>(&response, ApiKey::ApiVersions, 3)?;
    assert_eq!(corr, 1);
    Ok(())
}

/// The audit records naming `connection` in their `clientAddress` or `viaAddress`, waiting
/// up to 10 s for one.
async fn audit_records_of(path: &Path, address: SocketAddr) -> Vec<serde_json::Value> {
    let address = address.to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<serde_json::Value> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| {
                let data = &r["data"];
                data["clientAddress"] == address.as_str() || data["viaAddress"] == address.as_str()
            })
            .collect();
        if !found.is_empty() || Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refusals(metrics: &str, reason: &str) -> u64 {
    let series = format!("kafka_mtls_proxy_proxy_protocol_refusals_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// The proxy closes `tcp` without a byte of TLS: the read sees the end (or a reset).
async fn assert_closed_without_tls(mut tcp: TcpStream) {
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("the proxy did not close the connection");
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("the proxy answered {n} bytes: {:?}", &buf[..n]),
    }
}

#[tokio::test]
async fn a_trusted_v2_header_is_audited_with_the_clients_address() {
    let setup = start().await;
    let tcp = connect_from("127.0.0.1", setup.server.addr).await;
    let balancer = tcp.local_addr().unwrap();
    let mut tcp = tcp;
    let header = v2_header(REAL_CLIENT.parse().unwrap(), setup.server.addr);
    tcp.write_all(&header).await.unwrap();
    kafka_round_trip(&setup, tcp).await.unwrap();

    let records = audit_records_of(&setup.audit, REAL_CLIENT.parse().unwrap()).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let data = &records[0]["data"];
    assert_eq!(data["methodName"], "kafka.Authentication");
    assert_eq!(data["clientAddress"], REAL_CLIENT);
    assert_eq!(data["viaAddress"], balancer.to_string());
    assert_eq!(
        data["authenticationInfo"]["principal"],
        "User:pool-payments"
    );
    // The session's log span says the same.
    assert!(
        wait_for_log(
            &format!("peer={REAL_CLIENT} listener=bootstrap via={balancer}"),
            Duration::from_secs(5)
        )
        .await
    );
    setup.server.stop().await;
    assert_no_foreign_panics();
}

#[tokio::test]
async fn a_forged_header_from_an_untrusted_source_is_refused_logged_and_counted() {
    let setup = start().await;
    let mut tcp = connect_from("127.0.0.2", setup.server.addr).await;
    let forger = tcp.local_addr().unwrap();
    let header = v2_header(REAL_CLIENT.parse().unwrap(), setup.server.addr);
    tcp.write_all(&header).await.unwrap();
    assert_closed_without_tls(tcp).await;

    assert!(
        wait_for_log(
            &format!(
                "peer={forger}}}: kafka_mtls_proxy::server::proxy_protocol: connection refused \
                 before the TLS handshake reason=sent a PROXY protocol header from a source not \
                 in listener.proxy_protocol.trusted_sources"
            ),
            Duration::from_secs(5)
        )
        .await,
        "{}",
        support::proxy::captured_logs()
    );
    assert_eq!(
        refusals(&setup.server.metrics().await, "untrusted_header"),
        1
    );
    // The forged address was never believed: nothing names it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&setup.audit).unwrap_or_default();
    assert!(!text.contains("192.0.2.7"), "{text}");

    // The same source without a header is a direct client, audited as itself.
    let tcp = connect_from("127.0.0.2", setup.server.addr).await;
    let direct = tcp.local_addr().unwrap();
    kafka_round_trip(&setup, tcp).await.unwrap();
    let records = audit_records_of(&setup.audit, direct).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["data"]["clientAddress"], direct.to_string());
    assert!(records[0]["data"].get("viaAddress").is_none());
    setup.server.stop().await;
    assert_no_foreign_panics();
}

#[tokio::test]
async fn a_trusted_source_without_a_header_is_refused() {
    let setup = start().await;
    let tcp = connect_from("127.0.0.1", setup.server.addr).await;
    let balancer = tcp.local_addr().unwrap();
    // Straight into TLS, as a client that bypassed the balancer on its host would.
    let refused = kafka_round_trip(&setup, tcp).await;
    assert!(refused.is_err());
    assert!(
        wait_for_log(
            &format!(
                "peer={balancer}}}: kafka_mtls_proxy::server::proxy_protocol: connection \
                 refused before the TLS handshake reason=no PROXY protocol header from a \
                 trusted source (listener.proxy_protocol.required is true)"
            ),
            Duration::from_secs(5)
        )
        .await,
        "{}",
        support::proxy::captured_logs()
    );
    assert_eq!(refusals(&setup.server.metrics().await, "missing_header"), 1);
    assert!(audit_records_of(&setup.audit, balancer).await.is_empty());
    setup.server.stop().await;
    assert_no_foreign_panics();
}
