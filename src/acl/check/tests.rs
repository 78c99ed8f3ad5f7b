//! Every API of the dispatch, at a realistic version and a flexible one: all allowed is
//! forwarded untouched; a mix is narrowed and the broker's answer patched with the denied
//! entries; all denied is answered by the proxy with the request's correlation id. Then the
//! hostile-input property test: no client body may crash the check.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{Action, Checked, check_request};
use crate::acl::apis::{
    ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION, AUTHORIZED_APIS, FETCH_MAX_WITH_ACLS,
};
use crate::acl::patch::apply_patch;
use crate::acl::permissions::Permissions;
use crate::acl::rules::{AclRule, Operation, Pattern, Permission, ResourceType};
use crate::kafka::codec::{decode_request_body, decode_response, encode_response};
use crate::kafka::{ErrorCode, ProtocolError, parse_request_header};
use crate::test_support::{Prng, api_versions_response};

const CORRELATION_ID: i32 = 4242;
const OPERATION_NOT_ATTEMPTED: i16 = ErrorCode::OPERATION_NOT_ATTEMPTED.0;
const TOPIC_AUTHORIZATION_FAILED: i16 = ErrorCode::TOPIC_AUTHORIZATION_FAILED.0;
const GROUP_AUTHORIZATION_FAILED: i16 = ErrorCode::GROUP_AUTHORIZATION_FAILED.0;
const CLUSTER_AUTHORIZATION_FAILED: i16 = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.0;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.0;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}
fn topic(s: &str) -> TopicName {
    TopicName(sb(s))
}
fn group(s: &str) -> GroupId {
    GroupId(sb(s))
}
fn txn(s: &str) -> TransactionalId {
    TransactionalId(sb(s))
}

fn allow(ops: &[Operation], rt: ResourceType, p: Pattern) -> AclRule {
    AclRule::new(Permission::Allow, ops, rt, p)
}

fn prefix(s: &str) -> Pattern {
    Pattern::Prefixed(s.to_owned())
}

fn perms(rules: &[AclRule]) -> Arc<Permissions> {
    Arc::new(Permissions::from_rules(rules, vec!["pool".into()]))
}

/// Everything on topics, groups and transactional ids named `ok-…`; nothing on the cluster.
fn ok_prefix() -> Arc<Permissions> {
    perms(&[
        allow(&[Operation::All], ResourceType::Topic, prefix("ok-")),
        allow(&[Operation::All], ResourceType::Group, prefix("ok-")),
        allow(
            &[Operation::All],
            ResourceType::TransactionalId,
            prefix("ok-"),
        ),
    ])
}

/// Everything on every resource, the cluster included.
fn everything() -> Arc<Permissions> {
    perms(
        &ResourceType::ALL
            .iter()
            .map(|&rt| allow(&[Operation::All], rt, Pattern::Any))
            .collect::<Vec<_>>(),
    )
}

fn nothing() -> Arc<Permissions> {
    perms(&[])
}

/// A client frame: request header (of the version Kafka uses for this API and version), body.
fn frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    body: &T,
) -> (crate::kafka::RequestHeader, Bytes) {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(sb("acl-test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let frame = buf.freeze();
    (parse_request_header(&frame).unwrap(), frame)
}

fn run<T: Encodable>(p: &Arc<Permissions>, key: ApiKey, version: i16, body: &T) -> Checked {
    let (header, frame) = frame(key, version, body);
    check_request(p, &header, &frame).unwrap()
}

fn is_untouched(c: &Checked) -> bool {
    matches!(
        c.action,
        Action::Forward {
            frame: None,
            patch: None
        }
    )
}

#[track_caller]
fn assert_untouched(c: &Checked) {
    assert!(is_untouched(c), "expected an untouched forward, got {c:?}");
    assert!(c.denials.is_empty(), "{:?}", c.denials);
}

/// The denials as (resource type, name, operation).
fn denials(c: &Checked) -> Vec<(ResourceType, String, Operation)> {
    c.denials
        .iter()
        .map(|d| (d.resource_type, d.resource.clone(), d.operation))
        .collect()
}

fn encode_answer<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Bytes {
    let header = ResponseHeader::default().with_correlation_id(CORRELATION_ID);
    encode_response(&header, key.response_header_version(version), body, version).unwrap()
}

fn decode_answer<R: Decodable>(key: ApiKey, version: i16, frame: &Bytes) -> R {
    let (header, body) =
        decode_response::<R>(frame, key.response_header_version(version), version).unwrap();
    assert_eq!(header.correlation_id, CORRELATION_ID);
    body
}

/// A narrowed forward: the request the broker gets, and the client's view of `broker`'s answer
/// once patched.
#[track_caller]
fn split<Req: Decodable, Resp: Decodable + Encodable>(
    c: Checked,
    key: ApiKey,
    version: i16,
    broker: &Resp,
) -> (Req, Resp) {
    let Action::Forward {
        frame: Some(narrowed),
        patch: Some(patch),
    } = c.action
    else {
        panic!("expected a narrowed, patched forward, got {:?}", c.action);
    };
    let header = parse_request_header(&narrowed).unwrap();
    assert_eq!(header.correlation_id, CORRELATION_ID);
    assert_eq!(header.client_id.as_deref(), Some("acl-test"));
    let req = decode_request_body::<Req>(&narrowed, header.header_len, version).unwrap();
    let patched = apply_patch(
        patch,
        key.into(),
        version,
        encode_answer(key, version, broker),
    )
    .unwrap();
    (req, decode_answer(key, version, &patched))
}

/// A forward of the client's own frame with a patch: the client's view of `broker`'s answer.
#[track_caller]
fn patched<Resp: Decodable + Encodable>(
    c: Checked,
    key: ApiKey,
    version: i16,
    broker: &Resp,
) -> Resp {
    let Action::Forward {
        frame: None,
        patch: Some(patch),
    } = c.action
    else {
        panic!(
            "expected an unnarrowed, patched forward, got {:?}",
            c.action
        );
    };
    decode_answer(
        key,
        version,
        &apply_patch(
            patch,
            key.into(),
            version,
            encode_answer(key, version, broker),
        )
        .unwrap(),
    )
}

/// The proxy's own answer.
#[track_caller]
fn answered<Resp: Decodable>(c: Checked, key: ApiKey, version: i16) -> Resp {
    let Action::Answer(Some(frame)) = c.action else {
        panic!("expected a local answer, got {:?}", c.action);
    };
    decode_answer(key, version, &frame)
}

use ResourceType::{Cluster, Group as G, Topic as T, TransactionalId as X};

// ---------------------------------------------------------------------------------------------
// Produce

fn produce(names: &[&str], acks: i16) -> ProduceRequest {
    use produce_request::{PartitionProduceData, TopicProduceData};
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(1000)
        .with_topic_data(
            names
                .iter()
                .map(|n| {
                    TopicProduceData::default()
                        .with_name(topic(n))
                        .with_partition_data(vec![
                            PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(Bytes::from_static(b"records"))),
                        ])
                })
                .collect(),
        )
}

fn produce_answer(names: &[&str]) -> ProduceResponse {
    use produce_response::{PartitionProduceResponse, TopicProduceResponse};
    ProduceResponse::default().with_responses(
        names
            .iter()
            .map(|n| {
                TopicProduceResponse::default()
                    .with_name(topic(n))
                    .with_partition_responses(vec![
                        PartitionProduceResponse::default()
                            .with_index(0)
                            .with_base_offset(17),
                    ])
            })
            .collect(),
    )
}

fn produce_codes(r: &ProduceResponse) -> Vec<(String, i16)> {
    r.responses
        .iter()
        .flat_map(|t| {
            t.partition_responses
                .iter()
                .map(|p| (t.name.to_string(), p.error_code))
        })
        .collect()
}

#[test]
fn produce_to_allowed_topics_is_forwarded_untouched() {
    for v in [7, 9] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::Produce,
            v,
            &produce(&["ok-a"], -1),
        ));
    }
}

#[test]
fn produce_to_a_denied_topic_is_narrowed_and_the_topic_answered_topic_authorization_failed() {
    for v in [7, 9] {
        let c = run(
            &ok_prefix(),
            ApiKey::Produce,
            v,
            &produce(&["ok-a", "no-b"], -1),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Write)]);
        let (req, resp): (ProduceRequest, ProduceResponse) =
            split(c, ApiKey::Produce, v, &produce_answer(&["ok-a"]));
        assert_eq!(req.topic_data.len(), 1);
        assert_eq!(req.topic_data[0].name, topic("ok-a"));
        assert_eq!(
            produce_codes(&resp),
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );
    }
}

