//! Which credentials one connection signs in to the broker with: the primary pool's SCRAM
//! user and password, read at connect time, or a token signed for the connection; for the
//! proxy's own connections, its own login (`upstream.proxy_login`).

use bytes::Bytes;

use super::UpstreamError;
use crate::config::{ProxyLogin, UpstreamIdentity};
use crate::oauth::{IssuedToken, TokenIssuer};
use crate::pools::Resolution;
use crate::scram::Mechanism;

/// How one connection signs in to the broker.
pub(super) enum Login {
    Scram(PoolLogin),
    OAuthBearer(BearerLogin),
}

/// A token signed for one connection and the SASL message that carries it. Refusals are not
/// remembered as SCRAM's are: a token costs a signature, not a key derivation on the broker.
pub(super) struct BearerLogin {
    pub(super) pool: String,
    pub(super) token: IssuedToken,
    pub(super) message: Bytes,
}

/// The credentials one connection authenticates with, read at connect time.
pub(super) struct PoolLogin {
    pub(super) pool: String,
    pub(super) user: String,
    pub(super) mechanism: Mechanism,
    pub(super) password: Vec<u8>,
}

impl Login {
    /// The primary pool's credentials with the password read now (a token signed now in
    /// oauthbearer mode, when there is a `token_issuer`), or `None` in `mode: none`.
    pub(super) fn for_primary_pool(
        identity: &UpstreamIdentity,
        token_issuer: Option<&TokenIssuer>,
        resolution: &Resolution,
    ) -> Result<Option<Login>, UpstreamError> {
        if let Some(issuer) = token_issuer {
            return bearer_login(issuer, resolution).map(|l| Some(Login::OAuthBearer(l)));
        }
        let UpstreamIdentity::Scram {
            mechanism,
            credentials,
        } = identity
        else {
            return Ok(None);
        };
        let primary = resolution.primary().ok_or(UpstreamError::NoPool)?;
        let pool = primary.pool_id.clone();
        // A pool created through the admin API after the configuration was loaded can lack
        // credentials; it is refused here like a wrong password.
        let credential = credentials
            .get(&pool)
            .ok_or_else(|| UpstreamError::NoCredentials(pool.clone()))?;
        let password = credential
            .password
            .read()
            .map_err(|reason| UpstreamError::Secret {
                pool: pool.clone(),
                reason,
            })?;
        Ok(Some(Login::Scram(PoolLogin {
            pool,
            user: credential.username.clone(),
            mechanism: *mechanism,
            password,
        })))
    }
}

/// What the proxy's own login is called where a pool's name would be (errors, logs).
pub(super) const OWN_LOGIN: &str = "(upstream.proxy_login)";

impl Login {
    /// Who signs in: the SCRAM user or the token's subject.
    pub(super) fn principal(&self) -> &str {
        match self {
            Login::Scram(scram) => &scram.user,
            Login::OAuthBearer(bearer) => &bearer.token.subject,
        }
    }

    /// The proxy's own login, with the password read now or a token signed now.
    pub(super) fn for_proxy(
        login: &ProxyLogin,
        token_issuer: Option<&TokenIssuer>,
    ) -> Result<Login, UpstreamError> {
        match login {
            ProxyLogin::Scram {
                mechanism,
                username,
                password,
            } => {
                let password = password.read().map_err(|reason| UpstreamError::Secret {
                    pool: OWN_LOGIN.to_string(),
                    reason,
                })?;
                Ok(Login::Scram(PoolLogin {
                    pool: OWN_LOGIN.to_string(),
                    user: username.clone(),
                    mechanism: *mechanism,
                    password,
                }))
            }
            ProxyLogin::OAuthBearer { subject } => {
                let token_error = |reason: String| UpstreamError::Token {
                    pool: OWN_LOGIN.to_string(),
                    reason,
                };
                // The configuration allows this login only in oauthbearer mode, which has one.
                let issuer = token_issuer
                    .ok_or_else(|| token_error("no token issuer (oauthbearer mode)".into()))?;
                let token = issuer
                    .issue_for_subject(subject)
                    .map_err(|e| token_error(e.to_string()))?;
                let message = issuer
                    .sasl_message(&token)
                    .map_err(|e| token_error(e.to_string()))?;
                Ok(Login::OAuthBearer(BearerLogin {
                    pool: OWN_LOGIN.to_string(),
                    token,
                    message: Bytes::from(message),
                }))
            }
        }
    }
}

/// A token for the connection's primary pool and its SASL message.
fn bearer_login(
    issuer: &TokenIssuer,
    resolution: &Resolution,
) -> Result<BearerLogin, UpstreamError> {
    let pool = resolution
        .primary()
        .ok_or(UpstreamError::NoPool)?
        .pool_id
        .clone();
    let token_error = |e: crate::oauth::TokenError| UpstreamError::Token {
        pool: pool.clone(),
        reason: e.to_string(),
    };
    let token = issuer.issue(resolution).map_err(token_error)?;
    let message = issuer.sasl_message(&token).map_err(token_error)?;
    Ok(BearerLogin {
        pool: pool.clone(),
        token,
        message: Bytes::from(message),
    })
}
