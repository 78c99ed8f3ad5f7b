//! SCRAM-SHA-256/512 as the pool's broker user (RFC 5802, in SaslAuthenticate v2).

use std::time::Duration;

use bytes::Bytes;

use super::{SignInParty, authenticate_step, handshake, session_lifetime};
use crate::scram::{ScramClient, ScramError, new_nonce};
use crate::upstream::UpstreamError;
use crate::upstream::login::PoolLogin;
use crate::upstream::transport::SaslTransport;

/// The SCRAM mechanism: handshake, client-first, client-final, verify server-final.
/// Returns the session lifetime of the final SaslAuthenticate answer.
pub(super) async fn sign_in<T: SaslTransport>(
    transport: &mut T,
    addr: &str,
    login: &PoolLogin,
) -> Result<Option<Duration>, UpstreamError> {
    let mechanism = login.mechanism.name();
    let who = SignInParty {
        addr,
        pool: &login.pool,
        user: &login.user,
        mechanism,
    };
    let (failed, refused) = (|r| who.failed(r), |r| who.refused(r));
    let scram_error = |e: ScramError| match e {
        ScramError::ServerError(_) | ScramError::ServerSignature | ScramError::Username(_) => {
            refused(e.to_string())
        }
        _ => failed(e.to_string()),
    };

    handshake(transport, mechanism)
        .await
        .map_err(|step| step.into_error(&failed, &refused))?;

    let mut client =
        ScramClient::new(login.mechanism, &login.user, new_nonce()).map_err(scram_error)?;
    let server_first = authenticate_step(transport, Bytes::from(client.client_first()))
        .await
        .map_err(|step| step.into_error(&failed, &refused))?;
    let client_final = client
        .client_final(&server_first.auth_bytes, &login.password)
        .map_err(scram_error)?;
    let server_final = authenticate_step(transport, Bytes::from(client_final))
        .await
        .map_err(|step| step.into_error(&failed, &refused))?;
    client
        .verify_server_final(&server_final.auth_bytes)
        .map_err(scram_error)?;
    tracing::debug!(
        pool = %login.pool,
        user = %login.user,
        mechanism,
        upstream = %addr,
        session_lifetime_ms = server_final.session_lifetime_ms,
        "authenticated to the broker as the pool's upstream identity"
    );
    Ok(session_lifetime(server_final.session_lifetime_ms))
}