#[test]
fn produce_with_every_topic_denied_is_answered_by_the_proxy() {
    for v in [7, 9] {
        let c = run(
            &ok_prefix(),
            ApiKey::Produce,
            v,
            &produce(&["no-a", "no-b"], 1),
        );
        assert_eq!(c.denials.len(), 2);
        let resp: ProduceResponse = answered(c, ApiKey::Produce, v);
        assert_eq!(
            produce_codes(&resp),
            vec![
                ("no-a".into(), TOPIC_AUTHORIZATION_FAILED),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );
    }
}

#[test]
fn produce_with_acks_0_and_every_topic_denied_gets_no_answer() {
    let c = run(&ok_prefix(), ApiKey::Produce, 9, &produce(&["no-a"], 0));
    assert!(matches!(c.action, Action::Answer(None)), "{c:?}");
    assert_eq!(denials(&c), vec![(T, "no-a".into(), Operation::Write)]);
}

#[test]
fn produce_with_acks_0_and_some_topics_denied_forwards_the_rest_without_a_patch() {
    let c = run(
        &ok_prefix(),
        ApiKey::Produce,
        9,
        &produce(&["ok-a", "no-b"], 0),
    );
    let Action::Forward {
        frame: Some(narrowed),
        patch: None,
    } = c.action
    else {
        panic!("{c:?}");
    };
    let header = parse_request_header(&narrowed).unwrap();
    let req: ProduceRequest = decode_request_body(&narrowed, header.header_len, 9).unwrap();
    assert_eq!(req.topic_data.len(), 1);
}

#[test]
fn a_transactional_produce_with_a_denied_transactional_id_fails_every_partition() {
    let body = produce(&["ok-a"], -1).with_transactional_id(Some(txn("no-txn")));
    let c = run(&ok_prefix(), ApiKey::Produce, 9, &body);
    assert_eq!(denials(&c), vec![(X, "no-txn".into(), Operation::Write)]);
    let resp: ProduceResponse = answered(c, ApiKey::Produce, 9);
    assert_eq!(
        produce_codes(&resp),
        vec![("ok-a".into(), TRANSACTIONAL_ID_AUTHORIZATION_FAILED)]
    );
}

// ---------------------------------------------------------------------------------------------
// Fetch

fn fetch(names: &[&str]) -> FetchRequest {
    use fetch_request::{FetchPartition, FetchTopic};
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_topics(
            names
                .iter()
                .map(|n| {
                    FetchTopic::default()
                        .with_topic(topic(n))
                        .with_partitions(vec![FetchPartition::default().with_partition(0)])
                })
                .collect(),
        )
}

fn fetch_answer(names: &[&str]) -> FetchResponse {
    use fetch_response::{FetchableTopicResponse, PartitionData};
    FetchResponse::default().with_responses(
        names
            .iter()
            .map(|n| {
                FetchableTopicResponse::default()
                    .with_topic(topic(n))
                    .with_partitions(vec![
                        PartitionData::default()
                            .with_partition_index(0)
                            .with_high_watermark(10)
                            .with_records(Some(Bytes::new())),
                    ])
            })
            .collect(),
    )
}

#[test]
fn fetch_of_allowed_topics_is_forwarded_untouched() {
    for v in [4, FETCH_MAX_WITH_ACLS] {
        assert_untouched(&run(&ok_prefix(), ApiKey::Fetch, v, &fetch(&["ok-a"])));
    }
}

#[test]
fn fetch_of_a_denied_topic_is_narrowed_and_answered_per_topic() {
    for v in [4, FETCH_MAX_WITH_ACLS] {
        let c = run(&ok_prefix(), ApiKey::Fetch, v, &fetch(&["ok-a", "no-b"]));
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Read)]);
        let (req, resp): (FetchRequest, FetchResponse) =
            split(c, ApiKey::Fetch, v, &fetch_answer(&["ok-a"]));
        assert_eq!(req.topics.len(), 1);
        assert_eq!(req.topics[0].topic, topic("ok-a"));
        let codes: Vec<(String, i16)> = resp
            .responses
            .iter()
            .map(|t| (t.topic.to_string(), t.partitions[0].error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );
    }
}

#[test]
fn an_incremental_fetch_cannot_read_a_topic_left_in_its_session() {
    let v = FETCH_MAX_WITH_ACLS;
    // Epoch 3 of session 77 names only ok-a; the session also holds no-b (set up on another
    // connection, or before a reload took the right away) and the broker answers for it.
    let request = fetch(&["ok-a"]).with_session_id(77).with_session_epoch(3);
    let c = run(&ok_prefix(), ApiKey::Fetch, v, &request);
    assert!(c.denials.is_empty());
    let Action::Forward {
        frame: None,
        patch: Some(patch),
    } = c.action
    else {
        panic!("expected a checked answer, got {:?}", c.action);
    };
    let mut answer = fetch_answer(&["ok-a", "no-b"]);
    answer.responses[1].partitions[0].records = Some(Bytes::from_static(b"secret records"));
    let out: FetchResponse = decode_answer(
        ApiKey::Fetch,
        v,
        &apply_patch(
            patch,
            ApiKey::Fetch.into(),
            v,
            encode_answer(ApiKey::Fetch, v, &answer),
        )
        .unwrap(),
    );
    let withheld = &out.responses[1].partitions[0];
    assert_eq!(withheld.error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(withheld.records.as_deref(), Some(&b""[..]));
    assert_eq!(out.responses[0].partitions[0].high_watermark, 10);

    // Nothing to withhold: the broker's bytes go on as they came.
    let c = run(&ok_prefix(), ApiKey::Fetch, v, &request);
    let Action::Forward {
        patch: Some(patch), ..
    } = c.action
    else {
        panic!("expected a checked answer");
    };
    let clean = encode_answer(ApiKey::Fetch, v, &fetch_answer(&["ok-a"]));
    assert_eq!(
        apply_patch(patch, ApiKey::Fetch.into(), v, clean.clone()).unwrap(),
        clean
    );
    // A full fetch names everything it gets: no answer check.
    assert_untouched(&run(&ok_prefix(), ApiKey::Fetch, v, &fetch(&["ok-a"])));
}

#[test]
fn fetch_with_every_topic_denied_is_answered_by_the_proxy() {
    let c = run(&ok_prefix(), ApiKey::Fetch, 12, &fetch(&["no-b"]));
    let resp: FetchResponse = answered(c, ApiKey::Fetch, 12);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(
        resp.responses[0].partitions[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
}

#[test]
fn a_replica_fetch_from_a_client_is_refused() {
    let c = run(
        &everything(),
        ApiKey::Fetch,
        12,
        &fetch(&["ok-a"]).with_replica_id(BrokerId(1)),
    );
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

// ---------------------------------------------------------------------------------------------
// ListOffsets

fn list_offsets(names: &[&str]) -> ListOffsetsRequest {
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    ListOffsetsTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ])
                })
                .collect(),
        )
}

#[test]
fn list_offsets_of_allowed_topics_is_forwarded_untouched() {
    for v in [2, 7] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::ListOffsets,
            v,
            &list_offsets(&["ok-a"]),
        ));
    }
}

#[test]
fn list_offsets_of_a_denied_topic_needs_describe_and_is_answered_per_topic() {
    use list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
    for v in [2, 7] {
        let c = run(
            &ok_prefix(),
            ApiKey::ListOffsets,
            v,
            &list_offsets(&["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Describe)]);
        let broker = ListOffsetsResponse::default().with_topics(vec![
            ListOffsetsTopicResponse::default()
                .with_name(topic("ok-a"))
                .with_partitions(vec![
                    ListOffsetsPartitionResponse::default().with_offset(42),
                ]),
        ]);
        let (req, resp): (ListOffsetsRequest, ListOffsetsResponse) =
            split(c, ApiKey::ListOffsets, v, &broker);
        assert_eq!(req.topics.len(), 1);
        assert_eq!(resp.topics.len(), 2);
        assert_eq!(resp.topics[0].partitions[0].offset, 42);
        assert_eq!(resp.topics[1].name, topic("no-b"));
        assert_eq!(
            resp.topics[1].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
        let all_denied = run(
            &ok_prefix(),
            ApiKey::ListOffsets,
            v,
            &list_offsets(&["no-b"]),
        );
        let resp: ListOffsetsResponse = answered(all_denied, ApiKey::ListOffsets, v);
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata

fn metadata(names: Option<&[&str]>) -> MetadataRequest {
    use metadata_request::MetadataRequestTopic;
    MetadataRequest::default().with_topics(names.map(|names| {
        names
            .iter()
            .map(|n| MetadataRequestTopic::default().with_name(Some(topic(n))))
            .collect()
    }))
}

fn metadata_answer(names: &[&str]) -> MetadataResponse {
    use metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(sb("proxy.example"))
                .with_port(9092),
        ])
        .with_topics(
            names
                .iter()
                .map(|n| MetadataResponseTopic::default().with_name(Some(topic(n))))
                .collect(),
        )
}

fn metadata_topics(r: &MetadataResponse) -> Vec<(String, i16)> {
    r.topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect()
}

#[test]
fn metadata_for_allowed_topics_goes_as_sent_and_the_answer_is_filtered_anyway() {
    for v in [4, 12] {
        let c = run(
            &ok_prefix(),
            ApiKey::Metadata,
            v,
            &metadata(Some(&["ok-a"])),
        );
        assert!(c.denials.is_empty());
        assert!(
            matches!(
                &c.action,
                Action::Forward {
                    frame: None,
                    patch: Some(_)
                }
            ),
            "{c:?}"
        );
        // A broker answering for more than was asked (or for an id standing for another
        // topic) cannot show the client a topic it may not describe.
        let resp = patched(c, ApiKey::Metadata, v, &metadata_answer(&["ok-a", "no-b"]));
        assert_eq!(metadata_topics(&resp), vec![("ok-a".into(), 0)]);
    }
}

#[test]
fn metadata_for_every_topic_filters_the_listing_without_a_denial() {
    for v in [4, 12] {
        let c = run(&ok_prefix(), ApiKey::Metadata, v, &metadata(None));
        assert!(c.denials.is_empty());
        let resp = patched(
            c,
            ApiKey::Metadata,
            v,
            &metadata_answer(&["ok-a", "no-b", "ok-c"]),
        );
        assert_eq!(
            metadata_topics(&resp),
            vec![("ok-a".into(), 0), ("ok-c".into(), 0)]
        );
        assert_eq!(resp.brokers.len(), 1);
    }
    // With describe on every topic the listing is not touched at all.
    assert_untouched(&run(&everything(), ApiKey::Metadata, 12, &metadata(None)));
}

#[test]
fn metadata_below_v4_is_refused_because_auto_creation_cannot_be_switched_off() {
    for v in [0, 1, 3] {
        let c = run(
            &ok_prefix(),
            ApiKey::Metadata,
            v,
            &metadata(Some(&["ok-a"])),
        );
        assert!(matches!(c.action, Action::Refuse(_)), "v{v}: {c:?}");
    }
}

#[test]
fn a_name_next_to_a_topic_id_does_not_stand_in_for_the_id() {
    // Metadata v10+: the broker answers for the id whenever one is given.
    let body = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic("ok-a")))
            .with_topic_id(uuid::Uuid::from_u128(42)),
    ]));
    let c = run(&ok_prefix(), ApiKey::Metadata, 12, &body);
    assert_eq!(c.denials.len(), 1, "{c:?}");
    assert_eq!(
        c.denials[0].resource,
        format!("id:{}", uuid::Uuid::from_u128(42))
    );
}

