//! The Kafka wire protocol, as far as a proxy needs it.
//!
//! Frames stay raw bytes until something must change: a frame is read whole ([`frame`]) unless
//! it is large and no filter wants it (then it is streamed), its request header is parsed by hand ([`header`]), and only the responses that
//! carry broker addresses — or the ApiVersions answer the proxy narrows — are decoded once
//! ([`response`]), rewritten and encoded again ([`rewrite`], [`api_versions`]). Everything else
//! is forwarded as it came.
//!
//! - [`ApiKey`], [`ErrorCode`]: the wire's api keys and error codes as open newtypes.
//! - [`frame`]: length-prefixed framing with a size limit.
//! - [`budget`]: the request memory budget shared by every client connection.
//! - [`header`]: request header, response correlation id, Produce `acks`.
//! - [`versions`]: the one table of API versions the proxy supports, and the refusal of SASL on
//!   the mTLS listener.
//! - [`api_versions`]: the ApiVersions answer narrowed to a table, and the KIP-511 answer.
//! - [`response`]: a response decoded once, changed in place, encoded once.
//! - [`rewrite`]: broker-address rewriting (Metadata, FindCoordinator, DescribeCluster, KIP-951
//!   node endpoints).
//!
//! Bodies are decoded with kafka-protocol (vendored with a fix for hostile array counts, see
//! `vendor/kafka-protocol/PATCHED.md`), always behind `catch_unwind`.

mod api_key;
pub mod api_versions;
pub mod broker_list;
pub mod budget;
pub(crate) mod codec;
mod error;
mod error_code;
pub mod frame;
pub mod header;
pub mod response;
pub mod rewrite;
pub mod sasl;
pub mod versions;
mod wire;

pub use api_key::ApiKey;
pub use error::ProtocolError;
pub use error_code::ErrorCode;
pub use frame::{DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader, write_frame};
pub use header::{RequestHeader, parse_request_header, produce_acks, response_correlation_id};
pub use response::{DecodedResponse, ResponseBody};
pub use rewrite::{
    AddressChanges, AddressMapper, BrokerAddress, Rewritten, response_needs_rewrite,
    rewrite_addresses, rewrite_response,
};
pub use versions::{
    proxy_version_range, rewrite_api_versions_response, sasl_refusal_response,
    unsupported_api_versions_response,
};
