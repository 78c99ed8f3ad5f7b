//! The one error type of the Kafka protocol layer.
//!
//! Variants say who is at fault, so the connection layer can decide between closing the client,
//! closing the upstream, and logging a proxy bug.

use super::api_key::ApiKey;

/// A Kafka frame could not be understood, produced or rewritten.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum ProtocolError {
    /// The peer sent a frame that ends before a field it must contain: `needed` bytes at
    /// offset `at`, of which the frame has only `found`.
    #[error(
        "frame truncated while reading {what}: needed {needed} byte(s) at offset {at}, found {found}"
    )]
    Truncated {
        what: &'static str,
        at: usize,
        needed: usize,
        found: usize,
    },
    /// A frame with size prefix 0, where a `message` ("request", "response") of at least
    /// `header` bytes was due. Kafka's framing allows it; no message fits in it.
    #[error("empty frame: size prefix 0 (a {message} needs at least its {header}-byte header)")]
    EmptyFrame {
        message: &'static str,
        header: usize,
    },
    /// The peer sent bytes that no valid frame contains (negative lengths, trailing bytes, …).
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// An api key that kafka-protocol does not know, where the proxy needed to understand it.
    #[error("unknown api key {}", .0.0)]
    UnknownApiKey(ApiKey),
    /// A response of a known api that the proxy never decodes (it has nothing to change there).
    #[error("the proxy does not decode {0} responses")]
    NotDecoded(ApiKey),
    /// A version of a known API that the proxy cannot decode or encode (peer incompatible).
    #[error("{api} version {version} is not supported by the proxy")]
    UnsupportedVersion { api: &'static str, version: i16 },
    /// kafka-protocol rejected the body (the peer misbehaved, or sent a version it did not agree).
    #[error("cannot decode {api} version {version}: {reason}")]
    Decode {
        api: &'static str,
        version: i16,
        reason: String,
    },
    /// kafka-protocol refused to encode what the proxy built (a proxy bug, or a rewritten value
    /// that does not fit the version, such as a host name too long for a non-flexible string).
    #[error("cannot encode {api} version {version}: {reason}")]
    Encode {
        api: &'static str,
        version: i16,
        reason: String,
    },
    /// A broker address names a node id the proxy has no listener for: forwarding the response
    /// would send clients around the proxy, so it must not be forwarded.
    #[error("no proxy address for broker node id {node_id} (advertised upstream as {host}:{port})")]
    UnmappedBroker {
        node_id: i32,
        host: String,
        port: i32,
    },
    /// The caller handed a request of another API to a function made for one API.
    #[error("api key {} passed where {expected} was expected", api_key.0)]
    WrongApi {
        api_key: ApiKey,
        expected: &'static str,
    },
    /// A decoded response body is not of the type a rewrite or patch was made for (the caller
    /// paired it with the wrong request).
    #[error("a decoded response is not a {expected}")]
    WrongBody { expected: &'static str },
}
