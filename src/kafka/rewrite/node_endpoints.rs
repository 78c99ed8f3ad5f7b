//! KIP-951 `node_endpoints` of Produce (v10+) and Fetch (v16+) responses: when a partition's
//! leader moved, the broker tells the client where the new leader is, so the client can skip a
//! Metadata round trip. Unrewritten, that address sends the client around the proxy.
//!
//! Produce responses (no records) are decoded from v10 on and re-encoded only when they carry
//! endpoints. The proxy advertises Fetch ≤ v15, so Fetch responses (records) are rarely decoded;
//! a client that sends a newer version anyway still gets proxy addresses (at the cost of
//! re-encoding records).

use kafka_protocol::messages::{FetchResponse, ProduceResponse};

use super::AddressRewriter;
use crate::kafka::error::ProtocolError;

/// `true` when there were endpoints to rewrite: without them the frame goes on as it came.
pub(super) fn rewrite_produce(
    body: &mut ProduceResponse,
    rewriter: &mut AddressRewriter<'_>,
) -> Result<bool, ProtocolError> {
    for endpoint in &mut body.node_endpoints {
        rewriter.rewrite(endpoint.node_id.0, &mut endpoint.host, &mut endpoint.port)?;
    }
    Ok(!body.node_endpoints.is_empty())
}