#[test]
fn metadata_for_a_denied_topic_reaches_the_broker_without_it() {
    for v in [4, 12] {
        let c = run(
            &ok_prefix(),
            ApiKey::Metadata,
            v,
            &metadata(Some(&["ok-a", "no-b"])),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Describe)]);
        let (req, resp): (MetadataRequest, MetadataResponse) =
            split(c, ApiKey::Metadata, v, &metadata_answer(&["ok-a"]));
        assert_eq!(req.topics.unwrap().len(), 1);
        assert_eq!(
            metadata_topics(&resp),
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );
        // Every named topic denied: the broker is still asked (for its broker list), for none.
        let c = run(
            &ok_prefix(),
            ApiKey::Metadata,
            v,
            &metadata(Some(&["no-b"])),
        );
        let (req, resp): (MetadataRequest, MetadataResponse) =
            split(c, ApiKey::Metadata, v, &metadata_answer(&[]));
        assert_eq!(req.topics.unwrap().len(), 0);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(
            metadata_topics(&resp),
            vec![("no-b".into(), TOPIC_AUTHORIZATION_FAILED)]
        );
    }
}

#[test]
fn metadata_does_not_auto_create_a_topic_the_connection_may_not_create() {
    let p = perms(&[allow(&[Operation::Describe], T, Pattern::Any)]);
    let body = metadata(Some(&["new"])).with_allow_auto_topic_creation(true);
    let c = run(&p, ApiKey::Metadata, 12, &body);
    let Action::Forward {
        frame: Some(narrowed),
        ..
    } = c.action
    else {
        panic!("{c:?}");
    };
    let header = parse_request_header(&narrowed).unwrap();
    let req: MetadataRequest = decode_request_body(&narrowed, header.header_len, 12).unwrap();
    assert!(!req.allow_auto_topic_creation);
}

// ---------------------------------------------------------------------------------------------
// CreateTopics, DeleteTopics

fn create_topics(names: &[&str]) -> CreateTopicsRequest {
    use create_topics_request::CreatableTopic;
    CreateTopicsRequest::default().with_topics(
        names
            .iter()
            .map(|n| {
                CreatableTopic::default()
                    .with_name(topic(n))
                    .with_num_partitions(1)
                    .with_replication_factor(1)
            })
            .collect(),
    )
}

#[test]
fn create_topics_needs_create_on_the_cluster_or_the_topic() {
    use create_topics_response::CreatableTopicResult;
    for v in [3, 5] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::CreateTopics,
            v,
            &create_topics(&["ok-a"]),
        ));
        let cluster = perms(&[allow(&[Operation::Create], Cluster, Pattern::Any)]);
        assert_untouched(&run(
            &cluster,
            ApiKey::CreateTopics,
            v,
            &create_topics(&["no-b"]),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::CreateTopics,
            v,
            &create_topics(&["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Create)]);
        let broker = CreateTopicsResponse::default().with_topics(vec![
            CreatableTopicResult::default().with_name(topic("ok-a")),
        ]);
        let (req, resp): (CreateTopicsRequest, CreateTopicsResponse) =
            split(c, ApiKey::CreateTopics, v, &broker);
        assert_eq!(req.topics.len(), 1);
        let codes: Vec<_> = resp
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );

        let c = run(
            &nothing(),
            ApiKey::CreateTopics,
            v,
            &create_topics(&["no-b"]),
        );
        let resp: CreateTopicsResponse = answered(c, ApiKey::CreateTopics, v);
        assert_eq!(resp.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    }
}

#[test]
fn delete_topics_by_name_is_narrowed_per_topic() {
    use delete_topics_response::DeletableTopicResult;
    for v in [3, 5] {
        let body =
            DeleteTopicsRequest::default().with_topic_names(vec![topic("ok-a"), topic("no-b")]);
        let c = run(&ok_prefix(), ApiKey::DeleteTopics, v, &body);
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Delete)]);
        let broker = DeleteTopicsResponse::default().with_responses(vec![
            DeletableTopicResult::default().with_name(Some(topic("ok-a"))),
        ]);
        let (req, resp): (DeleteTopicsRequest, DeleteTopicsResponse) =
            split(c, ApiKey::DeleteTopics, v, &broker);
        assert_eq!(req.topic_names, vec![topic("ok-a")]);
        assert_eq!(resp.responses.len(), 2);
        assert_eq!(resp.responses[1].error_code, TOPIC_AUTHORIZATION_FAILED);
        let only_denied = DeleteTopicsRequest::default().with_topic_names(vec![topic("no-b")]);
        let resp: DeleteTopicsResponse = answered(
            run(&ok_prefix(), ApiKey::DeleteTopics, v, &only_denied),
            ApiKey::DeleteTopics,
            v,
        );
        assert_eq!(resp.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    }
}

#[test]
fn delete_topics_v6_by_name_or_id_denies_an_id_without_a_wildcard() {
    use delete_topics_request::DeleteTopicState;
    let id = uuid::Uuid::from_u128(7);
    let body = DeleteTopicsRequest::default().with_topics(vec![
        DeleteTopicState::default().with_name(Some(topic("ok-a"))),
        DeleteTopicState::default().with_topic_id(id),
    ]);
    let c = run(&ok_prefix(), ApiKey::DeleteTopics, 6, &body);
    assert_eq!(
        denials(&c),
        vec![(T, format!("id:{id}"), Operation::Delete)]
    );
    let (req, resp): (DeleteTopicsRequest, DeleteTopicsResponse) =
        split(c, ApiKey::DeleteTopics, 6, &DeleteTopicsResponse::default());
    assert_eq!(req.topics.len(), 1);
    assert_eq!(resp.responses[0].topic_id, id);
    assert_eq!(resp.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_untouched(&run(&everything(), ApiKey::DeleteTopics, 6, &body));
}

// ---------------------------------------------------------------------------------------------
// OffsetCommit, OffsetFetch

fn offset_commit(g: &str, names: &[&str]) -> OffsetCommitRequest {
    use offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    OffsetCommitRequest::default()
        .with_group_id(group(g))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(5),
                        ])
                })
                .collect(),
        )
}

fn commit_codes(r: &OffsetCommitResponse) -> Vec<(String, i16)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.error_code))
        })
        .collect()
}

#[test]
fn offset_commit_needs_read_on_the_group_and_each_topic() {
    use offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
    for v in [2, 8] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::OffsetCommit,
            v,
            &offset_commit("ok-g", &["ok-a"]),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::OffsetCommit,
            v,
            &offset_commit("ok-g", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Read)]);
        let broker = OffsetCommitResponse::default().with_topics(vec![
            OffsetCommitResponseTopic::default()
                .with_name(topic("ok-a"))
                .with_partitions(vec![OffsetCommitResponsePartition::default()]),
        ]);
        let (req, resp): (OffsetCommitRequest, OffsetCommitResponse) =
            split(c, ApiKey::OffsetCommit, v, &broker);
        assert_eq!(req.topics.len(), 1);
        assert_eq!(
            commit_codes(&resp),
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::OffsetCommit,
            v,
            &offset_commit("no-g", &["ok-a"]),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Read)]);
        let resp: OffsetCommitResponse = answered(c, ApiKey::OffsetCommit, v);
        assert_eq!(
            commit_codes(&resp),
            vec![("ok-a".into(), GROUP_AUTHORIZATION_FAILED)]
        );
    }
}

