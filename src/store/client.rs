//! The few Kafka requests the store makes, on `kafka-protocol`'s message types, over a
//! connection the proxy opens as itself
//! ([`UpstreamConnector::connect_as_proxy`], signed in with `upstream.proxy_login`).
//!
//! One request at a time per connection, each bounded by a timeout: Metadata (the topic's
//! leader), CreateTopics (the topic, when missing), ListOffsets (its end), Fetch (the tail) and
//! Produce (`acks=all`). Versions are ones Apache Kafka 3.x and 4.x both serve and that still
//! name topics (not topic ids).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    fetch_request::{FetchPartition, FetchTopic},
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
    produce_request::{PartitionProduceData, TopicProduceData},
};
use kafka_protocol::protocol::{HeaderVersion, Request, StrBytes};
use kafka_protocol::records::Record;
use tokio::io::AsyncWriteExt;

use super::batch::{decode_fetched, encode_batch};
use crate::config::StoreConfig;
use crate::kafka::codec::{decode_response, encode_request};
use crate::kafka::{ErrorCode, FrameReader, ProtocolError, write_frame};
use crate::upstream::{UpstreamConnector, UpstreamError, UpstreamStream};

/// Kafka error codes the store acts on.
const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = ErrorCode(3);
const LEADER_NOT_AVAILABLE: ErrorCode = ErrorCode(5);
const TOPIC_ALREADY_EXISTS: ErrorCode = ErrorCode(36);

const METADATA_VERSION: i16 = 12;
const CREATE_TOPICS_VERSION: i16 = 7;
const LIST_OFFSETS_VERSION: i16 = 7;
const FETCH_VERSION: i16 = 12;
const PRODUCE_VERSION: i16 = 9;
/// How much one Fetch brings at most; responses are read with a cap a little above it.
const FETCH_MAX_BYTES: i32 = 4 * 1024 * 1024;
const MAX_RESPONSE_BYTES: usize = FETCH_MAX_BYTES as usize + 64 * 1024;
/// The store's only partition.
pub const PARTITION: i32 = 0;
const CLIENT_ID: &str = "kafka-mtls-proxy-store";

/// Why a store request failed. The caller drops the connection and starts again.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Connect(#[from] UpstreamError),
    #[error("{api} to {addr}: {reason}")]
    Io {
        api: &'static str,
        addr: String,
        reason: String,
    },
    #[error("{api} to {addr} got no answer within {ms} ms")]
    Timeout {
        api: &'static str,
        addr: String,
        ms: u128,
    },
    #[error("{api} answered {code} for topic `{topic}`{detail}")]
    Kafka {
        api: &'static str,
        topic: String,
        code: ErrorCode,
        detail: String,
    },
    #[error("{0}")]
    Protocol(String),
}

impl ClientError {
    fn kafka(api: &'static str, topic: &str, code: i16, message: Option<&StrBytes>) -> Self {
        ClientError::Kafka {
            api,
            topic: topic.to_string(),
            code: ErrorCode(code),
            detail: message
                .map(|m| format!(": {}", m.as_str()))
                .unwrap_or_default(),
        }
    }
}

/// One connection to one broker, as the proxy.
pub struct Connection {
    stream: UpstreamStream,
    pub addr: String,
    next_correlation_id: i32,
    timeout: Duration,
    /// When to open a new connection, ahead of the end of the broker's session for this login
    /// (KIP-368 `session_lifetime_ms`); `None`: the session does not end.
    renew_at: Option<tokio::time::Instant>,
}

/// Open a connection to `host:port` as the proxy itself: `upstream.proxy_login`, its password
/// read or its token signed now. `connect_timeout` is the upstream's.
pub async fn connect(
    upstream: &UpstreamConnector,
    connect_timeout: Duration,
    host: &str,
    port: u16,
) -> Result<Connection, ClientError> {
    let connection = upstream.connect_as_proxy(host, port).await?;
    Ok(Connection {
        stream: connection.stream,
        addr: connection.addr,
        next_correlation_id: 1,
        // A Fetch waits up to FETCH_MAX_WAIT on the broker: leave room above it.
        timeout: connect_timeout.max(Duration::from_secs(5)) + FETCH_MAX_WAIT,
        renew_at: connection
            .session_lifetime
            .map(|lifetime| tokio::time::Instant::now() + renew_after(lifetime)),
    })
}

