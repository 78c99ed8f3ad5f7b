//! Fixtures shared by the criterion benchmarks (`mod support;` in each): broker answers as
//! the proxy receives them, and an address mapper like the proxy's.

use bytes::{Bytes, BytesMut};
use kafka_mtls_proxy::kafka::{AddressMapper, BrokerAddress, ProtocolError};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataResponse, ResponseHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};

pub const METADATA_VERSION: i16 = 12;
/// The upstream brokers every fixture lists.
pub const BROKERS: [i32; 3] = [1, 2, 3];

/// Maps node N to `kafka.proxy.example:19000+N`.
pub struct Mapper;

impl AddressMapper for Mapper {
    fn client_address(&self, upstream: &BrokerAddress) -> Result<(String, i32), ProtocolError> {
        Ok(("kafka.proxy.example".to_owned(), 19_000 + upstream.node_id))
    }
}

/// A response frame (size prefix excluded) with correlation id 7.
pub fn response_frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(7)
        .encode(&mut buf, key.response_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    buf.freeze()
}

/// A Metadata v12 answer listing [`BROKERS`] (with `rack`, if any) and one topic per name, each
/// with 3 partitions spread over the brokers.
pub fn metadata_frame(
    names: impl IntoIterator<Item = String>,
    rack: Option<&'static str>,
) -> Bytes {
    let brokers = BROKERS
        .iter()
        .map(|&id| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(StrBytes::from_string(format!(
                    "broker-{id}.internal.example"
                )))
                .with_port(9092)
                .with_rack(rack.map(StrBytes::from_static_str))
        })
        .collect();
    let topics = names
        .into_iter()
        .enumerate()
        .map(|(t, name)| {
            MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name))))
                .with_topic_id(uuid::Uuid::from_u128(t as u128 + 1))
                .with_partitions(
                    (0..3)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(BROKERS[p as usize]))
                                .with_leader_epoch(5)
                                .with_replica_nodes(BROKERS.map(BrokerId).to_vec())
                                .with_isr_nodes(BROKERS.map(BrokerId).to_vec())
                        })
                        .collect(),
                )
        })
        .collect();
    let body = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
        .with_controller_id(BrokerId(1))
        .with_topics(topics);
    response_frame(ApiKey::Metadata, METADATA_VERSION, &body)
}