fn offset_fetch_v7(g: &str, names: Option<&[&str]>) -> OffsetFetchRequest {
    use offset_fetch_request::OffsetFetchRequestTopic;
    OffsetFetchRequest::default()
        .with_group_id(group(g))
        .with_topics(names.map(|names| {
            names
                .iter()
                .map(|n| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic(n))
                        .with_partition_indexes(vec![0])
                })
                .collect()
        }))
}

#[test]
fn offset_fetch_v7_narrows_topics_and_refuses_a_denied_group_with_a_top_level_error() {
    use offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic};
    for v in [5, 7] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::OffsetFetch,
            v,
            &offset_fetch_v7("ok-g", Some(&["ok-a"])),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::OffsetFetch,
            v,
            &offset_fetch_v7("ok-g", Some(&["ok-a", "no-b"])),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Describe)]);
        let broker = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default()
                .with_name(topic("ok-a"))
                .with_partitions(vec![
                    OffsetFetchResponsePartition::default().with_committed_offset(3),
                ]),
        ]);
        let (req, resp): (OffsetFetchRequest, OffsetFetchResponse) =
            split(c, ApiKey::OffsetFetch, v, &broker);
        assert_eq!(req.topics.unwrap().len(), 1);
        assert_eq!(resp.topics.len(), 2);
        assert_eq!(
            resp.topics[1].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );

        // Every topic of the group: the listing is filtered.
        let c = run(
            &ok_prefix(),
            ApiKey::OffsetFetch,
            v,
            &offset_fetch_v7("ok-g", None),
        );
        let listing = OffsetFetchResponse::default().with_topics(vec![
            OffsetFetchResponseTopic::default().with_name(topic("ok-a")),
            OffsetFetchResponseTopic::default().with_name(topic("no-b")),
        ]);
        let resp = patched(c, ApiKey::OffsetFetch, v, &listing);
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(resp.topics[0].name, topic("ok-a"));

        let c = run(
            &ok_prefix(),
            ApiKey::OffsetFetch,
            v,
            &offset_fetch_v7("no-g", Some(&["ok-a"])),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Describe)]);
        let resp: OffsetFetchResponse = answered(c, ApiKey::OffsetFetch, v);
        assert_eq!(resp.error_code, GROUP_AUTHORIZATION_FAILED);
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            GROUP_AUTHORIZATION_FAILED
        );
    }
}

#[test]
fn offset_fetch_v8_answers_denied_groups_and_topics_per_group() {
    use offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
    use offset_fetch_response::{OffsetFetchResponseGroup, OffsetFetchResponseTopics};
    let group_req = |g: &str, names: &[&str]| {
        OffsetFetchRequestGroup::default()
            .with_group_id(group(g))
            .with_topics(Some(
                names
                    .iter()
                    .map(|n| {
                        OffsetFetchRequestTopics::default()
                            .with_name(topic(n))
                            .with_partition_indexes(vec![0])
                    })
                    .collect(),
            ))
    };
    for v in [8, 9] {
        let all_ok = OffsetFetchRequest::default().with_groups(vec![group_req("ok-g", &["ok-a"])]);
        assert_untouched(&run(&ok_prefix(), ApiKey::OffsetFetch, v, &all_ok));

        let body = OffsetFetchRequest::default().with_groups(vec![
            group_req("ok-g", &["ok-a", "no-b"]),
            group_req("no-g", &["ok-a"]),
        ]);
        let c = run(&ok_prefix(), ApiKey::OffsetFetch, v, &body);
        assert_eq!(
            denials(&c),
            vec![
                (T, "no-b".into(), Operation::Describe),
                (G, "no-g".into(), Operation::Describe)
            ]
        );
        let broker = OffsetFetchResponse::default().with_groups(vec![
            OffsetFetchResponseGroup::default()
                .with_group_id(group("ok-g"))
                .with_topics(vec![
                    OffsetFetchResponseTopics::default().with_name(topic("ok-a")),
                ]),
        ]);
        let (req, resp): (OffsetFetchRequest, OffsetFetchResponse) =
            split(c, ApiKey::OffsetFetch, v, &broker);
        assert_eq!(req.groups.len(), 1);
        assert_eq!(req.groups[0].topics.as_ref().unwrap().len(), 1);
        assert_eq!(resp.groups.len(), 2);
        assert_eq!(resp.groups[0].topics.len(), 2);
        assert_eq!(
            resp.groups[0].topics[1].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
        assert_eq!(resp.groups[1].group_id, group("no-g"));
        assert_eq!(resp.groups[1].error_code, GROUP_AUTHORIZATION_FAILED);

        let only_denied = OffsetFetchRequest::default().with_groups(vec![group_req("no-g", &[])]);
        let resp: OffsetFetchResponse = answered(
            run(&ok_prefix(), ApiKey::OffsetFetch, v, &only_denied),
            ApiKey::OffsetFetch,
            v,
        );
        assert_eq!(resp.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    }
}

// ---------------------------------------------------------------------------------------------
// FindCoordinator, group membership, InitProducerId

#[test]
fn find_coordinator_v3_needs_describe_on_the_key() {
    let body = |k: &str, t: i8| {
        FindCoordinatorRequest::default()
            .with_key(sb(k))
            .with_key_type(t)
    };
    assert_untouched(&run(
        &ok_prefix(),
        ApiKey::FindCoordinator,
        3,
        &body("ok-g", 0),
    ));
    let c = run(&ok_prefix(), ApiKey::FindCoordinator, 3, &body("no-g", 0));
    assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Describe)]);
    let resp: FindCoordinatorResponse = answered(c, ApiKey::FindCoordinator, 3);
    assert_eq!(resp.error_code, GROUP_AUTHORIZATION_FAILED);
    let c = run(&ok_prefix(), ApiKey::FindCoordinator, 3, &body("no-t", 1));
    assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Describe)]);
    let resp: FindCoordinatorResponse = answered(c, ApiKey::FindCoordinator, 3);
    assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let c = run(&everything(), ApiKey::FindCoordinator, 3, &body("x", 2));
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

#[test]
fn find_coordinator_v4_narrows_the_batch_of_keys() {
    use find_coordinator_response::Coordinator;
    let body = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![sb("ok-g"), sb("no-g")]);
    let c = run(&ok_prefix(), ApiKey::FindCoordinator, 4, &body);
    assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Describe)]);
    let broker = FindCoordinatorResponse::default().with_coordinators(vec![
        Coordinator::default()
            .with_key(sb("ok-g"))
            .with_node_id(BrokerId(1))
            .with_host(sb("h"))
            .with_port(1),
    ]);
    let (req, resp): (FindCoordinatorRequest, FindCoordinatorResponse) =
        split(c, ApiKey::FindCoordinator, 4, &broker);
    assert_eq!(req.coordinator_keys, vec![sb("ok-g")]);
    let codes: Vec<_> = resp
        .coordinators
        .iter()
        .map(|c| (c.key.to_string(), c.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("ok-g".into(), 0),
            ("no-g".into(), GROUP_AUTHORIZATION_FAILED)
        ]
    );
    let only_denied = body.with_coordinator_keys(vec![sb("no-g")]);
    let resp: FindCoordinatorResponse = answered(
        run(&ok_prefix(), ApiKey::FindCoordinator, 4, &only_denied),
        ApiKey::FindCoordinator,
        4,
    );
    assert_eq!(resp.coordinators[0].error_code, GROUP_AUTHORIZATION_FAILED);
}

#[test]
fn group_membership_calls_need_read_on_the_group() {
    fn check<Req: Encodable, Resp: Decodable>(
        key: ApiKey,
        versions: [i16; 2],
        body: impl Fn(&str) -> Req,
        code: impl Fn(&Resp) -> i16,
    ) {
        for v in versions {
            assert_untouched(&run(&ok_prefix(), key, v, &body("ok-g")));
            let c = run(&ok_prefix(), key, v, &body("no-g"));
            assert_eq!(
                denials(&c),
                vec![(G, "no-g".into(), Operation::Read)],
                "{key:?}"
            );
            let resp: Resp = answered(c, key, v);
            assert_eq!(code(&resp), GROUP_AUTHORIZATION_FAILED, "{key:?} v{v}");
        }
    }
    check(
        ApiKey::JoinGroup,
        [5, 9],
        |g| {
            JoinGroupRequest::default()
                .with_group_id(group(g))
                .with_protocol_type(sb("consumer"))
        },
        |r: &JoinGroupResponse| r.error_code,
    );
    check(
        ApiKey::SyncGroup,
        [3, 5],
        |g| SyncGroupRequest::default().with_group_id(group(g)),
        |r: &SyncGroupResponse| r.error_code,
    );
    check(
        ApiKey::Heartbeat,
        [3, 4],
        |g| HeartbeatRequest::default().with_group_id(group(g)),
        |r: &HeartbeatResponse| r.error_code,
    );
    check(
        ApiKey::LeaveGroup,
        [3, 5],
        |g| LeaveGroupRequest::default().with_group_id(group(g)),
        |r: &LeaveGroupResponse| r.error_code,
    );
}

