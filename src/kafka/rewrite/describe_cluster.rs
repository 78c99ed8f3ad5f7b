//! DescribeCluster responses: every entry of `brokers` (or of the controllers, when a v1+ client
//! asked for `endpoint_type` controllers; both are node addresses clients would dial).

use kafka_protocol::messages::DescribeClusterResponse;

use super::AddressRewriter;
use crate::kafka::error::ProtocolError;

/// Always re-encoded (`true`), as the proxy always did.
pub(super) fn rewrite(
    body: &mut DescribeClusterResponse,
    rewriter: &mut AddressRewriter<'_>,
) -> Result<bool, ProtocolError> {
    for broker in &mut body.brokers {
        rewriter.rewrite(broker.broker_id.0, &mut broker.host, &mut broker.port)?;
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
    use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
    use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterResponse, ResponseHeader};
    use kafka_protocol::protocol::StrBytes;

    use super::super::testing::*;
    use crate::kafka::codec::{decode_response, encode_response};
    use crate::kafka::rewrite::rewrite_response;

    const DESCRIBE_CLUSTER: crate::kafka::ApiKey = crate::kafka::ApiKey::DESCRIBE_CLUSTER;

    fn frame(version: i16) -> Bytes {
        let brokers = NODE_IDS
            .iter()
            .map(|&id| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(id))
                    .with_host(StrBytes::from_string(upstream_host(id)))
                    .with_port(UPSTREAM_PORT)
                    .with_rack(Some(StrBytes::from_static_str("rack-b")))
                    .with_is_fenced(version >= 2 && id == 2)
            })
            .collect();
        let body = DescribeClusterResponse::default()
            .with_cluster_id(StrBytes::from_static_str("cluster-y"))
            .with_controller_id(BrokerId(111))
            .with_brokers(brokers);
        let header_version = ApiKey::DescribeCluster.response_header_version(version);
        let header = ResponseHeader::default().with_correlation_id(3);
        encode_response(&header, header_version, &body, version).unwrap()
    }

    #[test]
    fn rewrites_every_broker_at_every_supported_version() {
        for version in 0..=2 {
            let original = frame(version);
            let out =
                rewrite_response(DESCRIBE_CLUSTER, version, &original, &TestMapper::default())
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_no_upstream_bytes(&out.frame);
            assert_eq!(out.upstream_brokers, expected_upstream());
            let header_version = ApiKey::DescribeCluster.response_header_version(version);
            let (_, body) =
                decode_response::<DescribeClusterResponse>(&out.frame, header_version, version)
                    .unwrap();
            for (b, &id) in body.brokers.iter().zip(&NODE_IDS) {
                assert_eq!(b.broker_id.0, id);
                assert_eq!(b.host.as_str(), PROXY_HOST);
                assert_eq!(b.port, proxy_port(id));
                assert_eq!(b.rack.as_deref(), Some("rack-b"));
                assert_eq!(b.is_fenced, version >= 2 && id == 2);
            }
            assert_eq!(body.brokers.len(), NODE_IDS.len());
            assert_eq!(body.cluster_id.as_str(), "cluster-y");
        }
    }

    #[test]
    fn hostile_describe_cluster_bytes_never_panic() {
        for version in 0..=2 {
            assert_hostile_inputs_never_panic(DESCRIBE_CLUSTER, version, &frame(version));
        }
    }
}
