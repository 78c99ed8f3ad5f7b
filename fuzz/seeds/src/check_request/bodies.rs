//! The request bodies of the `check_request` seeds, one per API, encoded by kafka-protocol.

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, BrokerId, GroupId, ProducerId, TopicName};
use kafka_protocol::protocol::Encodable;

use crate::{Result, s};

pub(super) const TOPICS: [&str; 2] = ["a-orders", "b-payments"];
pub(super) const GROUPS: [&str; 2] = ["a-group", "b-group"];

pub(super) fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

pub(super) fn group(name: &str) -> GroupId {
    GroupId(s(name))
}

pub(super) fn encode<T: Encodable>(body: &T, version: i16) -> Result<Vec<u8>> {
    let mut out = bytes::BytesMut::new();
    body.encode(&mut out, version)?;
    Ok(out.to_vec())
}

/// A small Produce payload: one v2 record batch with one record.
pub(super) fn records() -> Result<Bytes> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut out = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, [&record], &options)?;
    Ok(out.freeze())
}

/// The request body of `api` at `version`, naming an "a" and a "b" resource of each kind it
/// carries (a single-resource request names `GROUPS[single]` / the matching transactional id).
pub(super) fn request_body(api: ApiKey, version: i16, single: usize) -> Result<Vec<u8>> {
    let txn = ["a-txn", "b-txn"][single];
    let one_group = group(GROUPS[single]);
    match api {
        ApiKey::Produce => {
            let records = records()?;
            let topic_data = TOPICS
                .iter()
                .map(|t| {
                    m::produce_request::TopicProduceData::default()
                        .with_name(topic(t))
                        .with_partition_data(vec![
                            m::produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(records.clone())),
                        ])
                })
                .collect();
            let body = m::ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(30_000)
                .with_topic_data(topic_data);
            encode(&body, version)
        }
        ApiKey::Fetch => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::fetch_request::FetchTopic::default()
                        .with_topic(topic(t))
                        .with_partitions(vec![
                            m::fetch_request::FetchPartition::default()
                                .with_partition(0)
                                .with_fetch_offset(42)
                                .with_partition_max_bytes(1_048_576),
                        ])
                })
                .collect();
            let body = m::FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(52_428_800)
                .with_topics(topics);
            encode(&body, version)
        }
        ApiKey::ListOffsets => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::list_offsets_request::ListOffsetsTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            m::list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ])
                })
                .collect();
            let body = m::ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(topics);
            encode(&body, version)
        }
        ApiKey::Metadata => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::metadata_request::MetadataRequestTopic::default().with_name(Some(topic(t)))
                })
                .collect();
            let body = m::MetadataRequest::default()
                .with_topics(Some(topics))
                .with_allow_auto_topic_creation(true);
            encode(&body, version)
        }
        ApiKey::OffsetCommit => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            m::offset_commit_request::OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(42),
                        ])
                })
                .collect();
            let body = m::OffsetCommitRequest::default()
                .with_group_id(one_group)
                .with_generation_id_or_member_epoch(1)
                .with_member_id(s("member-1"))
                .with_topics(topics);
            encode(&body, version)
        }
        ApiKey::OffsetFetch => {
            let body = if version < 8 {
                let topics = TOPICS
                    .iter()
                    .map(|t| {
                        m::offset_fetch_request::OffsetFetchRequestTopic::default()
                            .with_name(topic(t))
                            .with_partition_indexes(vec![0])
                    })
                    .collect();
                m::OffsetFetchRequest::default()
                    .with_group_id(one_group)
                    .with_topics(Some(topics))
            } else {
                let groups = GROUPS
                    .iter()
                    .map(|g| {
                        m::offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(group(g))
                            .with_topics(Some(
                                TOPICS
                                    .iter()
                                    .map(|t| {
                                        m::offset_fetch_request::OffsetFetchRequestTopics::default()
                                            .with_name(topic(t))
                                            .with_partition_indexes(vec![0])
                                    })
                                    .collect(),
                            ))
                    })
                    .collect();
                m::OffsetFetchRequest::default().with_groups(groups)
            };
            encode(&body, version)
        }
        ApiKey::FindCoordinator => {
            let body = if version < 4 {
                m::FindCoordinatorRequest::default().with_key(s(GROUPS[single]))
            } else {
                m::FindCoordinatorRequest::default()
                    .with_coordinator_keys(GROUPS.iter().map(|g| s(g)).collect())
            };
            encode(&body, version)
        }
        ApiKey::JoinGroup => {
            let body = m::JoinGroupRequest::default()
                .with_group_id(one_group)
                .with_session_timeout_ms(45_000)
                .with_rebalance_timeout_ms(if version >= 1 { 300_000 } else { -1 })
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    m::join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"\0\x03\0\0\0\x01\0\x08a-orders")),
                ]);
            encode(&body, version)
        }
        ApiKey::Heartbeat => encode(
            &m::HeartbeatRequest::default()
                .with_group_id(one_group)
                .with_generation_id(3)
                .with_member_id(s("member-1")),
            version,
        ),
        ApiKey::LeaveGroup => {
            let body = m::LeaveGroupRequest::default().with_group_id(one_group);
            let body = if version < 3 {
                body.with_member_id(s("member-1"))
            } else {
                body.with_members(vec![
                    m::leave_group_request::MemberIdentity::default().with_member_id(s("member-1")),
                ])
            };
            encode(&body, version)
        }
        ApiKey::SyncGroup => {
            let body = m::SyncGroupRequest::default()
                .with_group_id(one_group)
                .with_generation_id(3)
                .with_member_id(s("member-1"))
                .with_assignments(vec![
                    m::sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s("member-1"))
                        .with_assignment(Bytes::from_static(b"\0\x03\0\0\0\x01\0\x08a-orders")),
                ]);
            let body = if version >= 5 {
                body.with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
            } else {
                body
            };
            encode(&body, version)
        }
        ApiKey::ApiVersions => {
            let body = m::ApiVersionsRequest::default();
            let body = if version >= 3 {
                body.with_client_software_name(s("seed"))
                    .with_client_software_version(s("1.0"))
            } else {
                body
            };
            encode(&body, version)
        }
        ApiKey::CreateTopics => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::create_topics_request::CreatableTopic::default()
                        .with_name(topic(t))
                        .with_num_partitions(3)
                        .with_replication_factor(1)
                        .with_configs(vec![
                            m::create_topics_request::CreatableTopicConfig::default()
                                .with_name(s("cleanup.policy"))
                                .with_value(Some(s("compact"))),
                        ])
                })
                .collect();
            encode(
                &m::CreateTopicsRequest::default()
                    .with_topics(topics)
                    .with_timeout_ms(30_000),
                version,
            )
        }
        ApiKey::DeleteTopics => {
            let body = m::DeleteTopicsRequest::default().with_timeout_ms(30_000);
            let body = if version < 6 {
                body.with_topic_names(TOPICS.iter().map(|t| topic(t)).collect())
            } else {
                body.with_topics(
                    TOPICS
                        .iter()
                        .map(|t| {
                            m::delete_topics_request::DeleteTopicState::default()
                                .with_name(Some(topic(t)))
                        })
                        .collect(),
                )
            };
            encode(&body, version)
        }
        ApiKey::InitProducerId => encode(
            &m::InitProducerIdRequest::default()
                .with_transactional_id(Some(m::TransactionalId(s(txn))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        ),
        ApiKey::DescribeCluster => encode(&m::DescribeClusterRequest::default(), version),
        ApiKey::DescribeGroups => encode(
            &m::DescribeGroupsRequest::default()
                .with_groups(GROUPS.iter().map(|g| group(g)).collect()),
            version,
        ),
        ApiKey::ListGroups => encode(&m::ListGroupsRequest::default(), version),
        ApiKey::DeleteGroups => encode(
            &m::DeleteGroupsRequest::default()
                .with_groups_names(GROUPS.iter().map(|g| group(g)).collect()),
            version,
        ),
        ApiKey::OffsetDelete => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            m::offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ])
                })
                .collect();
            encode(
                &m::OffsetDeleteRequest::default()
                    .with_group_id(one_group)
                    .with_topics(topics),
                version,
            )
        }
        ApiKey::DeleteRecords => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            m::delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(100),
                        ])
                })
                .collect();
            encode(
                &m::DeleteRecordsRequest::default()
                    .with_topics(topics)
                    .with_timeout_ms(30_000),
                version,
            )
        }
        ApiKey::CreatePartitions => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic(t))
                        .with_count(6)
                })
                .collect();
            encode(
                &m::CreatePartitionsRequest::default()
                    .with_topics(topics)
                    .with_timeout_ms(30_000),
                version,
            )
        }
        ApiKey::OffsetForLeaderEpoch => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(topic(t))
                        .with_partitions(vec![
                            m::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                                .with_partition(0)
                                .with_current_leader_epoch(5)
                                .with_leader_epoch(4),
                        ])
                })
                .collect();
            let body = m::OffsetForLeaderEpochRequest::default().with_topics(topics);
            let body = if version >= 3 {
                body.with_replica_id(BrokerId(-1))
            } else {
                body
            };
            encode(&body, version)
        }
        // Resource type 2 is a topic, 4 a broker (cluster).
        ApiKey::DescribeConfigs => {
            let resources = [(2, TOPICS[0]), (2, TOPICS[1]), (4, "1")]
                .iter()
                .map(|&(kind, name)| {
                    m::describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(kind)
                        .with_resource_name(s(name))
                        .with_configuration_keys(Some(vec![s("retention.ms")]))
                })
                .collect();
            encode(
                &m::DescribeConfigsRequest::default().with_resources(resources),
                version,
            )
        }
        ApiKey::AlterConfigs => {
            let resources = [(2, TOPICS[0]), (2, TOPICS[1])]
                .iter()
                .map(|&(kind, name)| {
                    m::alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(kind)
                        .with_resource_name(s(name))
                        .with_configs(vec![
                            m::alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_value(Some(s("86400000"))),
                        ])
                })
                .collect();
            encode(
                &m::AlterConfigsRequest::default().with_resources(resources),
                version,
            )
        }
        ApiKey::IncrementalAlterConfigs => {
            let resources = [(2, TOPICS[0]), (2, TOPICS[1]), (4, "")]
                .iter()
                .map(|&(kind, name)| {
                    m::incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(kind)
                        .with_resource_name(s(name))
                        .with_configs(vec![
                            m::incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(s("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(s("86400000"))),
                        ])
                })
                .collect();
            encode(
                &m::IncrementalAlterConfigsRequest::default().with_resources(resources),
                version,
            )
        }
        ApiKey::AddPartitionsToTxn => {
            // v0-3 (all a client may send): one transaction, in the top-level v3 fields.
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![0, 1])
                })
                .collect();
            encode(
                &m::AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(m::TransactionalId(s(txn)))
                    .with_v3_and_below_producer_id(ProducerId(7))
                    .with_v3_and_below_producer_epoch(0)
                    .with_v3_and_below_topics(topics),
                version,
            )
        }
        ApiKey::AddOffsetsToTxn => encode(
            &m::AddOffsetsToTxnRequest::default()
                .with_transactional_id(m::TransactionalId(s(txn)))
                .with_producer_id(ProducerId(7))
                .with_group_id(one_group),
            version,
        ),
        ApiKey::EndTxn => encode(
            &m::EndTxnRequest::default()
                .with_transactional_id(m::TransactionalId(s(txn)))
                .with_producer_id(ProducerId(7))
                .with_committed(true),
            version,
        ),
        ApiKey::TxnOffsetCommit => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    m::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic(t))
                        .with_partitions(vec![
                            m::txn_offset_commit_request::TxnOffsetCommitRequestPartition::default(
                            )
                            .with_partition_index(0)
                            .with_committed_offset(42),
                        ])
                })
                .collect();
            let body = m::TxnOffsetCommitRequest::default()
                .with_transactional_id(m::TransactionalId(s(txn)))
                .with_group_id(one_group)
                .with_producer_id(ProducerId(7))
                .with_topics(topics);
            let body = if version >= 3 {
                body.with_generation_id(3).with_member_id(s("member-1"))
            } else {
                body
            };
            encode(&body, version)
        }
        ApiKey::DescribeAcls => encode(
            &m::DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
            version,
        ),
        other => Err(format!("no check_request seed body for {other:?}").into()),
    }
}
