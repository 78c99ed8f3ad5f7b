//! Requests the proxy answers itself, before any other filter sees them.
//!
//! - An ApiVersions request newer than the proxy knows gets the KIP-511 answer (error
//!   UNSUPPORTED_VERSION with the proxy's range), so the client retries with a version the
//!   proxy can decode and narrow.
//! - SaslHandshake and SaslAuthenticate: clients of the mTLS listener authenticate with their
//!   certificate. The request gets the refusal a broker without SASL on the listener gives, and
//!   the session ends once it is written.

use tracing::warn;

use super::{Flow, Request, RequestFilter};
use crate::kafka::ApiKey;
use crate::kafka::header::RequestHeader;
use crate::kafka::versions::{
    proxy_version_range, sasl_refusal_response, unsupported_api_versions_response,
};
use crate::session::end::{ClientFault, SessionEnd};

/// See the module documentation.
pub(crate) struct LocalAnswers;

/// Whether `header` is an ApiVersions request newer than the proxy's table.
pub(crate) fn api_versions_too_new(header: &RequestHeader) -> bool {
    header.api_key == ApiKey::API_VERSIONS
        && proxy_version_range(ApiKey::API_VERSIONS)
            .is_some_and(|(_, max)| header.api_version > max)
}

impl RequestFilter for LocalAnswers {
    fn wants(&self, header: &RequestHeader) -> bool {
        matches!(
            header.api_key,
            ApiKey::API_VERSIONS | ApiKey::SASL_HANDSHAKE | ApiKey::SASL_AUTHENTICATE
        )
    }

    fn on_request(&mut self, request: &mut Request<'_>) -> Result<Flow, SessionEnd> {
        let header = request.header;
        if api_versions_too_new(header) {
            return Ok(Flow::Answer(unsupported_api_versions_response(
                header.correlation_id,
            )));
        }
        if header.api_key == ApiKey::API_VERSIONS {
            return Ok(Flow::Continue);
        }
        warn!(
            api_key = header.api_key.0,
            "client sent SASL on the mTLS listener; it must use security.protocol=SSL \
             and authenticate with its certificate"
        );
        let refusal = sasl_refusal_response(header).map_err(ClientFault::Protocol)?;
        Ok(Flow::AnswerAndClose(
            refusal,
            ClientFault::SaslRefused.into(),
        ))
    }
}
