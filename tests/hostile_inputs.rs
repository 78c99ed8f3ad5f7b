//! Hostile inputs through a live proxy: no byte a client or a broker sends may crash, panic or
//! abort the process.
//!
//! Every test starts the proxy in-process (on the test's runtime) in front of a FAKE upstream
//! broker, and keeps a well-behaved client ("good") doing ApiVersions + Metadata round trips on
//! its own connection while a hostile client (or a hostile broker answer) hits the proxy. Each
//! test then checks that:
//!
//! - the hostile connection was closed *by the proxy* within a few seconds (no hang, no data);
//! - the good connection kept working, saw only the proxy's broker address, and a fresh
//!   connection still works (the process is alive).
//!
//! The fake broker answers by the request's client id: `good` gets valid responses built with
//! kafka-protocol; `evil-*` gets the hostile bytes the id names. After a hostile answer the fake
//! keeps its side open, so a closed client connection can only be the proxy's decision. It
//! records every frame it receives, so a test can also prove that a malformed client frame was
//! stopped at the proxy and never reached the broker.
//!
//! An abort (as kafka-protocol 0.18 unpatched does on a 2^31 array count) cannot be caught
//! in-process: it would kill this whole test binary. The last test runs the real binary and
//! checks that the *process* is still alive after the hostile answers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, DescribeClusterRequest,
    DescribeClusterResponse, FetchRequest, FetchResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, SaslHandshakeRequest, SaslHandshakeResponse, fetch_response,
    produce_response,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

mod support {
    pub mod proxy;
}
use support::proxy::{FakeListener, Pki, ServerTask, capture_logs, captured_logs, framed, request};

/// `limits.max_frame_bytes` of every proxy here: small, so the size-limit tests are cheap.
const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// The node id the fake broker advertises for itself.
const NODE_ID: i32 = 7;
/// How long the fake broker takes to answer the `slow` client.
const SLOW_ANSWER: Duration = Duration::from_millis(1500);
/// `limits.drain_timeout_ms` of every proxy here: longer than [`SLOW_ANSWER`], so a drained
/// answer arrives in time, and short, so the test of a broker that never answers is quick.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(3000);
/// Small, so a Metadata answer listing many node ids reaches it.
const MAX_BROKER_LISTENERS: usize = 4;
/// How many brokers the `evil-metadata-many-nodes` answer lists.
const MANY_NODES: i32 = 40;
/// How long a hostile connection may take to be closed, and a response to arrive.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);
/// `advertised_host` of every proxy here (in the dev PKI's server certificate).
const ADVERTISED_HOST: &str = "127.0.0.1";

// ---------------------------------------------------------------------------------------------
// Logs: the proxy's tracing output, captured so a test can check the logged reason of a close.
// ---------------------------------------------------------------------------------------------

