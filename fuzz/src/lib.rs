//! What the fuzz targets share: the crash rule for decoders behind `catch_unwind`, one tokio
//! runtime per thread, and the response-rewrite harness used by the `rewrite_*` targets.
//!
//! Every target is a thin wrapper around one real decoding entry point of the proxy's library;
//! this crate only turns fuzz bytes into that entry point's arguments and checks what must hold
//! of the result.

use bytes::Bytes;
use kafka_mtls_proxy::kafka::{
    AddressMapper, ApiKey, BrokerAddress, ProtocolError, proxy_version_range, rewrite_response,
};

/// Where an input holding several messages is cut (`split`): two bytes no UTF-8 text holds.
pub const SEPARATOR: &[u8] = b"\xff\xfe";

/// The messages of an input, cut at every [`SEPARATOR`] (seeds join theirs with it).
pub fn split(mut rest: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

/// A panic that the codec's `catch_unwind` turned into an error is a crash all the same: the
/// proxy survives it, but it is a bug in a decoder a peer controls.
pub fn assert_no_caught_panic<T>(result: &Result<T, ProtocolError>) {
    if let Err(ProtocolError::Decode { reason, .. } | ProtocolError::Encode { reason, .. }) = result
    {
        assert!(!reason.contains("panicked"), "{reason}");
    }
}

/// Runs `future` to completion on this thread's runtime (current-thread, with time: the SASL
/// sign-in is bounded by a timeout as on a real connection).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("cannot build the fuzz runtime: {e}"));
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}

/// The proxy's host in rewritten answers.
pub const PROXY_HOST: &str = "proxy.fuzz";
/// Node ids the fuzz mapper has a listener for: `0..MAPPED_NODES`. Others are unmapped, the
/// path where the proxy refuses to forward an answer naming a broker it cannot serve.
const MAPPED_NODES: i32 = 1000;
const FIRST_PROXY_PORT: i32 = 20_000;

/// Maps node `n` to `proxy.fuzz:20000+n`, as the proxy's port-per-broker listeners do.
pub struct FuzzMapper;

impl AddressMapper for FuzzMapper {
    fn client_address(&self, upstream: &BrokerAddress) -> Result<(String, i32), ProtocolError> {
        if (0..MAPPED_NODES).contains(&upstream.node_id) {
            Ok((PROXY_HOST.to_owned(), FIRST_PROXY_PORT + upstream.node_id))
        } else {
            Err(ProtocolError::UnmappedBroker {
                node_id: upstream.node_id,
                host: upstream.host.clone(),
                port: upstream.port,
            })
        }
    }
}

/// One broker answer through `rewrite_response`, the entry point the session's response filter
/// chain decodes address-carrying answers with.
///
/// Input: byte 0 picks the request version among `versions` (the proxy's table for `api_key`,
/// plus one version past it, which must be refused before decoding); the rest is the response
/// frame (header and body, no size prefix), as the broker sent it.
///
/// What must hold: no panic; an answer the proxy rewrote decodes again (clients must be able to
/// read what the proxy sends), and names only proxy addresses; rewriting it once more changes
/// nothing.
pub fn rewrite_one(api_key: ApiKey, first_version: Option<i16>, data: &[u8]) {
    let [selector, frame @ ..] = data else {
        return;
    };
    let Some((min, max)) = proxy_version_range(api_key) else {
        return;
    };
    let min = first_version.map_or(min, |first| first.max(min));
    let span = i32::from(max) - i32::from(min) + 2;
    let Ok(version) = i16::try_from(i32::from(min) + i32::from(*selector) % span) else {
        return;
    };
    let frame = Bytes::copy_from_slice(frame);
    let rewritten = rewrite_response(api_key, version, &frame, &FuzzMapper);
    assert_no_caught_panic(&rewritten);
    let Ok(rewritten) = rewritten else {
        return;
    };
    assert!(
        version <= max,
        "{api_key:?} v{version} is past the table and was decoded"
    );
    let again = rewrite_response(api_key, version, &rewritten.frame, &FuzzMapper);
    let again = match again {
        Ok(again) => again,
        Err(e) => panic!("the proxy's own {api_key:?} v{version} answer does not decode: {e}"),
    };
    for broker in &again.upstream_brokers {
        assert_eq!(
            broker.host, PROXY_HOST,
            "a rewritten answer still names {broker:?}"
        );
    }
    assert_eq!(
        again.frame, rewritten.frame,
        "rewriting the proxy's own {api_key:?} v{version} answer changed it"
    );
}
