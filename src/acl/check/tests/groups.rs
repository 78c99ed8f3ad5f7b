//! Tests of `check/groups.rs`: OffsetCommit, OffsetFetch, FindCoordinator, the group
//! membership calls, InitProducerId.

use super::*;

// ---------------------------------------------------------------------------------------------
// OffsetCommit, OffsetFetch

pub(super) fn offset_commit(g: &str, names: &[&str]) -> OffsetCommitRequest {
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

pub(super) fn offset_fetch_v7(g: &str, names: Option<&[&str]>) -> OffsetFetchRequest {
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
