//! Which APIs a connection under proxy ACLs may use, at which versions.
//!
//! Only requests the proxy knows how to authorize may pass; the rest are removed from the
//! ApiVersions answer (so clients never try them) and refused if sent anyway. Versions are
//! narrowed to what kafka-protocol decodes; Fetch and Produce stop at v12 (from v13 they name
//! topics only by id, which the proxy could not match against name-based rules), and
//! AddPartitionsToTxn at v3 (v4+ is the brokers' batched form, KIP-890). A version outside
//! these ranges is refused even when a client sends it without asking.

use kafka_protocol::messages::{self, ApiVersionsResponse, ResponseKind};

use super::patch::{Patched, ResponsePatch};
use crate::kafka::api_versions::narrow_api_versions;
use crate::kafka::{ApiKey, ErrorCode, ResponseBody};

/// The newest Fetch version offered under ACLs: v13+ replaces topic names with topic ids.
pub const FETCH_MAX_WITH_ACLS: i16 = 12;

/// The newest Produce version offered under ACLs: v13 names topics only by id (KIP-516), and
/// the Produce check authorizes topic names.
pub const PRODUCE_MAX_WITH_ACLS: i16 = 12;

/// The newest AddPartitionsToTxn version a client sends: from v4 the request batches
/// transactions and is sent by brokers to the transaction coordinator (KIP-890).
pub const ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION: i16 = 3;

/// The APIs [`super::check::check_request`] authorizes.
pub const AUTHORIZED_APIS: &[ApiKey] = &[
    ApiKey::PRODUCE,
    ApiKey::FETCH,
    ApiKey::LIST_OFFSETS,
    ApiKey::METADATA,
    ApiKey::OFFSET_COMMIT,
    ApiKey::OFFSET_FETCH,
    ApiKey::FIND_COORDINATOR,
    ApiKey::JOIN_GROUP,
    ApiKey::HEARTBEAT,
    ApiKey::LEAVE_GROUP,
    ApiKey::SYNC_GROUP,
    ApiKey::API_VERSIONS,
    ApiKey::CREATE_TOPICS,
    ApiKey::DELETE_TOPICS,
    ApiKey::INIT_PRODUCER_ID,
    ApiKey::DESCRIBE_CLUSTER,
    ApiKey::DESCRIBE_GROUPS,
    ApiKey::LIST_GROUPS,
    ApiKey::DELETE_GROUPS,
    ApiKey::OFFSET_DELETE,
    ApiKey::DELETE_RECORDS,
    ApiKey::CREATE_PARTITIONS,
    ApiKey::OFFSET_FOR_LEADER_EPOCH,
    ApiKey::DESCRIBE_CONFIGS,
    ApiKey::ALTER_CONFIGS,
    ApiKey::INCREMENTAL_ALTER_CONFIGS,
    ApiKey::ADD_PARTITIONS_TO_TXN,
    ApiKey::ADD_OFFSETS_TO_TXN,
    ApiKey::END_TXN,
    ApiKey::TXN_OFFSET_COMMIT,
];

/// The oldest Metadata version offered under ACLs: `allow_auto_topic_creation` exists from v4,
/// and without it the proxy could not stop the broker creating a topic the connection may
/// describe but not create.
pub const METADATA_MIN_WITH_ACLS: i16 = 4;

/// The versions of `api_key` a connection under ACLs may use, or `None` when the API is not
/// available under ACLs.
pub fn range_with_acls(api_key: ApiKey) -> Option<(i16, i16)> {
    if !AUTHORIZED_APIS.contains(&api_key) {
        return None;
    }
    let (min, max) = decodable_versions(api_key.known()?)?;
    let max = match api_key {
        ApiKey::FETCH => max.min(FETCH_MAX_WITH_ACLS),
        ApiKey::PRODUCE => max.min(PRODUCE_MAX_WITH_ACLS),
        ApiKey::ADD_PARTITIONS_TO_TXN => max.min(ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION),
        _ => max,
    };
    let min = match api_key {
        ApiKey::METADATA => min.max(METADATA_MIN_WITH_ACLS),
        _ => min,
    };
    (min <= max).then_some((min, max))
}