#[test]
fn init_producer_id_needs_write_on_the_transactional_id_or_idempotent_write() {
    for v in [1, 4] {
        let with_txn =
            |t: &str| InitProducerIdRequest::default().with_transactional_id(Some(txn(t)));
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::InitProducerId,
            v,
            &with_txn("ok-t"),
        ));
        let c = run(&ok_prefix(), ApiKey::InitProducerId, v, &with_txn("no-t"));
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: InitProducerIdResponse = answered(c, ApiKey::InitProducerId, v);
        assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        assert_eq!(resp.producer_id, ProducerId(-1));

        let idempotent = InitProducerIdRequest::default().with_transactional_id(None);
        // Write on some topic is enough (KIP-679).
        assert_untouched(&run(&ok_prefix(), ApiKey::InitProducerId, v, &idempotent));
        let c = run(&nothing(), ApiKey::InitProducerId, v, &idempotent);
        assert_eq!(
            denials(&c),
            vec![(Cluster, "kafka-cluster".into(), Operation::IdempotentWrite)]
        );
        let resp: InitProducerIdResponse = answered(c, ApiKey::InitProducerId, v);
        assert_eq!(resp.error_code, CLUSTER_AUTHORIZATION_FAILED);
    }
}

// ---------------------------------------------------------------------------------------------
// ApiVersions, DescribeCluster, refused APIs

#[test]
fn api_versions_is_narrowed_to_the_authorized_apis() {
    let c = run(
        &nothing(),
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert!(c.denials.is_empty());
    let broker = api_versions_response(
        3,
        CORRELATION_ID,
        0,
        &[(0, 3, 12), (1, 4, 17), (29, 0, 3), (24, 0, 5)],
    )
    .unwrap();
    // ApiVersions answers always use header v0: encode and decode by hand.
    let Action::Forward {
        frame: None,
        patch: Some(patch),
    } = c.action
    else {
        panic!("{c:?}");
    };
    let out = apply_patch(patch, ApiKey::ApiVersions.into(), 3, broker).unwrap();
    let (_, resp) = decode_response::<ApiVersionsResponse>(&out, 0, 3).unwrap();
    let got: Vec<_> = resp
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.max_version))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 12),
            (1, FETCH_MAX_WITH_ACLS),
            (24, ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION)
        ]
    );
}

#[test]
fn describe_cluster_is_forwarded_untouched() {
    assert_untouched(&run(
        &nothing(),
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    ));
}

#[test]
fn an_api_without_an_authorizer_is_refused() {
    let c = run(
        &everything(),
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default(),
    );
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    let header = crate::kafka::RequestHeader {
        api_key: crate::kafka::ApiKey(999),
        api_version: 0,
        correlation_id: 1,
        client_id: None,
        header_len: 8,
    };
    let c = check_request(&everything(), &header, &Bytes::from_static(&[0; 8])).unwrap();
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

// ---------------------------------------------------------------------------------------------
// DescribeGroups, ListGroups, DeleteGroups, OffsetDelete

#[test]
fn describe_groups_answers_denied_groups_with_group_authorization_failed() {
    use describe_groups_response::DescribedGroup;
    for v in [2, 5] {
        let body = |gs: &[&str]| {
            DescribeGroupsRequest::default().with_groups(gs.iter().map(|g| group(g)).collect())
        };
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::DescribeGroups,
            v,
            &body(&["ok-g"]),
        ));
        let c = run(
            &ok_prefix(),
            ApiKey::DescribeGroups,
            v,
            &body(&["ok-g", "no-g"]),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Describe)]);
        let broker = DescribeGroupsResponse::default().with_groups(vec![
            DescribedGroup::default()
                .with_group_id(group("ok-g"))
                .with_group_state(sb("Stable")),
        ]);
        let (req, resp): (DescribeGroupsRequest, DescribeGroupsResponse) =
            split(c, ApiKey::DescribeGroups, v, &broker);
        assert_eq!(req.groups, vec![group("ok-g")]);
        let got: Vec<_> = resp
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.error_code,
                    g.group_state.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok-g".into(), 0, "Stable".into()),
                ("no-g".into(), GROUP_AUTHORIZATION_FAILED, String::new())
            ]
        );
        let resp: DescribeGroupsResponse = answered(
            run(&ok_prefix(), ApiKey::DescribeGroups, v, &body(&["no-g"])),
            ApiKey::DescribeGroups,
            v,
        );
        assert_eq!(resp.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    }
}

#[test]
fn list_groups_is_filtered_to_describable_groups_unless_the_cluster_may_be_described() {
    use list_groups_response::ListedGroup;
    let listing = ListGroupsResponse::default().with_groups(vec![
        ListedGroup::default()
            .with_group_id(group("ok-g"))
            .with_protocol_type(sb("consumer")),
        ListedGroup::default()
            .with_group_id(group("no-g"))
            .with_protocol_type(sb("consumer")),
    ]);
    for v in [2, 4] {
        let cluster = perms(&[allow(&[Operation::Describe], Cluster, Pattern::Any)]);
        assert_untouched(&run(
            &cluster,
            ApiKey::ListGroups,
            v,
            &ListGroupsRequest::default(),
        ));
        let c = run(
            &ok_prefix(),
            ApiKey::ListGroups,
            v,
            &ListGroupsRequest::default(),
        );
        assert!(c.denials.is_empty(), "filtering a listing is not a denial");
        let resp = patched(c, ApiKey::ListGroups, v, &listing);
        let got: Vec<_> = resp.groups.iter().map(|g| g.group_id.to_string()).collect();
        assert_eq!(got, vec!["ok-g".to_string()]);
    }
}

#[test]
fn delete_groups_answers_denied_groups_with_group_authorization_failed() {
    use delete_groups_response::DeletableGroupResult;
    for v in [1, 2] {
        let body = |gs: &[&str]| {
            DeleteGroupsRequest::default().with_groups_names(gs.iter().map(|g| group(g)).collect())
        };
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::DeleteGroups,
            v,
            &body(&["ok-g"]),
        ));
        let c = run(
            &ok_prefix(),
            ApiKey::DeleteGroups,
            v,
            &body(&["ok-g", "no-g"]),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Delete)]);
        let broker = DeleteGroupsResponse::default().with_results(vec![
            DeletableGroupResult::default().with_group_id(group("ok-g")),
        ]);
        let (req, resp): (DeleteGroupsRequest, DeleteGroupsResponse) =
            split(c, ApiKey::DeleteGroups, v, &broker);
        assert_eq!(req.groups_names, vec![group("ok-g")]);
        let got: Vec<_> = resp
            .results
            .iter()
            .map(|r| (r.group_id.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok-g".into(), 0),
                ("no-g".into(), GROUP_AUTHORIZATION_FAILED)
            ]
        );
        let resp: DeleteGroupsResponse = answered(
            run(&ok_prefix(), ApiKey::DeleteGroups, v, &body(&["no-g"])),
            ApiKey::DeleteGroups,
            v,
        );
        assert_eq!(resp.results[0].error_code, GROUP_AUTHORIZATION_FAILED);
    }
}

fn offset_delete(g: &str, names: &[&str]) -> OffsetDeleteRequest {
    use offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    OffsetDeleteRequest::default()
        .with_group_id(group(g))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(3),
                        ])
                })
                .collect(),
        )
}

#[test]
fn offset_delete_needs_delete_on_the_group_and_read_on_each_topic() {
    use offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
    let v = 0;
    assert_untouched(&run(
        &ok_prefix(),
        ApiKey::OffsetDelete,
        v,
        &offset_delete("ok-g", &["ok-a"]),
    ));

    let c = run(
        &ok_prefix(),
        ApiKey::OffsetDelete,
        v,
        &offset_delete("ok-g", &["ok-a", "no-b"]),
    );
    assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Read)]);
    let broker = OffsetDeleteResponse::default().with_topics(vec![
        OffsetDeleteResponseTopic::default()
            .with_name(topic("ok-a"))
            .with_partitions(vec![
                OffsetDeleteResponsePartition::default().with_partition_index(3),
            ]),
    ]);
    let (req, resp): (OffsetDeleteRequest, OffsetDeleteResponse) =
        split(c, ApiKey::OffsetDelete, v, &broker);
    assert_eq!(req.topics.len(), 1);
    let got: Vec<_> = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.partitions[0].partition_index,
                t.partitions[0].error_code,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("ok-a".into(), 3, 0),
            ("no-b".into(), 3, TOPIC_AUTHORIZATION_FAILED)
        ]
    );

    // Every topic denied: the group coordinator is still asked (with no topics), as by Kafka,
    // so a group-level error reaches the client next to the denied topics.
    let c = run(
        &ok_prefix(),
        ApiKey::OffsetDelete,
        v,
        &offset_delete("ok-g", &["no-b"]),
    );
    let broker = OffsetDeleteResponse::default().with_error_code(69);
    let (req, resp): (OffsetDeleteRequest, OffsetDeleteResponse) =
        split(c, ApiKey::OffsetDelete, v, &broker);
    assert!(req.topics.is_empty());
    assert_eq!(resp.error_code, 69);
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );

    let c = run(
        &ok_prefix(),
        ApiKey::OffsetDelete,
        v,
        &offset_delete("no-g", &["ok-a"]),
    );
    assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Delete)]);
    let resp: OffsetDeleteResponse = answered(c, ApiKey::OffsetDelete, v);
    assert_eq!(resp.error_code, GROUP_AUTHORIZATION_FAILED);
    assert!(resp.topics.is_empty());
}

