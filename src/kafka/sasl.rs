//! SASL on both sides of the proxy.
//!
//! - Client side: answers to SASL requests on the mTLS listener, where certificates are the
//!   only credential. Some clients send SaslHandshake whatever ApiVersions said; answering with
//!   the error the client expects (instead of closing the socket) lets it report the
//!   misconfiguration clearly. When the broker refuses a pool's upstream identity, the client's
//!   ApiVersions request is answered with SASL_AUTHENTICATION_FAILED
//!   ([`upstream_auth_failed_response`]).
//! - Upstream side: the SaslHandshake (v1) and SaslAuthenticate (v2) requests the proxy sends
//!   as a pool's broker user, and their responses ([`sasl_handshake_request`],
//!   [`sasl_authenticate_request`], [`decode_sasl_handshake_response`],
//!   [`decode_sasl_authenticate_response`]).

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::{decode_response, encode_request, encode_response};
use super::error::ProtocolError;
use super::error_code::ErrorCode;
use super::header::RequestHeader;

/// What a client that tries SASL on this listener reads in its error.
pub const SASL_REFUSAL_MESSAGE: &str = "this listener authenticates clients by TLS certificate \
     (security.protocol=SSL); SASL is not accepted";

/// An error response to a SaslHandshake (UNSUPPORTED_SASL_MECHANISM, no mechanisms offered) or
/// SaslAuthenticate (ILLEGAL_SASL_STATE with [`SASL_REFUSAL_MESSAGE`]) request, encoded at the
/// request's version behind the matching response header.
pub fn sasl_refusal_response(header: &RequestHeader) -> Result<Bytes, ProtocolError> {
    let version = header.api_version;
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    let check = |key: ApiKey, api: &'static str| {
        let range = key.valid_versions();
        if (range.min..=range.max).contains(&version) {
            Ok(key.response_header_version(version))
        } else {
            Err(ProtocolError::UnsupportedVersion { api, version })
        }
    };
    match header.api_key.known() {
        Some(key @ ApiKey::SaslHandshake) => {
            let header_version = check(key, "SaslHandshake")?;
            let body = SaslHandshakeResponse::default()
                .with_error_code(ErrorCode::UNSUPPORTED_SASL_MECHANISM.into())
                .with_mechanisms(Vec::new());
            encode_response(&response_header, header_version, &body, version)
        }
        Some(key @ ApiKey::SaslAuthenticate) => {
            let header_version = check(key, "SaslAuthenticate")?;
            let body = SaslAuthenticateResponse::default()
                .with_error_code(ErrorCode::ILLEGAL_SASL_STATE.into())
                .with_error_message(Some(StrBytes::from_static_str(SASL_REFUSAL_MESSAGE)));
            encode_response(&response_header, header_version, &body, version)
        }
        _ => Err(ProtocolError::WrongApi {
            api_key: header.api_key,
            expected: "SaslHandshake or SaslAuthenticate",
        }),
    }
}

/// The client id on the proxy's own upstream requests.
const PROXY_CLIENT_ID: &str = "kafka-mtls-proxy";
/// SaslHandshake v1: the SASL exchange follows in SaslAuthenticate requests (KIP-152).
pub const SASL_HANDSHAKE_VERSION: i16 = 1;
/// SaslAuthenticate v2: flexible, with session lifetime (KIP-368).
pub const SASL_AUTHENTICATE_VERSION: i16 = 2;

pub(super) fn proxy_request_header(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> (kafka_protocol::messages::RequestHeader, i16) {
    let header = kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(PROXY_CLIENT_ID)));
    (header, key.request_header_version(version))
}

/// SaslHandshake v1 naming `mechanism`.
pub fn sasl_handshake_request(
    correlation_id: i32,
    mechanism: &'static str,
) -> Result<Bytes, ProtocolError> {
    let (header, hv) = proxy_request_header(
        ApiKey::SaslHandshake,
        SASL_HANDSHAKE_VERSION,
        correlation_id,
    );
    let body = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
    encode_request(&header, hv, &body, SASL_HANDSHAKE_VERSION)
}

