//! The produce-throughput figure: pipelined Produce requests, one connection per partition.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, ensure};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::args::Args;
use crate::client::{CORRELATION_OFFSET, KafkaConn, decode_response, request_frame, topic_name};
use crate::measure::{CpuUsed, Figure, Sample, WorkerOutcome, report_failures};
use crate::path::Endpoint;

/// Records per Produce request and value size: a batch of ~16 KiB, Kafka's default `batch.size`.
pub const RECORDS_PER_BATCH: usize = 16;
pub const VALUE_BYTES: usize = 1000;
/// Upper bound, whatever the duration: produce requests per connection per segment.
const MAX_PRODUCE_REQUESTS: u64 = 1_000_000;

/// Failures a produce worker tolerates in one measurement before it gives up (each one is
/// counted and reported; the path is then plainly broken).
pub const MAX_PRODUCE_FAILURES: u64 = 50;

/// A produce connection, ready: connected, ApiVersions done (as every client does first).
pub async fn produce_connection(ep: &Endpoint, partition: usize) -> Result<KafkaConn> {
    let leader = ep
        .leaders
        .get(partition)
        .ok_or_else(|| anyhow!("no leader for partition {partition}"))?;
    let mut conn = KafkaConn::connect(leader.addr, leader.tls.as_ref()).await?;
    conn.api_versions().await?;
    Ok(conn)
}

pub async fn measure_produce(
    ep: &Arc<Endpoint>,
    args: &Args,
    duration: Duration,
) -> Result<Sample> {
    let batch = record_batch()?;
    let batch_len = batch.len();
    let partitions = args.connections.min(ep.leaders.len());
    // Connect (and negotiate) before the clock starts; a connection that fails here is retried
    // a few times (and counted).
    let mut setup = WorkerOutcome::default();
    let mut conns = Vec::new();
    for partition in 0..partitions {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(&ep.topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(i32::try_from(partition)?)
                            .with_records(Some(batch.clone())),
                    ]),
            ]);
        let template = request_frame(ApiKey::Produce, ep.versions.produce, 0, &request)?;
        let mut conn = None;
        for _ in 0..5 {
            match produce_connection(ep, partition).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => setup.fail(e),
            }
        }
        let conn = conn.ok_or_else(|| {
            anyhow!(
                "{}: cannot open a produce connection: {:?}",
                ep.kind.name(),
                setup.first_failure
            )
        })?;
        conns.push((partition, conn, template));
    }
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(partition, conn, template)| {
            tokio::spawn(produce_worker(
                ep.clone(),
                partition,
                conn,
                template,
                args.in_flight,
                deadline,
            ))
        })
        .collect();
    let mut outcome = setup;
    for t in tasks {
        outcome.merge(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    report_failures(ep.kind, Figure::Produce, &outcome);
    let mb = outcome.done as f64 * batch_len as f64 / 1e6;
    Ok(Sample {
        rate: mb / elapsed,
        secondary: (outcome.done * RECORDS_PER_BATCH as u64) as f64 / elapsed,
        work: mb,
        errors: outcome.failures,
        cpu: CpuUsed::default(),
    })
}

/// Keep `in_flight` Produce requests outstanding on one partition until the deadline, like a
/// client: a connection that fails is counted, and replaced (requests in flight on it are lost,
/// not counted).
pub async fn produce_worker(
    ep: Arc<Endpoint>,
    partition: usize,
    conn: KafkaConn,
    mut frame: BytesMut,
    in_flight: usize,
    deadline: Instant,
) -> WorkerOutcome {
    let mut outcome = WorkerOutcome::default();
    let mut conn = Some(conn);
    let mut sent = 0u64;
    while Instant::now() < deadline && outcome.failures < MAX_PRODUCE_FAILURES {
        let mut c = match conn.take() {
            Some(c) => c,
            None => match produce_connection(&ep, partition).await {
                Ok(c) => c,
                Err(e) => {
                    outcome.fail(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let result = produce_pipeline(
            &mut c,
            &mut frame,
            ep.versions.produce,
            in_flight,
            deadline,
            &mut sent,
            &mut outcome.done,
        )
        .await;
        match result {
            Ok(()) => {
                c.close().await;
                break;
            }
            Err(e) => outcome.fail(e),
        }
    }
    outcome
}

/// The pipelined produce loop on one connection: returns once the deadline has passed and every
/// request in flight is answered.
pub async fn produce_pipeline(
    conn: &mut KafkaConn,
    frame: &mut BytesMut,
    version: i16,
    in_flight: usize,
    deadline: Instant,
    sent: &mut u64,
    acked: &mut u64,
) -> Result<()> {
    let mut outstanding = VecDeque::with_capacity(in_flight);
    loop {
        let mut wrote = false;
        while outstanding.len() < in_flight
            && *sent < MAX_PRODUCE_REQUESTS
            && Instant::now() < deadline
        {
            let correlation = conn.correlation_id();
            frame[CORRELATION_OFFSET..CORRELATION_OFFSET + 4]
                .copy_from_slice(&correlation.to_be_bytes());
            conn.write(frame).await?;
            outstanding.push_back(correlation);
            *sent += 1;
            wrote = true;
        }
        if wrote {
            conn.flush().await?;
        }
        let Some(correlation) = outstanding.pop_front() else {
            return Ok(());
        };
        let mut body = conn.read_frame().await?;
        let response: ProduceResponse =
            decode_response(ApiKey::Produce, version, correlation, &mut body)?;
        for topic in &response.responses {
            for p in &topic.partition_responses {
                ensure!(
                    p.error_code == 0,
                    "Produce to partition {} failed: error {} {:?} {:?}",
                    p.index,
                    p.error_code,
                    p.error_message,
                    p.record_errors
                );
            }
        }
        *acked += 1;
    }
}

/// One record batch (v2, uncompressed) of `RECORDS_PER_BATCH` records.
pub fn record_batch() -> Result<Bytes> {
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // Not all one byte: something a compressor or a dedup could not shortcut, were one involved.
    let value: Vec<u8> = (0..VALUE_BYTES)
        .map(|i| u8::try_from((i * 31 + 7) % 251).unwrap_or(0))
        .collect();
    let value = Bytes::from(value);
    let records = (0..RECORDS_PER_BATCH)
        .map(|i| {
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i64::try_from(i)?,
                // The encoder puts records in one batch only while `offset - sequence` stays
                // the same, and derives the batch's base sequence from the first record: this
                // gives one batch with base sequence -1 (no idempotence), as the Java producer
                // writes it. With NO_SEQUENCE on every record each record became a batch of its
                // own — which Apache Kafka refuses (INVALID_RECORD: Produce v3+ allows exactly one
                // batch per partition) and tansu accepted.
                sequence: NO_SEQUENCE + i32::try_from(i)?,
                timestamp: now,
                key: Some(Bytes::from(format!("key-{i:04}"))),
                value: Some(value.clone()),
                headers: Default::default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    // One batch: base offset (8 bytes), then the batch length, which covers the rest.
    let length = buf
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes);
    ensure!(
        length.and_then(|l| usize::try_from(l).ok()) == Some(buf.len() - 12),
        "the records did not encode as one batch"
    );
    Ok(buf.freeze())
}
