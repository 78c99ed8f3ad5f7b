//! Broker bytes through the address rewrite of ApiVersions answers (narrowed to the proxy's table; KIP-511 v0 answers): see
//! `kafka_mtls_proxy_fuzz::rewrite_one` for the input layout and what must hold.

#![no_main]

use kafka_mtls_proxy::kafka::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kafka_mtls_proxy_fuzz::rewrite_one(ApiKey::API_VERSIONS, None, data);
});
