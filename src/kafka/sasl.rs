//! Answers to SASL requests on the mTLS listener, where certificates are the only credential.
//!
//! Some clients send SaslHandshake whatever ApiVersions said; answering with the error the
//! client expects (instead of closing the socket) lets it report the misconfiguration clearly.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ResponseHeader, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::encode_response;
use super::error::ProtocolError;
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
    match ApiKey::try_from(header.api_key) {
        Ok(key @ ApiKey::SaslHandshake) => {
            let header_version = check(key, "SaslHandshake")?;
            let body = SaslHandshakeResponse::default()
                .with_error_code(ResponseError::UnsupportedSaslMechanism.code())
                .with_mechanisms(Vec::new());
            encode_response(&response_header, header_version, &body, version)
        }
        Ok(key @ ApiKey::SaslAuthenticate) => {
            let header_version = check(key, "SaslAuthenticate")?;
            let body = SaslAuthenticateResponse::default()
                .with_error_code(ResponseError::IllegalSaslState.code())
                .with_error_message(Some(StrBytes::from_static_str(SASL_REFUSAL_MESSAGE)));
            encode_response(&response_header, header_version, &body, version)
        }
        _ => Err(ProtocolError::WrongApi {
            api_key: header.api_key,
            expected: "SaslHandshake or SaslAuthenticate",
        }),
    }
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
            api_key: api_key as i16,
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
            Err(ProtocolError::WrongApi { api_key: 3, .. })
        ));
    }
}