/// Panics raised outside this file (in the proxy or kafka-protocol), as `message at location`.
/// A panic in a connection task does not kill the process (tokio catches it), and one inside
/// the proxy's `catch_unwind` does not even end the connection, so only this hook sees them.
static FOREIGN_PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// [`capture_logs`], and a panic hook that records [`FOREIGN_PANICS`].
fn init_logging() {
    capture_logs();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            if !location.contains("hostile_inputs.rs") {
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

/// Fails if anything outside this file panicked (in any test of this binary so far).
fn assert_no_foreign_panics() {
    let panics = FOREIGN_PANICS.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        panics.is_empty(),
        "the proxy (or a crate under it) panicked: {panics:#?}"
    );
}

/// What the proxy logged when it closed the connection from `client` (its `peer` field).
fn close_reason_in(logs: &str, client: SocketAddr) -> String {
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
async fn close_reason(client: SocketAddr) -> String {
    tokio::time::sleep(Duration::from_millis(100)).await;
    close_reason_in(&captured_logs(), client)
}

/// Waits until the captured logs contain `needle`.
async fn wait_for_log(needle: &str, within: Duration) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Configuration.
// ---------------------------------------------------------------------------------------------

/// A TCP port that was free a moment ago (bound on port 0, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the proxy's YAML configuration and returns its path.
fn write_config(
    pki: &Pki,
    bootstrap: SocketAddr,
    first_port: u16,
    upstream: SocketAddr,
    log_level: &str,
) -> PathBuf {
    let yaml = format!(
        r#"listener:
  bootstrap: "{bootstrap}"
  advertised_host: "{ADVERTISED_HOST}"
  broker_ports:
    first_port: {first_port}
{tls}
upstream:
  bootstrap_servers:
    - "{upstream}"
  connect_timeout_ms: 3000
audit:
  path: "off"
limits:
  max_frame_bytes: {MAX_FRAME_BYTES}
  handshake_timeout_ms: 5000
  drain_timeout_ms: {drain_timeout_ms}
  max_broker_listeners: {MAX_BROKER_LISTENERS}
log:
  format: plain
  level: {log_level}
{certificate_authorities}
"#,
        tls = pki.tls_yaml(),
        certificate_authorities = pki.certificate_authorities_yaml(),
        drain_timeout_ms = DRAIN_TIMEOUT.as_millis(),
    );
    let path = pki.path("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Kafka frames, client side.
// ---------------------------------------------------------------------------------------------

/// A request header v1 (api key, version, correlation id, client id) followed by `body`: what
/// a client sends for an api key kafka-protocol does not know.
fn raw_request(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(i16::try_from(client_id.len()).unwrap());
    buf.put_slice(client_id.as_bytes());
    buf.put_slice(body);
    framed(&buf)
}

/// Decodes a whole response frame (header version as Kafka says for `key`), refusing trailing
/// bytes.
fn decode<T: Decodable>(frame: &Bytes, key: ApiKey, version: i16) -> Result<(i32, T), String> {
    let mut buf = frame.clone();
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| format!("{key:?} v{version} response header: {e:#}"))?;
    let body = T::decode(&mut buf, version).map_err(|e| format!("{key:?} v{version}: {e:#}"))?;
    if buf.has_remaining() {
        return Err(format!(
            "{key:?} v{version}: {} trailing bytes",
            buf.remaining()
        ));
    }
    Ok((header.correlation_id, body))
}

/// Metadata for all topics (v1+: a null topic list).
fn metadata_request() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

fn find_coordinator_request(version: i16) -> FindCoordinatorRequest {
    if version >= 4 {
        FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![StrBytes::from_static_str("group-a")])
    } else {
        FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("group-a"))
    }
}

/// A sensible request of `key` at `version` (Produce with acks=1, so it expects an answer).
fn request_for(key: ApiKey, version: i16, correlation_id: i32, client_id: &str) -> Vec<u8> {
    let (corr, id) = (correlation_id, client_id);
    match key {
        ApiKey::Metadata => request(key, version, corr, id, &metadata_request()),
        ApiKey::FindCoordinator => {
            request(key, version, corr, id, &find_coordinator_request(version))
        }
        ApiKey::DescribeCluster => {
            request(key, version, corr, id, &DescribeClusterRequest::default())
        }
        ApiKey::ApiVersions => request(key, version, corr, id, &ApiVersionsRequest::default()),
        ApiKey::Produce => request(
            key,
            version,
            corr,
            id,
            &ProduceRequest::default().with_acks(1).with_timeout_ms(1000),
        ),
        ApiKey::Fetch => request(key, version, corr, id, &FetchRequest::default()),
        other => panic!("no request builder for {other:?}"),
    }
}

/// One TLS connection to the proxy, speaking Kafka frames.
struct KafkaConn {
    stream: TlsStream<TcpStream>,
    /// This end's address: the `peer` in the proxy's log lines about this connection.
    local: SocketAddr,
}

impl KafkaConn {
    async fn connect(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let local = tcp.local_addr()?;
        let name = ServerName::try_from("localhost").unwrap();
        let stream = tokio::time::timeout(
            CLOSE_WITHIN,
            tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
        )
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
        Ok(Self { stream, local })
    }

    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next response frame (without its size prefix).
    async fn recv(&mut self) -> Result<Bytes, String> {
        let read = async {
            let size = self.stream.read_i32().await?;
            let size = usize::try_from(size).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("size {size}"))
            })?;
            let mut body = vec![0u8; size];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Bytes::from(body))
        };
        match tokio::time::timeout(CLOSE_WITHIN, read).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => Err(format!("reading a response: {e}")),
            Err(_) => Err(format!("no response within {CLOSE_WITHIN:?}")),
        }
    }

    async fn round_trip(&mut self, frame: &[u8]) -> Result<Bytes, String> {
        self.send(frame)
            .await
            .map_err(|e| format!("sending a request: {e}"))?;
        self.recv().await
    }

    /// Waits for the proxy to close the connection: EOF or an error, without a single byte of
    /// response, within [`CLOSE_WITHIN`].
    async fn expect_closed(&mut self, what: &str) {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        let mut received = 0usize;
        loop {
            match tokio::time::timeout_at(
                (started + CLOSE_WITHIN).into(),
                self.stream.read(&mut buf),
            )
            .await
            {
                Err(_) => panic!(
                    "{what}: the proxy did not close the connection within {CLOSE_WITHIN:?} \
                     ({received} bytes received)"
                ),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => received += n,
            }
        }
        assert_eq!(
            received, 0,
            "{what}: the proxy sent {received} bytes before closing instead of just closing"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The fake upstream broker.
// ---------------------------------------------------------------------------------------------

/// A fake Kafka broker: answers by client id (see the module docs).
struct FakeBroker {
    addr: SocketAddr,
    state: Arc<FakeState>,
    _listener: FakeListener,
}

/// What the fake broker saw, shared by its connections.
#[derive(Default)]
struct FakeState {
    /// Every frame received (size prefix stripped), in arrival order.
    received: Mutex<Vec<Vec<u8>>>,
    /// Connections that sent a request of the `mute` client (never answered) and are still
    /// open.
    mute_open: AtomicU64,
    /// Of those, how many the proxy has closed since.
    mute_closed: AtomicU64,
}

impl FakeBroker {
    async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let shared = state.clone();
        let listener =
            FakeListener::start(move |socket, addr| fake_connection(socket, addr, shared.clone()))
                .await;
        Self {
            addr: listener.addr,
            state,
            _listener: listener,
        }
    }

    fn received_frame(&self, frame: &[u8]) -> bool {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .any(|f| f == frame)
    }
}

/// Counts a connection of the `mute` client as closed when its task ends.
struct MuteConnection(Arc<FakeState>);

impl Drop for MuteConnection {
    fn drop(&mut self) {
        self.0.mute_open.fetch_sub(1, Ordering::SeqCst);
        self.0.mute_closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A request as the fake broker parsed it.
struct FakeRequest {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    client_id: String,
    /// The body (after the whole request header).
    body: Bytes,
}

/// Parses a request header by hand for unknown api keys (v1 prefix), with kafka-protocol for
/// known ones. `None` for anything malformed: a real broker closes such a connection.
fn parse_fake_request(frame: &[u8]) -> Option<FakeRequest> {
    let mut buf = Bytes::copy_from_slice(frame);
    if buf.len() < 8 {
        return None;
    }
    let api_key = i16::from_be_bytes([buf[0], buf[1]]);
    let api_version = i16::from_be_bytes([buf[2], buf[3]]);
    match ApiKey::try_from(api_key) {
        Ok(key) => {
            let header =
                RequestHeader::decode(&mut buf, key.request_header_version(api_version)).ok()?;
            Some(FakeRequest {
                api_key,
                api_version,
                correlation_id: header.correlation_id,
                client_id: header.client_id.map(|s| s.to_string()).unwrap_or_default(),
                body: buf,
            })
        }
        Err(()) => {
            buf.advance(4);
            let correlation_id = buf.get_i32();
            if buf.remaining() < 2 {
                return None;
            }
            let len = usize::try_from(buf.get_i16()).ok()?;
            if buf.remaining() < len {
                return None;
            }
            let client_id = String::from_utf8_lossy(&buf.split_to(len)).into_owned();
            Some(FakeRequest {
                api_key,
                api_version,
                correlation_id,
                client_id,
                body: buf,
            })
        }
    }
}

async fn fake_connection(mut socket: TcpStream, own_addr: SocketAddr, state: Arc<FakeState>) {
    let mut mute: Option<MuteConnection> = None;
    loop {
        let Ok(size) = socket.read_i32().await else {
            return;
        };
        let Ok(size) = usize::try_from(size) else {
            return;
        };
        if size > 16 * MAX_FRAME_BYTES {
            return;
        }
        let mut frame = vec![0u8; size];
        if socket.read_exact(&mut frame).await.is_err() {
            return;
        }
        state.received.lock().unwrap().push(frame.clone());
        let Some(req) = parse_fake_request(&frame) else {
            // Like a Kafka broker: an unparseable request closes the connection.
            return;
        };
        let reply = if req.client_id == "mute" {
            // A broker that never answers, but keeps the connection open and keeps reading.
            if mute.is_none() {
                state.mute_open.fetch_add(1, Ordering::SeqCst);
                mute = Some(MuteConnection(state.clone()));
            }
            None
        } else if req.client_id == "good" || req.client_id == "slow" {
            if req.client_id == "slow" {
                // A request still in flight when the proxy is told to stop.
                tokio::time::sleep(SLOW_ANSWER).await;
            }
            match good_response(&req, own_addr) {
                Some(Ok(frame)) => Some(framed(&frame)),
                Some(Err(())) => return,
                None => None,
            }
        } else if let Some(name) = req.client_id.strip_prefix("evil-") {
            evil_response(name, &req, own_addr)
        } else {
            // An unknown client: close, as a broker does on a request it cannot handle.
            return;
        };
        if let Some(bytes) = reply
            && (socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err())
        {
            return;
        }
    }
}

/// The response frame (without size prefix) a sane broker gives; `None` when no response is
/// due (Produce acks=0), `Err` when the request is one a broker would close the connection on.
fn good_response(req: &FakeRequest, own_addr: SocketAddr) -> Option<Result<Vec<u8>, ()>> {
    let version = req.api_version;
    let header = ResponseHeader::default().with_correlation_id(req.correlation_id);
    let Ok(key) = ApiKey::try_from(req.api_key) else {
        // Unknown api key: echo the request body behind a v0 response header.
        let mut out = Vec::new();
        out.put_i32(req.correlation_id);
        out.put_slice(b"echo:");
        out.put_slice(&req.body);
        return Some(Ok(out));
    };
    let header_version = key.response_header_version(version);
    let host = StrBytes::from_string(own_addr.ip().to_string());
    let port = i32::from(own_addr.port());
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).unwrap();
    let encoded = match key {
        ApiKey::ApiVersions => {
            if version > 3 {
                // KIP-511, as a broker that knows ApiVersions up to v3 answers.
                let body = ApiVersionsResponse::default()
                    .with_error_code(35)
                    .with_api_keys(vec![api_version(18, 0, 3)]);
                body.encode(&mut out, 0)
            } else {
                // Wider than the proxy allows on purpose: it must narrow these.
                let body = ApiVersionsResponse::default().with_api_keys(vec![
                    api_version(0, 0, 13),   // Produce: all the proxy decodes
                    api_version(1, 0, 18),   // Fetch: capped at 15
                    api_version(3, 0, 12),   // Metadata
                    api_version(10, 0, 6),   // FindCoordinator
                    api_version(17, 0, 1),   // SaslHandshake: removed
                    api_version(18, 0, 3),   // ApiVersions
                    api_version(36, 0, 2),   // SaslAuthenticate: removed
                    api_version(60, 0, 1),   // DescribeCluster
                    api_version(9999, 0, 0), // unknown to kafka-protocol: passes through
                ]);
                body.encode(&mut out, version)
            }
        }
        ApiKey::Metadata => {
            let broker = MetadataResponseBroker::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(host)
                .with_port(port);
            let mut body = MetadataResponse::default().with_brokers(vec![broker]);
            if version >= 1 {
                body.controller_id = BrokerId(NODE_ID);
            }
            if version >= 2 {
                body.cluster_id = Some(StrBytes::from_static_str("fake-cluster"));
            }
            body.encode(&mut out, version)
        }
        ApiKey::FindCoordinator => {
            let body = if version >= 4 {
                let Ok(request) = FindCoordinatorRequest::decode(&mut req.body.clone(), version)
                else {
                    return Some(Err(()));
                };
                FindCoordinatorResponse::default().with_coordinators(
                    request
                        .coordinator_keys
                        .into_iter()
                        .map(|k| {
                            Coordinator::default()
                                .with_key(k)
                                .with_node_id(BrokerId(NODE_ID))
                                .with_host(host.clone())
                                .with_port(port)
                        })
                        .collect(),
                )
            } else {
                FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(host)
                    .with_port(port)
            };
            body.encode(&mut out, version)
        }
        ApiKey::DescribeCluster => DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_static_str("fake-cluster"))
            .with_controller_id(BrokerId(NODE_ID))
            .with_brokers(vec![
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(NODE_ID))
                    .with_host(host)
                    .with_port(port),
            ])
            .encode(&mut out, version),
        ApiKey::Produce => {
            let Ok(request) = ProduceRequest::decode(&mut req.body.clone(), version) else {
                return Some(Err(()));
            };
            if request.acks == 0 {
                return None;
            }
            let mut body = ProduceResponse::default();
            if version >= 10 {
                // KIP-951: where the (moved) leader is. The proxy must rewrite it.
                body.node_endpoints = vec![
                    produce_response::NodeEndpoint::default()
                        .with_node_id(BrokerId(NODE_ID))
                        .with_host(host)
                        .with_port(port),
                ];
            }
            body.encode(&mut out, version)
        }
        ApiKey::Fetch => {
            let mut body = FetchResponse::default();
            if version >= 16 {
                body.node_endpoints = vec![
                    fetch_response::NodeEndpoint::default()
                        .with_node_id(BrokerId(NODE_ID))
                        .with_host(host)
                        .with_port(port),
                ];
            }
            body.encode(&mut out, version)
        }
        _ => return Some(Err(())),
    };
    if encoded.is_err() {
        return Some(Err(()));
    }
    Some(Ok(out.to_vec()))
}

