//! Broker bytes through the KIP-951 `node_endpoints` rewrite of Produce (v10+) and Fetch (v16+)
//! answers: see `kafka_mtls_proxy_fuzz::rewrite_one` for what must hold.
//!
//! Input layout: byte 0 picks Produce (even) or Fetch (odd); the rest is `rewrite_one`'s input,
//! with versions from the first one that carries `node_endpoints`.

#![no_main]

use kafka_mtls_proxy::kafka::ApiKey;
use libfuzzer_sys::fuzz_target;

/// The first versions whose answers may carry `node_endpoints` (KIP-951).
const PRODUCE_NODE_ENDPOINTS_SINCE: i16 = 10;
const FETCH_NODE_ENDPOINTS_SINCE: i16 = 16;

fuzz_target!(|data: &[u8]| {
    let [which, rest @ ..] = data else {
        return;
    };
    let (key, since) = if which % 2 == 0 {
        (ApiKey::PRODUCE, PRODUCE_NODE_ENDPOINTS_SINCE)
    } else {
        (ApiKey::FETCH, FETCH_NODE_ENDPOINTS_SINCE)
    };
    kafka_mtls_proxy_fuzz::rewrite_one(key, Some(since), rest);
});
