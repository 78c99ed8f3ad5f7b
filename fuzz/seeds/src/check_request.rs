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

mod bodies;

use kafka_protocol::messages::{self as m, ApiKey};

use crate::{Result, response, s};
use bodies::{GROUPS, TOPICS, group, records, request_body, topic};

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
