//! The SASL exchanges that sign one connection in to the broker, over any [`SaslTransport`]:
//! SaslHandshake v1 for the mechanism, then SaslAuthenticate v2 steps — SCRAM ([`scram`]) or
//! one OAUTHBEARER token ([`oauthbearer`]). Each returns the session lifetime the broker
//! granted (KIP-368).

mod oauthbearer;
mod scram;

use std::time::Duration;

use bytes::Bytes;

use super::UpstreamError;
use super::login::Login;
use super::transport::SaslTransport;
use crate::kafka::sasl::{
    decode_sasl_authenticate_response, decode_sasl_handshake_response, sasl_authenticate_request,
    sasl_handshake_request,
};

/// Sign in now with `login`, each exchange bounded by `timeout` (the connect timeout), without
/// the refusal memory: the first login of a connection goes through it
/// ([`super::refusals::RefusalMemory`]), a re-authentication does not.
pub(super) async fn sign_in_now<T: SaslTransport>(
    transport: &mut T,
    addr: &str,
    login: &Login,
    timeout: Duration,
) -> Result<Option<Duration>, UpstreamError> {
    match login {
        Login::Scram(login) => {
            bounded(
                timeout,
                addr,
                &login.pool,
                scram::sign_in(transport, addr, login),
            )
            .await
        }
        Login::OAuthBearer(login) => {
            bounded(
                timeout,
                addr,
                &login.pool,
                oauthbearer::sign_in(transport, addr, login),
            )
            .await
        }
    }
}

/// One sign-in exchange, bounded by the connect timeout (the broker may never answer).
async fn bounded(
    timeout: Duration,
    addr: &str,
    pool: &str,
    exchange: impl std::future::Future<Output = Result<Option<Duration>, UpstreamError>>,
) -> Result<Option<Duration>, UpstreamError> {
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(UpstreamError::Sasl {
            addr: addr.to_string(),
            pool: pool.to_string(),
            reason: format!("no answer within {} ms", timeout.as_millis()),
        }),
    }
}

/// SaslHandshake v1: is `mechanism` enabled on this listener? Shared by every mechanism.
async fn handshake<T: SaslTransport>(
    transport: &mut T,
    mechanism: &'static str,
) -> Result<(), StepError> {
    let request =
        sasl_handshake_request(0, mechanism).map_err(|e| StepError::Failed(e.to_string()))?;
    let frame = transport
        .round_trip(request)
        .await
        .map_err(|e| StepError::Failed(e.to_string()))?;
    let (_, response) =
        decode_sasl_handshake_response(&frame).map_err(|e| StepError::Failed(e.to_string()))?;
    if response.error_code != 0 {
        let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(StepError::Refused(format!(
            "SaslHandshake error {} ({}); the broker offers [{}]",
            response.error_code,
            error_name(response.error_code),
            offered.join(", ")
        )));
    }
    Ok(())
}

/// One SaslAuthenticate round trip.
async fn authenticate_step<T: SaslTransport>(
    transport: &mut T,
    auth_bytes: Bytes,
) -> Result<StepAnswer, StepError> {
    let request =
        sasl_authenticate_request(0, auth_bytes).map_err(|e| StepError::Failed(e.to_string()))?;
    let frame = transport
        .round_trip(request)
        .await
        .map_err(|e| StepError::Failed(e.to_string()))?;
    let (_, response) =
        decode_sasl_authenticate_response(&frame).map_err(|e| StepError::Failed(e.to_string()))?;
    if response.error_code != 0 {
        let message = response
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        return Err(StepError::Refused(format!(
            "SaslAuthenticate error {} ({}){}",
            response.error_code,
            error_name(response.error_code),
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        )));
    }
    Ok(StepAnswer {
        auth_bytes: response.auth_bytes,
        session_lifetime_ms: response.session_lifetime_ms,
    })
}

/// Who signs in where, for the two ways a sign-in fails.
struct SignInParty<'a> {
    addr: &'a str,
    pool: &'a str,
    user: &'a str,
    mechanism: &'static str,
}

impl SignInParty<'_> {
    /// The exchange itself failed (I/O, protocol, timeout): not the broker's verdict.
    fn failed(&self, reason: String) -> UpstreamError {
        UpstreamError::Sasl {
            addr: self.addr.to_string(),
            pool: self.pool.to_string(),
            reason,
        }
    }

    /// The broker refused the pool's credentials (or could not prove it knows them).
    fn refused(&self, reason: String) -> UpstreamError {
        UpstreamError::SaslRefused {
            addr: self.addr.to_string(),
            pool: self.pool.to_string(),
            user: self.user.to_string(),
            mechanism: self.mechanism,
            reason,
        }
    }
}

/// How one SASL round trip failed.
enum StepError {
    Failed(String),
    Refused(String),
}

impl StepError {
    fn into_error(
        self,
        failed: &impl Fn(String) -> UpstreamError,
        refused: &impl Fn(String) -> UpstreamError,
    ) -> UpstreamError {
        match self {
            StepError::Failed(reason) => failed(reason),
            StepError::Refused(reason) => refused(reason),
        }
    }
}

/// What a mechanism needs from one successful SaslAuthenticate answer.
struct StepAnswer {
    auth_bytes: Bytes,
    /// KIP-368: how long the session lasts from now; meaningful on the final step only.
    session_lifetime_ms: i64,
}

/// A broker's `session_lifetime_ms`: zero or negative means the session never expires.
fn session_lifetime(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => "unknown error".to_string(),
    }
}
