//! The proxy as its own OAuth token issuer, for `upstream.identity.mode: oauthbearer`.
//!
//! The brokers validate tokens with Kafka's `OAuthBearerValidatorCallbackHandler` (KIP-768)
//! against the proxy's JWKS; no identity provider is involved. For each upstream connection
//! the proxy signs a short-lived JWT naming the client certificate's pools and sends it in a
//! SASL/OAUTHBEARER exchange before any client frame.
//!
//! - [`clock`]: the injectable wall clock (tests drive rotation without sleeping).
//! - [`signing_key`]: one P-256 key, its RFC 7638 `kid`, ES256 signing, PKCS#8 PEM.
//! - [`keyring`]: which key signs, which are published, rotation and `keys_dir` persistence.
//! - [`rotation`]: the background task that ticks the key ring.
//! - [`jwks`]: the public key set served at `GET /.well-known/jwks.json`.
//! - [`issuer`]: claims, header and signature of one token.
//! - [`sasl_message`]: the RFC 7628 client message with Kafka's extensions.

pub mod clock;
pub mod issuer;
pub mod jwks;
pub mod keyring;
pub mod rotation;
pub mod sasl_message;
pub mod signing_key;

pub use clock::{Clock, ManualClock, SystemClock};
pub use issuer::{IssuedToken, TokenError, TokenIssuer, TokenSettings};
pub use jwks::{JWKS_PATH, JwkSet};
pub use keyring::{KeyRing, KeyRingError, KeySettings};
pub use rotation::run_rotation;
pub use sasl_message::{ExtensionError, Extensions};
pub use signing_key::SigningKey;

/// The SASL mechanism name.
pub const MECHANISM: &str = "OAUTHBEARER";
