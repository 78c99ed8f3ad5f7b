//! A hook for the fuzz targets (`fuzz/`): the SASL sign-in against a scripted broker, so that
//! the broker's answers reach the same decoding the proxy runs on a real connection. Not part
//! of the proxy's API.

use std::time::Duration;

use bytes::Bytes;

use super::UpstreamError;
use super::login::{Login, PoolLogin};
use super::sasl::sign_in_now;
use super::transport::{SaslTransport, SaslTransportError};
use crate::scram::Mechanism;

/// Answers each request with the next of `answers` (whole response frames, header and body,
/// without the size prefix); a broker that has run out of answers has closed the connection.
struct Scripted {
    answers: std::vec::IntoIter<Bytes>,
}

impl SaslTransport for Scripted {
    async fn round_trip(&mut self, _request: Bytes) -> Result<Bytes, SaslTransportError> {
        self.answers.next().ok_or(SaslTransportError::Closed)
    }
}

/// Signs in as SCRAM user `fuzz` (password `pencil`) with `mechanism`, the broker answering
/// SaslHandshake and each SaslAuthenticate with the next of `answers`. Needs a tokio runtime
/// with time enabled (the exchange is bounded by a timeout, as on a real connection).
#[doc(hidden)]
pub async fn scram_sign_in(
    mechanism: Mechanism,
    answers: Vec<Bytes>,
) -> Result<Option<Duration>, UpstreamError> {
    let login = Login::Scram(PoolLogin {
        pool: "pool-fuzz".to_owned(),
        user: "fuzz".to_owned(),
        mechanism,
        password: b"pencil".to_vec(),
    });
    let mut transport = Scripted {
        answers: answers.into_iter(),
    };
    sign_in_now(
        &mut transport,
        "broker.fuzz:9092",
        &login,
        Duration::from_secs(60),
    )
    .await
}
