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
//! - A routed broker known down is refused before the handshake (`upstream.health`); once the
//!   whole cluster is known down the listener closes, and connects are refused.
//! - The same in `upstream.identity.mode: scram`, where every fake broker answers only clients
//!   signed in with SCRAM-SHA-256: the lookups sign in as the proxy itself
//!   (`upstream.proxy_login`), so a name of no broker still gets `unrecognized_name` before
//!   any ServerHello, and a broker that joins later is served at once; when the cluster refuses
//!   the proxy's own login, such a name is refused before the handshake with a reset instead
//!   (the lookup failed, it did not find nothing), and no unknown id becomes a metric label.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, MetadataRequest, MetadataResponse, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod scram_broker;
    pub mod test_proxy;
}
use support::fake_broker::parse_fake_request;
use support::kafka_client::{KafkaConn, decode, raw_request};
use support::logs::{assert_no_foreign_panics, init_logging, wait_for_log};
use support::proxy::{FakeListener, Pki, ServerTask, framed, request};
use support::scram_broker::{ScramServer, invalid_credentials, read_request, response};

/// The api key each fake broker answers with its own node id: unknown to Kafka, so the proxy
/// relays it untouched.
const WHO_ARE_YOU: i16 = 9999;
const DOMAIN: &str = "kafka.test";

/// Node ids the cluster's Metadata answers name, and where each broker is.
type Members = Arc<Mutex<Vec<(i32, SocketAddr)>>>;

/// One fake broker of the cluster: answers Metadata with the cluster's current members, and
/// [`WHO_ARE_YOU`] with `node:<id>`.
async fn fake_broker(node_id: i32, members: Members) -> FakeListener {
    FakeListener::start(move |socket, _| serve_fake(socket, node_id, members.clone(), None)).await
}

/// A fake broker that answers only clients signed in with SCRAM-SHA-256 as one of `scram`'s
/// users.
async fn scram_broker(node_id: i32, members: Members, scram: Arc<ScramUsers>) -> FakeListener {
    FakeListener::start(move |socket, _| {
        serve_fake(socket, node_id, members.clone(), Some(scram.clone()))
    })
    .await
}

async fn serve_fake(
    mut socket: TcpStream,
    node_id: i32,
    members: Members,
    scram: Option<Arc<ScramUsers>>,
) {
    if let Some(scram) = scram {
        match scram_login(&mut socket, &scram).await {
            Some(user) => scram.signed_in.lock().unwrap().push(user),
            None => return,
        }
    }
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
            let body = MetadataResponse::default()
                .with_brokers(brokers)
                .with_controller_id(BrokerId(1));
            response(ApiKey::Metadata, req.api_version, req.correlation_id, &body)
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
    write_config_with(pki, upstream, "")
}

/// The configuration, with `upstream_extra` (YAML indented by 2) in the `upstream` section.
fn write_config_with(pki: &Pki, upstream: SocketAddr, upstream_extra: &str) -> std::path::PathBuf {
    let yaml = format!(
        r#"listener:
  bootstrap: "127.0.0.1:0"
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
{upstream_extra}
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

    // The whole cluster goes away. Until the bootstrap servers and every broker are known
    // down the port stays open (each first client finds its broker down); then the next
    // client is reset and closes it, and a connect is refused as at the cluster itself.
    drop(brokers);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for name in ["bootstrap", "broker-1", "broker-3"] {
        assert!(
            who_answers(proxy, &tls, &format!("{name}.{DOMAIN}"))
                .await
                .is_err()
        );
    }
    assert!(
        KafkaConn::connect_named(proxy, tls.clone(), &format!("broker-1.{DOMAIN}"))
            .await
            .is_err()
    );
    assert!(
        wait_for_log(
            "listener closed while its broker is down",
            Duration::from_secs(5)
        )
        .await
    );
    let refusal = TcpStream::connect(proxy)
        .await
        .expect_err("the closed listener took a connection");
    assert_eq!(refusal.kind(), std::io::ErrorKind::ConnectionRefused);

    server.stop().await;
    assert_no_foreign_panics();
}

// ---------------------------------------------------------------------------------------------
// SCRAM mode.
// ---------------------------------------------------------------------------------------------

/// The pool's broker user and the proxy's own (`upstream.proxy_login`).
const POOL_USER: &str = "payments";
const POOL_PASSWORD: &str = "pool-password";
const PROXY_USER: &str = "kafka-mtls-proxy";
const PROXY_PASSWORD: &str = "proxy-password";
/// The users a SCRAM fake broker knows, and who signed in (in order).
struct ScramUsers {
    passwords: BTreeMap<&'static str, &'static str>,
    signed_in: Mutex<Vec<String>>,
}

/// SaslHandshake (SCRAM-SHA-256), then SCRAM in two SaslAuthenticate rounds, as a Kafka broker
/// does before any other request on a SASL listener. The user signed in, or `None` (the
/// connection is then closed, as a broker closes it after a failed authentication).
async fn scram_login(socket: &mut TcpStream, users: &ScramUsers) -> Option<String> {
    let (key, version, id, mut body) = read_request(socket).await?;
    assert_eq!(
        key,
        ApiKey::SaslHandshake,
        "a request before the SASL handshake"
    );
    let handshake = SaslHandshakeRequest::decode(&mut body, version).unwrap();
    assert_eq!(handshake.mechanism.as_str(), "SCRAM-SHA-256");
    let answer = SaslHandshakeResponse::default()
        .with_mechanisms(vec![StrBytes::from_static_str("SCRAM-SHA-256")]);
    socket
        .write_all(&response(key, version, id, &answer))
        .await
        .ok()?;

    let (key, version, id, mut body) = read_request(socket).await?;
    assert_eq!(key, ApiKey::SaslAuthenticate);
    let first = SaslAuthenticateRequest::decode(&mut body, version).unwrap();
    let scram = ScramServer::start(&first.auth_bytes)?;
    let answer = SaslAuthenticateResponse::default()
        .with_auth_bytes(Bytes::from(scram.server_first().to_owned()));
    socket
        .write_all(&response(key, version, id, &answer))
        .await
        .ok()?;

    let (key, version, id, mut body) = read_request(socket).await?;
    assert_eq!(key, ApiKey::SaslAuthenticate);
    let last = SaslAuthenticateRequest::decode(&mut body, version).unwrap();
    // An unknown user has no password a proof could match.
    let password = users.passwords.get(scram.user()).copied();
    let Some((server_final, _)) = scram.finish(&last.auth_bytes, password) else {
        let _ = socket
            .write_all(&response(key, version, id, &invalid_credentials()))
            .await;
        return None;
    };
    let answer = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(server_final));
    socket
        .write_all(&response(key, version, id, &answer))
        .await
        .ok()?;
    Some(scram.user().to_owned())
}

