//! The JSON Web Key Set the brokers verify tokens with (RFC 7517), served by the admin server
//! at `GET /.well-known/jwks.json`.
//!
//! It holds public keys only, so it needs no authentication. Kafka's
//! `OAuthBearerValidatorCallbackHandler` fetches it from `sasl.oauthbearer.jwks.endpoint.url`
//! at start, every `sasl.oauthbearer.jwks.endpoint.refresh.ms` (1 hour by default), and again
//! when a token names a `kid` it does not know. The short `Cache-Control` is for HTTP caches
//! between the two: a key is published long before it signs ([`super::keyring`]), so a cache
//! a minute stale never hides a key in use.

use serde::Serialize;

use super::signing_key::SigningKey;

/// Where the admin server serves the key set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// `Cache-Control` of the key set response.
pub const CACHE_CONTROL: &str = "public, max-age=60";

/// One public key, as Kafka (jose4j) and every JOSE library read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    pub crv: &'static str,
    pub x: String,
    pub y: String,
    pub kid: String,
    #[serde(rename = "use")]
    pub use_: &'static str,
    pub alg: &'static str,
}

/// `{"keys": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

impl Jwk {
    pub fn of(key: &SigningKey) -> Self {
        let (x, y) = key.public_coordinates();
        Self {
            kty: "EC",
            crv: "P-256",
            x: x.to_owned(),
            y: y.to_owned(),
            kid: key.kid().to_owned(),
            use_: "sig",
            alg: "ES256",
        }
    }
}

impl JwkSet {
    pub fn of<'a>(keys: impl IntoIterator<Item = &'a SigningKey>) -> Self {
        Self {
            keys: keys.into_iter().map(Jwk::of).collect(),
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    #[test]
    fn a_jwk_has_the_ec_p256_members_kafka_reads() {
        let key = SigningKey::generate(0).unwrap();
        let json = serde_json::to_value(JwkSet::of([&key])).unwrap();
        let (x, y) = key.public_coordinates();
        assert_eq!(
            json,
            serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "x": x, "y": y,
                "kid": key.kid(), "use": "sig", "alg": "ES256"
            }]})
        );
    }
}
