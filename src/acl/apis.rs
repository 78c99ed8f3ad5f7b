//! Which APIs a connection under proxy ACLs may use, at which versions.
//!
//! Only requests the proxy knows how to authorize may pass; the rest are removed from the
//! ApiVersions answer (so clients never try them) and refused if sent anyway. Versions are
//! narrowed to what kafka-protocol decodes; Fetch and Produce stop at v12 (from v13 they name
//! topics only by id, which the proxy could not match against name-based rules), and
//! AddPartitionsToTxn at v3 (v4+ is the brokers' batched form, KIP-890). A version outside
//! these ranges is refused even when a client sends it without asking.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::kafka::ProtocolError;
use crate::kafka::codec::{decode_response, encode_response};

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

/// The oldest Metadata version offered under ACLs: `allow_auto_topic_creation` exists from v4,
/// and without it the proxy could not stop the broker creating a topic the connection may
/// describe but not create.
pub const METADATA_MIN_WITH_ACLS: i16 = 4;

/// The versions of `api_key` a connection under ACLs may use, or `None` when the API is not
/// available under ACLs.
pub fn range_with_acls(api_key: i16) -> Option<(i16, i16)> {
    let key = AUTHORIZED_APIS
        .iter()
        .copied()
        .find(|k| *k as i16 == api_key)?;
    let (min, max) = decodable_versions(key)?;
    let max = match key {
        ApiKey::Fetch => max.min(FETCH_MAX_WITH_ACLS),
        ApiKey::Produce => max.min(PRODUCE_MAX_WITH_ACLS),
        ApiKey::AddPartitionsToTxn => max.min(ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION),
        _ => max,
    };
    let min = match key {
        ApiKey::Metadata => min.max(METADATA_MIN_WITH_ACLS),
        _ => min,
    };
    (min <= max).then_some((min, max))
}

