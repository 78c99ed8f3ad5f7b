//! Metadata responses: every entry of `brokers` (all versions).

use kafka_protocol::messages::MetadataResponse;

use super::AddressRewriter;
use crate::kafka::error::ProtocolError;

/// Always re-encoded (`true`), as the proxy always did.
pub(super) fn rewrite(
    body: &mut MetadataResponse,
    rewriter: &mut AddressRewriter<'_>,
) -> Result<bool, ProtocolError> {
    for broker in &mut body.brokers {
        rewriter.rewrite(broker.node_id.0, &mut broker.host, &mut broker.port)?;
    }
    Ok(true)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{ApiKey, BrokerId, MetadataResponse, ResponseHeader, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::super::testing::*;
    use crate::kafka::codec::{decode_response, encode_response};
    use crate::kafka::error::ProtocolError;
    use crate::kafka::rewrite::rewrite_response;

    const METADATA: crate::kafka::ApiKey = crate::kafka::ApiKey::METADATA;

    pub(crate) fn metadata_frame(version: i16, topics: usize) -> Bytes {
        let brokers = NODE_IDS
            .iter()
            .map(|&id| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(upstream_host(id)))
                    .with_port(UPSTREAM_PORT)
                    .with_rack((version >= 1).then(|| StrBytes::from_static_str("rack-a")))
            })
            .collect();
        let topics = (0..topics)
            .map(|t| {
                MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_string(format!("topic-{t}")))))
                    .with_partitions(
                        (0..3)
                            .map(|p| {
                                MetadataResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_leader_id(BrokerId(NODE_IDS[p as usize]))
                                    .with_replica_nodes(NODE_IDS.map(BrokerId).to_vec())
                                    .with_isr_nodes(NODE_IDS.map(BrokerId).to_vec())
                            })
                            .collect(),
                    )
            })
            .collect();
        let body = MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(if version >= 1 { 111 } else { -1 }))
            .with_cluster_id((version >= 2).then(|| StrBytes::from_static_str("cluster-x")))
            .with_topics(topics);
        let header_version = ApiKey::Metadata.response_header_version(version);
        let header = ResponseHeader::default().with_correlation_id(17);
        encode_response(&header, header_version, &body, version).unwrap()
    }

    #[test]
    fn rewrites_every_broker_at_every_supported_version() {
        for version in 0..=13 {
            let frame = metadata_frame(version, 2);
            let out = rewrite_response(METADATA, version, &frame, &TestMapper::default())
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_eq!(out.upstream_brokers, expected_upstream(), "v{version}");
            assert_no_upstream_bytes(&out.frame);
            let header_version = ApiKey::Metadata.response_header_version(version);
            let (header, body) =
                decode_response::<MetadataResponse>(&out.frame, header_version, version).unwrap();
            assert_eq!(header.correlation_id, 17);
            let got: Vec<_> = body
                .brokers
                .iter()
                .map(|b| (b.node_id.0, b.host.as_str().to_owned(), b.port))
                .collect();
            let want: Vec<_> = NODE_IDS
                .iter()
                .map(|&id| (id, PROXY_HOST.to_owned(), proxy_port(id)))
                .collect();
            assert_eq!(got, want, "v{version}");
            // Everything but the addresses is untouched.
            assert_eq!(body.topics.len(), 2);
            let original =
                decode_response::<MetadataResponse>(&frame, header_version, version).unwrap();
            assert_eq!(body.topics, original.1.topics);
            assert_eq!(body.cluster_id, original.1.cluster_id);
        }
    }

    #[test]
    fn unmapped_node_id_fails_and_names_the_node() {
        let frame = metadata_frame(12, 1);
        let mapper = TestMapper {
            unmapped: vec![111],
        };
        match rewrite_response(METADATA, 12, &frame, &mapper) {
            Err(e @ ProtocolError::UnmappedBroker { node_id: 111, .. }) => {
                assert!(e.to_string().contains("111"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The 9-byte body from upstream PR #161: throttle_time_ms, then a compact-array count of
    /// 2^31 brokers. Unpatched kafka-protocol aborts the process allocating for it.
    #[test]
    fn compact_array_count_of_2_pow_31_is_an_error_not_an_abort() {
        let mut frame = vec![0, 0, 0, 1, 0]; // response header v1: correlation id, no tags
        frame.extend([0, 0, 0, 0]); // throttle_time_ms
        frame.extend([0x80, 0x80, 0x80, 0x80, 0x08]); // unsigned varint 2^31
        for version in 9..=13 {
            assert!(matches!(
                rewrite_response(
                    METADATA,
                    version,
                    &Bytes::from(frame.clone()),
                    &TestMapper::default()
                ),
                Err(ProtocolError::Decode { .. })
            ));
        }
    }

    #[test]
    fn int32_array_count_of_2_pow_31_minus_1_is_an_error_not_an_abort() {
        for version in 0..=8 {
            let mut frame = vec![0, 0, 0, 1]; // response header v0
            if version >= 3 {
                frame.extend([0, 0, 0, 0]); // throttle_time_ms
            }
            frame.extend(i32::MAX.to_be_bytes()); // brokers: ARRAY count
            assert!(matches!(
                rewrite_response(
                    METADATA,
                    version,
                    &Bytes::from(frame),
                    &TestMapper::default()
                ),
                Err(ProtocolError::Decode { .. })
            ));
        }
    }

    #[test]
    fn hostile_metadata_bytes_never_panic() {
        for version in 0..=13 {
            assert_hostile_inputs_never_panic(METADATA, version, &metadata_frame(version, 1));
        }
    }
}
