//! Broker-address rewriting: one filter over every response that names a broker, so that clients
//! only ever learn proxy addresses.
//!
//! The checklist (Kroxylicious covers the same): Metadata `brokers`, FindCoordinator (single key
//! before v4, batched `coordinators` from v4), DescribeCluster `brokers`, and the KIP-951
//! `node_endpoints` of Produce v10+ and Fetch v16+. ApiVersions goes through here too, so the
//! connection layer has a single decode predicate and a single entry point.

mod describe_cluster;
mod find_coordinator;
mod metadata;
mod node_endpoints;

use bytes::Bytes;
use kafka_protocol::messages::{
    DescribeClusterResponse, FetchResponse, FindCoordinatorResponse, MetadataResponse,
    ProduceResponse, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::api_key::ApiKey;
use super::api_versions::rewrite_api_versions_response;
use super::error::ProtocolError;
use super::response::{DecodedResponse, ResponseBody};
use super::versions::proxy_version_range;

/// A broker as a response names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerAddress {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
}

/// Maps a broker (as the upstream advertised it) to the address clients must use: the proxy's.
pub trait AddressMapper {
    /// `Err` (normally [`ProtocolError::UnmappedBroker`]) when the proxy has no listener for that
    /// node id; the response is then not forwarded.
    fn client_address(&self, upstream: &BrokerAddress) -> Result<(String, i32), ProtocolError>;
}

/// A rewritten response frame.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub frame: Bytes,
    /// Every distinct broker address the response named, as the upstream advertised it (before
    /// rewriting), in order of appearance: how the proxy learns node id → upstream host:port.
    pub upstream_brokers: Vec<BrokerAddress>,
}

/// What [`rewrite_addresses`] did to a decoded body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressChanges {
    /// The body must be encoded again. Metadata, FindCoordinator and DescribeCluster answers
    /// always are; Produce and Fetch answers only when they carry KIP-951 `node_endpoints`
    /// (otherwise their frame is forwarded as it came).
    pub changed: bool,
    /// Every distinct broker address the response named, as the upstream advertised it (before
    /// rewriting), in order of appearance: how the proxy learns node id → upstream host:port.
    pub upstream_brokers: Vec<BrokerAddress>,
}

/// The first Produce version whose response may carry KIP-951 `node_endpoints`.
const PRODUCE_NODE_ENDPOINTS_SINCE: i16 = 10;
/// The first Fetch version whose response may carry KIP-951 `node_endpoints`.
const FETCH_NODE_ENDPOINTS_SINCE: i16 = 16;

/// Must a response of this api key and version be decoded? A cheap test, made for every frame:
/// everything else is forwarded as raw bytes. True for ApiVersions too, which
/// [`rewrite_response`] narrows (see `api_versions::narrow_to_proxy_table`).
pub fn response_needs_rewrite(api_key: ApiKey, api_version: i16) -> bool {
    match api_key {
        ApiKey::METADATA
        | ApiKey::FIND_COORDINATOR
        | ApiKey::DESCRIBE_CLUSTER
        | ApiKey::API_VERSIONS => true,
        ApiKey::PRODUCE => api_version >= PRODUCE_NODE_ENDPOINTS_SINCE,
        ApiKey::FETCH => api_version >= FETCH_NODE_ENDPOINTS_SINCE,
        _ => false,
    }
}

/// Rewrites every broker address of a decoded response (to a request of `api_key` at
/// `version`) through `mapper`.
///
/// A response that carries no addresses ([`response_needs_rewrite`] declines it, and
/// ApiVersions) is left alone: `changed` is false. A version beyond the proxy's table is
/// [`ProtocolError::UnsupportedVersion`]; a body of another api than `api_key` is
/// [`ProtocolError::WrongBody`].
pub fn rewrite_addresses(
    api_key: ApiKey,
    version: i16,
    body: &mut ResponseKind,
    mapper: &dyn AddressMapper,
) -> Result<AddressChanges, ProtocolError> {
    if !response_needs_rewrite(api_key, version) || api_key == ApiKey::API_VERSIONS {
        return Ok(AddressChanges::default());
    }
    check_supported(api_key, version)?;
    let mut rewriter = AddressRewriter::new(mapper);
    let changed = match api_key {
        ApiKey::METADATA => metadata::rewrite(MetadataResponse::of(body)?, &mut rewriter)?,
        ApiKey::FIND_COORDINATOR => {
            find_coordinator::rewrite(FindCoordinatorResponse::of(body)?, version, &mut rewriter)?
        }
        ApiKey::DESCRIBE_CLUSTER => {
            describe_cluster::rewrite(DescribeClusterResponse::of(body)?, &mut rewriter)?
        }
        ApiKey::PRODUCE => {
            node_endpoints::rewrite_produce(ProduceResponse::of(body)?, &mut rewriter)?
        }
        ApiKey::FETCH => node_endpoints::rewrite_fetch(FetchResponse::of(body)?, &mut rewriter)?,
        _ => return Err(ProtocolError::UnknownApiKey(api_key)),
    };
    Ok(AddressChanges {
        changed,
        upstream_brokers: rewriter.seen,
    })
}

/// A version the proxy's table does not list is never decoded.
pub fn check_supported(api_key: ApiKey, version: i16) -> Result<(), ProtocolError> {
    let supported =
        proxy_version_range(api_key).is_some_and(|(min, max)| (min..=max).contains(&version));
    if supported {
        Ok(())
    } else {
        Err(ProtocolError::UnsupportedVersion {
            api: api_key.name().unwrap_or("unknown api"),
            version,
        })
    }
}

