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
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use super::api_versions::rewrite_api_versions_response;
use super::error::ProtocolError;
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

const PRODUCE: i16 = ApiKey::Produce as i16;
const FETCH: i16 = ApiKey::Fetch as i16;
const METADATA: i16 = ApiKey::Metadata as i16;
const FIND_COORDINATOR: i16 = ApiKey::FindCoordinator as i16;
const API_VERSIONS: i16 = ApiKey::ApiVersions as i16;
const DESCRIBE_CLUSTER: i16 = ApiKey::DescribeCluster as i16;

/// The first Produce version whose response may carry KIP-951 `node_endpoints`.
const PRODUCE_NODE_ENDPOINTS_SINCE: i16 = 10;
/// The first Fetch version whose response may carry KIP-951 `node_endpoints`.
const FETCH_NODE_ENDPOINTS_SINCE: i16 = 16;

/// Must a response of this api key and version be decoded? A cheap test, made for every frame:
/// everything else is forwarded as raw bytes.
pub fn response_needs_rewrite(api_key: i16, api_version: i16) -> bool {
    match api_key {
        METADATA | FIND_COORDINATOR | DESCRIBE_CLUSTER | API_VERSIONS => true,
        PRODUCE => api_version >= PRODUCE_NODE_ENDPOINTS_SINCE,
        FETCH => api_version >= FETCH_NODE_ENDPOINTS_SINCE,
        _ => false,
    }
}

/// Decodes a response frame (response header + body, as `ApiKey::response_header_version`
/// says), rewrites every broker address through `mapper`, and encodes it again.
///
/// For ApiVersions this is [`rewrite_api_versions_response`] (no addresses). For an api key or
/// version that [`response_needs_rewrite`] declines, the frame is returned unchanged.
pub fn rewrite_response(
    api_key: i16,
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
    let key = ApiKey::try_from(api_key).map_err(|()| ProtocolError::UnknownApiKey(api_key))?;
    if api_key == API_VERSIONS {
        return Ok(Rewritten {
            frame: rewrite_api_versions_response(frame, api_version)?,
            upstream_brokers: Vec::new(),
        });
    }
    let supported =
        proxy_version_range(api_key).is_some_and(|(min, max)| (min..=max).contains(&api_version));
    if !supported {
        return Err(ProtocolError::UnsupportedVersion {
            api: api_name(api_key),
            version: api_version,
        });
    }
    let header_version = key.response_header_version(api_version);
    let mut rewriter = AddressRewriter::new(mapper);
    let frame = match api_key {
        METADATA => metadata::rewrite(frame, header_version, api_version, &mut rewriter)?,
        FIND_COORDINATOR => {
            find_coordinator::rewrite(frame, header_version, api_version, &mut rewriter)?
        }
        DESCRIBE_CLUSTER => {
            describe_cluster::rewrite(frame, header_version, api_version, &mut rewriter)?
        }
        PRODUCE => {
            node_endpoints::rewrite_produce(frame, header_version, api_version, &mut rewriter)?
        }
        FETCH => node_endpoints::rewrite_fetch(frame, header_version, api_version, &mut rewriter)?,
        _ => return Err(ProtocolError::UnknownApiKey(api_key)),
    };
    Ok(Rewritten {
        frame,
        upstream_brokers: rewriter.seen,
    })
}

fn api_name(api_key: i16) -> &'static str {
    match api_key {
        PRODUCE => "Produce",
        FETCH => "Fetch",
        METADATA => "Metadata",
        FIND_COORDINATOR => "FindCoordinator",
        API_VERSIONS => "ApiVersions",
        DESCRIBE_CLUSTER => "DescribeCluster",
        _ => "unknown api",
    }
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
        assert!(response_needs_rewrite(METADATA, 0));
        assert!(response_needs_rewrite(FIND_COORDINATOR, 6));
        assert!(response_needs_rewrite(DESCRIBE_CLUSTER, 1));
        assert!(response_needs_rewrite(API_VERSIONS, 3));
        assert!(!response_needs_rewrite(PRODUCE, 9));
        assert!(response_needs_rewrite(PRODUCE, 10));
        assert!(!response_needs_rewrite(FETCH, 15));
        assert!(response_needs_rewrite(FETCH, 16));
        for other in [2, 8, 9, 11, 12, 14, 19, 22, 32, 50, 68, 9999, -1] {
            assert!(!response_needs_rewrite(other, 5), "api {other}");
        }
    }

    #[test]
    fn responses_that_need_no_rewrite_are_returned_untouched() {
        let frame = Bytes::from_static(b"\0\0\0\x01anything");
        let out =
            rewrite_response(ApiKey::JoinGroup as i16, 5, &frame, &TestMapper::default()).unwrap();
        assert_eq!(out.frame, frame);
        assert!(out.upstream_brokers.is_empty());
    }

    #[test]
    fn versions_beyond_the_table_are_refused() {
        let frame = Bytes::from_static(b"\0\0\0\x01");
        assert!(matches!(
            rewrite_response(METADATA, 14, &frame, &TestMapper::default()),
            Err(ProtocolError::UnsupportedVersion {
                api: "Metadata",
                version: 14
            })
        ));
    }

    #[test]
    fn api_versions_goes_through_the_same_entry_point() {
        let frame = crate::kafka::unsupported_api_versions_response(3);
        let out = rewrite_response(API_VERSIONS, 0, &frame, &TestMapper::default()).unwrap();
        assert!(out.upstream_brokers.is_empty());
        assert_eq!(
            crate::kafka::response_correlation_id(&out.frame).unwrap(),
            3
        );
    }
}
