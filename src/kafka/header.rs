//! Request and response headers, parsed by hand with bounds checks.
//!
//! kafka-protocol's `decode_request_header_from_buffer` panics on frames shorter than 4 bytes and
//! refuses unknown api keys; the proxy must survive the first and forward the second, so it reads
//! the few header fields itself and never hands raw peer bytes to that function.

use super::api_key::ApiKey;
pub use super::error::ProtocolError;
use super::wire::Reader;

/// The fields of a request header the proxy routes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub correlation_id: i32,
    /// `None` when the client sent a null client id (or header v0, which has none).
    pub client_id: Option<String>,
    /// Bytes before the body: the body starts at `frame[header_len..]`.
    pub header_len: usize,
}

/// Request header version 1 (client id) — used for api keys kafka-protocol does not know.
const HEADER_V1: i16 = 1;

/// The fields every request header starts with: api key (2), api version (2), correlation id (4).
const REQUEST_HEADER_MIN: usize = 8;

/// A response header starts with its correlation id.
const RESPONSE_HEADER_MIN: usize = 4;

/// Parses a request header (v0, v1, or flexible v2 with tagged fields), choosing the version by
/// api key and api version as Kafka does.
///
/// An api key kafka-protocol does not know is not an error: its v1 prefix (api key, version,
/// correlation id, client id) is parsed and `header_len` covers just that, so the frame can be
/// forwarded opaquely.
pub fn parse_request_header(frame: &[u8]) -> Result<RequestHeader, ProtocolError> {
    // Kafka's framing allows a size prefix of 0 (the frame reader hands it over), but no
    // request fits in it: say so, rather than which field it lacks first.
    if frame.is_empty() {
        return Err(ProtocolError::EmptyFrame {
            message: "request",
            header: REQUEST_HEADER_MIN,
        });
    }
    let mut r = Reader::new(frame);
    let api_key = ApiKey(r.i16("request api key")?);
    let api_version = r.i16("request api version")?;
    let correlation_id = r.i32("request correlation id")?;
    let header_version = api_key
        .known()
        .map(|key| key.request_header_version(api_version))
        .unwrap_or(HEADER_V1);
    let client_id = if header_version >= 1 {
        r.nullable_string("request client id")?
    } else {
        None
    };
    if header_version >= 2 {
        r.skip_tagged_fields("request header tagged fields")?;
    }
    Ok(RequestHeader {
        api_key,
        api_version,
        correlation_id,
        client_id,
        header_len: r.position(),
    })
}

/// The correlation id of a response: its first four bytes, in every response header version.
pub fn response_correlation_id(frame: &[u8]) -> Result<i32, ProtocolError> {
    if frame.is_empty() {
        return Err(ProtocolError::EmptyFrame {
            message: "response",
            header: RESPONSE_HEADER_MIN,
        });
    }
    Reader::new(frame).i32("response correlation id")
}

