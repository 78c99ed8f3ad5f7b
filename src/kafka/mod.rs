//! The Kafka wire protocol, as far as a proxy needs it.
//!
//! Frames stay raw bytes until something must change: every frame is read whole
//! ([`frame`]), its request header is parsed by hand ([`header`]), and only the responses that
//! carry broker addresses — or the ApiVersions answer the proxy narrows — are decoded, rewritten
//! and encoded again ([`rewrite`], [`versions`]). Everything else is forwarded as it came.
//!
//! - [`frame`]: length-prefixed framing with a size limit.
//! - [`header`]: request header, response correlation id, Produce `acks`.
//! - [`versions`]: the one table of API versions the proxy supports; ApiVersions rewriting,
//!   the KIP-511 answer, and the refusal of SASL on the mTLS listener.
//! - [`rewrite`]: broker-address rewriting (Metadata, FindCoordinator, DescribeCluster, KIP-951
//!   node endpoints).
//!
//! Bodies are decoded with kafka-protocol (vendored with a fix for hostile array counts, see
//! `vendor/kafka-protocol/PATCHED.md`), always behind `catch_unwind`.

mod api_versions;
pub(crate) mod codec;
mod error;
pub mod frame;
pub mod header;
pub mod rewrite;
pub mod sasl;
pub mod versions;
mod wire;

pub use error::ProtocolError;

/// The protocol's name of an api key (`Produce`), for logs, metrics and audit records; the
/// number for a key newer than this build's protocol crate.
pub fn api_name(api_key: i16) -> std::borrow::Cow<'static, str> {
    match kafka_protocol::messages::ApiKey::try_from(api_key) {
        Ok(key) => std::borrow::Cow::Owned(format!("{key:?}")),
        Err(()) => std::borrow::Cow::Owned(api_key.to_string()),
    }
}
pub use frame::{DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader, write_frame};
pub use header::{RequestHeader, parse_request_header, produce_acks, response_correlation_id};
pub use rewrite::{
    AddressMapper, BrokerAddress, Rewritten, response_needs_rewrite, rewrite_response,
};
pub use versions::{
    proxy_version_range, rewrite_api_versions_response, sasl_refusal_response,
    unsupported_api_versions_response,
};
