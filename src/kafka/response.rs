//! A response decoded once: its header and body (as kafka-protocol's `ResponseKind`), and the
//! versions to encode them back with. Every step that must read or change an answer (the
//! ApiVersions table, proxy ACLs, address rewriting) works on the same decoded value; the frame
//! is encoded again once at the end, and only when a step changed something.
//!
//! Only the responses listed in this module's `response_bodies!` table are decoded: the ones the
//! proxy rewrites or patches. Add a line there to decode another.

use bytes::Bytes;
use kafka_protocol::messages::{self, ResponseHeader, ResponseKind};

use super::api_key::ApiKey;
use super::api_versions;
use super::codec::{decode_response, encode_response};
use super::error::ProtocolError;

/// A response type the proxy decodes, and its `ResponseKind` variant.
pub trait ResponseBody: Sized + 'static {
    /// The type's name (`MetadataResponse`), for errors.
    const NAME: &'static str;

    /// The body, when `kind` is of this type.
    fn from_kind(kind: &mut ResponseKind) -> Option<&mut Self>;

    /// The body, or [`ProtocolError::WrongBody`] when `kind` is of another type (the caller
    /// paired an answer with the wrong request: an error, never a panic).
    fn of(kind: &mut ResponseKind) -> Result<&mut Self, ProtocolError> {
        Self::from_kind(kind).ok_or(ProtocolError::WrongBody {
            expected: Self::NAME,
        })
    }
}

macro_rules! response_bodies {
    ($($variant:ident => $body:ident,)+) => {
        $(
            impl ResponseBody for messages::$body {
                const NAME: &'static str = stringify!($body);

                fn from_kind(kind: &mut ResponseKind) -> Option<&mut Self> {
                    match kind {
                        ResponseKind::$variant(body) => Some(body),
                        _ => None,
                    }
                }
            }
        )+

        /// Decodes a header of `header_version` and the body of `api_key` at `version`.
        fn decode_kind(
            api_key: ApiKey,
            frame: &Bytes,
            header_version: i16,
            version: i16,
        ) -> Result<(ResponseHeader, ResponseKind), ProtocolError> {
            match api_key.known() {
                $(
                    Some(messages::ApiKey::$variant) => {
                        decode_response::<messages::$body>(frame, header_version, version)
                            .map(|(header, body)| (header, ResponseKind::$variant(body)))
                    }
                )+
                _ => Err(ProtocolError::NotDecoded(api_key)),
            }
        }

        /// Encodes a header and a body of one of the types above.
        fn encode_kind(
            header: &ResponseHeader,
            header_version: i16,
            body: &ResponseKind,
            version: i16,
        ) -> Result<Bytes, ProtocolError> {
            match body {
                $(
                    ResponseKind::$variant(body) => {
                        encode_response(header, header_version, body, version)
                    }
                )+
                _ => Err(ProtocolError::WrongBody {
                    expected: "response the proxy decodes",
                }),
            }
        }
    };
}

response_bodies! {
    Produce => ProduceResponse,
    Fetch => FetchResponse,
    ListOffsets => ListOffsetsResponse,
    Metadata => MetadataResponse,
    OffsetCommit => OffsetCommitResponse,
    OffsetFetch => OffsetFetchResponse,
    FindCoordinator => FindCoordinatorResponse,
    JoinGroup => JoinGroupResponse,
    Heartbeat => HeartbeatResponse,
    LeaveGroup => LeaveGroupResponse,
    SyncGroup => SyncGroupResponse,
    DescribeGroups => DescribeGroupsResponse,
    ListGroups => ListGroupsResponse,
    ApiVersions => ApiVersionsResponse,
    CreateTopics => CreateTopicsResponse,
    DeleteTopics => DeleteTopicsResponse,
    DeleteRecords => DeleteRecordsResponse,
    InitProducerId => InitProducerIdResponse,
    OffsetForLeaderEpoch => OffsetForLeaderEpochResponse,
    AddPartitionsToTxn => AddPartitionsToTxnResponse,
    AddOffsetsToTxn => AddOffsetsToTxnResponse,
    EndTxn => EndTxnResponse,
    TxnOffsetCommit => TxnOffsetCommitResponse,
    DescribeConfigs => DescribeConfigsResponse,
    AlterConfigs => AlterConfigsResponse,
    CreatePartitions => CreatePartitionsResponse,
    DeleteGroups => DeleteGroupsResponse,
    IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
    OffsetDelete => OffsetDeleteResponse,
    DescribeCluster => DescribeClusterResponse,
}