// ---------------------------------------------------------------------------------------------
// DeleteRecords, CreatePartitions, OffsetForLeaderEpoch

#[test]
fn delete_records_needs_delete_on_each_topic() {
    use delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    use delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
    let body = |names: &[&str]| {
        DeleteRecordsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(
                names
                    .iter()
                    .map(|n| {
                        DeleteRecordsTopic::default()
                            .with_name(topic(n))
                            .with_partitions(vec![
                                DeleteRecordsPartition::default()
                                    .with_partition_index(1)
                                    .with_offset(10),
                            ])
                    })
                    .collect(),
            )
    };
    for v in [1, 2] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::DeleteRecords,
            v,
            &body(&["ok-a"]),
        ));
        let c = run(
            &ok_prefix(),
            ApiKey::DeleteRecords,
            v,
            &body(&["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Delete)]);
        let broker = DeleteRecordsResponse::default().with_topics(vec![
            DeleteRecordsTopicResult::default()
                .with_name(topic("ok-a"))
                .with_partitions(vec![
                    DeleteRecordsPartitionResult::default()
                        .with_partition_index(1)
                        .with_low_watermark(10),
                ]),
        ]);
        let (req, resp): (DeleteRecordsRequest, DeleteRecordsResponse) =
            split(c, ApiKey::DeleteRecords, v, &broker);
        assert_eq!(req.topics.len(), 1);
        let got: Vec<_> = resp
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.partitions[0].low_watermark,
                    t.partitions[0].error_code,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok-a".into(), 10, 0),
                ("no-b".into(), -1, TOPIC_AUTHORIZATION_FAILED)
            ]
        );
        let resp: DeleteRecordsResponse = answered(
            run(&ok_prefix(), ApiKey::DeleteRecords, v, &body(&["no-b"])),
            ApiKey::DeleteRecords,
            v,
        );
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
    }
}

#[test]
fn create_partitions_needs_alter_on_each_topic() {
    use create_partitions_request::CreatePartitionsTopic;
    use create_partitions_response::CreatePartitionsTopicResult;
    let body = |names: &[&str]| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(
                names
                    .iter()
                    .map(|n| {
                        CreatePartitionsTopic::default()
                            .with_name(topic(n))
                            .with_count(4)
                    })
                    .collect(),
            )
    };
    // Describe and write on every topic, alter only on `ok-…`.
    let p = perms(&[
        allow(&[Operation::Write], T, Pattern::Any),
        allow(&[Operation::Alter], T, prefix("ok-")),
    ]);
    for v in [1, 2] {
        assert_untouched(&run(&p, ApiKey::CreatePartitions, v, &body(&["ok-a"])));
        let c = run(&p, ApiKey::CreatePartitions, v, &body(&["ok-a", "no-b"]));
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Alter)]);
        let broker = CreatePartitionsResponse::default().with_results(vec![
            CreatePartitionsTopicResult::default().with_name(topic("ok-a")),
        ]);
        let (req, resp): (CreatePartitionsRequest, CreatePartitionsResponse) =
            split(c, ApiKey::CreatePartitions, v, &broker);
        assert_eq!(req.topics.len(), 1);
        let got: Vec<_> = resp
            .results
            .iter()
            .map(|r| (r.name.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );
        let resp: CreatePartitionsResponse = answered(
            run(&p, ApiKey::CreatePartitions, v, &body(&["no-b"])),
            ApiKey::CreatePartitions,
            v,
        );
        assert_eq!(resp.results[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    }
}

fn offset_for_leader_epoch(replica: i32, names: &[&str]) -> OffsetForLeaderEpochRequest {
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic(n))
                        .with_partitions(vec![
                            OffsetForLeaderPartition::default()
                                .with_partition(2)
                                .with_leader_epoch(5)
                                .with_current_leader_epoch(5),
                        ])
                })
                .collect(),
        )
}

#[test]
fn offset_for_leader_epoch_needs_describe_on_each_topic_from_consumers() {
    use offset_for_leader_epoch_response::{EpochEndOffset, OffsetForLeaderTopicResult};
    let p = perms(&[allow(&[Operation::Describe], T, prefix("ok-"))]);
    for v in [3, 4] {
        for replica in [-1, -2] {
            assert_untouched(&run(
                &p,
                ApiKey::OffsetForLeaderEpoch,
                v,
                &offset_for_leader_epoch(replica, &["ok-a"]),
            ));
        }
        let c = run(
            &p,
            ApiKey::OffsetForLeaderEpoch,
            v,
            &offset_for_leader_epoch(-1, &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Describe)]);
        let broker = OffsetForLeaderEpochResponse::default().with_topics(vec![
            OffsetForLeaderTopicResult::default()
                .with_topic(topic("ok-a"))
                .with_partitions(vec![
                    EpochEndOffset::default()
                        .with_partition(2)
                        .with_leader_epoch(5)
                        .with_end_offset(99),
                ]),
        ]);
        let (req, resp): (OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse) =
            split(c, ApiKey::OffsetForLeaderEpoch, v, &broker);
        assert_eq!(req.topics.len(), 1);
        let got: Vec<_> = resp
            .topics
            .iter()
            .map(|t| {
                let p = &t.partitions[0];
                (
                    t.topic.to_string(),
                    p.partition,
                    p.error_code,
                    p.leader_epoch,
                    p.end_offset,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok-a".into(), 2, 0, 5, 99),
                ("no-b".into(), 2, TOPIC_AUTHORIZATION_FAILED, -1, -1)
            ]
        );
        let resp: OffsetForLeaderEpochResponse = answered(
            run(
                &p,
                ApiKey::OffsetForLeaderEpoch,
                v,
                &offset_for_leader_epoch(-1, &["no-b"]),
            ),
            ApiKey::OffsetForLeaderEpoch,
            v,
        );
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            TOPIC_AUTHORIZATION_FAILED
        );
    }
}