fn api_version(key: i16, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key)
        .with_min_version(min)
        .with_max_version(max)
}

/// Unsigned varint 2^31: the compact-array count (N+1) of upstream PR #161.
const VARINT_2_POW_31: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x08];

/// The hostile answer (size prefix included) named by `name` (the client id minus `evil-`).
fn evil_response(name: &str, req: &FakeRequest, own_addr: SocketAddr) -> Option<Vec<u8>> {
    let corr = req.correlation_id.to_be_bytes();
    let mut frame = Vec::new();
    match name {
        // Metadata v9+: response header v1 (correlation id, no tags), then the 9-byte body:
        // throttle_time_ms and a compact-array broker count of 2^31.
        "metadata-compact-2pow31" => {
            frame.extend(corr);
            frame.push(0);
            frame.extend([0, 0, 0, 0]);
            frame.extend(VARINT_2_POW_31);
        }
        // Metadata v1: response header v0, then an Int32 broker count of 2^31-1.
        "metadata-int32-max" => {
            frame.extend(corr);
            frame.extend(i32::MAX.to_be_bytes());
        }
        // FindCoordinator v4 (batched): header v1, throttle_time_ms, coordinators count 2^31.
        "findcoordinator-compact-2pow31" => {
            frame.extend(corr);
            frame.push(0);
            frame.extend([0, 0, 0, 0]);
            frame.extend(VARINT_2_POW_31);
        }
        // Produce v10 (flexible): header v1, then the `responses` count 2^31.
        "produce-compact-2pow31" => {
            frame.extend(corr);
            frame.push(0);
            frame.extend(VARINT_2_POW_31);
        }
        // Produce v10: empty responses, throttle_time_ms, then the KIP-951 `node_endpoints`
        // tagged field (tag 0, 5 bytes) holding a compact-array count of 2^31.
        "produce-node-endpoints-2pow31" => {
            frame.extend(corr);
            frame.push(0);
            frame.push(1); // responses: empty compact array
            frame.extend([0, 0, 0, 0]);
            frame.extend([1, 0, 5]); // one tagged field: tag 0, size 5
            frame.extend(VARINT_2_POW_31);
        }
        // Fetch v16: throttle_time_ms, error_code, session_id, then the `responses` count 2^31.
        "fetch-compact-2pow31" => {
            frame.extend(corr);
            frame.push(0);
            frame.extend([0; 10]);
            frame.extend(VARINT_2_POW_31);
        }
        // Fetch v16: valid up to the tagged fields, then `node_endpoints` with a count of 2^31.
        "fetch-node-endpoints-2pow31" => {
            frame.extend(corr);
            frame.push(0);
            frame.extend([0; 10]);
            frame.push(1); // responses: empty compact array
            frame.extend([1, 0, 5]);
            frame.extend(VARINT_2_POW_31);
        }
        // DescribeCluster v0/v1: a valid prefix up to the brokers array, then its count 2^31.
        "describecluster-compact-2pow31" => {
            frame.extend(corr);
            frame.extend(describe_cluster_hostile_body(req.api_version));
        }
        // A valid response for the request, correlation id off by one.
        "wrong-correlation" => {
            let mut good = good_response(req, own_addr)?.ok()?;
            let wrong = req.correlation_id.wrapping_add(1).to_be_bytes();
            good[..4].copy_from_slice(&wrong);
            frame = good;
        }
        // A size prefix above the proxy's limit, and nothing after it.
        "oversize" => {
            return Some(
                i32::try_from(MAX_FRAME_BYTES + 1)
                    .unwrap()
                    .to_be_bytes()
                    .to_vec(),
            );
        }
        "negative-size" => return Some((-2i32).to_be_bytes().to_vec()),
        other => {
            if let Some(seed) = other.strip_prefix("random-") {
                // A valid response header (right correlation id; no tags when flexible), then
                // pseudo-random body bytes, so the body decoder is what meets them.
                let seed: u64 = seed.parse().ok()?;
                let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                let len = 1 + (rng.next() % 96) as usize;
                frame.extend(corr);
                let flexible_header = ApiKey::try_from(req.api_key)
                    .is_ok_and(|k| k.response_header_version(req.api_version) >= 1);
                if flexible_header {
                    frame.push(0);
                }
                frame.extend((0..len).map(|_| rng.next() as u8));
            } else if other == "metadata-many-nodes" {
                // A well-formed Metadata v12 listing MANY_NODES brokers: every one would get a
                // listener without limits.max_broker_listeners.
                let brokers = (0..MANY_NODES)
                    .map(|i| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(NODE_ID + 1 + i))
                            .with_host(StrBytes::from_string(own_addr.ip().to_string()))
                            .with_port(i32::from(own_addr.port()))
                    })
                    .collect();
                let mut out = BytesMut::new();
                ResponseHeader::default()
                    .with_correlation_id(req.correlation_id)
                    .encode(&mut out, 1)
                    .ok()?;
                MetadataResponse::default()
                    .with_brokers(brokers)
                    .encode(&mut out, 12)
                    .ok()?;
                frame = out.to_vec();
            } else if let Some(drop) = other.strip_prefix("truncated-") {
                // The valid response with its last `drop` bytes cut (never the correlation id).
                let drop: usize = drop.parse().ok()?;
                let mut good = good_response(req, own_addr)?.ok()?;
                let keep = good.len().saturating_sub(drop).max(4);
                assert!(keep < good.len(), "truncated-{drop} cuts nothing");
                good.truncate(keep);
                frame = good;
            } else {
                return None;
            }
        }
    }
    Some(framed(&frame))
}

