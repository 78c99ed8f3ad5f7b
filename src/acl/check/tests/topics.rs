//! Tests of `check/topics.rs`: Produce, Fetch (and the incremental-fetch session check),
//! ListOffsets, Metadata, CreateTopics, DeleteTopics.

use super::*;

// ---------------------------------------------------------------------------------------------
// Produce

pub(super) fn produce(names: &[&str], acks: i16) -> ProduceRequest {
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

pub(super) fn fetch(names: &[&str]) -> FetchRequest {
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

pub(super) fn list_offsets(names: &[&str]) -> ListOffsetsRequest {
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

pub(super) fn metadata(names: Option<&[&str]>) -> MetadataRequest {
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

pub(super) fn create_topics(names: &[&str]) -> CreateTopicsRequest {
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
