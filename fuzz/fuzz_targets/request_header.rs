//! Client bytes through the request header parser and what the proxy derives from a header
//! before the body: Produce `acks`, and the answers it gives itself (SASL refusal, the refusal
//! of a pool the broker did not accept, the KIP-511 answer).
//!
//! Input: one request frame (no size prefix). What must hold: no panic, the header never claims
//! more bytes than the frame has, and the answers the proxy builds from it carry its
//! correlation id.

#![no_main]

use kafka_mtls_proxy::kafka::sasl::upstream_auth_failed_response;
use kafka_mtls_proxy::kafka::{
    ApiKey, parse_request_header, produce_acks, response_correlation_id, sasl_refusal_response,
    unsupported_api_versions_response,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    // The same bytes read as a response: the correlation id is all the proxy reads first.
    let _ = response_correlation_id(frame);
    let Ok(header) = parse_request_header(frame) else {
        return;
    };
    assert!(header.header_len <= frame.len());
    if header.api_key == ApiKey::PRODUCE {
        let _ = produce_acks(frame, &header);
    }
    for answer in [
        sasl_refusal_response(&header),
        upstream_auth_failed_response(&header),
    ] {
        kafka_mtls_proxy_fuzz::assert_no_caught_panic(&answer);
        if let Ok(answer) = answer {
            assert_eq!(
                response_correlation_id(&answer).ok(),
                Some(header.correlation_id)
            );
        }
    }
    let answer = unsupported_api_versions_response(header.correlation_id);
    assert_eq!(
        response_correlation_id(&answer).ok(),
        Some(header.correlation_id)
    );
});