/// A DescribeCluster body (flexible, all versions) that is valid up to its `brokers` count, which
/// is 2^31. Derived from kafka-protocol's own encoding, so the count sits exactly where the
/// decoder reads it.
fn describe_cluster_hostile_body(version: i16) -> Vec<u8> {
    let valid = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str("c"))
        .with_controller_id(BrokerId(NODE_ID));
    let mut header = BytesMut::new();
    ResponseHeader::default()
        .encode(
            &mut header,
            ApiKey::DescribeCluster.response_header_version(version),
        )
        .unwrap();
    let mut body = BytesMut::new();
    valid.encode(&mut body, version).unwrap();
    // The encoding ends with: brokers (compact array, empty = 0x01), cluster_authorized_operations
    // (int32), tagged fields (0x00).
    let tail = 1 + 4 + 1;
    assert_eq!(
        body[body.len() - tail],
        0x01,
        "brokers count not where expected"
    );
    let mut out = header[4..].to_vec(); // the header minus the correlation id
    out.extend_from_slice(&body[..body.len() - tail]);
    out.extend(VARINT_2_POW_31);
    out
}

/// A small deterministic PRNG (xorshift64): no seeds from the environment, so a failure repeats.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy under test, in-process.
// ---------------------------------------------------------------------------------------------

struct TestProxy {
    pki: Pki,
    fake: FakeBroker,
    server: ServerTask,
    addr: SocketAddr,
    /// The proxy port clients must be told for node [`NODE_ID`].
    broker_port: u16,
    good_tls: Arc<rustls::ClientConfig>,
}

impl TestProxy {
    async fn start() -> Self {
        init_logging();
        let pki = Pki::generate("hostile-inputs");
        let fake = FakeBroker::start().await;
        // Broker listeners: node N on first_port + N. A port that was just free, per proxy, so
        // parallel tests never collide.
        let broker_port = free_port();
        let first_port = broker_port - u16::try_from(NODE_ID).unwrap();
        let path = write_config(
            &pki,
            "127.0.0.1:0".parse().unwrap(),
            first_port,
            fake.addr,
            "info",
        );
        let server = ServerTask::start(&path).await;
        let good_tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);
        Self {
            pki,
            fake,
            addr: server.addr,
            server,
            broker_port,
            good_tls,
        }
    }

    async fn connect_good(&self) -> KafkaConn {
        KafkaConn::connect(self.addr, self.good_tls.clone())
            .await
            .unwrap()
    }

    /// A fresh connection completes a good round trip: the proxy is alive and accepting.
    async fn assert_alive(&self) {
        assert!(!self.server.is_finished(), "the proxy's server task ended");
        let mut conn = self.connect_good().await;
        if let Err(e) = good_round_trip(&mut conn, 900_000, self.broker_port, self.fake.addr).await
        {
            let reason = close_reason(conn.local).await;
            panic!("a fresh good connection failed: {e}\nproxy: {reason}");
        }
    }

    /// Shuts the proxy down and checks that it drains promptly and returns Ok.
    async fn stop(self) {
        self.server.stop().await;
        drop(self.fake);
        drop(self.pki);
    }
}

/// ApiVersions v3 then Metadata v12 on `conn`, checking the answers: ApiVersions narrowed by the
/// proxy, Metadata naming only the proxy's address for the broker.
async fn good_round_trip(
    conn: &mut KafkaConn,
    correlation_id: i32,
    broker_port: u16,
    fake: SocketAddr,
) -> Result<(), String> {
    let frame = request(
        ApiKey::ApiVersions,
        3,
        correlation_id,
        "good",
        &ApiVersionsRequest::default(),
    );
    let response = conn.round_trip(&frame).await?;
    let (corr, body) = decode::<ApiVersionsResponse>(&response, ApiKey::ApiVersions, 3)?;
    if corr != correlation_id || body.error_code != 0 {
        return Err(format!(
            "ApiVersions: correlation id {corr} (sent {correlation_id}), error {}",
            body.error_code
        ));
    }
    if body
        .api_keys
        .iter()
        .any(|a| a.api_key == 17 || a.api_key == 36)
    {
        return Err("ApiVersions still lists SASL".into());
    }

    let corr_md = correlation_id.wrapping_add(1);
    let frame = request(ApiKey::Metadata, 12, corr_md, "good", &metadata_request());
    let response = conn.round_trip(&frame).await?;
    let (corr, body) = decode::<MetadataResponse>(&response, ApiKey::Metadata, 12)?;
    if corr != corr_md {
        return Err(format!("Metadata: correlation id {corr}, sent {corr_md}"));
    }
    check_brokers(
        body.brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port)),
        broker_port,
        fake,
    )
}

/// Every broker named is node [`NODE_ID`] at the proxy's address — never the fake's.
fn check_brokers(
    brokers: impl Iterator<Item = (i32, String, i32)>,
    broker_port: u16,
    fake: SocketAddr,
) -> Result<(), String> {
    let brokers: Vec<_> = brokers.collect();
    let want = vec![(NODE_ID, ADVERTISED_HOST.to_owned(), i32::from(broker_port))];
    if brokers != want {
        return Err(format!(
            "brokers {brokers:?}, expected {want:?} (the fake broker is at {fake})"
        ));
    }
    Ok(())
}