/// The versions kafka-protocol can decode both the request and the response of: the check
/// decodes one and may patch the other. `ApiKey::valid_versions` is not enough — it lists
/// OffsetCommit and OffsetFetch v10 (topics by id only) and InitProducerId v6, which the
/// message types do not decode.
fn decodable_versions(key: ApiKey) -> Option<(i16, i16)> {
    use kafka_protocol::messages as m;
    use kafka_protocol::protocol::Message;
    fn both<Req: Message, Resp: Message>() -> (i16, i16) {
        (
            Req::VERSIONS.min.max(Resp::VERSIONS.min),
            Req::VERSIONS.max.min(Resp::VERSIONS.max),
        )
    }
    Some(match key {
        ApiKey::Produce => both::<m::ProduceRequest, m::ProduceResponse>(),
        ApiKey::Fetch => both::<m::FetchRequest, m::FetchResponse>(),
        ApiKey::ListOffsets => both::<m::ListOffsetsRequest, m::ListOffsetsResponse>(),
        ApiKey::Metadata => both::<m::MetadataRequest, m::MetadataResponse>(),
        ApiKey::OffsetCommit => both::<m::OffsetCommitRequest, m::OffsetCommitResponse>(),
        ApiKey::OffsetFetch => both::<m::OffsetFetchRequest, m::OffsetFetchResponse>(),
        ApiKey::FindCoordinator => both::<m::FindCoordinatorRequest, m::FindCoordinatorResponse>(),
        ApiKey::JoinGroup => both::<m::JoinGroupRequest, m::JoinGroupResponse>(),
        ApiKey::Heartbeat => both::<m::HeartbeatRequest, m::HeartbeatResponse>(),
        ApiKey::LeaveGroup => both::<m::LeaveGroupRequest, m::LeaveGroupResponse>(),
        ApiKey::SyncGroup => both::<m::SyncGroupRequest, m::SyncGroupResponse>(),
        ApiKey::ApiVersions => both::<m::ApiVersionsRequest, m::ApiVersionsResponse>(),
        ApiKey::CreateTopics => both::<m::CreateTopicsRequest, m::CreateTopicsResponse>(),
        ApiKey::DeleteTopics => both::<m::DeleteTopicsRequest, m::DeleteTopicsResponse>(),
        ApiKey::InitProducerId => both::<m::InitProducerIdRequest, m::InitProducerIdResponse>(),
        ApiKey::DescribeCluster => both::<m::DescribeClusterRequest, m::DescribeClusterResponse>(),
        ApiKey::DescribeGroups => both::<m::DescribeGroupsRequest, m::DescribeGroupsResponse>(),
        ApiKey::ListGroups => both::<m::ListGroupsRequest, m::ListGroupsResponse>(),
        ApiKey::DeleteGroups => both::<m::DeleteGroupsRequest, m::DeleteGroupsResponse>(),
        ApiKey::OffsetDelete => both::<m::OffsetDeleteRequest, m::OffsetDeleteResponse>(),
        ApiKey::DeleteRecords => both::<m::DeleteRecordsRequest, m::DeleteRecordsResponse>(),
        ApiKey::CreatePartitions => {
            both::<m::CreatePartitionsRequest, m::CreatePartitionsResponse>()
        }
        ApiKey::OffsetForLeaderEpoch => {
            both::<m::OffsetForLeaderEpochRequest, m::OffsetForLeaderEpochResponse>()
        }
        ApiKey::DescribeConfigs => both::<m::DescribeConfigsRequest, m::DescribeConfigsResponse>(),
        ApiKey::AlterConfigs => both::<m::AlterConfigsRequest, m::AlterConfigsResponse>(),
        ApiKey::IncrementalAlterConfigs => {
            both::<m::IncrementalAlterConfigsRequest, m::IncrementalAlterConfigsResponse>()
        }
        ApiKey::AddPartitionsToTxn => {
            both::<m::AddPartitionsToTxnRequest, m::AddPartitionsToTxnResponse>()
        }
        ApiKey::AddOffsetsToTxn => both::<m::AddOffsetsToTxnRequest, m::AddOffsetsToTxnResponse>(),
        ApiKey::EndTxn => both::<m::EndTxnRequest, m::EndTxnResponse>(),
        ApiKey::TxnOffsetCommit => both::<m::TxnOffsetCommitRequest, m::TxnOffsetCommitResponse>(),
        _ => return None,
    })
}

/// ApiVersions response header: always v0 (see `kafka::api_versions`).
const HEADER_VERSION: i16 = 0;

/// Narrow an ApiVersions answer (already narrowed by the proxy's own table) to the APIs and
/// versions available under ACLs. `request_version` is the version the client asked for; an
/// error answer (KIP-511: encoded as v0 whatever was asked) is passed on unchanged.
pub fn narrow_api_versions(frame: &Bytes, request_version: i16) -> Result<Bytes, ProtocolError> {
    // The error code is the first body field, right after header v0's correlation id.
    if frame.get(4..6).is_none_or(|code| code != [0, 0]) {
        return Ok(frame.clone());
    }
    let body_version = request_version;
    let (header, mut body) =
        decode_response::<ApiVersionsResponse>(frame, HEADER_VERSION, body_version)?;
    body.api_keys
        .retain_mut(|api| match range_with_acls(api.api_key) {
            Some((min, max)) => {
                api.min_version = api.min_version.max(min);
                api.max_version = api.max_version.min(max);
                api.min_version <= api.max_version
            }
            None => false,
        });
    encode_response(&header, HEADER_VERSION, &body, body_version)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

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
        let narrowed = narrow_api_versions(&frame, 3).unwrap();
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
            let (min, max) = range_with_acls(*key as i16).unwrap();
            assert!(min <= max, "{key:?}");
        }
        assert_eq!(range_with_acls(ApiKey::DescribeAcls as i16), None);
        assert_eq!(range_with_acls(ApiKey::SaslHandshake as i16), None);
    }
}