/// The versions kafka-protocol can decode both the request and the response of: the check
/// decodes one and may patch the other. `ApiKey::valid_versions` is not enough — it lists
/// OffsetCommit and OffsetFetch v10 (topics by id only) and InitProducerId v6, which the
/// message types do not decode.
fn decodable_versions(key: messages::ApiKey) -> Option<(i16, i16)> {
    use kafka_protocol::messages as m;
    use kafka_protocol::protocol::Message;
    use m::ApiKey as K;
    fn both<Req: Message, Resp: Message>() -> (i16, i16) {
        (
            Req::VERSIONS.min.max(Resp::VERSIONS.min),
            Req::VERSIONS.max.min(Resp::VERSIONS.max),
        )
    }
    Some(match key {
        K::Produce => both::<m::ProduceRequest, m::ProduceResponse>(),
        K::Fetch => both::<m::FetchRequest, m::FetchResponse>(),
        K::ListOffsets => both::<m::ListOffsetsRequest, m::ListOffsetsResponse>(),
        K::Metadata => both::<m::MetadataRequest, m::MetadataResponse>(),
        K::OffsetCommit => both::<m::OffsetCommitRequest, m::OffsetCommitResponse>(),
        K::OffsetFetch => both::<m::OffsetFetchRequest, m::OffsetFetchResponse>(),
        K::FindCoordinator => both::<m::FindCoordinatorRequest, m::FindCoordinatorResponse>(),
        K::JoinGroup => both::<m::JoinGroupRequest, m::JoinGroupResponse>(),
        K::Heartbeat => both::<m::HeartbeatRequest, m::HeartbeatResponse>(),
        K::LeaveGroup => both::<m::LeaveGroupRequest, m::LeaveGroupResponse>(),
        K::SyncGroup => both::<m::SyncGroupRequest, m::SyncGroupResponse>(),
        K::ApiVersions => both::<m::ApiVersionsRequest, m::ApiVersionsResponse>(),
        K::CreateTopics => both::<m::CreateTopicsRequest, m::CreateTopicsResponse>(),
        K::DeleteTopics => both::<m::DeleteTopicsRequest, m::DeleteTopicsResponse>(),
        K::InitProducerId => both::<m::InitProducerIdRequest, m::InitProducerIdResponse>(),
        K::DescribeCluster => both::<m::DescribeClusterRequest, m::DescribeClusterResponse>(),
        K::DescribeGroups => both::<m::DescribeGroupsRequest, m::DescribeGroupsResponse>(),
        K::ListGroups => both::<m::ListGroupsRequest, m::ListGroupsResponse>(),
        K::DeleteGroups => both::<m::DeleteGroupsRequest, m::DeleteGroupsResponse>(),
        K::OffsetDelete => both::<m::OffsetDeleteRequest, m::OffsetDeleteResponse>(),
        K::DeleteRecords => both::<m::DeleteRecordsRequest, m::DeleteRecordsResponse>(),
        K::CreatePartitions => both::<m::CreatePartitionsRequest, m::CreatePartitionsResponse>(),
        K::OffsetForLeaderEpoch => {
            both::<m::OffsetForLeaderEpochRequest, m::OffsetForLeaderEpochResponse>()
        }
        K::DescribeConfigs => both::<m::DescribeConfigsRequest, m::DescribeConfigsResponse>(),
        K::AlterConfigs => both::<m::AlterConfigsRequest, m::AlterConfigsResponse>(),
        K::IncrementalAlterConfigs => {
            both::<m::IncrementalAlterConfigsRequest, m::IncrementalAlterConfigsResponse>()
        }
        K::AddPartitionsToTxn => {
            both::<m::AddPartitionsToTxnRequest, m::AddPartitionsToTxnResponse>()
        }
        K::AddOffsetsToTxn => both::<m::AddOffsetsToTxnRequest, m::AddOffsetsToTxnResponse>(),
        K::EndTxn => both::<m::EndTxnRequest, m::EndTxnResponse>(),
        K::TxnOffsetCommit => both::<m::TxnOffsetCommitRequest, m::TxnOffsetCommitResponse>(),
        _ => return None,
    })
}

/// Narrows an ApiVersions answer (already narrowed by the proxy's own table) to the APIs and
/// versions available under ACLs. An error answer (KIP-511: encoded as v0 whatever was asked) is
/// passed on unchanged.
pub fn narrow_to_acls(body: &mut ApiVersionsResponse) -> Patched {
    if body.error_code != ErrorCode::NONE.0 {
        return Patched::Unchanged;
    }
    narrow_api_versions(body, range_with_acls);
    Patched::Changed
}

/// The patch of every ApiVersions answer under ACLs: [`narrow_to_acls`].
pub fn api_versions_patch() -> ResponsePatch {
    Box::new(|answer: &mut ResponseKind| Ok(narrow_to_acls(ApiVersionsResponse::of(answer)?)))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::acl::patch::apply_patch;
    use crate::kafka::codec::decode_response;

    #[test]
    fn apis_without_an_authorizer_are_hidden_and_topic_id_versions_are_cut() {
        // Produce 0, Fetch 1, LeaveGroup 13, DescribeAcls 29 (no authorizer), EndTxn 26,
        // AddPartitionsToTxn 24, DescribeConfigs 32, SaslHandshake 17 (no authorizer).
        let apis = [
            (0, 3, 13),
            (1, 4, 17),
            (13, 0, 5),
            (29, 0, 3),
            (26, 0, 5),
            (24, 0, 5),
            (32, 1, 4),
            (17, 0, 1),
        ];
        let frame = crate::test_support::api_versions_response(3, 1, 0, &apis).unwrap();
        let narrowed = apply_patch(api_versions_patch(), ApiKey::API_VERSIONS, 3, frame).unwrap();
        let (_, out) = decode_response::<ApiVersionsResponse>(&narrowed, 0, 3).unwrap();
        let got: Vec<(i16, i16, i16)> = out
            .api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, 3, PRODUCE_MAX_WITH_ACLS),
                (1, 4, FETCH_MAX_WITH_ACLS),
                (13, 0, 5),
                (26, 0, 5),
                (24, 0, ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION),
                (32, 1, 4),
            ]
        );
    }

    #[test]
    fn every_authorized_api_has_a_usable_range() {
        for key in AUTHORIZED_APIS {
            let (min, max) = range_with_acls(*key).unwrap();
            assert!(min <= max, "{key:?}");
        }
        assert_eq!(range_with_acls(ApiKey::DESCRIBE_ACLS), None);
        assert_eq!(range_with_acls(ApiKey::SASL_HANDSHAKE), None);
    }

    #[test]
    fn an_error_answer_is_passed_on_unchanged() {
        let frame = crate::test_support::api_versions_response(0, 1, 35, &[(18, 0, 2), (29, 0, 3)])
            .unwrap();
        let out = apply_patch(api_versions_patch(), ApiKey::API_VERSIONS, 3, frame.clone());
        assert_eq!(out.unwrap(), frame);
    }
}
