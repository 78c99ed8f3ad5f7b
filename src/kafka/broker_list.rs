//! The proxy's own Metadata request for the cluster's broker list: how it learns a broker that
//! joined later before any answer through it has named that broker (SNI routing of a name
//! whose node id the broker book does not know yet).

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use super::codec::{decode_response, encode_request};
use super::error::ProtocolError;
use super::rewrite::BrokerAddress;
use super::sasl::proxy_request_header;

/// Metadata v9: the first flexible version (Kafka 2.4), within what Kafka 4 still serves.
pub const BROKER_LIST_METADATA_VERSION: i16 = 9;

/// Metadata for no topic: the answer is the broker list (and the cluster id), nothing more.
pub fn broker_list_request(correlation_id: i32) -> Result<Bytes, ProtocolError> {
    let v = BROKER_LIST_METADATA_VERSION;
    let (header, hv) = proxy_request_header(ApiKey::Metadata, v, correlation_id);
    let body = MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false);
    encode_request(&header, hv, &body, v)
}

/// The brokers a [`broker_list_request`] answer names, as the cluster advertises them.
pub fn decode_broker_list(frame: &Bytes) -> Result<Vec<BrokerAddress>, ProtocolError> {
    let v = BROKER_LIST_METADATA_VERSION;
    let (_, body): (_, MetadataResponse) =
        decode_response(frame, ApiKey::Metadata.response_header_version(v), v)?;
    Ok(body
        .brokers
        .iter()
        .map(|b| BrokerAddress {
            node_id: b.node_id.0,
            host: b.host.to_string(),
            port: b.port,
        })
        .collect())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{BrokerId, RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    #[test]
    fn the_request_asks_for_no_topic_and_the_answer_gives_the_brokers() {
        let frame = broker_list_request(41).unwrap();
        let mut buf = frame.clone();
        let v = BROKER_LIST_METADATA_VERSION;
        let header =
            RequestHeader::decode(&mut buf, ApiKey::Metadata.request_header_version(v)).unwrap();
        assert_eq!(header.correlation_id, 41);
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        let body = MetadataRequest::decode(&mut buf, v).unwrap();
        assert_eq!(
            body.topics,
            Some(Vec::new()),
            "an empty list: no topic, not all"
        );
        assert!(!body.allow_auto_topic_creation);

        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(41)
            .encode(&mut out, ApiKey::Metadata.response_header_version(v))
            .unwrap();
        MetadataResponse::default()
            .with_brokers(vec![
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(3))
                    .with_host(StrBytes::from_static_str("kafka-3.internal"))
                    .with_port(19092),
            ])
            .encode(&mut out, v)
            .unwrap();
        assert_eq!(
            decode_broker_list(&out.freeze()).unwrap(),
            vec![BrokerAddress {
                node_id: 3,
                host: "kafka-3.internal".into(),
                port: 19092
            }]
        );
    }
}