/// SaslAuthenticate v2 carrying one SASL message.
pub fn sasl_authenticate_request(
    correlation_id: i32,
    auth_bytes: Bytes,
) -> Result<Bytes, ProtocolError> {
    let (header, hv) = proxy_request_header(
        ApiKey::SaslAuthenticate,
        SASL_AUTHENTICATE_VERSION,
        correlation_id,
    );
    let body = SaslAuthenticateRequest::default().with_auth_bytes(auth_bytes);
    encode_request(&header, hv, &body, SASL_AUTHENTICATE_VERSION)
}

pub fn decode_sasl_handshake_response(
    frame: &Bytes,
) -> Result<(ResponseHeader, SaslHandshakeResponse), ProtocolError> {
    let v = SASL_HANDSHAKE_VERSION;
    decode_response(frame, ApiKey::SaslHandshake.response_header_version(v), v)
}

pub fn decode_sasl_authenticate_response(
    frame: &Bytes,
) -> Result<(ResponseHeader, SaslAuthenticateResponse), ProtocolError> {
    let v = SASL_AUTHENTICATE_VERSION;
    decode_response(
        frame,
        ApiKey::SaslAuthenticate.response_header_version(v),
        v,
    )
}

/// The answer to a client's ApiVersions request when the broker refused the upstream identity
/// of its pool: SASL_AUTHENTICATION_FAILED (58) and no APIs, as an ApiVersions **v0** body
/// behind header v0 whatever the request's version. Clients parse an ApiVersions response
/// that carries an error as v0 (KIP-511; kafka-python fails to decode anything else), so v0
/// is the one encoding every client reads. kafka-python logs `SaslAuthenticationFailedError`;
/// librdkafka reports "ApiVersionRequest failed: Broker: SASL Authentication failed".
pub fn upstream_auth_failed_response(header: &RequestHeader) -> Result<Bytes, ProtocolError> {
    let body = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::SASL_AUTHENTICATION_FAILED.into());
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    encode_response(&response_header, 0, &body, 0)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::kafka::codec::decode_response;

    fn request(api_key: ApiKey, api_version: i16) -> RequestHeader {
        RequestHeader {
            api_key: api_key.into(),
            api_version,
            correlation_id: 99,
            client_id: None,
            header_len: 0,
        }
    }

    #[test]
    fn sasl_handshake_gets_unsupported_mechanism_with_no_mechanisms() {
        for version in 0..=1 {
            let frame = sasl_refusal_response(&request(ApiKey::SaslHandshake, version)).unwrap();
            let (header, body) =
                decode_response::<SaslHandshakeResponse>(&frame, 0, version).unwrap();
            assert_eq!(header.correlation_id, 99);
            assert_eq!(body.error_code, 33);
            assert!(body.mechanisms.is_empty());
        }
    }

    #[test]
    fn sasl_authenticate_gets_illegal_state_with_explanation() {
        for version in 0..=2 {
            let frame = sasl_refusal_response(&request(ApiKey::SaslAuthenticate, version)).unwrap();
            // v2 is flexible: response header v1.
            let header_version = if version >= 2 { 1 } else { 0 };
            let (header, body) =
                decode_response::<SaslAuthenticateResponse>(&frame, header_version, version)
                    .unwrap();
            assert_eq!(header.correlation_id, 99);
            assert_eq!(body.error_code, 34);
            assert_eq!(body.error_message.as_deref(), Some(SASL_REFUSAL_MESSAGE));
        }
    }

    #[test]
    fn unknown_sasl_version_and_other_apis_are_errors() {
        assert!(matches!(
            sasl_refusal_response(&request(ApiKey::SaslAuthenticate, 3)),
            Err(ProtocolError::UnsupportedVersion { version: 3, .. })
        ));
        assert!(matches!(
            sasl_refusal_response(&request(ApiKey::Metadata, 1)),
            Err(ProtocolError::WrongApi {
                api_key: crate::kafka::ApiKey::METADATA,
                ..
            })
        ));
    }

    #[test]
    fn upstream_refusal_is_an_api_versions_v0_error_at_any_version() {
        for version in [0, 3, 4] {
            let frame =
                upstream_auth_failed_response(&request(ApiKey::ApiVersions, version)).unwrap();
            let (header, body) = decode_response::<ApiVersionsResponse>(&frame, 0, 0).unwrap();
            assert_eq!(header.correlation_id, 99);
            assert_eq!(body.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.0);
            assert!(body.api_keys.is_empty());
        }
    }
}
