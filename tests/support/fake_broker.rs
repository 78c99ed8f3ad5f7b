//! A fake upstream Kafka broker for the hostile-input tests. It answers by the request's client
//! id: `good` gets valid responses built with kafka-protocol (`slow` too, after
//! [`SLOW_ANSWER`]); `evil-*` gets the hostile bytes the id names; `mute` is never answered.
//! After a hostile answer the fake keeps its side open, so a closed client connection can only
//! be the proxy's decision. It records every frame it receives, so a test can also prove that a
//! malformed client frame was stopped at the proxy and never reached the broker.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, DescribeClusterResponse, FetchResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, MetadataResponse, ProduceRequest,
    ProduceResponse, RequestHeader, ResponseHeader, fetch_response, produce_response,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::proxy::{FakeListener, framed};
use super::test_proxy::MAX_FRAME_BYTES;

/// The node id the fake broker advertises for itself.
pub const NODE_ID: i32 = 7;
/// How long the fake broker takes to answer the `slow` client.
pub const SLOW_ANSWER: Duration = Duration::from_millis(1500);
/// How many brokers the `evil-metadata-many-nodes` answer lists.
pub const MANY_NODES: i32 = 40;

/// A fake Kafka broker: answers by client id (see the module docs).
pub struct FakeBroker {
    pub addr: SocketAddr,
    pub state: Arc<FakeState>,
    _listener: FakeListener,
}

/// What the fake broker saw, shared by its connections.
#[derive(Default)]
pub struct FakeState {
    /// Every frame received (size prefix stripped), in arrival order.
    pub received: Mutex<Vec<Vec<u8>>>,
    /// Connections that sent a request of the `mute` client (never answered) and are still
    /// open.
    pub mute_open: AtomicU64,
    /// Of those, how many the proxy has closed since.
    pub mute_closed: AtomicU64,
}

impl FakeBroker {
    pub async fn start() -> Self {
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

    pub fn received_frame(&self, frame: &[u8]) -> bool {
        self.state
            .received
            .lock()
            .unwrap()
            .iter()
            .any(|f| f == frame)
    }
}

/// Counts a connection of the `mute` client as closed when its task ends.
pub struct MuteConnection(Arc<FakeState>);

impl Drop for MuteConnection {
    fn drop(&mut self) {
        self.0.mute_open.fetch_sub(1, Ordering::SeqCst);
        self.0.mute_closed.fetch_add(1, Ordering::SeqCst);
    }
}

/// A request as the fake broker parsed it.
pub struct FakeRequest {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: String,
    /// The body (after the whole request header).
    pub body: Bytes,
}

/// Parses a request header by hand for unknown api keys (v1 prefix), with kafka-protocol for
/// known ones. `None` for anything malformed: a real broker closes such a connection.
pub fn parse_fake_request(frame: &[u8]) -> Option<FakeRequest> {
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

pub async fn fake_connection(mut socket: TcpStream, own_addr: SocketAddr, state: Arc<FakeState>) {
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
pub fn good_response(req: &FakeRequest, own_addr: SocketAddr) -> Option<Result<Vec<u8>, ()>> {
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

pub fn api_version(key: i16, min: i16, max: i16) -> ApiVersion {
    ApiVersion::default()
        .with_api_key(key)
        .with_min_version(min)
        .with_max_version(max)
}

/// Unsigned varint 2^31: the compact-array count (N+1) of upstream PR #161.
pub const VARINT_2_POW_31: [u8; 5] = [0x80, 0x80, 0x80, 0x80, 0x08];

/// The hostile answer (size prefix included) named by `name` (the client id minus `evil-`).
pub fn evil_response(name: &str, req: &FakeRequest, own_addr: SocketAddr) -> Option<Vec<u8>> {
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
pub fn describe_cluster_hostile_body(version: i16) -> Vec<u8> {
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
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}
