//! ApiVersions: the broker's answer, narrowed to what the proxy can carry, and the KIP-511 answer
//! the proxy gives itself to a client newer than it.
//!
//! One narrowing ([`narrow_api_versions`]) serves every table: the proxy's own
//! ([`narrow_to_proxy_table`]) and the one of proxy ACLs (`acl::apis`).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiVersionsResponse;

use super::api_key::ApiKey;
use super::error::ProtocolError;
use super::error_code::ErrorCode;
use super::response::DecodedResponse;
use super::versions::{offered_range, proxy_version_range};

/// ApiVersions responses use response header v0 in every version, even the flexible ones (v3+):
/// a client cannot know whether the broker supports flexible versions before reading the answer.
pub const RESPONSE_HEADER_VERSION: i16 = 0;

/// Where the body's `error_code` sits: right after the 4-byte correlation id of header v0. It is
/// the first body field in every version.
const ERROR_CODE_OFFSET: usize = 4;

/// The version the body of an ApiVersions answer (to a request of `request_version`) is encoded
/// at. KIP-511: a broker that does not know `request_version` answers with a v0 body carrying
/// UNSUPPORTED_VERSION; every other answer uses the request's version.
pub fn response_body_version(frame: &[u8], request_version: i16) -> i16 {
    if request_version > 0 && body_error_code(frame) == Some(ErrorCode::UNSUPPORTED_VERSION) {
        0
    } else {
        request_version
    }
}

fn body_error_code(frame: &[u8]) -> Option<ErrorCode> {
    let bytes = frame.get(ERROR_CODE_OFFSET..ERROR_CODE_OFFSET + 2)?;
    Some(ErrorCode(i16::from_be_bytes([
        *bytes.first()?,
        *bytes.get(1)?,
    ])))
}

/// Keeps the APIs `offered` gives a range for, each narrowed to the intersection of the answer's
/// range and that one; drops the others, and those whose intersection is empty.
pub fn narrow_api_versions(
    body: &mut ApiVersionsResponse,
    offered: impl Fn(ApiKey) -> Option<(i16, i16)>,
) {
    body.api_keys.retain_mut(|api| {
        let Some((min, max)) = offered(ApiKey(api.api_key)) else {
            return false;
        };
        api.min_version = api.min_version.max(min);
        api.max_version = api.max_version.min(max);
        api.min_version <= api.max_version
    });
}

/// The proxy's narrowing of a broker's ApiVersions answer (to a request of `request_version`):
/// each API's range is intersected with the proxy's table, SASL and delegation-token APIs are
/// removed, and Produce/Fetch are capped below their KIP-951 versions (see `versions`). A
/// KIP-511 UNSUPPORTED_VERSION answer is narrowed the same way.
///
/// `request_version` must be one the proxy supports ([`ProtocolError::UnsupportedVersion`]
/// otherwise): newer requests are answered by the proxy itself
/// ([`unsupported_api_versions_response`]) and never reach the broker.
pub fn narrow_to_proxy_table(
    request_version: i16,
    body: &mut ApiVersionsResponse,
) -> Result<(), ProtocolError> {
    check_request_version(request_version)?;
    narrow_api_versions(body, offered_range);
    Ok(())
}

fn check_request_version(request_version: i16) -> Result<(), ProtocolError> {
    let (min, max) = proxy_version_range(ApiKey::API_VERSIONS).unwrap_or((0, 0));
    if (min..=max).contains(&request_version) {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedVersion {
            api: "ApiVersions",
            version: request_version,
        })
    }
}

/// [`narrow_to_proxy_table`] on a frame: decoded, narrowed, encoded again (at v0 for a KIP-511
/// answer, behind header v0 always).
pub fn rewrite_api_versions_response(
    frame: &Bytes,
    request_version: i16,
) -> Result<Bytes, ProtocolError> {
    // Before decoding: a version the proxy does not know may not decode at all.
    check_request_version(request_version)?;
    let mut response = DecodedResponse::decode(ApiKey::API_VERSIONS, request_version, frame)?;
    narrow_to_proxy_table(request_version, response.body_mut()?)?;
    response.encode()
}