/// Reads `acks` from a Produce request without decoding its records (which may be megabytes).
///
/// The proxy needs it because `acks=0` requests get no response: they must never wait in the
/// correlation queue.
pub fn produce_acks(frame: &[u8], header: &RequestHeader) -> Result<i16, ProtocolError> {
    if header.api_key != ApiKey::PRODUCE {
        return Err(ProtocolError::WrongApi {
            api_key: header.api_key,
            expected: "Produce",
        });
    }
    let body = frame
        .get(header.header_len..)
        .ok_or_else(|| ProtocolError::Truncated {
            what: "produce request body",
            at: frame.len(),
            needed: header.header_len.saturating_sub(frame.len()),
            found: 0,
        })?;
    let mut r = Reader::new(body);
    match header.api_version {
        v if v < 0 => {
            return Err(ProtocolError::Malformed(format!(
                "negative Produce version {v}"
            )));
        }
        // v0-v2: acks is the first field.
        0..=2 => {}
        // v3+: transactional_id comes first; flexible (compact) from v9.
        3..=8 => r.skip_nullable_string("produce transactional id")?,
        _ => r.skip_compact_nullable_string("produce transactional id")?,
    }
    r.i16("produce acks")
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::messages::{ProduceRequest, RequestHeader as KpHeader, TransactionalId};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn encode_request(key: ApiKey, version: i16, client_id: Option<&str>, body: &[u8]) -> Vec<u8> {
        let header = KpHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(client_id.map(|s| StrBytes::from_string(s.to_owned())));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        buf.extend_from_slice(body);
        buf.to_vec()
    }

    #[test]
    fn parses_header_v1() {
        // Metadata v4 uses header v1.
        let frame = encode_request(ApiKey::Metadata, 4, Some("client-a"), b"BODY");
        let h = parse_request_header(&frame).unwrap();
        assert_eq!(h.api_key, super::ApiKey::METADATA);
        assert_eq!(h.api_version, 4);
        assert_eq!(h.correlation_id, 42);
        assert_eq!(h.client_id.as_deref(), Some("client-a"));
        assert_eq!(&frame[h.header_len..], b"BODY");
    }

    #[test]
    fn parses_header_v2_with_tagged_fields() {
        // Metadata v12 is flexible: header v2, whose tagged-field section must be skipped.
        let header = KpHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("c")))
            .with_unknown_tagged_field(5, bytes::Bytes::from_static(b"xyz"));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, 2).unwrap();
        buf.extend_from_slice(b"BODY");
        let h = parse_request_header(&buf).unwrap();
        assert_eq!(h.correlation_id, 7);
        assert_eq!(h.client_id.as_deref(), Some("c"));
        assert_eq!(&buf[h.header_len..], b"BODY");
    }

    #[test]
    fn parses_null_client_id() {
        let frame = encode_request(ApiKey::ApiVersions, 3, None, b"");
        let h = parse_request_header(&frame).unwrap();
        assert_eq!(h.client_id, None);
        assert_eq!(h.header_len, frame.len());
    }

    #[test]
    fn unknown_api_key_parses_v1_prefix_for_opaque_forwarding() {
        let mut frame = Vec::new();
        frame.extend(9999i16.to_be_bytes());
        frame.extend(3i16.to_be_bytes());
        frame.extend(77i32.to_be_bytes());
        frame.extend(2i16.to_be_bytes());
        frame.extend(b"id");
        frame.extend(b"rest-of-frame");
        let h = parse_request_header(&frame).unwrap();
        assert_eq!(h.api_key, super::ApiKey(9999));
        assert_eq!(h.correlation_id, 77);
        assert_eq!(h.client_id.as_deref(), Some("id"));
        assert_eq!(&frame[h.header_len..], b"rest-of-frame");
    }

    #[test]
    fn every_truncation_of_a_header_is_an_error_not_a_panic() {
        let v1 = encode_request(ApiKey::Metadata, 4, Some("client-a"), b"");
        let header = KpHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_client_id(Some(StrBytes::from_static_str("client-b")))
            .with_unknown_tagged_field(1, bytes::Bytes::from_static(b"tag"));
        let mut v2 = BytesMut::new();
        header.encode(&mut v2, 2).unwrap();
        for full in [v1, v2.to_vec()] {
            assert!(parse_request_header(&full).is_ok());
            for len in 0..full.len() {
                assert!(
                    parse_request_header(&full[..len]).is_err(),
                    "prefix of {len} bytes parsed"
                );
            }
        }
        for len in 0..4 {
            assert!(response_correlation_id(&[0u8; 4][..len]).is_err());
        }
    }

    #[test]
    fn an_empty_frame_is_reported_as_empty_not_as_a_missing_api_key() {
        let e = parse_request_header(&[]).unwrap_err();
        assert!(
            matches!(
                e,
                ProtocolError::EmptyFrame {
                    message: "request",
                    header: 8
                }
            ),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "empty frame: size prefix 0 (a request needs at least its 8-byte header)"
        );
        assert_eq!(
            response_correlation_id(&[]).unwrap_err().to_string(),
            "empty frame: size prefix 0 (a response needs at least its 4-byte header)"
        );
    }

    #[test]
    fn a_truncated_header_field_names_the_field_where_it_starts_and_what_came() {
        // Api key, then one byte of the api version.
        assert_eq!(
            parse_request_header(&[0, 3, 0]).unwrap_err().to_string(),
            "frame truncated while reading request api version: needed 2 byte(s) at offset 2, \
             found 1"
        );
        // Api key and version, then half the correlation id.
        assert_eq!(
            parse_request_header(&[0, 3, 0, 12, 0, 0])
                .unwrap_err()
                .to_string(),
            "frame truncated while reading request correlation id: needed 4 byte(s) at offset \
             4, found 2"
        );
        // A client id announced longer than the frame.
        let mut frame = vec![0, 3, 0, 4, 0, 0, 0, 9];
        frame.extend(30_000i16.to_be_bytes());
        frame.extend(b"short");
        assert_eq!(
            parse_request_header(&frame).unwrap_err().to_string(),
            "frame truncated while reading request client id: needed 30000 byte(s) at offset \
             10, found 5"
        );
        assert_eq!(
            response_correlation_id(&[0, 0, 1]).unwrap_err().to_string(),
            "frame truncated while reading response correlation id: needed 4 byte(s) at \
             offset 0, found 3"
        );
    }

    #[test]
    fn response_correlation_id_reads_first_four_bytes() {
        assert_eq!(response_correlation_id(&[0, 0, 1, 2, 99]).unwrap(), 258);
    }

    fn produce_frame(version: i16, acks: i16, transactional_id: Option<&str>) -> Vec<u8> {
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_transactional_id(
                transactional_id.map(|s| TransactionalId(StrBytes::from_string(s.to_owned()))),
            );
        let mut body = BytesMut::new();
        req.encode(&mut body, version).unwrap();
        encode_request(ApiKey::Produce, version, Some("producer"), &body)
    }

    #[test]
    fn produce_acks_reads_v3_v7_v9_with_and_without_transactional_id() {
        for version in [3, 7, 9, 13] {
            for acks in [0, 1, -1] {
                for txn in [None, Some("txn-1")] {
                    let frame = produce_frame(version, acks, txn);
                    let h = parse_request_header(&frame).unwrap();
                    assert_eq!(
                        produce_acks(&frame, &h).unwrap(),
                        acks,
                        "v{version} acks={acks} txn={txn:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn produce_acks_reads_v0_to_v2_first_field() {
        // kafka-protocol no longer encodes Produce v0-v2 (Kafka 4 removed them), but older
        // brokers still accept them: acks is the first body field.
        for version in 0..=2 {
            let mut body = Vec::new();
            body.extend(0i16.to_be_bytes());
            body.extend(1000i32.to_be_bytes());
            let frame = encode_request(ApiKey::Produce, version, Some("p"), &body);
            let h = parse_request_header(&frame).unwrap();
            assert_eq!(produce_acks(&frame, &h).unwrap(), 0);
        }
    }

    #[test]
    fn produce_acks_on_truncated_body_is_an_error() {
        let frame = produce_frame(9, 0, Some("txn"));
        let h = parse_request_header(&frame).unwrap();
        for len in h.header_len..h.header_len + 6 {
            assert!(produce_acks(&frame[..len], &h).is_err());
        }
        // A header claiming more bytes than the frame has.
        let bogus = RequestHeader {
            header_len: frame.len() + 10,
            ..h
        };
        assert!(produce_acks(&frame, &bogus).is_err());
    }

    #[test]
    fn produce_acks_refuses_other_apis() {
        let frame = encode_request(ApiKey::Metadata, 4, None, b"");
        let h = parse_request_header(&frame).unwrap();
        assert!(matches!(
            produce_acks(&frame, &h),
            Err(ProtocolError::WrongApi {
                api_key: super::ApiKey::METADATA,
                ..
            })
        ));
    }
}
