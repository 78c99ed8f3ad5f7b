//! Seeds for `check_request`: real request bodies of the APIs the proxy authorizes, each with
//! the selector bytes that make the target check it at the API and version it was encoded at.
//!
//! Input layout (`fuzz_targets/check_request.rs`): byte 0 the permission set (0: nothing
//! allowed, 1: only names starting with "a", 2: everything but names starting with "b"),
//! byte 1 the API's index in the proxy's `AUTHORIZED_APIS` (one past the end: DescribeAcls,
//! which the proxy refuses), byte 2 the version less kafka-protocol's lowest for the API,
//! byte 3 the body's length, then the body (the target adds the header) and a broker answer
//! (header and body) that a returned patch is applied to.
//!
//! Every body names both an "a" and a "b" resource, so under set 1 or 2 a request is split
//! (a narrowed copy forwarded, the denied part patched into the answer) and under set 0 the
//! proxy answers alone.

use bytes::Bytes;
use kafka_protocol::messages::{self as m, ApiKey, BrokerId, GroupId, ProducerId, TopicName};
use kafka_protocol::protocol::Encodable;

use crate::{Result, response, s};

/// The proxy's `acl::apis::AUTHORIZED_APIS`, in its order: byte 1 indexes it. The seeds
/// crate's tests check this copy against the proxy's list.
pub const AUTHORIZED_APIS: [ApiKey; 30] = [
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::SyncGroup,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::InitProducerId,
    ApiKey::DescribeCluster,
    ApiKey::DescribeGroups,
    ApiKey::ListGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetDelete,
    ApiKey::DeleteRecords,
    ApiKey::CreatePartitions,
    ApiKey::OffsetForLeaderEpoch,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::EndTxn,
    ApiKey::TxnOffsetCommit,
];

/// The permission sets of byte 0.
pub const NOTHING: u8 = 0;
pub const ONLY_A: u8 = 1;
pub const ALL_BUT_B: u8 = 2;

/// What one seed is meant to exercise; the tests hold the target's outcome to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Checked (forwarded whole or in part, or answered by the proxy).
    Checked,
    /// Forwarded with a patch, which the seed's broker answer goes through.
    Patched,
    /// Refused: an API or version the proxy does not authorize.
    Refused,
}

// What the seed is for, besides its name and bytes, is read only by the tests.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Seed {
    pub name: String,
    pub api: ApiKey,
    pub version: i16,
    pub permissions: u8,
    pub expect: Expect,
    pub bytes: Vec<u8>,
}

const TOPICS: [&str; 2] = ["a-orders", "b-payments"];
const GROUPS: [&str; 2] = ["a-group", "b-group"];

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

fn group(name: &str) -> GroupId {
    GroupId(s(name))
}

fn encode<T: Encodable>(body: &T, version: i16) -> Result<Vec<u8>> {
    let mut out = bytes::BytesMut::new();
    body.encode(&mut out, version)?;
    Ok(out.to_vec())
}

