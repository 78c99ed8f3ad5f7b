//! Tests of `check/admin.rs`: the group listings and deletions, the topic administration
//! calls, and the configuration calls.

use super::*;

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

pub(super) fn offset_delete(g: &str, names: &[&str]) -> OffsetDeleteRequest {
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

pub(super) fn offset_for_leader_epoch(replica: i32, names: &[&str]) -> OffsetForLeaderEpochRequest {
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