/// One response, decoded: change `header` or `body` in place, then [`DecodedResponse::encode`].
#[derive(Debug, Clone)]
pub struct DecodedResponse {
    pub header: ResponseHeader,
    pub body: ResponseKind,
    header_version: i16,
    body_version: i16,
}

impl DecodedResponse {
    /// Decodes the broker's answer to a request of `api_key` at `request_version`: the header
    /// version that api key and version use, then the body. ApiVersions answers keep their
    /// KIP-511 quirks (header v0 always; an UNSUPPORTED_VERSION answer has a v0 body, see
    /// [`api_versions::response_body_version`]).
    pub fn decode(
        api_key: ApiKey,
        request_version: i16,
        frame: &Bytes,
    ) -> Result<Self, ProtocolError> {
        let key = api_key
            .known()
            .ok_or(ProtocolError::UnknownApiKey(api_key))?;
        let (header_version, body_version) = if api_key == ApiKey::API_VERSIONS {
            (
                api_versions::RESPONSE_HEADER_VERSION,
                api_versions::response_body_version(frame, request_version),
            )
        } else {
            (
                key.response_header_version(request_version),
                request_version,
            )
        };
        let (header, body) = decode_kind(api_key, frame, header_version, body_version)?;
        Ok(DecodedResponse {
            header,
            body,
            header_version,
            body_version,
        })
    }

    /// The body as its type, or [`ProtocolError::WrongBody`].
    pub fn body_mut<T: ResponseBody>(&mut self) -> Result<&mut T, ProtocolError> {
        T::of(&mut self.body)
    }

    /// The version the body was decoded at, and is encoded at: the request's, except for an
    /// ApiVersions UNSUPPORTED_VERSION answer (v0).
    pub fn body_version(&self) -> i16 {
        self.body_version
    }

    /// The frame (without its size prefix), encoded at the versions it was decoded at.
    pub fn encode(&self) -> Result<Bytes, ProtocolError> {
        encode_kind(
            &self.header,
            self.header_version,
            &self.body,
            self.body_version,
        )
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::kafka::ErrorCode;
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse, ProduceResponse};

    #[test]
    fn decodes_and_encodes_back_byte_for_byte() {
        for version in [0, 4, 12, 13] {
            let header = ResponseHeader::default().with_correlation_id(9);
            let header_version = messages::ApiKey::Metadata.response_header_version(version);
            let frame = encode_response(
                &header,
                header_version,
                &MetadataResponse::default(),
                version,
            )
            .unwrap();
            let mut decoded = DecodedResponse::decode(ApiKey::METADATA, version, &frame).unwrap();
            assert_eq!(decoded.header.correlation_id, 9);
            assert_eq!(decoded.body_version(), version);
            assert!(decoded.body_mut::<MetadataResponse>().is_ok());
            assert_eq!(decoded.encode().unwrap(), frame);
        }
    }

    #[test]
    fn a_body_of_another_type_is_an_error_not_a_panic() {
        let frame = crate::test_support::api_versions_response(3, 1, 0, &[]).unwrap();
        let mut decoded = DecodedResponse::decode(ApiKey::API_VERSIONS, 3, &frame).unwrap();
        assert!(matches!(
            decoded.body_mut::<ProduceResponse>(),
            Err(ProtocolError::WrongBody {
                expected: "ProduceResponse"
            })
        ));
    }

    #[test]
    fn api_versions_unsupported_version_answer_is_held_as_v0() {
        let code = ErrorCode::UNSUPPORTED_VERSION.0;
        let frame = crate::test_support::api_versions_response(0, 1, code, &[(18, 0, 2)]).unwrap();
        let mut decoded = DecodedResponse::decode(ApiKey::API_VERSIONS, 4, &frame).unwrap();
        assert_eq!(decoded.body_version(), 0);
        let body = decoded.body_mut::<ApiVersionsResponse>().unwrap();
        assert_eq!(body.error_code, code);
        assert_eq!(decoded.encode().unwrap(), frame);
    }

    #[test]
    fn responses_the_proxy_does_not_decode_are_refused() {
        let frame = Bytes::from_static(&[0, 0, 0, 1]);
        assert!(matches!(
            DecodedResponse::decode(ApiKey::DESCRIBE_ACLS, 1, &frame),
            Err(ProtocolError::NotDecoded(ApiKey::DESCRIBE_ACLS))
        ));
        assert!(matches!(
            DecodedResponse::decode(ApiKey(999), 1, &frame),
            Err(ProtocolError::UnknownApiKey(ApiKey(999)))
        ));
    }
}