/// Decodes a response frame (response header + body, as `ApiKey::response_header_version`
/// says), rewrites every broker address through `mapper`, and encodes it again when that
/// changed it: [`rewrite_addresses`] on bytes.
///
/// For ApiVersions this is [`rewrite_api_versions_response`] (no addresses). For an api key or
/// version that [`response_needs_rewrite`] declines, the frame is returned unchanged.
pub fn rewrite_response(
    api_key: ApiKey,
    api_version: i16,
    frame: &Bytes,
    mapper: &dyn AddressMapper,
) -> Result<Rewritten, ProtocolError> {
    if !response_needs_rewrite(api_key, api_version) {
        return Ok(Rewritten {
            frame: frame.clone(),
            upstream_brokers: Vec::new(),
        });
    }
    if api_key == ApiKey::API_VERSIONS {
        return Ok(Rewritten {
            frame: rewrite_api_versions_response(frame, api_version)?,
            upstream_brokers: Vec::new(),
        });
    }
    // Before decoding: a version beyond the table may not decode at all.
    check_supported(api_key, api_version)?;
    let mut response = DecodedResponse::decode(api_key, api_version, frame)?;
    let changes = rewrite_addresses(api_key, api_version, &mut response.body, mapper)?;
    Ok(Rewritten {
        frame: if changes.changed {
            response.encode()?
        } else {
            // Nothing to rewrite: forward the frame as it came instead of re-encoding it.
            frame.clone()
        },
        upstream_brokers: changes.upstream_brokers,
    })
}

/// Applies the mapper to one address at a time and remembers what it saw.
pub(crate) struct AddressRewriter<'a> {
    mapper: &'a dyn AddressMapper,
    seen: Vec<BrokerAddress>,
}

impl<'a> AddressRewriter<'a> {
    fn new(mapper: &'a dyn AddressMapper) -> Self {
        Self {
            mapper,
            seen: Vec::new(),
        }
    }

    /// Replaces `host`/`port` of broker `node_id` by its client-facing address.
    pub(crate) fn rewrite(
        &mut self,
        node_id: i32,
        host: &mut StrBytes,
        port: &mut i32,
    ) -> Result<(), ProtocolError> {
        let upstream = BrokerAddress {
            node_id,
            host: host.as_str().to_owned(),
            port: *port,
        };
        let (client_host, client_port) = self.mapper.client_address(&upstream)?;
        *host = StrBytes::from_string(client_host);
        *port = client_port;
        // Responses name a handful of brokers, often repeatedly (one coordinator per group):
        // a linear scan beats hashing here.
        if !self.seen.contains(&upstream) {
            self.seen.push(upstream);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn only_address_carrying_responses_need_decoding() {
        assert!(response_needs_rewrite(ApiKey::METADATA, 0));
        assert!(response_needs_rewrite(ApiKey::FIND_COORDINATOR, 6));
        assert!(response_needs_rewrite(ApiKey::DESCRIBE_CLUSTER, 1));
        assert!(response_needs_rewrite(ApiKey::API_VERSIONS, 3));
        assert!(!response_needs_rewrite(ApiKey::PRODUCE, 9));
        assert!(response_needs_rewrite(ApiKey::PRODUCE, 10));
        assert!(!response_needs_rewrite(ApiKey::FETCH, 15));
        assert!(response_needs_rewrite(ApiKey::FETCH, 16));
        for other in [2, 8, 9, 11, 12, 14, 19, 22, 32, 50, 68, 9999, -1] {
            assert!(!response_needs_rewrite(ApiKey(other), 5), "api {other}");
        }
    }

    #[test]
    fn responses_that_need_no_rewrite_are_returned_untouched() {
        let frame = Bytes::from_static(b"\0\0\0\x01anything");
        let out = rewrite_response(ApiKey::JOIN_GROUP, 5, &frame, &TestMapper::default()).unwrap();
        assert_eq!(out.frame, frame);
        assert!(out.upstream_brokers.is_empty());
    }

    #[test]
    fn versions_beyond_the_table_are_refused() {
        let frame = Bytes::from_static(b"\0\0\0\x01");
        assert!(matches!(
            rewrite_response(ApiKey::METADATA, 14, &frame, &TestMapper::default()),
            Err(ProtocolError::UnsupportedVersion {
                api: "Metadata",
                version: 14
            })
        ));
    }

    #[test]
    fn api_versions_goes_through_the_same_entry_point() {
        let frame = crate::kafka::unsupported_api_versions_response(3);
        let out =
            rewrite_response(ApiKey::API_VERSIONS, 0, &frame, &TestMapper::default()).unwrap();
        assert!(out.upstream_brokers.is_empty());
        assert_eq!(
            crate::kafka::response_correlation_id(&out.frame).unwrap(),
            3
        );
    }

    #[test]
    fn the_typed_rewrite_refuses_a_body_of_another_api_and_leaves_api_versions_alone() {
        use kafka_protocol::messages::ApiVersionsResponse;
        let mapper = TestMapper::default();
        let mut body = ResponseKind::Fetch(FetchResponse::default());
        assert!(matches!(
            rewrite_addresses(ApiKey::METADATA, 12, &mut body, &mapper),
            Err(ProtocolError::WrongBody {
                expected: "MetadataResponse"
            })
        ));
        let mut body = ResponseKind::ApiVersions(ApiVersionsResponse::default());
        assert_eq!(
            rewrite_addresses(ApiKey::API_VERSIONS, 3, &mut body, &mapper).unwrap(),
            AddressChanges::default()
        );
    }
}
