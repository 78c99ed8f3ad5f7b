//! The broker refused the upstream identity of the client's pool: tell the client in the Kafka
//! protocol rather than closing a socket it would reconnect to for minutes.
//!
//! Clients send ApiVersions first on every connection; its response has an error code, so it
//! is answered with SASL_AUTHENTICATION_FAILED (58). kafka-python raises
//! `SaslAuthenticationFailedError`; librdkafka reports "ApiVersionRequest failed: Broker: SASL
//! Authentication failed". An ApiVersions version newer than the proxy knows gets the KIP-511
//! answer first, so the client retries with one the error can be encoded at. The proxy then
//! waits (up to the handshake timeout) for the client to close: closing right after the
//! answer makes kafka-python drop the answer it has already received and report a network
//! error instead. Any other request closes the connection (it has no generic error response).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::end::{ClientFault, SessionEnd};
use super::pump::{client_went_away, send};
use crate::kafka::ApiKey;
use crate::kafka::frame::{FrameError, FrameReader};
use crate::kafka::header::parse_request_header;
use crate::kafka::versions::{
    sasl_refusal_response, unsupported_api_versions_response, upstream_auth_failed_response,
};
use crate::session::filter::local::api_versions_too_new;

/// Never a long conversation: a few KIP-511 retries and refusals at most.
const MAX_ANSWERS: usize = 8;

/// Answer the client's first requests with the refusal, then let it go.
pub(crate) async fn refuse_upstream_identity<C>(
    client: C,
    max_frame_bytes: usize,
    handshake_timeout: Duration,
) -> Result<(), SessionEnd>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + handshake_timeout;
    let mut client = FrameReader::new(client, max_frame_bytes);
    for _ in 0..MAX_ANSWERS {
        let frame = match tokio::time::timeout_at(deadline, client.read_frame()).await {
            Err(_) => return Err(ClientFault::Idle(handshake_timeout.as_millis()).into()),
            Ok(Err(FrameError::Io(e))) if client_went_away(&e) => return Ok(()),
            Ok(Err(e)) => return Err(ClientFault::Frame(e).into()),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(frame))) => frame,
        };
        let header = parse_request_header(&frame).map_err(ClientFault::Protocol)?;
        let answer = match header.api_key {
            ApiKey::API_VERSIONS if api_versions_too_new(&header) => {
                unsupported_api_versions_response(header.correlation_id)
            }
            ApiKey::API_VERSIONS => {
                upstream_auth_failed_response(&header).map_err(ClientFault::Protocol)?
            }
            ApiKey::SASL_HANDSHAKE | ApiKey::SASL_AUTHENTICATE => {
                sasl_refusal_response(&header).map_err(ClientFault::Protocol)?
            }
            _ => return Ok(()),
        };
        send(client.get_mut(), &answer).await?;
    }
    Ok(())
}
