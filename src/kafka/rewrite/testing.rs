//! Shared test fixtures for the rewrite tests: a mapper, the upstream addresses and the
//! hostile-input loop.

use bytes::Bytes;

use super::{AddressMapper, BrokerAddress, rewrite_response};
use crate::kafka::ApiKey;
use crate::kafka::error::ProtocolError;
pub(crate) use crate::test_support::Prng;

/// What the upstream advertises in every fixture.
pub(crate) const UPSTREAM_HOST: &str = "broker-internal.example";
pub(crate) const UPSTREAM_PORT: i32 = 9092;
pub(crate) const NODE_IDS: [i32; 3] = [1, 2, 111];
/// What clients must see instead.
pub(crate) const PROXY_HOST: &str = "kafka.proxy.example";

pub(crate) fn proxy_port(node_id: i32) -> i32 {
    30_000 + node_id
}

/// Maps every node id to `PROXY_HOST:30000+id`, except the ids listed in `unmapped`.
#[derive(Default)]
pub(crate) struct TestMapper {
    pub(crate) unmapped: Vec<i32>,
}

impl AddressMapper for TestMapper {
    fn client_address(&self, upstream: &BrokerAddress) -> Result<(String, i32), ProtocolError> {
        if self.unmapped.contains(&upstream.node_id) {
            return Err(ProtocolError::UnmappedBroker {
                node_id: upstream.node_id,
                host: upstream.host.clone(),
                port: upstream.port,
            });
        }
        Ok((PROXY_HOST.to_owned(), proxy_port(upstream.node_id)))
    }
}

/// Upstream address of a fixture broker: distinct hosts per node so mix-ups show.
pub(crate) fn upstream_host(node_id: i32) -> String {
    format!("{node_id}.{UPSTREAM_HOST}")
}

pub(crate) fn expected_upstream() -> Vec<BrokerAddress> {
    NODE_IDS
        .iter()
        .map(|&node_id| BrokerAddress {
            node_id,
            host: upstream_host(node_id),
            port: UPSTREAM_PORT,
        })
        .collect()
}

/// Asserts that no trace of the upstream address is left anywhere in the frame.
pub(crate) fn assert_no_upstream_bytes(frame: &[u8]) {
    let needle = UPSTREAM_HOST.as_bytes();
    assert!(
        !frame.windows(needle.len()).any(|w| w == needle),
        "upstream host left in the rewritten frame"
    );
}

/// Feeds truncations, byte mutations and random bytes derived from a valid `frame` to
/// `rewrite_response`. It must return (Ok or Err) every time: an abort kills the test binary,
/// and a panic that only `catch_unwind` stopped is reported as a failure too.
pub(crate) fn assert_hostile_inputs_never_panic(api_key: ApiKey, version: i16, frame: &Bytes) {
    let mapper = TestMapper::default();
    let check = |input: Bytes| {
        if let Err(ProtocolError::Decode { reason, .. }) =
            rewrite_response(api_key, version, &input, &mapper)
        {
            assert!(
                !reason.starts_with("decoder panicked"),
                "api {api_key} v{version}: {reason} on {input:02x?}"
            );
        }
    };
    for len in 0..frame.len() {
        check(frame.slice(..len));
    }
    let mut rng = Prng::new(((api_key.0 as u64) << 16) ^ version as u64);
    for _ in 0..300 {
        let mut bytes = frame.to_vec();
        rng.mutate(&mut bytes);
        check(Bytes::from(bytes));
    }
    for _ in 0..100 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        check(Bytes::from(bytes));
    }
}