/// How long into a login session of `lifetime` the store replaces its connection: early
/// enough that a request in flight (a Fetch waits up to [`FETCH_MAX_WAIT`]) does not outlive
/// the session, so the broker never closes the connection under it.
fn renew_after(lifetime: Duration) -> Duration {
    (lifetime * 8 / 10).min(lifetime.saturating_sub(FETCH_MAX_WAIT * 4))
}

/// How long a Fetch waits on the broker for new records before answering empty.
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);

/// The topic's partition leader, as Metadata tells it.
pub enum Leader {
    At {
        host: String,
        port: u16,
    },
    /// The topic does not exist.
    NoTopic,
    /// The topic exists but its partition has no leader now (an election, brokers down).
    None(ErrorCode),
}

impl Connection {
    /// Whether the broker's session for this connection's login ends soon: replace it with a
    /// new connection (a new login) before the broker closes this one.
    pub fn login_expiring(&self) -> bool {
        self.renew_at
            .is_some_and(|at| tokio::time::Instant::now() >= at)
    }

    async fn call<R: Request>(
        &mut self,
        api: &'static str,
        version: i16,
        request: &R,
    ) -> Result<R::Response, ClientError> {
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        // The proxy's own codec: the same encoding, and the same panic guard and trailing-bytes
        // check on the broker's answer, as every other frame the proxy decodes.
        let protocol = |e: ProtocolError| ClientError::Protocol(format!("{api}: {e}"));
        let buf = encode_request(&header, R::header_version(version), request, version)
            .map_err(protocol)?;
        let exchange = async {
            let io = |e: String| ClientError::Io {
                api,
                addr: self.addr.clone(),
                reason: e,
            };
            write_frame(&mut self.stream, &buf)
                .await
                .map_err(|e| io(e.to_string()))?;
            self.stream.flush().await.map_err(|e| io(e.to_string()))?;
            let mut reader = FrameReader::new(&mut self.stream, MAX_RESPONSE_BYTES);
            match reader.read_frame().await {
                Ok(Some(frame)) => Ok(frame),
                Ok(None) => Err(io("the broker closed the connection".into())),
                Err(e) => Err(io(e.to_string())),
            }
        };
        let frame: Bytes = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                api,
                addr: self.addr.clone(),
                ms: self.timeout.as_millis(),
            })??;
        let (response_header, body) =
            decode_response::<R::Response>(&frame, R::Response::header_version(version), version)
                .map_err(protocol)?;
        if response_header.correlation_id != id {
            return Err(ClientError::Protocol(format!(
                "{api}: answered correlation id {}, expected {id}",
                response_header.correlation_id
            )));
        }
        Ok(body)
    }

    /// Where `topic`'s partition is led, and the brokers' addresses.
    pub async fn leader(&mut self, topic: &str) -> Result<Leader, ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
            ]))
            .with_allow_auto_topic_creation(false);
        let answer = self.call("Metadata", METADATA_VERSION, &request).await?;
        let Some(t) = answer.topics.first() else {
            return Err(ClientError::Protocol(
                "Metadata: no topic in the answer".into(),
            ));
        };
        let code = ErrorCode(t.error_code);
        if code == UNKNOWN_TOPIC_OR_PARTITION {
            return Ok(Leader::NoTopic);
        }
        if code != ErrorCode::NONE {
            return Err(ClientError::kafka("Metadata", topic, t.error_code, None));
        }
        let Some(p) = t.partitions.iter().find(|p| p.partition_index == PARTITION) else {
            return Ok(Leader::None(code));
        };
        if p.error_code != 0 || p.leader_id.0 < 0 {
            return Ok(Leader::None(ErrorCode(p.error_code)));
        }
        let node = p.leader_id.0;
        match answer.brokers.iter().find(|b| b.node_id.0 == node) {
            Some(b) => Ok(Leader::At {
                host: b.host.to_string(),
                port: u16::try_from(b.port)
                    .map_err(|_| ClientError::Protocol(format!("broker port {}", b.port)))?,
            }),
            None => Ok(Leader::None(LEADER_NOT_AVAILABLE)),
        }
    }

    /// Create the compacted, single-partition topic. A topic that already exists (another
    /// replica was first) is not an error.
    pub async fn create_topic(&mut self, store: &StoreConfig) -> Result<(), ClientError> {
        let config = |name: &'static str, value: String| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str(name))
                .with_value(Some(StrBytes::from_string(value)))
        };
        let request = CreateTopicsRequest::default()
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(topic_name(&store.topic))
                    .with_num_partitions(1)
                    .with_replication_factor(store.replication_factor)
                    .with_configs(vec![
                        config("cleanup.policy", "compact".into()),
                        config("min.insync.replicas", store.min_insync_replicas.to_string()),
                    ]),
            ])
            .with_timeout_ms(10_000);
        let answer = self
            .call("CreateTopics", CREATE_TOPICS_VERSION, &request)
            .await?;
        for t in &answer.topics {
            let code = ErrorCode(t.error_code);
            if code != ErrorCode::NONE && code != TOPIC_ALREADY_EXISTS {
                return Err(ClientError::kafka(
                    "CreateTopics",
                    &store.topic,
                    t.error_code,
                    t.error_message.as_ref(),
                ));
            }
        }
        Ok(())
    }

    /// The partition's end offset (the offset the next record will get).
    pub async fn end_offset(&mut self, topic: &str) -> Result<i64, ClientError> {
        const LATEST: i64 = -1;
        let request = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(PARTITION)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(LATEST),
                    ]),
            ]);
        let answer = self
            .call("ListOffsets", LIST_OFFSETS_VERSION, &request)
            .await?;
        let p = answer
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("ListOffsets: no partition".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::kafka("ListOffsets", topic, p.error_code, None));
        }
        Ok(p.offset)
    }

    /// Records from `offset` on (waiting up to [`FETCH_MAX_WAIT`] for some), and the offset to
    /// fetch next.
    pub async fn fetch(
        &mut self,
        topic: &str,
        offset: i64,
    ) -> Result<(Vec<Record>, i64), ClientError> {
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(FETCH_MAX_WAIT.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(FETCH_MAX_BYTES)
            .with_isolation_level(0)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(PARTITION)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offset)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(FETCH_MAX_BYTES),
                    ]),
            ]);
        let answer = self.call("Fetch", FETCH_VERSION, &request).await?;
        if answer.error_code != 0 {
            return Err(ClientError::kafka("Fetch", topic, answer.error_code, None));
        }
        let p = answer
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| ClientError::Protocol("Fetch: no partition".into()))?;
        if p.error_code != 0 {
            return Err(ClientError::kafka("Fetch", topic, p.error_code, None));
        }
        match &p.records {
            Some(records) => decode_fetched(records, offset),
            None => Ok((Vec::new(), offset)),
        }
    }

    /// Append `records` as one batch with `acks=all`; the offset of the first.
    pub async fn produce(
        &mut self,
        topic: &str,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> Result<i64, ClientError> {
        let batch = encode_batch(records)?;
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(PARTITION)
                            .with_records(Some(batch)),
                    ]),
            ]);
        let answer = self.call("Produce", PRODUCE_VERSION, &request).await?;
        let p = answer
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| ClientError::Protocol("Produce: no partition".into()))?;
        if p.error_code != 0 {
            let mut detail: Vec<String> = p.error_message.iter().map(|m| m.to_string()).collect();
            detail.extend(p.record_errors.iter().map(|e| {
                format!(
                    "record {}: {}",
                    e.batch_index,
                    e.batch_index_error_message.as_deref().unwrap_or("")
                )
            }));
            let detail = StrBytes::from_string(detail.join("; "));
            return Err(ClientError::kafka(
                "Produce",
                topic,
                p.error_code,
                Some(&detail).filter(|d| !d.is_empty()),
            ));
        }
        Ok(p.base_offset)
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_session_is_renewed_well_before_it_ends() {
        // A token's 15 minutes: renewed at 12.
        assert_eq!(
            renew_after(Duration::from_secs(900)),
            Duration::from_secs(720)
        );
        // A short session still leaves room for a Fetch in flight.
        assert_eq!(renew_after(Duration::from_secs(3)), Duration::from_secs(1));
        assert_eq!(renew_after(Duration::from_millis(500)), Duration::ZERO);
    }
}