/// The answer a broker gives to an ApiVersions request newer than it knows (KIP-511): error
/// UNSUPPORTED_VERSION, encoded as an ApiVersions v0 body behind response header v0, listing the
/// ApiVersions range the proxy supports so the client retries with a version from it.
pub fn unsupported_api_versions_response(correlation_id: i32) -> Bytes {
    let (min, max) = proxy_version_range(ApiKey::API_VERSIONS).unwrap_or((0, 0));
    // The v0 layout is fixed and tiny; writing it directly keeps this infallible. The unit test
    // decodes it with kafka-protocol.
    let mut out = BytesMut::with_capacity(16);
    out.put_i32(correlation_id); // response header v0
    out.put_i16(ErrorCode::UNSUPPORTED_VERSION.0); // error_code
    out.put_i32(1); // api_keys: ARRAY of one entry
    out.put_i16(ApiKey::API_VERSIONS.0);
    out.put_i16(min);
    out.put_i16(max);
    out.freeze()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::kafka::codec::decode_response;
    use crate::kafka::versions::{FETCH_MAX_ADVERTISED, PRODUCE_MAX_ADVERTISED};

    const UNSUPPORTED_VERSION: i16 = ErrorCode::UNSUPPORTED_VERSION.0;

    fn broker_response(version: i16, apis: &[(i16, i16, i16)], error_code: i16) -> Bytes {
        crate::test_support::api_versions_response(version, 5, error_code, apis).unwrap()
    }

    fn decode(frame: &Bytes, version: i16) -> ApiVersionsResponse {
        decode_response::<ApiVersionsResponse>(frame, 0, version)
            .unwrap()
            .1
    }

    fn ranges(body: &ApiVersionsResponse) -> Vec<(i16, i16, i16)> {
        body.api_keys
            .iter()
            .map(|a| (a.api_key, a.min_version, a.max_version))
            .collect()
    }

    /// A Kafka 4.1-like broker, plus versions newer than the proxy knows.
    const BROKER: &[(i16, i16, i16)] = &[
        (0, 3, 13),  // Produce
        (1, 4, 18),  // Fetch
        (3, 0, 14),  // Metadata, one version newer than the proxy
        (10, 0, 6),  // FindCoordinator
        (11, 0, 9),  // JoinGroup: not in the table, broker range kept
        (17, 0, 1),  // SaslHandshake
        (18, 0, 5),  // ApiVersions, one newer
        (36, 0, 2),  // SaslAuthenticate
        (38, 1, 3),  // CreateDelegationToken
        (39, 1, 2),  // RenewDelegationToken
        (40, 1, 2),  // ExpireDelegationToken
        (41, 1, 3),  // DescribeDelegationToken
        (60, 0, 2),  // DescribeCluster
        (999, 0, 1), // an api this proxy has never heard of: forwarded opaquely
    ];

    #[test]
    fn intersects_caps_and_removes_sasl_and_delegation_apis_at_every_version() {
        for version in 0..=4 {
            let frame = broker_response(version, BROKER, 0);
            let rewritten = rewrite_api_versions_response(&frame, version).unwrap();
            let body = decode(&rewritten, version);
            assert_eq!(
                ranges(&body),
                vec![
                    (0, 3, PRODUCE_MAX_ADVERTISED),
                    (1, 4, FETCH_MAX_ADVERTISED),
                    (3, 0, 13),
                    (10, 0, 6),
                    (11, 0, 9),
                    (18, 0, 4),
                    (60, 0, 2),
                    (999, 0, 1),
                ],
                "version {version}"
            );
            assert_eq!(
                super::super::header::response_correlation_id(&rewritten).unwrap(),
                5
            );
        }
    }

    #[test]
    fn flexible_versions_keep_response_header_v0() {
        // Header v1 would add a tagged-field byte after the correlation id; header v0 puts the
        // error code (0, 0) right there.
        for version in 3..=4 {
            let frame = broker_response(version, &[(18, 0, 4)], 0);
            let rewritten = rewrite_api_versions_response(&frame, version).unwrap();
            assert_eq!(&rewritten[..6], &[0, 0, 0, 5, 0, 0]);
            // A v1 header (with its tagged-field byte) would not decode as one whole frame.
            assert!(decode_response::<ApiVersionsResponse>(&rewritten, 1, version).is_err());
        }
    }

    #[test]
    fn api_with_no_overlap_is_dropped() {
        // A broker whose Fetch starts above the proxy's advertised cap.
        let frame = broker_response(3, &[(1, 16, 18), (3, 0, 12)], 0);
        let body = decode(&rewrite_api_versions_response(&frame, 3).unwrap(), 3);
        assert_eq!(ranges(&body), vec![(3, 0, 12)]);
    }

    #[test]
    fn broker_kip511_answer_is_handled_as_v0() {
        // The client sent v4, the (older) broker knows only up to v2 and answers with a v0 body.
        let frame = broker_response(0, &[(18, 0, 2)], UNSUPPORTED_VERSION);
        let rewritten = rewrite_api_versions_response(&frame, 4).unwrap();
        let body = decode(&rewritten, 0);
        assert_eq!(body.error_code, UNSUPPORTED_VERSION);
        assert_eq!(ranges(&body), vec![(18, 0, 2)]);
    }

    #[test]
    fn request_version_beyond_the_proxy_is_refused() {
        let frame = broker_response(4, BROKER, 0);
        assert!(matches!(
            rewrite_api_versions_response(&frame, 5),
            Err(ProtocolError::UnsupportedVersion { version: 5, .. })
        ));
    }

    #[test]
    fn kip511_response_decodes_as_v0_with_error_35_and_the_supported_range() {
        let frame = unsupported_api_versions_response(1234);
        let (header, body) = decode_response::<ApiVersionsResponse>(&frame, 0, 0).unwrap();
        assert_eq!(header.correlation_id, 1234);
        assert_eq!(body.error_code, 35);
        assert_eq!(ranges(&body), vec![(18, 0, 4)]);
    }

    #[test]
    fn hostile_api_versions_bytes_never_panic() {
        for version in 0..=4 {
            crate::kafka::rewrite::testing::assert_hostile_inputs_never_panic(
                ApiKey::API_VERSIONS,
                version,
                &broker_response(version, BROKER, 0),
            );
        }
    }

    /// Found by the `rewrite_api_versions` fuzz target: a v4 answer whose third tagged field has
    /// the tag 0xEFFFFFFF (kept as a negative key by the codec) was counted but not written by
    /// the rewrite, so the proxy's own answer did not decode again.
    #[test]
    fn a_tag_of_2_pow_31_or_more_survives_a_rewrite() {
        use crate::kafka::rewrite::testing::TestMapper;
        use crate::kafka::rewrite_response;
        let frame = Bytes::from_static(&[
            0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x01, 0x07, 0x3c, 0x00, 0x00, 0x03, 0x30, 0x07,
            0x2b, 0xff, 0xff, 0xff, 0x39, 0x00, 0x00, 0x00, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
            0x02, 0x03, 0x01, 0x66, 0x12, 0x00, 0x04, 0x00, 0x00, 0xbf, 0xff, 0xfd, 0xff, 0x03,
            0x08, 0x00, 0x00, 0x0d, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3a,
            0x03, 0x00, 0x3c, 0x5b,
        ]);
        let mapper = TestMapper::default();
        let once = rewrite_response(ApiKey::API_VERSIONS, 4, &frame, &mapper).unwrap();
        let again = rewrite_response(ApiKey::API_VERSIONS, 4, &once.frame, &mapper)
            .expect("the proxy's own answer decodes");
        assert_eq!(again.frame, once.frame);
        // The field is still there, last, under its tag read back unsigned.
        let body = decode(&once.frame, 4);
        assert_eq!(body.unknown_tagged_fields.len(), 2);
        assert!(
            once.frame
                .ends_with(&[0xff, 0xff, 0xff, 0xff, 0x0a, 0x03, 0x00, 0x3c, 0x5b])
        );
    }

    #[test]
    fn truncated_api_versions_responses_are_errors() {
        let frame = broker_response(3, BROKER, 0);
        for len in 0..frame.len() {
            assert!(rewrite_api_versions_response(&frame.slice(..len), 3).is_err());
        }
    }

    #[test]
    fn one_narrowing_intersects_keeps_and_drops() {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        let api = |key, min, max| {
            ApiVersion::default()
                .with_api_key(key)
                .with_min_version(min)
                .with_max_version(max)
        };
        let mut body = ApiVersionsResponse::default().with_api_keys(vec![
            api(0, 0, 13),
            api(1, 4, 18),
            api(2, 0, 9),
        ]);
        narrow_api_versions(&mut body, |key| match key {
            ApiKey::PRODUCE => Some((3, 9)),
            ApiKey::FETCH => Some((0, 3)),
            _ => None,
        });
        assert_eq!(ranges(&body), vec![(0, 3, 9)]);
    }
}
