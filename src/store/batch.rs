//! The store's record batches: the one batch a write produces, and the records a Fetch brings
//! back (the bytes come from the broker: an error here, never a panic).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::client::ClientError;
use crate::kafka::codec::decode_record_batches;

/// The records of a Fetch partition's `records` bytes (as the broker sent them) from `offset`
/// on, control records left out, and the offset to fetch next.
///
/// The bytes come from the broker: whatever they hold is an error here, never a panic. A fetch
/// may end in a partial batch (cut at max bytes): only whole batches are decoded, the rest is
/// fetched again. Compaction can leave empty batches and skip offsets: the batches' ends move
/// the position on even when no record is left in them.
pub fn decode_fetched(records: &Bytes, offset: i64) -> Result<(Vec<Record>, i64), ClientError> {
    let whole = records.slice(..whole_batches(records));
    let mut next = offset.max(batch_end(&whole)?);
    let mut out = Vec::new();
    for r in
        decode_record_batches(&whole).map_err(|e| ClientError::Protocol(format!("Fetch: {e}")))?
    {
        next = next.max(r.offset.checked_add(1).ok_or_else(|| {
            ClientError::Protocol(format!("Fetch: a record at offset {}", r.offset))
        })?);
        if r.offset >= offset && !r.control {
            out.push(r);
        }
    }
    Ok((out, next))
}

/// `records` as one record batch (v2, uncompressed, no producer id).
pub(super) fn encode_batch(records: &[(Vec<u8>, Option<Vec<u8>>)]) -> Result<Bytes, ClientError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch per request (the broker refuses more): the encoder keeps records
            // in one batch while `offset - sequence` is constant. The batch's base sequence
            // is then -1, "none", as a producer without idempotence sends.
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(Bytes::copy_from_slice(k)),
            value: v.as_deref().map(Bytes::copy_from_slice),
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| ClientError::Protocol(format!("Produce: record batch: {e}")))?;
    Ok(batch.freeze())
}

/// The length of the whole record batches at the start of `bytes` (each batch: base offset
/// i64, then its length i32 counting what follows).
fn whole_batches(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(len) = bytes.get(at + 8..at + 12) {
        let len = i32::from_be_bytes([len[0], len[1], len[2], len[3]]);
        let Ok(len) = usize::try_from(len) else { break };
        let end = at + 12 + len;
        if end > bytes.len() {
            break;
        }
        at = end;
    }
    at
}

/// The offset after the last batch in `records` (base offset + last offset delta + 1). Both
/// come from the broker: an end past `i64::MAX` is an error.
fn batch_end(bytes: &[u8]) -> Result<i64, ClientError> {
    let mut at = 0;
    let mut end = 0;
    while let (Some(base), Some(len), Some(delta)) = (
        bytes.get(at..at + 8),
        bytes.get(at + 8..at + 12),
        bytes.get(at + 23..at + 27),
    ) {
        let base = i64::from_be_bytes(base.try_into().unwrap_or([0; 8]));
        let delta = i32::from_be_bytes(delta.try_into().unwrap_or([0; 4]));
        let batch_end = base
            .checked_add(i64::from(delta))
            .and_then(|last| last.checked_add(1))
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "Fetch: a record batch at offset {base} ends past the largest offset"
                ))
            })?;
        end = end.max(batch_end);
        let len = i32::from_be_bytes(len.try_into().unwrap_or([0; 4]));
        let Ok(len) = usize::try_from(len) else { break };
        at += 12 + len;
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn a_write_is_one_record_batch_with_every_record() {
        // The broker refuses a Produce whose partition data holds more than one batch.
        let records = vec![
            (b"ca/a".to_vec(), Some(b"{}".to_vec())),
            (b"pool/a/p".to_vec(), Some(b"{}".to_vec())),
            (b"pool/a/q".to_vec(), None),
        ];
        let mut batch = encode_batch(&records).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut batch.clone()).unwrap();
        assert_eq!(info.len(), 1, "{info:?}");
        assert_eq!(info[0].record_count, 3);
        assert_eq!(info[0].base_sequence, -1);
        assert_eq!(info[0].producer_id, -1);
        assert_eq!(whole_batches(&batch), batch.len());
        assert_eq!(batch_end(&batch).unwrap(), 3);
        let set = RecordBatchDecoder::decode(&mut batch).unwrap();
        let keys: Vec<_> = set.records.iter().map(|r| r.key.clone().unwrap()).collect();
        assert_eq!(keys, [&b"ca/a"[..], b"pool/a/p", b"pool/a/q"]);
        assert!(set.records[2].value.is_none());
    }

    #[test]
    fn a_partial_batch_at_the_end_of_a_fetch_is_left_for_the_next() {
        let batch = encode_batch(&[(b"ca/a".to_vec(), None)]).unwrap();
        let mut two = batch.to_vec();
        two.extend_from_slice(&batch[..batch.len() - 5]);
        assert_eq!(whole_batches(&two), batch.len());
    }

    #[test]
    fn fetched_records_start_at_the_offset_asked_and_move_the_position_past_the_batch() {
        let batch = encode_batch(&[
            (b"ca/a".to_vec(), None),
            (b"ca/b".to_vec(), None),
            (b"ca/c".to_vec(), None),
        ])
        .unwrap();
        let (records, next) = decode_fetched(&batch, 1).unwrap();
        let keys: Vec<_> = records.iter().map(|r| r.key.clone().unwrap()).collect();
        assert_eq!(keys, [&b"ca/b"[..], b"ca/c"]);
        assert_eq!(next, 3);
        // A partial batch only: nothing yet, the position stays.
        assert_eq!(
            decode_fetched(&batch.slice(..batch.len() - 1), 1)
                .unwrap()
                .1,
            1
        );
    }

    #[test]
    fn a_malformed_fetched_batch_is_an_error_not_a_panic() {
        let batch = encode_batch(&[(b"ca/a".to_vec(), None)]).unwrap();
        // The base offset (bytes 0..8) at i64::MAX: the batch would end past the largest
        // offset. This overflowed (a panic in a debug build) before.
        let mut at_the_end = batch.to_vec();
        at_the_end[..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let error = decode_fetched(&Bytes::from(at_the_end), 0).unwrap_err();
        assert!(
            error.to_string().contains("past the largest offset"),
            "{error}"
        );
        // A corrupt batch (its CRC no longer matches) is the decoder's error, not a panic.
        let mut corrupt = batch.to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let error = decode_fetched(&Bytes::from(corrupt), 0).unwrap_err();
        assert!(error.to_string().contains("RecordBatch"), "{error}");
    }
}
