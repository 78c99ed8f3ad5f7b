//! The only place response bodies meet kafka-protocol: decode with the crate (behind
//! `catch_unwind`), encode back, and nothing else.

use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::{Decodable, Encodable};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use super::error::ProtocolError;

/// A short name for a kafka-protocol message type, for error messages
/// (`kafka_protocol::messages::metadata_response::MetadataResponse` → `MetadataResponse`).
pub(crate) fn type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// Runs a kafka-protocol decoder on peer bytes. Its decoders return errors for malformed input,
/// but the proxy cannot audit every generated line: a panic becomes an error for this frame
/// instead of unwinding through the connection task.
fn guarded<T>(
    api: &'static str,
    version: i16,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> Result<T, ProtocolError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ProtocolError::Decode {
            api,
            version,
            reason: format!("{e:#}"),
        }),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ProtocolError::Decode {
                api,
                version,
                reason: format!("decoder panicked: {what}"),
            })
        }
    }
}

/// Decodes a whole response frame: header (of `header_version`), then a `T` body at `version`.
/// Trailing bytes are refused: re-encoding would silently drop them, and they mean the frame is
/// not what the proxy thinks it is.
pub(crate) fn decode_response<T: Decodable>(
    frame: &Bytes,
    header_version: i16,
    version: i16,
) -> Result<(ResponseHeader, T), ProtocolError> {
    let api = type_name::<T>();
    // Cloning `Bytes` is a reference-count bump; strings and records decode as slices of it.
    let mut buf = frame.clone();
    let header = guarded("ResponseHeader", header_version, || {
        ResponseHeader::decode(&mut buf, header_version)
    })?;
    let body = guarded(api, version, || T::decode(&mut buf, version))?;
    if !buf.is_empty() {
        return Err(ProtocolError::Malformed(format!(
            "{api} version {version}: {} trailing bytes after the body",
            buf.len()
        )));
    }
    Ok((header, body))
}

/// Decodes a request body (after a header of `header_len` bytes, parsed by
/// [`super::header::parse_request_header`]) at `version`, behind the same `catch_unwind` guard as
/// [`decode_response`].
///
/// Unlike responses, trailing bytes are tolerated: Kafka brokers ignore them (librdkafka 2.x
/// sends Metadata v12 requests with 3 bytes past the schema), and the proxy forwards the
/// client's frame unchanged whenever nothing is denied, so refusing them would break clients
/// that work against a broker.
pub(crate) fn decode_request_body<T: Decodable>(
    frame: &Bytes,
    header_len: usize,
    version: i16,
) -> Result<T, ProtocolError> {
    let api = type_name::<T>();
    if header_len > frame.len() {
        return Err(ProtocolError::Malformed(format!(
            "{api}: header longer than the frame"
        )));
    }
    let mut buf = frame.slice(header_len..);
    guarded(api, version, || T::decode(&mut buf, version))
}

/// Re-encodes a request body behind the client's own header bytes (`frame[..header_len]`),
/// so the correlation id, client id and tagged header fields stay exactly as sent.
pub(crate) fn reencode_request_body<T: Encodable>(
    frame: &Bytes,
    header_len: usize,
    body: &T,
    version: i16,
) -> Result<Bytes, ProtocolError> {
    let api = type_name::<T>();
    let header = frame
        .get(..header_len)
        .ok_or_else(|| ProtocolError::Malformed(format!("{api}: header longer than the frame")))?;
    let size = body
        .compute_size(version)
        .map_err(|e| ProtocolError::Encode {
            api,
            version,
            reason: format!("{e:#}"),
        })?;
    let mut out = BytesMut::with_capacity(header_len.saturating_add(size));
    out.extend_from_slice(header);
    body.encode(&mut out, version)
        .map_err(|e| ProtocolError::Encode {
            api,
            version,
            reason: format!("{e:#}"),
        })?;
    Ok(out.freeze())
}

/// Decodes the record batches in `records` (a Fetch partition's `records`, whole batches), behind
/// the same `catch_unwind` guard as the messages: a malformed batch is an error, never a panic.
pub(crate) fn decode_record_batches(records: &Bytes) -> Result<Vec<Record>, ProtocolError> {
    let mut buf = records.clone();
    let mut out = Vec::new();
    while !buf.is_empty() {
        let set = guarded("RecordBatch", 2, || RecordBatchDecoder::decode(&mut buf))?;
        out.extend(set.records);
    }
    Ok(out)
}

/// Encodes a response header and body into one frame (without the size prefix).
pub(crate) fn encode_response<T: Encodable>(
    header: &ResponseHeader,
    header_version: i16,
    body: &T,
    version: i16,
) -> Result<Bytes, ProtocolError> {
    let api = type_name::<T>();
    let encode_err = |api, version, e: anyhow::Error| ProtocolError::Encode {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let header_size = header
        .compute_size(header_version)
        .map_err(|e| encode_err("ResponseHeader", header_version, e))?;
    let body_size = body
        .compute_size(version)
        .map_err(|e| encode_err(api, version, e))?;
    let mut out = BytesMut::with_capacity(header_size.saturating_add(body_size));
    header
        .encode(&mut out, header_version)
        .map_err(|e| encode_err("ResponseHeader", header_version, e))?;
    body.encode(&mut out, version)
        .map_err(|e| encode_err(api, version, e))?;
    Ok(out.freeze())
}

/// Encodes a request the proxy sends itself (header of `header_version`, body at `version`)
/// into one frame (without the size prefix).
pub(crate) fn encode_request<T: Encodable>(
    header: &kafka_protocol::messages::RequestHeader,
    header_version: i16,
    body: &T,
    version: i16,
) -> Result<Bytes, ProtocolError> {
    let api = type_name::<T>();
    let encode_err = |api, version, e: anyhow::Error| ProtocolError::Encode {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let mut out = BytesMut::new();
    header
        .encode(&mut out, header_version)
        .map_err(|e| encode_err("RequestHeader", header_version, e))?;
    body.encode(&mut out, version)
        .map_err(|e| encode_err(api, version, e))?;
    Ok(out.freeze())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use kafka_protocol::messages::MetadataResponse;

    #[test]
    fn type_name_is_the_last_path_segment() {
        assert_eq!(type_name::<MetadataResponse>(), "MetadataResponse");
    }

    #[test]
    fn a_panicking_decoder_becomes_a_decode_error() {
        let result: Result<(), _> = guarded("Test", 1, || panic!("boom"));
        match result {
            Err(ProtocolError::Decode { reason, .. }) => assert!(reason.contains("boom")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let header = ResponseHeader::default().with_correlation_id(1);
        let mut frame = encode_response(&header, 0, &MetadataResponse::default(), 1)
            .unwrap()
            .to_vec();
        frame.push(0);
        let frame = Bytes::from(frame);
        assert!(matches!(
            decode_response::<MetadataResponse>(&frame, 0, 1),
            Err(ProtocolError::Malformed(_))
        ));
    }
}
