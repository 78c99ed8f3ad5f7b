//! The per-frame cost of the Kafka layer: decode + rewrite + encode for the responses that carry
//! broker addresses, and the check every other frame pays before being forwarded untouched.
//!
//! `cargo bench --bench rewrite -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    reason = "a fixture that cannot be built should stop the benchmark"
)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use kafka_mtls_proxy::kafka::{parse_request_header, response_needs_rewrite, rewrite_response};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorResponse, ProduceRequest, RequestHeader,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

mod support;
use support::{METADATA_VERSION, Mapper, response_frame};

const FIND_COORDINATOR_VERSION: i16 = 4;

/// A mapper as cheap as the proxy's: node id → fixed host, port by offset.
fn metadata_frame(topics: usize) -> Bytes {
    support::metadata_frame((0..topics).map(|t| format!("topic-{t}")), Some("rack-a"))
}

fn find_coordinator_frame() -> Bytes {
    let body = FindCoordinatorResponse::default().with_coordinators(vec![
        Coordinator::default()
            .with_key(StrBytes::from_static_str("orders-consumer"))
            .with_node_id(BrokerId(2))
            .with_host(StrBytes::from_static_str("broker-2.internal.example"))
            .with_port(9092),
    ]);
    response_frame(ApiKey::FindCoordinator, FIND_COORDINATOR_VERSION, &body)
}

/// A Produce v9 request with 1 KiB of records: the commonest frame the proxy only forwards.
fn produce_request_frame() -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Produce as i16)
        .with_request_api_version(9)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("producer-1")))
        .encode(&mut buf, 2)
        .unwrap();
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000);
    body.encode(&mut buf, 9).unwrap();
    buf.extend_from_slice(&[0u8; 1024]);
    buf.freeze()
}

fn bench(c: &mut Criterion) {
    let metadata_1 = metadata_frame(1);
    let metadata_100 = metadata_frame(100);
    let find_coordinator = find_coordinator_frame();
    let produce = produce_request_frame();

    let mut group = c.benchmark_group("rewrite");
    group.bench_function("metadata_v12_1_topic_3_brokers", |b| {
        b.iter(|| {
            rewrite_response(
                ApiKey::Metadata.into(),
                METADATA_VERSION,
                black_box(&metadata_1),
                &Mapper,
            )
            .unwrap()
        })
    });
    group.bench_function("metadata_v12_100_topics_3_brokers", |b| {
        b.iter(|| {
            rewrite_response(
                ApiKey::Metadata.into(),
                METADATA_VERSION,
                black_box(&metadata_100),
                &Mapper,
            )
            .unwrap()
        })
    });
    group.bench_function("find_coordinator_v4_1_key", |b| {
        b.iter(|| {
            rewrite_response(
                ApiKey::FindCoordinator.into(),
                FIND_COORDINATOR_VERSION,
                black_box(&find_coordinator),
                &Mapper,
            )
            .unwrap()
        })
    });
    group.finish();

    c.bench_function(
        "passthrough/parse_request_header+response_needs_rewrite",
        |b| {
            b.iter(|| {
                let header = parse_request_header(black_box(&produce)).unwrap();
                response_needs_rewrite(header.api_key, header.api_version)
            })
        },
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
