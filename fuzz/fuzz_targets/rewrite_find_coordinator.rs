//! Broker bytes through the address rewrite of FindCoordinator answers (the single coordinator before v4, `coordinators` from v4): see
//! `kafka_mtls_proxy_fuzz::rewrite_one` for the input layout and what must hold.

#![no_main]

use kafka_mtls_proxy::kafka::ApiKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kafka_mtls_proxy_fuzz::rewrite_one(ApiKey::FIND_COORDINATOR, None, data);
});
