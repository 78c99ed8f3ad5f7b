//! The cost of proxy ACLs per request, next to what the proxy pays per request without them.
//!
//! - `allows`: one `Permissions::allows` with 1, 10 and 100 topic rules (literal and prefixed
//!   allows of other teams, one deny, the matching allow last so every rule runs), hit and miss;
//! - `acl_produce_v9_16KiB`, `acl_fetch_v12`, `acl_metadata_v12`: `check_request` with a
//!   10-rule pool, each next to its ACL-off baseline — `parse_request_header` on the same frame,
//!   all the proxy does per request without ACLs (with ACLs the proxy does both);
//! - the Metadata listing's patch (filtering a 100-topic response to the describable half), next
//!   to `rewrite_response` on the same response, which every Metadata answer pays anyway.
//!
//! Run: `cargo bench --bench acl -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use kafka_mtls_proxy::acl::{
    AclRule, Action, Operation, Pattern, Permission, Permissions, ResourceType, apply_patch,
    check_request,
};
use kafka_mtls_proxy::kafka::{parse_request_header, rewrite_response};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, MetadataRequest, ProduceRequest, ProduceResponse, RequestHeader,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

mod support;
use support::{METADATA_VERSION, Mapper, metadata_frame, response_frame};

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
/// The topic the pool may use, one it may not, and the pool's prefix.
const ALLOWED_TOPIC: &str = "payments-eu";
const DENIED_TOPIC: &str = "hr-salaries";
const POOL_PREFIX: &str = "payments-";
/// Rules of the pool `check_request` runs with: a realistic pool.
const POOL_RULES: usize = 10;

fn rule(permission: Permission, ops: &[Operation], pattern: Pattern) -> AclRule {
    AclRule::new(permission, ops, ResourceType::Topic, pattern)
}

/// `n` topic rules. With `n > 1`: one deny (of a topic the pool's prefix covers) and `n - 2`
/// allows that do not match `payments-*` (literal and prefixed, other teams' topics); last, the
/// allow that grants the pool its topics. A hit walks the deny and every allow.
fn rules(n: usize) -> Vec<AclRule> {
    let mut rules = Vec::with_capacity(n);
    if n > 1 {
        rules.push(rule(
            Permission::Deny,
            &[Operation::Write],
            Pattern::Literal("payments-secret".to_owned()),
        ));
    }
    for i in 0..n.saturating_sub(2) {
        rules.push(match i % 3 {
            0 => rule(
                Permission::Allow,
                &[Operation::Write, Operation::Describe],
                Pattern::Literal(format!("orders-{i}")),
            ),
            1 => rule(
                Permission::Allow,
                &[Operation::Read],
                Pattern::Prefixed(format!("team-{i}-")),
            ),
            _ => rule(
                Permission::Allow,
                &[Operation::All],
                Pattern::Prefixed(format!("sandbox-{i}.")),
            ),
        });
    }
    rules.push(rule(
        Permission::Allow,
        &[Operation::Read, Operation::Write, Operation::Create],
        Pattern::Prefixed(POOL_PREFIX.to_owned()),
    ));
    assert_eq!(rules.len(), n);
    rules
}

fn permissions(n: usize) -> Arc<Permissions> {
    Arc::new(Permissions::from_rules(
        &rules(n),
        vec!["pool-payments".to_owned()],
    ))
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// A request frame as the proxy sees it (no size prefix): header, then body.
fn request_frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bench-client")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

/// A v2 record batch of 16 × 1000 B values: ~16 KiB, Kafka's default `batch.size`.
fn record_batch() -> Bytes {
    let value = Bytes::from(
        (0..1000)
            .map(|i| u8::try_from((i * 31 + 7) % 251).unwrap())
            .collect::<Vec<u8>>(),
    );
    let records: Vec<Record> = (0..16)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: NO_SEQUENCE,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("key-{i:04}"))),
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// Produce v9, acks=-1: one partition of ~16 KiB per topic.
fn produce_frame(topics: &[&str]) -> Bytes {
    let batch = record_batch();
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(
            topics
                .iter()
                .map(|t| {
                    TopicProduceData::default()
                        .with_name(topic_name(t))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(batch.clone())),
                        ])
                })
                .collect(),
        );
    request_frame(ApiKey::Produce, PRODUCE_VERSION, &body)
}

/// The broker's answer to the narrowed produce (the allowed topic only).
fn produce_response_frame() -> Bytes {
    let body = ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default()
            .with_name(topic_name(ALLOWED_TOPIC))
            .with_partition_responses(vec![
                PartitionProduceResponse::default()
                    .with_index(0)
                    .with_base_offset(42)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(0),
            ]),
    ]);
    response_frame(ApiKey::Produce, PRODUCE_VERSION, &body)
}