/// A small Produce payload: one v2 record batch with one record.
fn records() -> Result<Bytes> {
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
fn request_body(api: ApiKey, version: i16, single: usize) -> Result<Vec<u8>> {
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

/// The broker's answer to the narrowed request: the response's header and body, with the
/// allowed ("a") resources where the proxy's patch reads the answer rather than only adding to
/// it (Metadata and ListGroups drop what the connection may not see).
fn broker_answer(api: ApiKey, version: i16) -> Result<Vec<u8>> {
    use m::*;
    match api {
        ApiKey::Metadata => {
            let topics = TOPICS
                .iter()
                .map(|t| {
                    metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(topic(t)))
                        .with_partitions(vec![
                            metadata_response::MetadataResponsePartition::default()
                                .with_leader_id(BrokerId(1))
                                .with_replica_nodes(vec![BrokerId(1)])
                                .with_isr_nodes(vec![BrokerId(1)]),
                        ])
                })
                .collect();
            let body = MetadataResponse::default()
                .with_brokers(vec![
                    metadata_response::MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(s("broker-1.internal"))
                        .with_port(9092),
                ])
                .with_controller_id(BrokerId(1))
                .with_topics(topics);
            response(api, version, &body)
        }
        ApiKey::ListGroups => {
            let groups = GROUPS
                .iter()
                .map(|g| {
                    list_groups_response::ListedGroup::default()
                        .with_group_id(group(g))
                        .with_protocol_type(s("consumer"))
                })
                .collect();
            response(
                api,
                version,
                &ListGroupsResponse::default().with_groups(groups),
            )
        }
        ApiKey::Produce => {
            let topic = produce_response::TopicProduceResponse::default()
                .with_name(topic(TOPICS[0]))
                .with_partition_responses(vec![
                    produce_response::PartitionProduceResponse::default()
                        .with_index(0)
                        .with_base_offset(42),
                ]);
            response(
                api,
                version,
                &ProduceResponse::default().with_responses(vec![topic]),
            )
        }
        ApiKey::Fetch => {
            let topic = fetch_response::FetchableTopicResponse::default()
                .with_topic(topic(TOPICS[0]))
                .with_partitions(vec![
                    fetch_response::PartitionData::default()
                        .with_high_watermark(43)
                        .with_records(Some(records()?)),
                ]);
            response(
                api,
                version,
                &FetchResponse::default().with_responses(vec![topic]),
            )
        }
        ApiKey::ListOffsets => response(api, version, &ListOffsetsResponse::default()),
        ApiKey::OffsetCommit => response(api, version, &OffsetCommitResponse::default()),
        ApiKey::OffsetFetch => response(api, version, &OffsetFetchResponse::default()),
        ApiKey::FindCoordinator => {
            let body = FindCoordinatorResponse::default().with_coordinators(vec![
                find_coordinator_response::Coordinator::default()
                    .with_key(s(GROUPS[0]))
                    .with_node_id(BrokerId(1))
                    .with_host(s("broker-1.internal"))
                    .with_port(9092),
            ]);
            response(api, version, &body)
        }
        ApiKey::ApiVersions => crate::api_versions(version, 0),
        ApiKey::CreateTopics => response(api, version, &CreateTopicsResponse::default()),
        ApiKey::DeleteTopics => response(api, version, &DeleteTopicsResponse::default()),
        ApiKey::DescribeGroups => response(api, version, &DescribeGroupsResponse::default()),
        ApiKey::DeleteGroups => response(api, version, &DeleteGroupsResponse::default()),
        ApiKey::OffsetDelete => response(api, version, &OffsetDeleteResponse::default()),
        ApiKey::DeleteRecords => response(api, version, &DeleteRecordsResponse::default()),
        ApiKey::CreatePartitions => response(api, version, &CreatePartitionsResponse::default()),
        ApiKey::OffsetForLeaderEpoch => {
            response(api, version, &OffsetForLeaderEpochResponse::default())
        }
        ApiKey::DescribeConfigs => response(api, version, &DescribeConfigsResponse::default()),
        ApiKey::AlterConfigs => response(api, version, &AlterConfigsResponse::default()),
        ApiKey::IncrementalAlterConfigs => {
            response(api, version, &IncrementalAlterConfigsResponse::default())
        }
        ApiKey::AddPartitionsToTxn => {
            response(api, version, &AddPartitionsToTxnResponse::default())
        }
        ApiKey::TxnOffsetCommit => response(api, version, &TxnOffsetCommitResponse::default()),
        other => Err(format!("no check_request broker answer for {other:?}").into()),
    }
}

/// One seed: `api` at `version` under `permissions`; a broker answer follows when a patch is
/// expected. `single` picks the group / transactional id of single-resource requests.
fn seed(api: ApiKey, version: i16, permissions: u8, single: usize, expect: Expect) -> Result<Seed> {
    let index = match AUTHORIZED_APIS.iter().position(|&k| k == api) {
        Some(i) => i,
        None if api == ApiKey::DescribeAcls => AUTHORIZED_APIS.len(),
        None => return Err(format!("{api:?} is not selectable by the target").into()),
    };
    let version_byte = u8::try_from(version - api.valid_versions().min)?;
    let body = request_body(api, version, single)?;
    let mut bytes = vec![permissions, u8::try_from(index)?, version_byte];
    if expect == Expect::Patched {
        // Byte 3 splits body from answer: the body must fit in it.
        bytes.push(u8::try_from(body.len())?);
        bytes.extend_from_slice(&body);
        bytes.extend(broker_answer(api, version)?);
    } else {
        // No answer: the whole rest is the body (255 takes all of a body this short).
        bytes.push(u8::MAX);
        bytes.extend_from_slice(&body);
    }
    let name = format!(
        "{}-v{version}-p{permissions}{}",
        format!("{api:?}").to_lowercase(),
        match expect {
            Expect::Checked => "",
            Expect::Patched => "-patched",
            Expect::Refused => "-refused",
        }
    );
    Ok(Seed {
        name,
        api,
        version,
        permissions,
        expect,
        bytes,
    })
}

/// Every seed: each API the proxy authorizes, the main ones at their lowest and highest version
/// under ACLs, across the three permission sets; a Fetch version past what ACLs allow and an
/// API the proxy refuses.
pub fn seeds() -> Result<Vec<Seed>> {
    use Expect::*;
    let table: [(ApiKey, i16, u8, usize, Expect); 46] = [
        (ApiKey::Produce, 3, NOTHING, 0, Checked),
        (ApiKey::Produce, 12, ONLY_A, 0, Patched),
        (ApiKey::Produce, 9, ALL_BUT_B, 0, Patched),
        (ApiKey::Fetch, 4, ONLY_A, 0, Patched),
        (ApiKey::Fetch, 12, ALL_BUT_B, 0, Patched),
        (ApiKey::Fetch, 13, ONLY_A, 0, Refused),
        (ApiKey::ListOffsets, 1, ONLY_A, 0, Patched),
        (ApiKey::ListOffsets, 10, NOTHING, 0, Checked),
        (ApiKey::Metadata, 4, ONLY_A, 0, Patched),
        (ApiKey::Metadata, 13, ALL_BUT_B, 0, Patched),
        (ApiKey::OffsetCommit, 2, ONLY_A, 0, Patched),
        (ApiKey::OffsetCommit, 9, ALL_BUT_B, 1, Checked),
        (ApiKey::OffsetFetch, 1, ONLY_A, 0, Patched),
        (ApiKey::OffsetFetch, 9, ONLY_A, 0, Patched),
        (ApiKey::FindCoordinator, 0, ALL_BUT_B, 1, Checked),
        (ApiKey::FindCoordinator, 6, ONLY_A, 0, Patched),
        (ApiKey::JoinGroup, 0, ONLY_A, 0, Checked),
        (ApiKey::JoinGroup, 9, ALL_BUT_B, 1, Checked),
        (ApiKey::SyncGroup, 0, NOTHING, 0, Checked),
        (ApiKey::SyncGroup, 5, ONLY_A, 0, Checked),
        (ApiKey::Heartbeat, 4, ONLY_A, 0, Checked),
        (ApiKey::LeaveGroup, 5, ALL_BUT_B, 0, Checked),
        (ApiKey::ApiVersions, 0, NOTHING, 0, Patched),
        (ApiKey::ApiVersions, 4, ALL_BUT_B, 0, Patched),
        (ApiKey::CreateTopics, 2, NOTHING, 0, Checked),
        (ApiKey::CreateTopics, 7, ALL_BUT_B, 0, Checked),
        (ApiKey::DeleteTopics, 1, ONLY_A, 0, Patched),
        (ApiKey::DeleteTopics, 6, ALL_BUT_B, 0, Patched),
        (ApiKey::InitProducerId, 0, ONLY_A, 0, Checked),
        (ApiKey::InitProducerId, 5, ALL_BUT_B, 1, Checked),
        (ApiKey::DescribeGroups, 0, ONLY_A, 0, Patched),
        (ApiKey::ListGroups, 5, NOTHING, 0, Patched),
        (ApiKey::DeleteRecords, 2, ALL_BUT_B, 0, Patched),
        (ApiKey::CreatePartitions, 0, ONLY_A, 0, Patched),
        (ApiKey::DescribeConfigs, 4, ONLY_A, 0, Patched),
        (ApiKey::AlterConfigs, 0, ALL_BUT_B, 0, Patched),
        (ApiKey::IncrementalAlterConfigs, 1, ONLY_A, 0, Patched),
        (ApiKey::AddPartitionsToTxn, 3, ONLY_A, 0, Checked),
        (ApiKey::TxnOffsetCommit, 3, ONLY_A, 0, Patched),
        (ApiKey::DescribeCluster, 2, ONLY_A, 0, Checked),
        (ApiKey::DeleteGroups, 2, ALL_BUT_B, 0, Patched),
        (ApiKey::OffsetDelete, 0, ONLY_A, 0, Patched),
        (ApiKey::OffsetForLeaderEpoch, 4, ONLY_A, 0, Patched),
        (ApiKey::AddOffsetsToTxn, 4, ALL_BUT_B, 1, Checked),
        (ApiKey::EndTxn, 5, ONLY_A, 0, Checked),
        (ApiKey::DescribeAcls, 1, ALL_BUT_B, 0, Refused),
    ];
    table
        .iter()
        .map(|&(api, version, permissions, single, expect)| {
            seed(api, version, permissions, single, expect)
        })
        .collect()
}

pub fn write_all() -> Result {
    for seed in seeds()? {
        crate::write("check_request", &seed.name, &seed.bytes)?;
    }
    Ok(())
}
