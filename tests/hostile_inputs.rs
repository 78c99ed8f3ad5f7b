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
//!
//! The fixtures live in `tests/support/`: the fake broker and its hostile answers
//! (`fake_broker`), the client side (`kafka_client`), the proxy under test and the good client
//! (`test_proxy`), and what the proxy logged or panicked (`logs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest,
    DescribeClusterResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceRequest, ProduceResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support {
    pub mod fake_broker;
    pub mod kafka_client;
    pub mod logs;
    pub mod proxy;
    pub mod test_proxy;
}
use support::fake_broker::{
    FakeBroker, FakeRequest, MANY_NODES, NODE_ID, VARINT_2_POW_31, XorShift,
    describe_cluster_hostile_body, evil_response,
};
use support::kafka_client::{
    CLOSE_WITHIN, KafkaConn, decode, find_coordinator_request, metadata_request, raw_request,
    request_for,
};
use support::logs::{close_reason, close_reason_in, wait_for_close_reason, wait_for_log};
use support::proxy::{Pki, framed, request};
use support::test_proxy::{
    DRAIN_TIMEOUT, MAX_BROKER_LISTENERS, MAX_FRAME_BYTES, TestProxy, check_brokers, free_port,
    good_round_trip, hostile_broker_answer, with_good_client, write_config,
};

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
            if bytes.len() == 4 {
                // Size prefix 0: said as such, not as a missing api key.
                let reason = wait_for_close_reason(conn.local, CLOSE_WITHIN).await;
                assert!(
                    reason.contains(
                        "reason=client sent a malformed request: empty frame: size prefix 0 (a \
                         request needs at least its 8-byte header)"
                    ),
                    "{reason}"
                );
            }
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
        // A client that announces 100 bytes, sends 10 and leaves: with a TLS close_notify, and
        // without one (as Kafka clients do). Either way one close line says what happened.
        let mut cut = 100i32.to_be_bytes().to_vec();
        cut.extend([0u8; 10]);
        for close_notify in [true, false] {
            let mut conn = proxy.connect_good().await;
            conn.send(&cut).await.unwrap();
            let client = conn.local;
            if close_notify {
                conn.stream.shutdown().await.unwrap();
            }
            drop(conn);
            let reason = wait_for_close_reason(client, CLOSE_WITHIN).await;
            // One line, at the default level, with the reason.
            let said = "INFO conn{";
            let why = "reason=client closed the connection in the middle of a frame (14 of 104 \
                       bytes)";
            assert!(
                reason.lines().count() == 1 && reason.contains(said) && reason.contains(why),
                "close_notify {close_notify}: {reason}"
            );
            good.wait_for_progress("after a client left mid-frame")
                .await;
        }
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
