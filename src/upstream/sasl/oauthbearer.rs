//! OAUTHBEARER with a token the proxy signed for the connection (RFC 7628, KIP-255).

use std::time::Duration;

use bytes::Bytes;

use super::{SignInParty, StepError, authenticate_step, handshake, session_lifetime};
use crate::oauth::sasl_message::ERROR_ACKNOWLEDGEMENT;
use crate::upstream::UpstreamError;
use crate::upstream::login::BearerLogin;
use crate::upstream::transport::SaslTransport;

/// How much of a broker's OAUTHBEARER error report goes into the refusal reason.
const MAX_OAUTH_ERROR_REPORT: usize = 512;

/// SaslHandshake v1 `OAUTHBEARER`, then the token in one SaslAuthenticate v2 (RFC 7628).
/// A broker that refuses the token answers with an error report instead of an empty
/// message; the client acknowledges it with `\x01` and the broker then fails the exchange
/// with an error code (§3.2.3). Either way it is [`UpstreamError::SaslRefused`].
pub(super) async fn sign_in<T: SaslTransport>(
    transport: &mut T,
    addr: &str,
    login: &BearerLogin,
) -> Result<Option<Duration>, UpstreamError> {
    let mechanism = crate::oauth::MECHANISM;
    let who = SignInParty {
        addr,
        pool: &login.pool,
        user: &login.token.subject,
        mechanism,
    };
    let (failed, refused) = (|r| who.failed(r), |r| who.refused(r));
    handshake(transport, mechanism)
        .await
        .map_err(|step| step.into_error(&failed, &refused))?;
    let answer = authenticate_step(transport, login.message.clone())
        .await
        .map_err(|step| step.into_error(&failed, &refused))?;
    let report = answer.auth_bytes;
    if report.is_empty() {
        tracing::debug!(
            pool = %login.pool,
            kid = %login.token.kid,
            upstream = %addr,
            session_lifetime_ms = answer.session_lifetime_ms,
            "authenticated to the broker with a token for the pool"
        );
        return Ok(session_lifetime(answer.session_lifetime_ms));
    }
    let report =
        String::from_utf8_lossy(&report[..report.len().min(MAX_OAUTH_ERROR_REPORT)]).into_owned();
    let outcome =
        match authenticate_step(transport, Bytes::from_static(ERROR_ACKNOWLEDGEMENT)).await {
            Err(StepError::Refused(reason) | StepError::Failed(reason)) => reason,
            Ok(_) => "and then accepted the error acknowledgement".to_string(),
        };
    Err(refused(format!("the broker reported {report}; {outcome}")))
}
