//! What carries one SASL request to the broker and its answer back: the raw stream of a fresh
//! connection ([`StreamTransport`]) or a live session (the connection implements
//! [`SaslTransport`] for re-authentication, KIP-368).

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::kafka::{FrameError, FrameReader, response_correlation_id, write_frame};

/// SASL responses are a few hundred bytes; anything near this is not a SASL response.
const MAX_SASL_FRAME: usize = 64 * 1024;

/// Why a SASL request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SaslTransportError {
    #[error("write: {0}")]
    Write(io::Error),
    #[error("read: {0}")]
    Read(FrameError),
    #[error("the broker closed the connection")]
    Closed,
    #[error("answered correlation id {got}, expected {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("malformed SASL request or response: {0}")]
    Protocol(crate::kafka::ProtocolError),
    /// The live session ended (the broker or the client went away) before the answer came.
    #[error("the session ended before the broker answered")]
    SessionEnded,
}

/// One SASL request to the broker and its answer, whatever carries them: the raw stream of a
/// fresh connection (the first login) or a live session (re-authentication, KIP-368). The
/// login code ([`super::sasl`]: SCRAM, OAUTHBEARER and the shared handshake) is written once
/// against this trait.
///
/// The transport owns the correlation ids of its connection, because only it knows which ids
/// are in use there: `request` is a whole request frame (no size prefix) whose correlation id
/// the transport overwrites with its own ([`stamp_correlation_id`]), and the answer returned
/// is checked to carry that id.
pub(crate) trait SaslTransport {
    async fn round_trip(&mut self, request: Bytes) -> Result<Bytes, SaslTransportError>;
}

/// Write `correlation_id` into a request frame: bytes 4..8 in every request header version
/// (api key, api version, correlation id come first).
pub(crate) fn stamp_correlation_id(
    request: &[u8],
    correlation_id: i32,
) -> Result<Bytes, SaslTransportError> {
    let mut out = bytes::BytesMut::from(request);
    let found = out.len().saturating_sub(4).min(4);
    let slot = out.get_mut(4..8).ok_or(SaslTransportError::Protocol(
        crate::kafka::ProtocolError::Truncated {
            what: "request correlation id",
            at: 4,
            needed: 4,
            found,
        },
    ))?;
    slot.copy_from_slice(&correlation_id.to_be_bytes());
    Ok(out.freeze())
}

/// The raw stream of a fresh upstream connection, before any client frame: nothing else is in
/// flight, so any correlation id is free; counting up from 1 keeps broker logs readable.
pub(super) struct StreamTransport<'a, S> {
    stream: &'a mut S,
    next_correlation_id: i32,
}

impl<'a, S> StreamTransport<'a, S> {
    pub(super) fn new(stream: &'a mut S) -> Self {
        Self {
            stream,
            next_correlation_id: 1,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SaslTransport for StreamTransport<'_, S> {
    async fn round_trip(&mut self, request: Bytes) -> Result<Bytes, SaslTransportError> {
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1);
        let request = stamp_correlation_id(&request, id)?;
        write_frame(&mut *self.stream, &request)
            .await
            .map_err(SaslTransportError::Write)?;
        self.stream
            .flush()
            .await
            .map_err(SaslTransportError::Write)?;
        // The broker sends nothing else before answering: the reader cannot take bytes that
        // belong to a later frame.
        let mut reader = FrameReader::new(&mut *self.stream, MAX_SASL_FRAME);
        let frame = match reader.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err(SaslTransportError::Closed),
            Err(e) => return Err(SaslTransportError::Read(e)),
        };
        let got = response_correlation_id(&frame).map_err(SaslTransportError::Protocol)?;
        if got != id {
            return Err(SaslTransportError::Correlation { expected: id, got });
        }
        Ok(frame)
    }
}
