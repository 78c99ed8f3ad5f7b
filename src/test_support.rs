//! Fixtures shared by unit tests of several modules: deterministic randomness for the
//! hostile-input loops, and a broker's ApiVersions answer.

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsResponse, ResponseHeader};

use crate::kafka::codec::encode_response;

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
