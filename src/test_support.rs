//! Fixtures shared by unit tests of several modules: deterministic randomness for the
//! hostile-input loops, wire frames as a client or a broker sends them (the harness of every
//! test that feeds frames to a filter and reads what comes out), and a broker's ApiVersions
//! answer.

#![allow(
    clippy::unwrap_used,
    reason = "a fixture that cannot be built is a failed test"
)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::kafka::codec::{decode_response, encode_response};
use crate::kafka::parse_request_header;

/// xorshift64*: deterministic, dependency-free randomness, so a failing input repeats.
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Overwrites one to four random bytes of `bytes`, mostly with 0xff, 0x7f or 0x80: they
    /// turn lengths and counts into hostile ones.
    pub(crate) fn mutate(&mut self, bytes: &mut [u8]) {
        for _ in 0..=self.below(4) {
            let i = self.below(bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b = match self.below(4) {
                    0 => 0xff,
                    1 => 0x7f,
                    2 => 0x80,
                    _ => self.next_u64() as u8,
                };
            }
        }
    }
}

/// A broker's ApiVersions answer at `version` (header v0, as ApiVersions answers always are)
/// listing `apis` as (api key, min, max).
pub(crate) fn api_versions_response(
    version: i16,
    correlation_id: i32,
    error_code: i16,
    apis: &[(i16, i16, i16)],
) -> Result<Bytes, crate::kafka::ProtocolError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            apis.iter()
                .map(|&(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect(),
        );
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_response(&header, 0, &body, version)
}

/// A `StrBytes` (names, ids, keys in message bodies) from a `&str`.
pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A client's request frame (no size prefix): the request header of the version Kafka uses for
/// `key` at `version`, then `body`; with the header as the proxy parses it.
pub(crate) fn request_frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &T,
) -> (crate::kafka::RequestHeader, Bytes) {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(sb(client_id)));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let frame = buf.freeze();
    (parse_request_header(&frame).unwrap(), frame)
}

/// A broker's response frame (no size prefix) to a request of `key` at `version`: the response
/// header that api key and version use, then `body`.
pub(crate) fn response_frame<R: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Bytes {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_response(&header, key.response_header_version(version), body, version).unwrap()
}

/// Decodes a response frame of `key` at `version` (as [`response_frame`] lays it out).
pub(crate) fn decode_response_frame<R: Decodable>(
    key: ApiKey,
    version: i16,
    frame: &Bytes,
) -> (ResponseHeader, R) {
    decode_response::<R>(frame, key.response_header_version(version), version).unwrap()
}