/// A consumer's Fetch v12 of partitions 0–2 of `n` allowed topics.
fn fetch_frame(n: usize) -> Bytes {
    let body = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_topics(
            (0..n)
                .map(|t| {
                    FetchTopic::default()
                        .with_topic(topic_name(&format!("{POOL_PREFIX}{t}")))
                        .with_partitions(
                            (0..3)
                                .map(|p| {
                                    FetchPartition::default()
                                        .with_partition(p)
                                        .with_fetch_offset(1_000)
                                        .with_partition_max_bytes(1024 * 1024)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    request_frame(ApiKey::Fetch, FETCH_VERSION, &body)
}

/// Metadata v12 of every topic (null list), as `kafka-topics.sh --list` sends it.
fn metadata_listing_frame() -> Bytes {
    let body = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    request_frame(ApiKey::Metadata, METADATA_VERSION, &body)
}

/// A Metadata v12 answer with `n` topics of 3 partitions on 3 brokers; every other topic is
/// the pool's (`payments-…`), the rest another team's.
fn metadata_response_frame(n: usize) -> Bytes {
    metadata_frame(
        (0..n).map(|t| {
            if t % 2 == 0 {
                format!("{POOL_PREFIX}{t}")
            } else {
                format!("orders-x{t}")
            }
        }),
        None,
    )
}

/// A mapper as cheap as the proxy's: node id → fixed host, port by offset.
/// What `check_request` decided, in short: (narrowed, patched), or answered/refused.
fn outcome(action: &Action) -> (bool, bool) {
    match action {
        Action::Forward { frame, patch } => (frame.is_some(), patch.is_some()),
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn take_patch(action: Action) -> kafka_mtls_proxy::acl::ResponsePatch {
    match action {
        Action::Forward {
            patch: Some(patch), ..
        } => patch,
        other => panic!("expected a patch, got {other:?}"),
    }
}

fn bench_allows(c: &mut Criterion) {
    let mut group = c.benchmark_group("allows");
    for n in [1, 10, 100] {
        let p = permissions(n);
        assert!(p.allows(Operation::Write, ResourceType::Topic, ALLOWED_TOPIC));
        assert!(!p.allows(Operation::Write, ResourceType::Topic, DENIED_TOPIC));
        group.bench_with_input(BenchmarkId::new("hit", n), &p, |b, p| {
            b.iter(|| {
                p.allows(
                    Operation::Write,
                    ResourceType::Topic,
                    black_box(ALLOWED_TOPIC),
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("miss", n), &p, |b, p| {
            b.iter(|| {
                p.allows(
                    Operation::Write,
                    ResourceType::Topic,
                    black_box(DENIED_TOPIC),
                )
            })
        });
    }
    group.finish();
}

/// The ACL-off baseline and `check_request` on one frame; `expect` is (narrowed, patched).
fn bench_check(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    permissions: &Arc<Permissions>,
    frame: &Bytes,
    expect: (bool, bool),
) {
    let header = parse_request_header(frame).unwrap();
    let checked = check_request(permissions, &header, frame).unwrap();
    assert_eq!(outcome(&checked.action), expect, "{name}");
    group.bench_function(format!("{name}/acl_off_parse_header"), |b| {
        b.iter(|| parse_request_header(black_box(frame)).unwrap())
    });
    group.bench_function(format!("{name}/acl_on_parse_header+check"), |b| {
        b.iter(|| {
            let header = parse_request_header(black_box(frame)).unwrap();
            check_request(permissions, &header, frame).unwrap()
        })
    });
}

fn bench_requests(c: &mut Criterion) {
    let p = permissions(POOL_RULES);

    let mut produce = c.benchmark_group("acl_produce_v9_16KiB");
    let allowed = produce_frame(&[ALLOWED_TOPIC]);
    bench_check(
        &mut produce,
        "1_topic_allowed",
        &p,
        &allowed,
        (false, false),
    );
    let mixed = produce_frame(&[ALLOWED_TOPIC, DENIED_TOPIC]);
    bench_check(&mut produce, "2_topics_1_denied", &p, &mixed, (true, true));
    // The whole ACL price of a partly denied produce: the check (narrowing re-encodes the
    // request), then the patch adding the denied topic to the broker's answer.
    let answer = produce_response_frame();
    produce.bench_function("2_topics_1_denied/acl_on_parse_header+check+patch", |b| {
        b.iter(|| {
            let header = parse_request_header(black_box(&mixed)).unwrap();
            let checked = check_request(&p, &header, &mixed).unwrap();
            let patch = take_patch(checked.action);
            apply_patch(
                patch,
                ApiKey::Produce.into(),
                PRODUCE_VERSION,
                answer.clone(),
            )
            .unwrap()
        })
    });
    produce.finish();

    let mut fetch = c.benchmark_group("acl_fetch_v12");
    for n in [1, 10] {
        let frame = fetch_frame(n);
        bench_check(
            &mut fetch,
            &format!("{n}_topics"),
            &p,
            &frame,
            (false, false),
        );
    }
    fetch.finish();

    let mut metadata = c.benchmark_group("acl_metadata_v12");
    let listing = metadata_listing_frame();
    bench_check(&mut metadata, "listing", &p, &listing, (false, true));
    // The answer: the rewrite every Metadata response pays (ACLs or not), and the ACL patch
    // that keeps the describable half of the 100 topics.
    let response = metadata_response_frame(100);
    let header = parse_request_header(&listing).unwrap();
    let patch = take_patch(check_request(&p, &header, &listing).unwrap().action);
    let filtered = apply_patch(
        patch,
        ApiKey::Metadata.into(),
        METADATA_VERSION,
        response.clone(),
    )
    .unwrap();
    assert!(filtered.len() < response.len() * 2 / 3, "the patch filters");
    metadata.bench_function("response_100_topics/acl_off_rewrite", |b| {
        b.iter(|| {
            rewrite_response(
                ApiKey::Metadata.into(),
                METADATA_VERSION,
                black_box(&response),
                &Mapper,
            )
            .unwrap()
        })
    });
    metadata.bench_function("response_100_topics/acl_on_patch", |b| {
        b.iter_batched(
            || take_patch(check_request(&p, &header, &listing).unwrap().action),
            |patch| {
                apply_patch(
                    patch,
                    ApiKey::Metadata.into(),
                    METADATA_VERSION,
                    black_box(response.clone()),
                )
                .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    metadata.finish();
}

criterion_group!(benches, bench_allows, bench_requests);
criterion_main!(benches);
