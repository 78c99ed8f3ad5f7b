//! FindCoordinator responses: the single coordinator of v0-v3, the batched `coordinators` of v4+.
//! Entries for keys that failed carry node id -1 and an empty host; they are left alone.

use kafka_protocol::messages::FindCoordinatorResponse;

use super::AddressRewriter;
use crate::kafka::error::ProtocolError;

/// From v4 the response lists one coordinator per requested key.
const BATCHED_SINCE: i16 = 4;

/// Always re-encoded (`true`), as the proxy always did.
pub(super) fn rewrite(
    body: &mut FindCoordinatorResponse,
    version: i16,
    rewriter: &mut AddressRewriter<'_>,
) -> Result<bool, ProtocolError> {
    if version < BATCHED_SINCE {
        // In v4+ the top-level fields are absent from the wire (and must stay at their
        // defaults to encode), so only v0-v3 look at them.
        if body.node_id.0 >= 0 {
            rewriter.rewrite(body.node_id.0, &mut body.host, &mut body.port)?;
        }
    } else {
        for coordinator in &mut body.coordinators {
            if coordinator.node_id.0 >= 0 {
                rewriter.rewrite(
                    coordinator.node_id.0,
                    &mut coordinator.host,
                    &mut coordinator.port,
                )?;
            }
        }
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
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorResponse, ResponseHeader};
    use kafka_protocol::protocol::StrBytes;

    use super::super::testing::*;
    use super::BATCHED_SINCE;
    use crate::kafka::codec::{decode_response, encode_response};
    use crate::kafka::rewrite::{BrokerAddress, rewrite_response};

    const FIND_COORDINATOR: crate::kafka::ApiKey = crate::kafka::ApiKey::FIND_COORDINATOR;
    /// As brokers send for a key they cannot place yet.
    const COORDINATOR_NOT_AVAILABLE: i16 = crate::kafka::ErrorCode::COORDINATOR_NOT_AVAILABLE.0;

    fn encode(version: i16, body: &FindCoordinatorResponse) -> Bytes {
        let header_version = ApiKey::FindCoordinator.response_header_version(version);
        let header = ResponseHeader::default().with_correlation_id(8);
        encode_response(&header, header_version, body, version).unwrap()
    }

    fn decode(version: i16, frame: &Bytes) -> FindCoordinatorResponse {
        let header_version = ApiKey::FindCoordinator.response_header_version(version);
        decode_response::<FindCoordinatorResponse>(frame, header_version, version)
            .unwrap()
            .1
    }

    /// v0-v3: one coordinator.
    fn single(version: i16, node_id: i32) -> Bytes {
        let body = FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node_id))
            .with_host(StrBytes::from_string(upstream_host(node_id)))
            .with_port(UPSTREAM_PORT)
            .with_error_message((version >= 1).then(StrBytes::default));
        encode(version, &body)
    }

    /// v4+: one entry per node id, one entry per repeated key on node 1, and one failed key.
    pub(crate) fn batched(version: i16) -> Bytes {
        let mut coordinators: Vec<Coordinator> = NODE_IDS
            .iter()
            .chain(&[1])
            .enumerate()
            .map(|(i, &id)| {
                Coordinator::default()
                    .with_key(StrBytes::from_string(format!("group-{i}")))
                    .with_node_id(BrokerId(id))
                    .with_host(StrBytes::from_string(upstream_host(id)))
                    .with_port(UPSTREAM_PORT)
            })
            .collect();
        coordinators.push(
            Coordinator::default()
                .with_key(StrBytes::from_static_str("group-failed"))
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1)
                .with_error_code(COORDINATOR_NOT_AVAILABLE)
                .with_error_message(Some(StrBytes::from_static_str("not yet"))),
        );
        let body = FindCoordinatorResponse::default()
            .with_error_message(None)
            .with_coordinators(coordinators);
        encode(version, &body)
    }

    #[test]
    fn rewrites_single_coordinator_v0_to_v3() {
        for version in 0..BATCHED_SINCE {
            for &id in &NODE_IDS {
                let frame = single(version, id);
                let out =
                    rewrite_response(FIND_COORDINATOR, version, &frame, &TestMapper::default())
                        .unwrap_or_else(|e| panic!("v{version}: {e}"));
                assert_no_upstream_bytes(&out.frame);
                assert_eq!(
                    out.upstream_brokers,
                    vec![BrokerAddress {
                        node_id: id,
                        host: upstream_host(id),
                        port: UPSTREAM_PORT
                    }]
                );
                let body = decode(version, &out.frame);
                assert_eq!(body.node_id.0, id);
                assert_eq!(body.host.as_str(), PROXY_HOST);
                assert_eq!(body.port, proxy_port(id));
            }
        }
    }

    #[test]
    fn single_coordinator_error_is_left_alone() {
        for version in 0..BATCHED_SINCE {
            let body = FindCoordinatorResponse::default()
                .with_error_code(COORDINATOR_NOT_AVAILABLE)
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1)
                .with_error_message((version >= 1).then(StrBytes::default));
            let frame = encode(version, &body);
            // A mapper that knows no broker at all: the error entry must not consult it.
            let mapper = TestMapper { unmapped: vec![-1] };
            let out = rewrite_response(FIND_COORDINATOR, version, &frame, &mapper).unwrap();
            assert!(out.upstream_brokers.is_empty());
            assert_eq!(decode(version, &out.frame), decode(version, &frame));
        }
    }

    #[test]
    fn rewrites_batched_coordinators_v4_to_v6_and_keeps_error_entries() {
        for version in BATCHED_SINCE..=6 {
            let frame = batched(version);
            let mapper = TestMapper { unmapped: vec![-1] };
            let out = rewrite_response(FIND_COORDINATOR, version, &frame, &mapper)
                .unwrap_or_else(|e| panic!("v{version}: {e}"));
            assert_no_upstream_bytes(&out.frame);
            // Node 1 appears twice but is reported once.
            assert_eq!(out.upstream_brokers, expected_upstream());
            let body = decode(version, &out.frame);
            assert_eq!(body.coordinators.len(), 5);
            for c in &body.coordinators[..4] {
                assert_eq!(c.host.as_str(), PROXY_HOST);
                assert_eq!(c.port, proxy_port(c.node_id.0));
            }
            let failed = &body.coordinators[4];
            assert_eq!(failed.node_id.0, -1);
            assert_eq!(failed.port, -1);
            assert!(failed.host.is_empty());
            assert_eq!(failed.error_code, COORDINATOR_NOT_AVAILABLE);
        }
    }

    #[test]
    fn hostile_find_coordinator_bytes_never_panic() {
        for version in 0..BATCHED_SINCE {
            assert_hostile_inputs_never_panic(FIND_COORDINATOR, version, &single(version, 2));
        }
        for version in BATCHED_SINCE..=6 {
            assert_hostile_inputs_never_panic(FIND_COORDINATOR, version, &batched(version));
        }
    }
}