#[test]
fn offset_for_leader_epoch_from_a_replica_is_refused() {
    let c = run(
        &everything(),
        ApiKey::OffsetForLeaderEpoch,
        4,
        &offset_for_leader_epoch(3, &["ok-a"]),
    );
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

// ---------------------------------------------------------------------------------------------
// DescribeConfigs, AlterConfigs, IncrementalAlterConfigs

const CONFIG_TOPIC: i8 = 2;
const CONFIG_BROKER: i8 = 4;
const CONFIG_BROKER_LOGGER: i8 = 8;
const CONFIG_GROUP: i8 = 32;

/// describe_configs/alter_configs on `ok-…` topics and groups, not on the cluster.
fn config_perms() -> Arc<Permissions> {
    perms(&[
        allow(&[Operation::AlterConfigs], T, prefix("ok-")),
        allow(&[Operation::AlterConfigs], G, prefix("ok-")),
    ])
}

#[test]
fn describe_configs_checks_topics_groups_and_brokers_with_their_own_errors() {
    use describe_configs_request::DescribeConfigsResource;
    use describe_configs_response::DescribeConfigsResult;
    let body = |rs: &[(i8, &str)]| {
        DescribeConfigsRequest::default().with_resources(
            rs.iter()
                .map(|&(t, n)| {
                    DescribeConfigsResource::default()
                        .with_resource_type(t)
                        .with_resource_name(sb(n))
                        .with_configuration_keys(None)
                })
                .collect(),
        )
    };
    for v in [2, 4] {
        assert_untouched(&run(
            &config_perms(),
            ApiKey::DescribeConfigs,
            v,
            &body(&[(CONFIG_TOPIC, "ok-a"), (CONFIG_GROUP, "ok-g")]),
        ));
        let cluster = perms(&[allow(&[Operation::DescribeConfigs], Cluster, Pattern::Any)]);
        assert_untouched(&run(
            &cluster,
            ApiKey::DescribeConfigs,
            v,
            &body(&[(CONFIG_BROKER, "1"), (CONFIG_BROKER_LOGGER, "1")]),
        ));

        let c = run(
            &config_perms(),
            ApiKey::DescribeConfigs,
            v,
            &body(&[
                (CONFIG_TOPIC, "ok-a"),
                (CONFIG_TOPIC, "no-b"),
                (CONFIG_BROKER, "1"),
                (CONFIG_BROKER_LOGGER, "1"),
                (CONFIG_GROUP, "no-g"),
            ]),
        );
        assert_eq!(
            denials(&c),
            vec![
                (T, "no-b".into(), Operation::DescribeConfigs),
                (Cluster, "kafka-cluster".into(), Operation::DescribeConfigs),
                (G, "no-g".into(), Operation::DescribeConfigs),
            ]
        );
        let broker = DescribeConfigsResponse::default().with_results(vec![
            DescribeConfigsResult::default()
                .with_resource_type(CONFIG_TOPIC)
                .with_resource_name(sb("ok-a")),
        ]);
        let (req, resp): (DescribeConfigsRequest, DescribeConfigsResponse) =
            split(c, ApiKey::DescribeConfigs, v, &broker);
        assert_eq!(req.resources.len(), 1);
        let got: Vec<_> = resp
            .results
            .iter()
            .map(|r| (r.resource_type, r.resource_name.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                (CONFIG_TOPIC, "ok-a".into(), 0),
                (CONFIG_TOPIC, "no-b".into(), TOPIC_AUTHORIZATION_FAILED),
                (CONFIG_BROKER, "1".into(), CLUSTER_AUTHORIZATION_FAILED),
                (
                    CONFIG_BROKER_LOGGER,
                    "1".into(),
                    CLUSTER_AUTHORIZATION_FAILED
                ),
                (CONFIG_GROUP, "no-g".into(), GROUP_AUTHORIZATION_FAILED),
            ]
        );
        assert_eq!(
            resp.results[1].error_message.as_deref(),
            Some("Topic authorization failed.")
        );

        let resp: DescribeConfigsResponse = answered(
            run(
                &config_perms(),
                ApiKey::DescribeConfigs,
                v,
                &body(&[(CONFIG_BROKER, "1")]),
            ),
            ApiKey::DescribeConfigs,
            v,
        );
        assert_eq!(resp.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
        assert_eq!(
            resp.results[0].error_message.as_deref(),
            Some("Cluster authorization failed.")
        );

        let c = run(
            &everything(),
            ApiKey::DescribeConfigs,
            v,
            &body(&[(99, "x")]),
        );
        assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    }
}

#[test]
fn alter_configs_needs_alter_configs_per_resource() {
    use alter_configs_request::AlterConfigsResource;
    use alter_configs_response::AlterConfigsResourceResponse;
    let body = |rs: &[(i8, &str)]| {
        AlterConfigsRequest::default().with_resources(
            rs.iter()
                .map(|&(t, n)| {
                    AlterConfigsResource::default()
                        .with_resource_type(t)
                        .with_resource_name(sb(n))
                })
                .collect(),
        )
    };
    for v in [1, 2] {
        assert_untouched(&run(
            &config_perms(),
            ApiKey::AlterConfigs,
            v,
            &body(&[(CONFIG_TOPIC, "ok-a")]),
        ));
        let c = run(
            &config_perms(),
            ApiKey::AlterConfigs,
            v,
            &body(&[
                (CONFIG_TOPIC, "ok-a"),
                (CONFIG_TOPIC, "no-b"),
                (CONFIG_BROKER, "1"),
            ]),
        );
        assert_eq!(
            denials(&c),
            vec![
                (T, "no-b".into(), Operation::AlterConfigs),
                (Cluster, "kafka-cluster".into(), Operation::AlterConfigs)
            ]
        );
        let broker = AlterConfigsResponse::default().with_responses(vec![
            AlterConfigsResourceResponse::default()
                .with_resource_type(CONFIG_TOPIC)
                .with_resource_name(sb("ok-a")),
        ]);
        let (req, resp): (AlterConfigsRequest, AlterConfigsResponse) =
            split(c, ApiKey::AlterConfigs, v, &broker);
        assert_eq!(req.resources.len(), 1);
        let got: Vec<_> = resp
            .responses
            .iter()
            .map(|r| (r.resource_name.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED),
                ("1".into(), CLUSTER_AUTHORIZATION_FAILED)
            ]
        );
        let resp: AlterConfigsResponse = answered(
            run(
                &config_perms(),
                ApiKey::AlterConfigs,
                v,
                &body(&[(CONFIG_TOPIC, "no-b")]),
            ),
            ApiKey::AlterConfigs,
            v,
        );
        assert_eq!(resp.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    }
}

#[test]
fn incremental_alter_configs_needs_alter_configs_per_resource() {
    use incremental_alter_configs_request::AlterConfigsResource;
    use incremental_alter_configs_response::AlterConfigsResourceResponse;
    let body = |rs: &[(i8, &str)]| {
        IncrementalAlterConfigsRequest::default().with_resources(
            rs.iter()
                .map(|&(t, n)| {
                    AlterConfigsResource::default()
                        .with_resource_type(t)
                        .with_resource_name(sb(n))
                })
                .collect(),
        )
    };
    for v in [0, 1] {
        assert_untouched(&run(
            &config_perms(),
            ApiKey::IncrementalAlterConfigs,
            v,
            &body(&[(CONFIG_GROUP, "ok-g")]),
        ));
        let c = run(
            &config_perms(),
            ApiKey::IncrementalAlterConfigs,
            v,
            &body(&[(CONFIG_GROUP, "ok-g"), (CONFIG_BROKER_LOGGER, "1")]),
        );
        assert_eq!(
            denials(&c),
            vec![(Cluster, "kafka-cluster".into(), Operation::AlterConfigs)]
        );
        let broker = IncrementalAlterConfigsResponse::default().with_responses(vec![
            AlterConfigsResourceResponse::default()
                .with_resource_type(CONFIG_GROUP)
                .with_resource_name(sb("ok-g")),
        ]);
        let (req, resp): (
            IncrementalAlterConfigsRequest,
            IncrementalAlterConfigsResponse,
        ) = split(c, ApiKey::IncrementalAlterConfigs, v, &broker);
        assert_eq!(req.resources.len(), 1);
        let got: Vec<_> = resp
            .responses
            .iter()
            .map(|r| (r.resource_type, r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                (CONFIG_GROUP, 0),
                (CONFIG_BROKER_LOGGER, CLUSTER_AUTHORIZATION_FAILED)
            ]
        );
        let resp: IncrementalAlterConfigsResponse = answered(
            run(
                &config_perms(),
                ApiKey::IncrementalAlterConfigs,
                v,
                &body(&[(CONFIG_GROUP, "no-g")]),
            ),
            ApiKey::IncrementalAlterConfigs,
            v,
        );
        assert_eq!(resp.responses[0].error_code, GROUP_AUTHORIZATION_FAILED);
        assert_eq!(resp.responses[0].error_message, None);
    }
}

// ---------------------------------------------------------------------------------------------
// Transactions

fn add_partitions(t: &str, names: &[&str]) -> AddPartitionsToTxnRequest {
    use add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn(t))
        .with_v3_and_below_producer_id(ProducerId(1))
        .with_v3_and_below_topics(
            names
                .iter()
                .map(|n| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![0, 1])
                })
                .collect(),
        )
}

fn add_partitions_codes(r: &AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

#[test]
fn add_partitions_to_txn_fails_whole_when_a_topic_is_denied() {
    for v in [2, ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::AddPartitionsToTxn,
            v,
            &add_partitions("ok-t", &["ok-a"]),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::AddPartitionsToTxn,
            v,
            &add_partitions("ok-t", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Write)]);
        let resp: AddPartitionsToTxnResponse = answered(c, ApiKey::AddPartitionsToTxn, v);
        assert_eq!(
            add_partitions_codes(&resp),
            vec![
                ("ok-a".into(), 0, OPERATION_NOT_ATTEMPTED),
                ("ok-a".into(), 1, OPERATION_NOT_ATTEMPTED),
                ("no-b".into(), 0, TOPIC_AUTHORIZATION_FAILED),
                ("no-b".into(), 1, TOPIC_AUTHORIZATION_FAILED),
            ]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::AddPartitionsToTxn,
            v,
            &add_partitions("no-t", &["ok-a"]),
        );
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: AddPartitionsToTxnResponse = answered(c, ApiKey::AddPartitionsToTxn, v);
        assert_eq!(
            add_partitions_codes(&resp),
            vec![
                ("ok-a".into(), 0, TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                ("ok-a".into(), 1, TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            ]
        );
    }
}

#[test]
fn add_partitions_to_txn_from_brokers_is_refused() {
    use add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
    let body = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default().with_transactional_id(txn("ok-t")),
    ]);
    let c = run(&everything(), ApiKey::AddPartitionsToTxn, 4, &body);
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

