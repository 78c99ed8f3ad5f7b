//! Which APIs a connection under proxy ACLs may use, at which versions.
//!
//! Only requests the proxy knows how to authorize may pass; the rest are removed from the
//! ApiVersions answer (so clients never try them) and refused if sent anyway. Versions are
//! narrowed to what kafka-protocol decodes, and Fetch stops at v12: from v13 a Fetch names
//! topics only by id, which the proxy could not match against name-based rules.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::kafka::ProtocolError;
use crate::kafka::codec::{decode_response, encode_response};

/// The newest Fetch version offered under ACLs: v13+ replaces topic names with topic ids.
pub const FETCH_MAX_WITH_ACLS: i16 = 12;

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
];

/// The versions of `api_key` a connection under ACLs may use, or `None` when the API is not
/// available under ACLs.
pub fn range_with_acls(api_key: i16) -> Option<(i16, i16)> {
    let key = AUTHORIZED_APIS
        .iter()
        .copied()
        .find(|k| *k as i16 == api_key)?;
    let range = key.valid_versions();
    let max = if key == ApiKey::Fetch {
        range.max.min(FETCH_MAX_WITH_ACLS)
    } else {
        range.max
    };
    Some((range.min, max))
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
    use kafka_protocol::messages::ResponseHeader;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    #[test]
    fn apis_without_an_authorizer_are_hidden_and_fetch_stops_before_topic_ids() {
        let apis = [(0, 3, 9), (1, 4, 15), (32, 0, 4), (11, 0, 9), (42, 0, 2)];
        let body = ApiVersionsResponse::default().with_api_keys(
            apis.iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        );
        let header = ResponseHeader::default().with_correlation_id(1);
        let frame = encode_response(&header, 0, &body, 3).unwrap();
        let narrowed = narrow_api_versions(&frame, 3).unwrap();
        let (_, out) = decode_response::<ApiVersionsResponse>(&narrowed, 0, 3).unwrap();
        let got: Vec<(i16, i16, i16)> = out
            .api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect();
        assert_eq!(
            got,
            vec![(0, 3, 9), (1, 4, FETCH_MAX_WITH_ACLS), (11, 0, 9)]
        );
    }
}