/// What the proxy answers a ClientHello for `server_name`, before any handshake of ours goes
/// further: the first TLS record's content type (21: alert, 22: handshake, i.e. a ServerHello)
/// and, for an alert, its description; `None` when the connection ends with no record (a
/// reset or a close).
async fn first_record(
    proxy: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    server_name: &str,
) -> Option<(u8, u8)> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut client = rustls::ClientConnection::new(tls.clone(), name).unwrap();
    let mut hello = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut hello).unwrap();
    }
    let mut tcp = TcpStream::connect(proxy).await.unwrap();
    tcp.write_all(&hello).await.unwrap();
    let mut header = [0u8; 5];
    match tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return None,
        Err(_) => panic!("{server_name}: no answer to the ClientHello within 10 s"),
    }
    let mut first = [0u8; 2];
    let description = match tcp.read_exact(&mut first).await {
        Ok(_) => first[1],
        Err(_) => 0,
    };
    Some((header[0], description))
}

/// TLS record content type of an alert, and the `unrecognized_name` description (RFC 6066).
const ALERT_RECORD: u8 = 21;
const UNRECOGNIZED_NAME: u8 = 112;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_mode_looks_brokers_up_as_the_proxy_before_the_handshake() {
    init_logging();
    let users = Arc::new(ScramUsers {
        passwords: BTreeMap::from([(POOL_USER, POOL_PASSWORD), (PROXY_USER, PROXY_PASSWORD)]),
        signed_in: Mutex::new(Vec::new()),
    });
    let members: Members = Arc::new(Mutex::new(Vec::new()));
    let mut brokers = Vec::new();
    for id in 1..=3 {
        brokers.push(scram_broker(id, members.clone(), users.clone()).await);
    }
    members.lock().unwrap().push((1, brokers[0].addr));
    let pki = Pki::generate_with_hosts("sni-scram", &[&format!("*.{DOMAIN}")]);
    let pool_secret = pki.path("pool.secret");
    let proxy_secret = pki.path("proxy.secret");
    std::fs::write(&pool_secret, POOL_PASSWORD).unwrap();
    std::fs::write(&proxy_secret, PROXY_PASSWORD).unwrap();
    let config = write_config_with(
        &pki,
        brokers[0].addr,
        &format!(
            "  identity:\n    mode: scram\n    mechanism: SCRAM-SHA-256\n    credentials:\n      \
             pool-payments: {{username: {POOL_USER}, password_file: \"{}\"}}\n  \
             proxy_login:\n    username: {PROXY_USER}\n    password_file: \"{}\"\n\
             admin:\n  listen: 127.0.0.1:0",
            pool_secret.display(),
            proxy_secret.display()
        ),
    );
    let server = ServerTask::start(&config).await;
    let proxy = server.addr;
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);

    // A name of no broker: the alert is the proxy's first answer, before any ServerHello, and
    // the lookup signed in as the proxy, not as a pool (no client has signed in yet).
    assert_eq!(
        first_record(proxy, &tls, &format!("broker-9.{DOMAIN}")).await,
        Some((ALERT_RECORD, UNRECOGNIZED_NAME))
    );
    assert_eq!(*users.signed_in.lock().unwrap(), [PROXY_USER]);

    // Broker 2 joins: served at once (after the once-a-second limit), signed in as the pool.
    members.lock().unwrap().push((2, brokers[1].addr));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        who_answers(proxy, &tls, &format!("broker-2.{DOMAIN}"))
            .await
            .unwrap(),
        "node:2",
        "a broker that joined later is served at once"
    );
    assert_eq!(
        *users.signed_in.lock().unwrap(),
        [PROXY_USER, PROXY_USER, POOL_USER],
        "looked up as the proxy, then served as the client's pool"
    );

    // The cluster refuses the proxy's own login (its password changed under it): a name of a
    // broker not seen yet is not known to be no broker, so it is reset before the handshake,
    // as a down broker's client would be, not told `unrecognized_name`.
    std::fs::write(&proxy_secret, "a-stale-password").unwrap();
    members.lock().unwrap().push((3, brokers[2].addr));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        first_record(proxy, &tls, &format!("broker-3.{DOMAIN}")).await,
        None,
        "a failed lookup is refused without an alert"
    );
    // Within the second, the failed lookup's outcome is reused: no second login attempt.
    assert_eq!(
        first_record(proxy, &tls, &format!("broker-4.{DOMAIN}")).await,
        None
    );
    assert_eq!(
        server
            .metric(
                "kafka_mtls_proxy_connections_refused_total{listener=\"broker-unverified\",reason=\"broker_lookup_failed\"}"
            )
            .await,
        Some(2.0)
    );
    // Known brokers are served meanwhile; no name a client chose became a label.
    assert_eq!(
        who_answers(proxy, &tls, &format!("broker-2.{DOMAIN}"))
            .await
            .unwrap(),
        "node:2"
    );
    let metrics = server.metrics().await;
    for unknown in ["broker-3", "broker-4", "broker-9"] {
        assert!(
            !metrics.contains(&format!("listener=\"{unknown}\"")),
            "{unknown} is a label: {metrics}"
        );
    }

    // The password back: broker 3 is looked up and served.
    std::fs::write(&proxy_secret, PROXY_PASSWORD).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        who_answers(proxy, &tls, &format!("broker-3.{DOMAIN}"))
            .await
            .unwrap(),
        "node:3"
    );

    server.stop().await;
    assert_no_foreign_panics();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_mode_without_a_login_of_its_own_never_labels_a_clients_node_id() {
    init_logging();
    let users = Arc::new(ScramUsers {
        passwords: BTreeMap::from([(POOL_USER, POOL_PASSWORD)]),
        signed_in: Mutex::new(Vec::new()),
    });
    let members: Members = Arc::new(Mutex::new(Vec::new()));
    let broker = scram_broker(1, members.clone(), users.clone()).await;
    members.lock().unwrap().push((1, broker.addr));
    let pki = Pki::generate_with_hosts("sni-scram-nologin", &[&format!("*.{DOMAIN}")]);
    let pool_secret = pki.path("pool.secret");
    std::fs::write(&pool_secret, POOL_PASSWORD).unwrap();
    let config = write_config_with(
        &pki,
        broker.addr,
        &format!(
            "  identity:\n    mode: scram\n    mechanism: SCRAM-SHA-256\n    credentials:\n      \
             pool-payments: {{username: {POOL_USER}, password_file: \"{}\"}}\n\
             admin:\n  listen: 127.0.0.1:0",
            pool_secret.display()
        ),
    );
    let server = ServerTask::start(&config).await;
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);

    // No login of its own: the id is checked only after the handshake, as the pool, and the
    // connection is then closed; until then it counts under one label for every such id.
    for id in [77, 78] {
        assert!(
            who_answers(server.addr, &tls, &format!("broker-{id}.{DOMAIN}"))
                .await
                .is_err()
        );
    }
    assert_eq!(
        *users.signed_in.lock().unwrap(),
        [POOL_USER],
        "looked up as the client's pool, after its handshake (once: a second apart at most)"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("kafka_mtls_proxy_connections_total{listener=\"broker-unverified\"} 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("broker-77") && !metrics.contains("broker-78"),
        "{metrics}"
    );
    // A known broker keeps its own label.
    assert_eq!(
        who_answers(server.addr, &tls, &format!("broker-1.{DOMAIN}"))
            .await
            .unwrap(),
        "node:1"
    );
    assert!(
        server
            .metrics()
            .await
            .contains("kafka_mtls_proxy_connections_total{listener=\"broker-1\"} 1")
    );

    server.stop().await;
    assert_no_foreign_panics();
}