#[test]
fn add_offsets_to_txn_needs_write_on_the_transactional_id_then_read_on_the_group() {
    let body = |t: &str, g: &str| {
        AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn(t))
            .with_group_id(group(g))
    };
    for v in [2, 3] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::AddOffsetsToTxn,
            v,
            &body("ok-t", "ok-g"),
        ));
        let c = run(
            &ok_prefix(),
            ApiKey::AddOffsetsToTxn,
            v,
            &body("no-t", "no-g"),
        );
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: AddOffsetsToTxnResponse = answered(c, ApiKey::AddOffsetsToTxn, v);
        assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        let c = run(
            &ok_prefix(),
            ApiKey::AddOffsetsToTxn,
            v,
            &body("ok-t", "no-g"),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Read)]);
        let resp: AddOffsetsToTxnResponse = answered(c, ApiKey::AddOffsetsToTxn, v);
        assert_eq!(resp.error_code, GROUP_AUTHORIZATION_FAILED);
    }
}

#[test]
fn end_txn_needs_write_on_the_transactional_id() {
    let body = |t: &str| {
        EndTxnRequest::default()
            .with_transactional_id(txn(t))
            .with_committed(true)
    };
    for v in [2, 3, 5] {
        assert_untouched(&run(&ok_prefix(), ApiKey::EndTxn, v, &body("ok-t")));
        let c = run(&ok_prefix(), ApiKey::EndTxn, v, &body("no-t"));
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: EndTxnResponse = answered(c, ApiKey::EndTxn, v);
        assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
}

fn txn_commit(t: &str, g: &str, names: &[&str]) -> TxnOffsetCommitRequest {
    use txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
    TxnOffsetCommitRequest::default()
        .with_transactional_id(txn(t))
        .with_group_id(group(g))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(8),
                        ])
                })
                .collect(),
        )
}

fn txn_commit_codes(r: &TxnOffsetCommitResponse) -> Vec<(String, i16)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.error_code))
        })
        .collect()
}

#[test]
fn txn_offset_commit_checks_transactional_id_group_then_topics() {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    for v in [2, 3] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("ok-t", "ok-g", &["ok-a"]),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("ok-t", "ok-g", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Read)]);
        let broker = TxnOffsetCommitResponse::default().with_topics(vec![
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic("ok-a"))
                .with_partitions(vec![TxnOffsetCommitResponsePartition::default()]),
        ]);
        let (req, resp): (TxnOffsetCommitRequest, TxnOffsetCommitResponse) =
            split(c, ApiKey::TxnOffsetCommit, v, &broker);
        assert_eq!(req.topics.len(), 1);
        assert_eq!(
            txn_commit_codes(&resp),
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );

        let resp: TxnOffsetCommitResponse = answered(
            run(
                &ok_prefix(),
                ApiKey::TxnOffsetCommit,
                v,
                &txn_commit("ok-t", "ok-g", &["no-b"]),
            ),
            ApiKey::TxnOffsetCommit,
            v,
        );
        assert_eq!(
            txn_commit_codes(&resp),
            vec![("no-b".into(), TOPIC_AUTHORIZATION_FAILED)]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("no-t", "no-g", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: TxnOffsetCommitResponse = answered(c, ApiKey::TxnOffsetCommit, v);
        assert_eq!(
            txn_commit_codes(&resp),
            vec![
                ("ok-a".into(), TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                ("no-b".into(), TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            ]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("ok-t", "no-g", &["ok-a"]),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Read)]);
        let resp: TxnOffsetCommitResponse = answered(c, ApiKey::TxnOffsetCommit, v);
        assert_eq!(
            txn_commit_codes(&resp),
            vec![("ok-a".into(), GROUP_AUTHORIZATION_FAILED)]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile input

/// A small valid body of each API at `version` to mutate (a default body when no fixture fits
/// the version).
fn seed_body(key: ApiKey, version: i16) -> Vec<u8> {
    fn enc<T: Encodable>(body: &T, version: i16) -> Option<Vec<u8>> {
        let mut buf = BytesMut::new();
        body.encode(&mut buf, version).ok()?;
        Some(buf.to_vec())
    }
    let seeded = match key {
        ApiKey::Produce => enc(&produce(&["ok-a", "no-b"], -1), version),
        ApiKey::Fetch => enc(&fetch(&["ok-a", "no-b"]), version),
        ApiKey::ListOffsets => enc(&list_offsets(&["ok-a", "no-b"]), version),
        ApiKey::Metadata => enc(&metadata(Some(&["ok-a", "no-b"])), version),
        ApiKey::CreateTopics => enc(&create_topics(&["ok-a", "no-b"]), version),
        ApiKey::OffsetCommit => enc(&offset_commit("ok-g", &["ok-a", "no-b"]), version),
        ApiKey::OffsetFetch => enc(&offset_fetch_v7("ok-g", Some(&["ok-a", "no-b"])), version),
        ApiKey::OffsetDelete => enc(&offset_delete("ok-g", &["ok-a", "no-b"]), version),
        ApiKey::OffsetForLeaderEpoch => {
            enc(&offset_for_leader_epoch(-1, &["ok-a", "no-b"]), version)
        }
        ApiKey::AddPartitionsToTxn => enc(&add_partitions("ok-t", &["ok-a", "no-b"]), version),
        ApiKey::TxnOffsetCommit => enc(&txn_commit("ok-t", "ok-g", &["ok-a", "no-b"]), version),
        _ => None,
    };
    seeded.unwrap_or_else(|| {
        // Any valid body: a run of zero bytes decodes as empty arrays and strings for most.
        vec![0; 16]
    })
}

/// Feeds truncated, mutated and random bodies for every authorized API and version through
/// `check_request` (and random answers through any patch), under three sets of permissions.
/// It must return every time; a panic that the codec's `catch_unwind` stopped is a failure too.
#[test]
fn hostile_bodies_never_panic_the_check() {
    let permission_sets = [nothing(), ok_prefix(), everything()];
    let mut rng = Prng::new(0x5eed_0ac1_0000_0001);
    let mut runs = 0u64;
    let mut check =
        |key: ApiKey, version: i16, body: &[u8], answer: &[u8], p: &Arc<Permissions>| {
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(CORRELATION_ID)
                .with_client_id(Some(sb("hostile")));
            let mut buf = BytesMut::new();
            header
                .encode(&mut buf, key.request_header_version(version))
                .unwrap();
            buf.put_slice(body);
            let frame = buf.freeze();
            let parsed = parse_request_header(&frame).unwrap();
            runs += 1;
            match check_request(p, &parsed, &frame) {
                Err(ProtocolError::Decode { reason, .. }) => {
                    assert!(
                        !reason.starts_with("decoder panicked"),
                        "{key:?} v{version}: {reason} on {body:02x?}"
                    )
                }
                Err(_) => {}
                Ok(checked) => {
                    if let Action::Forward {
                        patch: Some(patch), ..
                    } = checked.action
                        && let Err(ProtocolError::Decode { reason, .. }) =
                            apply_patch(patch, key.into(), version, Bytes::copy_from_slice(answer))
                    {
                        assert!(
                            !reason.starts_with("decoder panicked"),
                            "{key:?} v{version} patch: {reason}"
                        );
                    }
                }
            }
        };
    for key in AUTHORIZED_APIS {
        let key = key.known().unwrap();
        let range = key.valid_versions();
        for version in range.min..=range.max {
            let seed = seed_body(key, version);
            for p in &permission_sets {
                for len in 0..seed.len() {
                    check(key, version, &seed[..len], &[], p);
                }
                for _ in 0..400 {
                    let mut bytes = seed.clone();
                    rng.mutate(&mut bytes);
                    let answer: Vec<u8> =
                        (0..rng.below(48)).map(|_| rng.next_u64() as u8).collect();
                    check(key, version, &bytes, &answer, p);
                }
                for _ in 0..100 {
                    let body: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
                    check(key, version, &body, &body, p);
                }
            }
        }
    }
    eprintln!("{runs} hostile requests checked");
    assert!(runs > 100_000, "{runs} runs");
}

#[test]
fn versions_not_offered_under_acls_are_refused_even_when_sent_anyway() {
    use produce_request::{PartitionProduceData, TopicProduceData};
    // Produce v13 names topics only by id: the id of a denied topic must not pass as "".
    let p = perms(&[
        allow(&[Operation::Write, Operation::Read], T, Pattern::Any),
        AclRule::new(
            Permission::Deny,
            &[Operation::Write, Operation::Read],
            T,
            Pattern::Literal("secret".into()),
        ),
    ]);
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_topic_id(uuid::Uuid::from_u128(9))
                .with_partition_data(vec![
                    PartitionProduceData::default().with_records(Some(Bytes::new())),
                ]),
        ]);
    let c = run(&p, ApiKey::Produce, 13, &body);
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    let c = run(
        &p,
        ApiKey::Fetch,
        FETCH_MAX_WITH_ACLS + 1,
        &fetch(&["secret"]),
    );
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    // The newest offered versions still pass.
    assert!(!matches!(
        run(&p, ApiKey::Produce, 12, &produce(&["ok-a"], -1)).action,
        Action::Refuse(_)
    ));
}