/// The well-behaved client that keeps working while the hostile ones hit the proxy.
struct GoodClient {
    round_trips: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Why the client stopped, as soon as it did (the task's result is only read at the end).
    failure: Arc<Mutex<Option<String>>>,
    task: JoinHandle<Result<(), String>>,
}

impl GoodClient {
    async fn start(proxy: &TestProxy) -> Self {
        let mut conn = proxy.connect_good().await;
        let round_trips = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        let (count, stopping, failed) = (round_trips.clone(), stop.clone(), failure.clone());
        let (broker_port, fake) = (proxy.broker_port, proxy.fake.addr);
        let task = tokio::spawn(async move {
            let mut corr = 1i32;
            while !stopping.load(Ordering::Relaxed) {
                if let Err(e) = good_round_trip(&mut conn, corr, broker_port, fake).await {
                    let e = format!(
                        "after {} round trips: {e}\nproxy: {}",
                        count.load(Ordering::Relaxed),
                        close_reason(conn.local).await
                    );
                    *failed.lock().unwrap() = Some(e.clone());
                    return Err(e);
                }
                corr = corr.wrapping_add(2);
                count.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        });
        let client = Self {
            round_trips,
            stop,
            failure,
            task,
        };
        client.wait_for_progress("before the hostile input").await;
        client
    }

    /// Waits for a few more round trips; fails if the client broke or stalled.
    async fn wait_for_progress(&self, when: &str) {
        let start = self.round_trips.load(Ordering::Relaxed);
        let deadline = Instant::now() + CLOSE_WITHIN;
        while self.round_trips.load(Ordering::Relaxed) < start + 3 {
            if let Some(e) = self.failure.lock().unwrap().as_ref() {
                panic!("the good client failed {when}: {e}");
            }
            assert!(!self.task.is_finished(), "the good client stopped {when}");
            assert!(
                Instant::now() < deadline,
                "the good client made no progress {when}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let result = tokio::time::timeout(CLOSE_WITHIN, self.task)
            .await
            .expect("the good client hung")
            .expect("the good client panicked");
        if let Err(e) = result {
            panic!("the good client failed: {e}");
        }
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// Runs `hostile` against a proxy while a good client works; then checks the good client kept
/// going, a fresh connection works, and the proxy shuts down cleanly.
async fn with_good_client<F, Fut>(hostile: F)
where
    F: FnOnce(Arc<TestProxy>, Arc<GoodClient>) -> Fut,
    Fut: Future<Output = ()>,
{
    let proxy = Arc::new(TestProxy::start().await);
    let good = Arc::new(GoodClient::start(&proxy).await);
    hostile(proxy.clone(), good.clone()).await;
    good.wait_for_progress("after the hostile input").await;
    proxy.assert_alive().await;
    let good = Arc::into_inner(good).expect("the hostile closure kept the good client");
    let round_trips = good.finish().await;
    assert!(round_trips >= 6, "only {round_trips} good round trips");
    let proxy = Arc::into_inner(proxy).expect("the hostile closure kept the proxy");
    proxy.stop().await;
    assert_no_foreign_panics();
}

/// Sends `frame` as the `evil-*` client and checks that the proxy closes the connection.
async fn hostile_broker_answer(proxy: &TestProxy, good: &GoodClient, what: &str, frame: &[u8]) {
    let mut conn = proxy.connect_good().await;
    conn.send(frame).await.unwrap();
    conn.expect_closed(what).await;
    good.wait_for_progress(&format!("after {what}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_the_answer_to_a_request_in_flight_then_closes() {
    let proxy = TestProxy::start().await;
    let mut conn = proxy.connect_good().await;
    conn.send(&request_for(ApiKey::Metadata, 12, 77, "slow"))
        .await
        .unwrap();
    // The request is at the broker; now stop the proxy.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = tokio::spawn(proxy.stop());
    let answer = conn
        .recv()
        .await
        .expect("the answer in flight was lost at shutdown");
    let (corr, _) = decode::<MetadataResponse>(&answer, ApiKey::Metadata, 12).unwrap();
    assert_eq!(corr, 77);
    conn.expect_closed("after the drained answer").await;
    stopping.await.expect("the proxy did not stop cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_with_a_request_the_broker_never_answers_frees_its_upstream_after_the_drain_timeout()
 {
    let proxy = TestProxy::start().await;
    let mut conn = proxy.connect_good().await;
    conn.send(&request_for(ApiKey::Metadata, 12, 41, "mute"))
        .await
        .unwrap();
    let state = &proxy.fake.state;
    let deadline = Instant::now() + CLOSE_WITHIN;
    while state.mute_open.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the request never reached the broker"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The client gives up (as a Kafka client does after its request timeout) and closes.
    let client = conn.local;
    drop(conn);
    let gone = Instant::now();
    while state.mute_closed.load(Ordering::SeqCst) == 0 {
        assert!(
            gone.elapsed() < DRAIN_TIMEOUT + CLOSE_WITHIN,
            "the proxy still holds the upstream connection {:?} after the client left",
            gone.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not at once: an answer that is merely slow still gets the drain timeout to arrive.
    assert!(
        gone.elapsed() >= DRAIN_TIMEOUT - Duration::from_millis(200),
        "the upstream connection was closed after {:?}, before the drain timeout",
        gone.elapsed()
    );
    let reason = close_reason(client).await;
    assert!(
        reason.contains("1 request(s) were still unanswered by the broker after 3000 ms")
            && reason.contains("oldest: Metadata v12, correlation id 41"),
        "{reason}"
    );
    assert_eq!(state.mute_open.load(Ordering::SeqCst), 0);
    proxy.assert_alive().await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_listing_many_node_ids_opens_at_most_max_broker_listeners() {
    with_good_client(|proxy, good| async move {
        let mut conn = proxy.connect_good().await;
        let frame = request_for(ApiKey::Metadata, 12, 4242, "evil-metadata-many-nodes");
        let response = conn
            .round_trip(&frame)
            .await
            .expect("a well-formed Metadata answer is delivered, listeners or not");
        let (_, body) = decode::<MetadataResponse>(&response, ApiKey::Metadata, 12).unwrap();
        assert_eq!(body.brokers.len(), MANY_NODES as usize);
        assert!(
            wait_for_log(
                &format!("limits.max_broker_listeners ({MAX_BROKER_LISTENERS}) reached"),
                Duration::from_secs(5)
            )
            .await,
            "the listener limit was not enforced (or not logged)"
        );
        good.wait_for_progress("after many node ids").await;
        proxy.assert_alive().await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 1. Array counts that made kafka-protocol abort.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_array_counts_of_2_pow_31_close_only_that_client() {
    with_good_client(|proxy, good| async move {
        for (i, (what, key, version, evil)) in HOSTILE_COUNTS.iter().enumerate() {
            let corr = 11 + i32::try_from(i).unwrap();
            let frame = request_for(*key, *version, corr, &format!("evil-{evil}"));
            hostile_broker_answer(&proxy, &good, what, &frame).await;
        }
    })
    .await;
}

/// Broker answers whose array counts made kafka-protocol 0.18 abort: (what, api, version,
/// name of the fake's answer).
const HOSTILE_COUNTS: &[(&str, ApiKey, i16, &str)] = &[
    (
        "Metadata v12, compact broker count 2^31",
        ApiKey::Metadata,
        12,
        "metadata-compact-2pow31",
    ),
    (
        "Metadata v1, int32 broker count 2^31-1",
        ApiKey::Metadata,
        1,
        "metadata-int32-max",
    ),
    (
        "FindCoordinator v4, compact coordinator count 2^31",
        ApiKey::FindCoordinator,
        4,
        "findcoordinator-compact-2pow31",
    ),
    (
        "DescribeCluster v0, compact broker count 2^31",
        ApiKey::DescribeCluster,
        0,
        "describecluster-compact-2pow31",
    ),
    (
        "DescribeCluster v1, compact broker count 2^31",
        ApiKey::DescribeCluster,
        1,
        "describecluster-compact-2pow31",
    ),
    (
        "Produce v10, compact responses count 2^31",
        ApiKey::Produce,
        10,
        "produce-compact-2pow31",
    ),
    (
        "Produce v10, node_endpoints count 2^31",
        ApiKey::Produce,
        10,
        "produce-node-endpoints-2pow31",
    ),
    (
        "Fetch v16, compact responses count 2^31",
        ApiKey::Fetch,
        16,
        "fetch-compact-2pow31",
    ),
    (
        "Fetch v16, node_endpoints count 2^31",
        ApiKey::Fetch,
        16,
        "fetch-node-endpoints-2pow31",
    ),
];

#[test]
fn hostile_fixtures_are_what_they_claim() {
    // The 9-byte Metadata body of upstream PR #161.
    let req = FakeRequest {
        api_key: 3,
        api_version: 12,
        correlation_id: 1,
        client_id: String::new(),
        body: Bytes::new(),
    };
    let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let frame = evil_response("metadata-compact-2pow31", &req, addr).unwrap();
    assert_eq!(frame.len(), 4 + 4 + 1 + 9);
    assert_eq!(&frame[9..], &[0, 0, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x08]);
    // The count read from the varint is 2^31 (+1 on the wire for compact arrays: N = 2^31 - 1).
    let mut value = 0u64;
    for (i, b) in VARINT_2_POW_31.iter().enumerate() {
        value |= u64::from(b & 0x7f) << (7 * i);
    }
    assert_eq!(value, 1 << 31);
    // DescribeCluster: everything before the count is a valid v0/v1 prefix.
    for version in 0..=1 {
        let body = describe_cluster_hostile_body(version);
        assert!(body.ends_with(&VARINT_2_POW_31));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Random and truncated answers to every rewritten API.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_or_truncated_broker_answers_to_rewritten_apis_close_the_client() {
    with_good_client(|proxy, good| async move {
        let apis: [(ApiKey, i16); 9] = [
            (ApiKey::Metadata, 12),
            (ApiKey::Metadata, 1),
            (ApiKey::FindCoordinator, 4),
            (ApiKey::FindCoordinator, 1),
            (ApiKey::DescribeCluster, 0),
            (ApiKey::ApiVersions, 3),
            (ApiKey::ApiVersions, 0),
            // Not advertised by the proxy, but rewritten when a client sends them anyway.
            (ApiKey::Produce, 10),
            (ApiKey::Fetch, 16),
        ];
        let evils = [
            "random-1",
            "random-2",
            "random-3",
            "random-4",
            "random-5",
            "random-6",
            "truncated-1",
            "truncated-5",
            "truncated-100000",
        ];
        let mut corr = 100;
        for (key, version) in apis {
            for evil in evils {
                corr += 1;
                let frame = request_for(key, version, corr, &format!("evil-{evil}"));
                let what = format!("{key:?} v{version} answered with {evil}");
                hostile_broker_answer(&proxy, &good, &what, &frame).await;
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_negative_broker_frames_close_the_client_without_buffering() {
    with_good_client(|proxy, good| async move {
        // The fake sends only a size prefix above max_frame_bytes and keeps the socket open: a
        // proxy that waited for (or buffered) the body would hang here.
        let frame = request(
            ApiKey::Metadata,
            12,
            1,
            "evil-oversize",
            &metadata_request(),
        );
        hostile_broker_answer(&proxy, &good, "oversized broker frame", &frame).await;
        let frame = request(
            ApiKey::Metadata,
            12,
            2,
            "evil-negative-size",
            &metadata_request(),
        );
        hostile_broker_answer(&proxy, &good, "negative broker frame size", &frame).await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 3. Wrong correlation id.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_correlation_id_from_broker_closes_the_client_with_a_logged_reason() {
    with_good_client(|proxy, good| async move {
        // A rewritten API and an opaque one (unknown api key, forwarded untouched).
        let frame = request(
            ApiKey::Metadata,
            12,
            424_242,
            "evil-wrong-correlation",
            &metadata_request(),
        );
        hostile_broker_answer(
            &proxy,
            &good,
            "Metadata with a wrong correlation id",
            &frame,
        )
        .await;
        assert!(
            wait_for_log(
                "upstream answered correlation id 424243, expected 424242",
                CLOSE_WITHIN
            )
            .await,
            "the reason was not logged"
        );
        let frame = raw_request(9999, 0, 525_252, "evil-wrong-correlation", b"opaque");
        hostile_broker_answer(
            &proxy,
            &good,
            "opaque api with a wrong correlation id",
            &frame,
        )
        .await;
        assert!(
            wait_for_log(
                "upstream answered correlation id 525253, expected 525252",
                CLOSE_WITHIN
            )
            .await,
            "the reason was not logged"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4. Malformed client frames.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_client_frames_are_closed_at_the_proxy_and_never_reach_the_broker() {
    with_good_client(|proxy, good| async move {
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        // Frames shorter than a request header's fixed part (kafka-protocol's header decoder
        // panics under 4 bytes); the proxy must refuse them itself.
        for len in 0..=3usize {
            cases.push((format!("{len}-byte frame"), framed(&[0, 18, 0, 3][..len])));
        }
        for len in 4..=8usize {
            cases.push((
                format!("{len}-byte header"),
                framed(&[0, 3, 0, 12, 0, 0, 0, 1][..len]),
            ));
        }
        // Client id lengths that lie: negative (not -1), and longer than the frame.
        let mut bad_len = vec![0, 3, 0, 4, 0, 0, 0, 9];
        bad_len.extend((-5i16).to_be_bytes());
        cases.push(("negative client id length".into(), framed(&bad_len)));
        let mut long_len = vec![0, 3, 0, 4, 0, 0, 0, 9];
        long_len.extend(30_000i16.to_be_bytes());
        long_len.extend(b"short");
        cases.push(("client id longer than the frame".into(), framed(&long_len)));
        // Flexible header whose tagged-field section runs past the frame.
        let mut tags = vec![0, 3, 0, 12, 0, 0, 0, 9, 0, 4];
        tags.extend(b"good");
        tags.extend([3, 1, 0x7f]);
        cases.push(("tagged fields past the end".into(), framed(&tags)));
        // Produce requests cut before `acks`: v9 (compact transactional id), v3 (int16 one).
        let produce = request(
            ApiKey::Produce,
            9,
            31,
            "good",
            &ProduceRequest::default().with_acks(1).with_timeout_ms(1000),
        );
        let header_len = 4 + 2 + 2 + 4 + 2 + 4 + 1; // prefix, key, version, corr, id, tags
        for keep in [0, 1] {
            let body = &produce[4..header_len + keep];
            cases.push((
                format!("Produce v9 cut {keep} bytes into the body"),
                framed(body),
            ));
        }
        let mut v9_long_txn = produce[4..header_len].to_vec();
        v9_long_txn.extend([0x20, b'x']); // transactional id of 31 bytes, 1 present
        cases.push((
            "Produce v9 with a truncated transactional id".into(),
            framed(&v9_long_txn),
        ));
        let produce3 = request(ApiKey::Produce, 3, 32, "good", &ProduceRequest::default());
        let header3 = 4 + 2 + 2 + 4 + 2 + 4;
        for keep in [0, 1, 2, 3] {
            let body = &produce3[4..header3 + keep];
            cases.push((
                format!("Produce v3 cut {keep} bytes into the body"),
                framed(body),
            ));
        }

        for (what, bytes) in &cases {
            let mut conn = proxy.connect_good().await;
            conn.send(bytes).await.unwrap();
            conn.expect_closed(what).await;
            assert!(
                !proxy.fake.received_frame(&bytes[4..]),
                "{what}: the proxy forwarded it to the broker"
            );
            good.wait_for_progress(&format!("after {what}")).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_client_size_prefixes_close_at_once_without_buffering() {
    with_good_client(|proxy, good| async move {
        let oversize = i32::try_from(MAX_FRAME_BYTES + 1).unwrap();
        let prefixes: [(&str, i32); 5] = [
            ("size -1", -1),
            ("size -2^31", i32::MIN),
            ("size max_frame_bytes + 1", oversize),
            ("size 2^31-1", i32::MAX),
            ("size 1 GiB", 1 << 30),
        ];
        for (what, size) in prefixes {
            let mut conn = proxy.connect_good().await;
            // Only the 4-byte prefix: a proxy that waited for the body would hang.
            conn.send(&size.to_be_bytes()).await.unwrap();
            conn.expect_closed(what).await;
            good.wait_for_progress(&format!("after {what}")).await;
        }
        assert!(
            wait_for_log(
                &format!("client sent a bad frame: frame of {oversize} bytes exceeds the limit"),
                CLOSE_WITHIN
            )
            .await,
            "oversized frame not logged"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_from_a_client_ends_its_connection() {
    with_good_client(|proxy, good| async move {
        // Whatever the garbage parses as, the connection must end: refused by the proxy, or
        // forwarded as an opaque api and refused by the broker (as Kafka does). Garbage that
        // would parse as an api the proxy answers itself (ApiVersions, SASL) is skipped.
        let mut tried = 0;
        for seed in 1..=40u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
            let len = (rng.next() % 200) as usize;
            let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if garbage.len() >= 2
                && matches!(i16::from_be_bytes([garbage[0], garbage[1]]), 17 | 18 | 36)
            {
                continue;
            }
            tried += 1;
            let what = format!("{len} bytes of garbage (seed {seed})");
            let mut conn = proxy.connect_good().await;
            conn.send(&framed(&garbage)).await.unwrap();
            conn.expect_closed(&what).await;
        }
        assert!(tried >= 30);
        good.wait_for_progress("after the garbage").await;
        // Garbage with no frame structure at all (not even TLS): a raw TCP client.
        let mut raw = TcpStream::connect(proxy.addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let end = tokio::time::timeout(CLOSE_WITHIN, async {
            loop {
                match raw.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {} // a TLS alert may come first
                }
            }
        })
        .await;
        assert!(end.is_ok(), "a non-TLS client was not closed");
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 5. Unknown api keys are forwarded opaquely.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_key_is_forwarded_opaquely_and_its_answer_returned() {
    with_good_client(|proxy, good| async move {
        let mut conn = proxy.connect_good().await;
        for (corr, body) in [(77, &b"opaque \x00\xff bytes"[..]), (78, &b""[..])] {
            let frame = raw_request(9999, 0, corr, "good", body);
            let response = conn.round_trip(&frame).await.unwrap();
            let mut want = corr.to_be_bytes().to_vec();
            want.extend(b"echo:");
            want.extend(body);
            assert_eq!(&response[..], &want[..], "the echo came back changed");
            assert!(
                proxy.fake.received_frame(&frame[4..]),
                "the broker did not receive the frame byte for byte"
            );
        }
        // The connection is still usable for known apis.
        good_round_trip(&mut conn, 79, proxy.broker_port, proxy.fake.addr)
            .await
            .unwrap();
        good.wait_for_progress("after the unknown api").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 6. KIP-511.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_newer_than_the_proxy_gets_the_kip511_answer_then_v3_works() {
    with_good_client(|proxy, good| async move {
        let mut conn = proxy.connect_good().await;
        // kafka-protocol refuses to encode v127: patch the version into a v3 encoding (the
        // request header is flexible for both; the body is what a v3 client sends).
        let mut frame = request(
            ApiKey::ApiVersions,
            3,
            5,
            "good",
            &ApiVersionsRequest::default(),
        );
        assert_eq!(frame[6..8], 3i16.to_be_bytes());
        frame[6..8].copy_from_slice(&127i16.to_be_bytes());
        let response = conn.round_trip(&frame).await.unwrap();
        // Response header v0, ApiVersions v0 body.
        let (corr, body) =
            decode::<ApiVersionsResponse>(&response, ApiKey::ApiVersions, 0).unwrap();
        assert_eq!(corr, 5);
        assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
        let listed: Vec<_> = body
            .api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect();
        let crate_max = ApiKey::ApiVersions.valid_versions().max;
        assert_eq!(listed, vec![(18, 0, crate_max)]);
        assert!(
            !proxy.fake.received_frame(&frame[4..]),
            "the proxy forwarded v127 instead of answering it"
        );
        // The retry with v3 works on the same connection.
        let v3 = request(
            ApiKey::ApiVersions,
            3,
            6,
            "good",
            &ApiVersionsRequest::default(),
        );
        let response = conn.round_trip(&v3).await.unwrap();
        let (corr, body) =
            decode::<ApiVersionsResponse>(&response, ApiKey::ApiVersions, 3).unwrap();
        assert_eq!((corr, body.error_code), (6, 0));
        assert!(body.api_keys.iter().any(|a| a.api_key == 3));
        // v4: the proxy knows it, the (fake) broker does not and answers KIP-511 style with a
        // v0 body; the proxy must pass that answer on as v0, not decode it as v4.
        let v4 = request(
            ApiKey::ApiVersions,
            4,
            7,
            "good",
            &ApiVersionsRequest::default(),
        );
        let response = conn.round_trip(&v4).await.unwrap();
        let (corr, body) =
            decode::<ApiVersionsResponse>(&response, ApiKey::ApiVersions, 0).unwrap();
        assert_eq!((corr, body.error_code), (7, 35));
        let listed: Vec<_> = body
            .api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect();
        assert_eq!(listed, vec![(18, 0, 3)], "the broker's range, passed on");
        good.wait_for_progress("after KIP-511").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 7. SASL on the mTLS listener.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_handshake_gets_unsupported_mechanism_then_the_connection_closes() {
    with_good_client(|proxy, good| async move {
        for version in [0i16, 1] {
            let mut conn = proxy.connect_good().await;
            let frame = request(
                ApiKey::SaslHandshake,
                version,
                40 + i32::from(version),
                "good",
                &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
            );
            let response = conn.round_trip(&frame).await.unwrap();
            let (corr, body) =
                decode::<SaslHandshakeResponse>(&response, ApiKey::SaslHandshake, version).unwrap();
            assert_eq!(corr, 40 + i32::from(version));
            assert_eq!(body.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
            assert!(body.mechanisms.is_empty());
            conn.expect_closed(&format!("after the SaslHandshake v{version} refusal"))
                .await;
            assert!(!proxy.fake.received_frame(&frame[4..]));
        }
        good.wait_for_progress("after SASL").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 8. Pipelining.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_pipelined_requests_get_their_answers_in_order() {
    with_good_client(|proxy, good| async move {
        #[derive(Clone, Copy, Debug)]
        enum Kind {
            ApiVersions,
            Metadata,
            FindCoordinator,
            DescribeCluster,
            Unknown,
            ProduceAcks1,
            ProduceAcks0,
            /// Produce v10 / Fetch v16: KIP-951 node endpoints, rewritten.
            ProduceV10,
            FetchV16,
        }
        let mut kinds = Vec::new();
        for i in 0..100 {
            kinds.push(match i {
                50 => Kind::ProduceAcks0,
                i if i % 8 == 0 => Kind::ApiVersions,
                i if i % 8 == 1 => Kind::Metadata,
                i if i % 8 == 2 => Kind::FindCoordinator,
                i if i % 8 == 3 => Kind::DescribeCluster,
                i if i % 8 == 4 => Kind::Unknown,
                i if i % 8 == 5 => Kind::ProduceV10,
                i if i % 8 == 6 => Kind::FetchV16,
                _ => Kind::ProduceAcks1,
            });
        }
        let corr_of = |i: usize| 10_000 + i32::try_from(i).unwrap();
        let mut all = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            let corr = corr_of(i);
            let frame = match kind {
                Kind::ApiVersions => request(
                    ApiKey::ApiVersions,
                    3,
                    corr,
                    "good",
                    &ApiVersionsRequest::default(),
                ),
                Kind::Metadata => request(ApiKey::Metadata, 12, corr, "good", &metadata_request()),
                Kind::FindCoordinator => request(
                    ApiKey::FindCoordinator,
                    4,
                    corr,
                    "good",
                    &find_coordinator_request(4),
                ),
                Kind::DescribeCluster => request(
                    ApiKey::DescribeCluster,
                    0,
                    corr,
                    "good",
                    &DescribeClusterRequest::default(),
                ),
                Kind::Unknown => raw_request(9999, 0, corr, "good", format!("n{i}").as_bytes()),
                Kind::ProduceV10 => request_for(ApiKey::Produce, 10, corr, "good"),
                Kind::FetchV16 => request_for(ApiKey::Fetch, 16, corr, "good"),
                Kind::ProduceAcks1 | Kind::ProduceAcks0 => {
                    let acks = if matches!(kind, Kind::ProduceAcks0) {
                        0
                    } else {
                        1
                    };
                    request(
                        ApiKey::Produce,
                        9,
                        corr,
                        "good",
                        &ProduceRequest::default()
                            .with_acks(acks)
                            .with_timeout_ms(1000),
                    )
                }
            };
            all.extend(frame);
        }
        let mut conn = proxy.connect_good().await;
        // Everything in one write, before reading anything.
        conn.send(&all).await.unwrap();
        let (broker_port, fake) = (proxy.broker_port, proxy.fake.addr);
        for (i, kind) in kinds.iter().enumerate() {
            if matches!(kind, Kind::ProduceAcks0) {
                continue;
            }
            let corr = corr_of(i);
            let frame = conn
                .recv()
                .await
                .unwrap_or_else(|e| panic!("request {i} ({kind:?}): {e}"));
            let got = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(got, corr, "response {i} ({kind:?}) out of order");
            match kind {
                Kind::ApiVersions => {
                    let (_, body) =
                        decode::<ApiVersionsResponse>(&frame, ApiKey::ApiVersions, 3).unwrap();
                    let range = |k: i16| {
                        body.api_keys
                            .iter()
                            .find(|a| a.api_key == k)
                            .map(|a| (a.min_version, a.max_version))
                    };
                    assert_eq!(range(17), None, "SaslHandshake must be removed");
                    assert_eq!(range(36), None, "SaslAuthenticate must be removed");
                    assert_eq!(
                        range(0),
                        Some((0, 13)),
                        "Produce up to v13 (transactions need v12+)"
                    );
                    assert_eq!(range(1), Some((0, 15)), "Fetch capped at v15");
                    assert_eq!(range(3), Some((0, 12)), "Metadata as the broker says");
                    assert_eq!(range(9999), Some((0, 0)), "unknown apis pass through");
                }
                Kind::Metadata => {
                    let (_, body) =
                        decode::<MetadataResponse>(&frame, ApiKey::Metadata, 12).unwrap();
                    check_brokers(
                        body.brokers
                            .iter()
                            .map(|b| (b.node_id.0, b.host.to_string(), b.port)),
                        broker_port,
                        fake,
                    )
                    .unwrap();
                }
                Kind::FindCoordinator => {
                    let (_, body) =
                        decode::<FindCoordinatorResponse>(&frame, ApiKey::FindCoordinator, 4)
                            .unwrap();
                    check_brokers(
                        body.coordinators
                            .iter()
                            .map(|c| (c.node_id.0, c.host.to_string(), c.port)),
                        broker_port,
                        fake,
                    )
                    .unwrap();
                }
                Kind::DescribeCluster => {
                    let (_, body) =
                        decode::<DescribeClusterResponse>(&frame, ApiKey::DescribeCluster, 0)
                            .unwrap();
                    check_brokers(
                        body.brokers
                            .iter()
                            .map(|b| (b.broker_id.0, b.host.to_string(), b.port)),
                        broker_port,
                        fake,
                    )
                    .unwrap();
                }
                Kind::Unknown => {
                    assert_eq!(&frame[4..], format!("echo:n{i}").as_bytes());
                }
                Kind::ProduceAcks1 => {
                    decode::<ProduceResponse>(&frame, ApiKey::Produce, 9).unwrap();
                }
                Kind::ProduceV10 => {
                    let (_, body) = decode::<ProduceResponse>(&frame, ApiKey::Produce, 10).unwrap();
                    check_brokers(
                        body.node_endpoints
                            .iter()
                            .map(|n| (n.node_id.0, n.host.to_string(), n.port)),
                        broker_port,
                        fake,
                    )
                    .unwrap();
                }
                Kind::FetchV16 => {
                    let (_, body) = decode::<FetchResponse>(&frame, ApiKey::Fetch, 16).unwrap();
                    check_brokers(
                        body.node_endpoints
                            .iter()
                            .map(|n| (n.node_id.0, n.host.to_string(), n.port)),
                        broker_port,
                        fake,
                    )
                    .unwrap();
                }
                Kind::ProduceAcks0 => unreachable!(),
            }
        }
        // No stray answer for the acks=0 Produce: the next response is the next request's.
        let frame = request(
            ApiKey::ApiVersions,
            3,
            99_999,
            "good",
            &ApiVersionsRequest::default(),
        );
        let response = conn.round_trip(&frame).await.unwrap();
        assert_eq!(
            i32::from_be_bytes(response[..4].try_into().unwrap()),
            99_999
        );
        good.wait_for_progress("after pipelining").await;
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// 9. A trusted certificate that matches no pool.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_certificate_matching_no_pool_gets_access_denied_in_the_handshake() {
    with_good_client(|proxy, good| async move {
        // TLS 1.2: the server's verdict comes before its Finished, so the handshake itself fails.
        let tls12 = proxy
            .pki
            .client_config("outsider", &[&rustls::version::TLS12]);
        match KafkaConn::connect(proxy.addr, tls12).await {
            Ok(_) => panic!("TLS 1.2 handshake with the outsider certificate succeeded"),
            Err(e) => assert_access_denied(&e.to_string(), "TLS 1.2 handshake"),
        }
        // TLS 1.3: the client's side of the handshake ends before the server checks its
        // certificate, so the alert is the first thing it reads: never a response, never a
        // bare close.
        let tls13 = proxy
            .pki
            .client_config("outsider", &[&rustls::version::TLS13]);
        match KafkaConn::connect(proxy.addr, tls13).await {
            Err(e) => assert_access_denied(&e.to_string(), "TLS 1.3 handshake"),
            Ok(mut conn) => {
                let frame = request(
                    ApiKey::ApiVersions,
                    3,
                    31_337,
                    "good",
                    &ApiVersionsRequest::default(),
                );
                let _ = conn.send(&frame).await;
                let mut buf = [0u8; 64];
                match tokio::time::timeout(CLOSE_WITHIN, conn.stream.read(&mut buf)).await {
                    Err(_) => panic!("TLS 1.3: no alert within {CLOSE_WITHIN:?}"),
                    Ok(Ok(n)) => panic!("TLS 1.3: read {n} bytes instead of an alert"),
                    Ok(Err(e)) => assert_access_denied(&e.to_string(), "TLS 1.3 first read"),
                }
            }
        }
        let refused = request(
            ApiKey::ApiVersions,
            3,
            31_337,
            "good",
            &ApiVersionsRequest::default(),
        );
        assert!(
            !proxy.fake.received_frame(&refused[4..]),
            "a request of the refused client reached the broker"
        );
        good.wait_for_progress("after the refused handshakes").await;
    })
    .await;
}

fn assert_access_denied(error: &str, when: &str) {
    let lower = error.to_lowercase();
    assert!(
        lower.contains("accessdenied") || lower.contains("access denied"),
        "{when}: expected an AccessDenied alert, got: {error}"
    );
}

// ---------------------------------------------------------------------------------------------
// The real binary: an abort cannot be caught in-process.
// ---------------------------------------------------------------------------------------------

/// Kills the child on drop, so a failing test leaves no proxy behind.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_to_string(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_process_survives_hostile_broker_answers() {
    let pki = Pki::generate("hostile-inputs");
    let fake = FakeBroker::start().await;
    let bootstrap_port = free_port();
    let broker_port = free_port();
    let first_port = broker_port - u16::try_from(NODE_ID).unwrap();
    let bootstrap: SocketAddr = format!("127.0.0.1:{bootstrap_port}").parse().unwrap();
    let config = write_config(&pki, bootstrap, first_port, fake.addr, "info");
    // The proxy logs to stdout; panics and fatal errors go to stderr: one file for both.
    let output_path = pki.path("proxy.output");
    let output = std::fs::File::create(&output_path).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("KAFKA_MTLS_PROXY_CONFIG")
        .env("NO_COLOR", "1")
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);

    // Wait for the bootstrap listener.
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(bootstrap).await.is_err() {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "the proxy exited ({status}) before listening:\n{}",
                read_to_string(&output_path)
            );
        }
        assert!(Instant::now() < deadline, "the proxy never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Why the proxy closed a connection, from its own log (NO_COLOR keeps it greppable).
    let reason = |conn: &KafkaConn| close_reason_in(&read_to_string(&output_path), conn.local);
    let tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);
    let mut good = KafkaConn::connect(bootstrap, tls.clone()).await.unwrap();
    if let Err(e) = good_round_trip(&mut good, 1, broker_port, fake.addr).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
        panic!(
            "the first good round trip failed: {e}\nproxy: {}",
            reason(&good)
        );
    }

    for (i, (what, key, version, evil)) in HOSTILE_COUNTS.iter().enumerate() {
        let corr = 11 + i32::try_from(i).unwrap();
        let frame = request_for(*key, *version, corr, &format!("evil-{evil}"));
        let mut conn = KafkaConn::connect(bootstrap, tls.clone()).await.unwrap();
        conn.send(&frame).await.unwrap();
        conn.expect_closed(what).await;
        // Give an abort the time to happen, then check the process.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!(
                "the proxy PROCESS died ({status}) after {what}:\n{}",
                read_to_string(&output_path)
            );
        }
        // The connection opened before the hostile one still works.
        let corr = 100 + 2 * i32::try_from(i).unwrap();
        if let Err(e) = good_round_trip(&mut good, corr, broker_port, fake.addr).await {
            tokio::time::sleep(Duration::from_millis(100)).await;
            panic!(
                "the good connection failed after {what}: {e}\nproxy: {}",
                reason(&good)
            );
        }
    }
    // A fresh connection works too.
    let mut fresh = KafkaConn::connect(bootstrap, tls).await.unwrap();
    if let Err(e) = good_round_trip(&mut fresh, 500, broker_port, fake.addr).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
        panic!(
            "a fresh good connection failed: {e}\nproxy: {}",
            reason(&fresh)
        );
    }
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the proxy process died"
    );
    let log = read_to_string(&output_path);
    for api in [
        "MetadataResponse version 12",
        "MetadataResponse version 1:",
        "FindCoordinatorResponse version 4",
        "DescribeClusterResponse version 0",
        "DescribeClusterResponse version 1",
        "ProduceResponse version 10",
        "FetchResponse version 16",
    ] {
        assert!(
            log.contains(&format!(
                "upstream sent a malformed response: cannot decode {api}"
            )),
            "the reason for {api} was not logged:\n{log}"
        );
    }
    assert!(!log.contains("panicked"), "the proxy panicked:\n{log}");
    drop((good, fresh));
}