/// As [`rewrite_produce`].
pub(super) fn rewrite_fetch(
    body: &mut FetchResponse,
    rewriter: &mut AddressRewriter<'_>,
) -> Result<bool, ProtocolError> {
    for endpoint in &mut body.node_endpoints {
        rewriter.rewrite(endpoint.node_id.0, &mut endpoint.host, &mut endpoint.port)?;
    }
    Ok(!body.node_endpoints.is_empty())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::{
        ApiKey, BrokerId, FetchResponse, ProduceResponse, ResponseHeader, TopicName,
        fetch_response, produce_response,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::super::testing::*;
    use crate::kafka::codec::{decode_response, encode_response};
    use crate::kafka::rewrite::rewrite_response;

    const PRODUCE: crate::kafka::ApiKey = crate::kafka::ApiKey::PRODUCE;
    const FETCH: crate::kafka::ApiKey = crate::kafka::ApiKey::FETCH;
    /// The error that comes with a KIP-951 new-leader hint.
    const NOT_LEADER_OR_FOLLOWER: i16 = crate::kafka::ErrorCode::NOT_LEADER_OR_FOLLOWER.0;
    const RECORDS: &[u8] = b"opaque record batch bytes";

    fn produce_frame(version: i16, with_endpoints: bool) -> Bytes {
        let partition = produce_response::PartitionProduceResponse::default()
            .with_index(0)
            .with_error_code(NOT_LEADER_OR_FOLLOWER)
            .with_current_leader(
                produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(2))
                    .with_leader_epoch(7),
            );
        let topic = produce_response::TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partition_responses(vec![partition]);
        let endpoints = if with_endpoints {
            NODE_IDS
                .iter()
                .map(|&id| {
                    produce_response::NodeEndpoint::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(upstream_host(id)))
                        .with_port(UPSTREAM_PORT)
                        .with_rack(Some(StrBytes::from_static_str("rack-c")))
                })
                .collect()
        } else {
            Vec::new()
        };
        let body = ProduceResponse::default()
            .with_responses(vec![topic])
            .with_node_endpoints(endpoints);
        let header_version = ApiKey::Produce.response_header_version(version);
        let header = ResponseHeader::default().with_correlation_id(21);
        encode_response(&header, header_version, &body, version).unwrap()
    }

    fn fetch_frame(version: i16, with_endpoints: bool) -> Bytes {
        let partition = fetch_response::PartitionData::default()
            .with_partition_index(0)
            .with_error_code(NOT_LEADER_OR_FOLLOWER)
            .with_current_leader(
                fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(111))
                    .with_leader_epoch(3),
            )
            .with_records(Some(Bytes::from_static(RECORDS)));
        let topic = fetch_response::FetchableTopicResponse::default()
            .with_topic_id(uuid::Uuid::from_u128(0x1234))
            .with_partitions(vec![partition]);
        let endpoints = if with_endpoints {
            NODE_IDS
                .iter()
                .map(|&id| {
                    fetch_response::NodeEndpoint::default()
                        .with_node_id(BrokerId(id))
                        .with_host(StrBytes::from_string(upstream_host(id)))
                        .with_port(UPSTREAM_PORT)
                })
                .collect()
        } else {
            Vec::new()
        };
        let body = FetchResponse::default()
            .with_responses(vec![topic])
            .with_node_endpoints(endpoints);
        let header_version = ApiKey::Fetch.response_header_version(version);
        let header = ResponseHeader::default().with_correlation_id(22);
        encode_response(&header, header_version, &body, version).unwrap()
    }

    #[test]
    fn rewrites_produce_node_endpoints_v10_to_v13() {
        for version in 10..=13 {
            let out = rewrite_response(
                PRODUCE,
                version,
                &produce_frame(version, true),
                &TestMapper::default(),
            )
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_no_upstream_bytes(&out.frame);
            assert_eq!(out.upstream_brokers, expected_upstream());
            let header_version = ApiKey::Produce.response_header_version(version);
            let (header, body) =
                decode_response::<ProduceResponse>(&out.frame, header_version, version).unwrap();
            assert_eq!(header.correlation_id, 21);
            assert_eq!(body.node_endpoints.len(), NODE_IDS.len());
            for (e, &id) in body.node_endpoints.iter().zip(&NODE_IDS) {
                assert_eq!(e.node_id.0, id);
                assert_eq!(e.host.as_str(), PROXY_HOST);
                assert_eq!(e.port, proxy_port(id));
            }
            let leader = &body.responses[0].partition_responses[0].current_leader;
            assert_eq!((leader.leader_id.0, leader.leader_epoch), (2, 7));
        }
    }

    #[test]
    fn rewrites_fetch_node_endpoints_v16_to_v18_and_keeps_records() {
        for version in 16..=18 {
            let out = rewrite_response(
                FETCH,
                version,
                &fetch_frame(version, true),
                &TestMapper::default(),
            )
            .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_no_upstream_bytes(&out.frame);
            assert_eq!(out.upstream_brokers, expected_upstream());
            let header_version = ApiKey::Fetch.response_header_version(version);
            let (header, body) =
                decode_response::<FetchResponse>(&out.frame, header_version, version).unwrap();
            assert_eq!(header.correlation_id, 22);
            for (e, &id) in body.node_endpoints.iter().zip(&NODE_IDS) {
                assert_eq!(e.node_id.0, id);
                assert_eq!(e.host.as_str(), PROXY_HOST);
                assert_eq!(e.port, proxy_port(id));
            }
            assert_eq!(body.node_endpoints.len(), NODE_IDS.len());
            assert_eq!(
                body.responses[0].partitions[0].records.as_deref(),
                Some(RECORDS)
            );
        }
    }

    #[test]
    fn responses_without_endpoints_are_forwarded_byte_for_byte() {
        for version in 10..=13 {
            let frame = produce_frame(version, false);
            let out = rewrite_response(PRODUCE, version, &frame, &TestMapper::default()).unwrap();
            assert_eq!(out.frame, frame);
            assert!(out.upstream_brokers.is_empty());
        }
        for version in 16..=18 {
            let frame = fetch_frame(version, false);
            let out = rewrite_response(FETCH, version, &frame, &TestMapper::default()).unwrap();
            assert_eq!(out.frame, frame);
        }
    }

    #[test]
    fn hostile_produce_and_fetch_bytes_never_panic() {
        for version in 10..=13 {
            assert_hostile_inputs_never_panic(PRODUCE, version, &produce_frame(version, true));
        }
        for version in 16..=18 {
            assert_hostile_inputs_never_panic(FETCH, version, &fetch_frame(version, true));
        }
    }

    #[test]
    fn the_typed_rewrite_reports_a_change_only_when_there_are_endpoints() {
        use crate::kafka::{DecodedResponse, rewrite_addresses};
        for with_endpoints in [false, true] {
            let frame = produce_frame(12, with_endpoints);
            let mut response = DecodedResponse::decode(PRODUCE, 12, &frame).unwrap();
            let changes =
                rewrite_addresses(PRODUCE, 12, &mut response.body, &TestMapper::default()).unwrap();
            assert_eq!(changes.changed, with_endpoints);
            let expected = if with_endpoints {
                expected_upstream()
            } else {
                Vec::new()
            };
            assert_eq!(changes.upstream_brokers, expected);
        }
    }
}
