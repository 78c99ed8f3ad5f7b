//! Token issuance: one short-lived JWT per upstream connection, saying which pools the
//! client's certificate matched.
//!
//! ```text
//! header  {"alg":"ES256","typ":"JWT","kid":"<RFC 7638 thumbprint>"}
//! claims  {"iss":…, "aud":…, "sub":"<primary pool>", "iat":…, "exp":…, "jti":"<uuid>",
//!          "pools":["<every matched pool>"], "cert_identifier":{"kind":"CN","value":"…"},
//!          "scope":"…" (when configured)}
//! ```
//!
//! - `sub` is the connection's primary pool ([`Resolution::primary`]): with Kafka's default
//!   `sasl.oauthbearer.sub.claim.name=sub` the broker's principal is `User:<primary pool>`,
//!   the same principal the scram mode gives.
//! - `pools` carries every matched pool (deduplicated, in match order), for authorizers or
//!   audit on the broker side that want more than the principal.
//! - There is no `nbf`: a broker whose clock is a little behind the proxy's would otherwise
//!   refuse a fresh token; `iat` and `exp` are what Kafka's validator needs.
//! - A token is signed per connection (≈ tens of µs, see `benches/token.rs`): tokens are never
//!   shared between clients, so one leaking says nothing about another's.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::keyring::KeyRing;
use super::sasl_message::{self, ExtensionError, Extensions};
use super::signing_key::{KeyMaterialError, SigningKey};
use crate::pools::Resolution;

/// The per-token settings; they may change on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `iss`; the brokers' `sasl.oauthbearer.expected.issuer`.
    pub issuer: String,
    /// `aud`; one of the brokers' `sasl.oauthbearer.expected.audience`.
    pub audience: String,
    /// `scope`, when the brokers check it (`sasl.oauthbearer.scope.claim.name`).
    pub scope: Option<String>,
    /// Sent after `identityPoolId` in every SASL message.
    pub extensions: Extensions,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the connection matched no pool, so there is no subject for a token")]
    NoPool,
    #[error("no signing key is active (the system clock is behind every key)")]
    NoSigningKey,
    #[error(transparent)]
    Key(#[from] KeyMaterialError),
    #[error("cannot encode the token claims: {0}")]
    Claims(#[from] serde_json::Error),
    #[error("cannot build the SASL message: {0}")]
    Extension(#[from] ExtensionError),
}

/// A signed token and what it says, for the SASL exchange and logs. `Debug` leaves the token
/// itself out: it is a bearer credential.
#[derive(Clone)]
pub struct IssuedToken {
    pub jwt: String,
    pub kid: String,
    /// `sub`: the primary pool id (the proxy's own subject for its own token).
    pub subject: String,
    /// Every matched pool id, deduplicated, in match order (none in the proxy's own token).
    pub pools: Vec<String>,
    /// `exp`, in Unix milliseconds (whole seconds).
    pub expires_at_ms: u64,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("jwt", &"<redacted>")
            .field("kid", &self.kid)
            .field("subject", &self.subject)
            .field("pools", &self.pools)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
    pools: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_identifier: Option<IdentifierClaim<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

#[derive(Serialize)]
struct IdentifierClaim<'a> {
    kind: &'static str,
    value: &'a str,
}

/// Signs tokens with the key ring's current signer.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    settings: TokenSettings,
    keys: Arc<KeyRing>,
}

impl TokenIssuer {
    pub fn new(settings: TokenSettings, keys: Arc<KeyRing>) -> Self {
        Self { settings, keys }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    /// A token for `resolution`, signed now by the current signer.
    pub fn issue(&self, resolution: &Resolution) -> Result<IssuedToken, TokenError> {
        let key = self.keys.signer().ok_or(TokenError::NoSigningKey)?;
        self.issue_with(&key, self.keys.now_ms(), resolution)
    }

    /// A token for `resolution` signed by `key` at `now_ms` (tests and benchmarks pick both).
    pub fn issue_with(
        &self,
        key: &SigningKey,
        now_ms: u64,
        resolution: &Resolution,
    ) -> Result<IssuedToken, TokenError> {
        let primary = resolution.primary().ok_or(TokenError::NoPool)?;
        let mut pools: Vec<String> = Vec::with_capacity(resolution.matched.len());
        for id in resolution.pool_ids() {
            if !pools.iter().any(|p| p == id) {
                pools.push(id.to_owned());
            }
        }
        let identifier = resolution.identifier.as_ref().map(|i| IdentifierClaim {
            kind: i.kind.as_str(),
            value: &i.value,
        });
        self.sign(key, now_ms, &primary.pool_id, pools, identifier)
    }

    /// A token for the proxy itself (`upstream.proxy_login`): `sub` is `subject`, and it names
    /// no pool and no certificate. Signed now by the current signer.
    pub fn issue_for_subject(&self, subject: &str) -> Result<IssuedToken, TokenError> {
        let key = self.keys.signer().ok_or(TokenError::NoSigningKey)?;
        self.sign(&key, self.keys.now_ms(), subject, Vec::new(), None)
    }

    fn sign(
        &self,
        key: &SigningKey,
        now_ms: u64,
        subject: &str,
        pools: Vec<String>,
        identifier: Option<IdentifierClaim<'_>>,
    ) -> Result<IssuedToken, TokenError> {
        let lifetime = self.keys.settings().token_lifetime;
        let iat = now_ms / 1000;
        let exp = iat.saturating_add(lifetime.as_secs().max(1));
        let claims = Claims {
            iss: &self.settings.issuer,
            aud: &self.settings.audience,
            sub: subject,
            iat,
            exp,
            jti: uuid::Uuid::new_v4().to_string(),
            pools: &pools,
            cert_identifier: identifier,
            scope: self.settings.scope.as_deref(),
        };
        let claims_b64 = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?);
        let mut jwt = String::with_capacity(key.header_b64().len() + claims_b64.len() + 90);
        jwt.push_str(key.header_b64());
        jwt.push('.');
        jwt.push_str(&claims_b64);
        let signature = key.sign(jwt.as_bytes())?;
        jwt.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jwt);
        Ok(IssuedToken {
            jwt,
            kid: key.kid().to_owned(),
            subject: subject.to_owned(),
            pools,
            expires_at_ms: exp.saturating_mul(1000),
        })
    }

    /// The OAUTHBEARER client message carrying `token`.
    pub fn sasl_message(&self, token: &IssuedToken) -> Result<Vec<u8>, TokenError> {
        let pools: Vec<&str> = token.pools.iter().map(String::as_str).collect();
        Ok(sasl_message::client_message(
            &token.jwt,
            &pools,
            &self.settings.extensions,
        )?)
    }

    /// The lifetime of every token.
    pub fn token_lifetime(&self) -> Duration {
        self.keys.settings().token_lifetime
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::oauth::clock::ManualClock;
    use crate::oauth::keyring::KeySettings;
    use crate::pools::{CertIdentifier, ExternalIdentifier, MatchedPool};
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    const NOW: u64 = 1_800_000_000_123;

    fn issuer(scope: Option<&str>) -> (TokenIssuer, Arc<KeyRing>) {
        let keys = Arc::new(
            KeyRing::open(KeySettings::default(), Arc::new(ManualClock::new(NOW))).unwrap(),
        );
        let settings = TokenSettings {
            issuer: "https://proxy.example".into(),
            audience: "kafka".into(),
            scope: scope.map(str::to_owned),
            extensions: Extensions::default(),
        };
        (TokenIssuer::new(settings, keys.clone()), keys)
    }

    fn matched(ca: &str, pool: &str, priority: i32) -> MatchedPool {
        MatchedPool {
            ca_id: ca.into(),
            pool_id: pool.into(),
            priority,
        }
    }

    fn resolution() -> Resolution {
        Resolution {
            matched: vec![
                matched("ca1", "readers", 0),
                matched("ca1", "orders", 10),
                matched("ca2", "readers", 0),
            ],
            principals: vec!["User:readers".into(), "User:orders".into()],
            identifier: Some(CertIdentifier {
                kind: ExternalIdentifier::Cn,
                value: "acme-client".into(),
            }),
        }
    }

    fn segments(jwt: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>) {
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let json = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
        (
            json(parts[0]),
            json(parts[1]),
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let (issuer, _) = issuer(None);
        let token = issuer.issue(&resolution()).unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(&token.jwt), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn claims_name_the_primary_pool_every_pool_and_the_certificate_identifier() {
        let (issuer, _) = issuer(None);
        let token = issuer.issue(&resolution()).unwrap();
        let (_, claims, _) = segments(&token.jwt);
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "https://proxy.example",
                "aud": "kafka",
                "sub": "orders",
                "iat": 1_800_000_000u64,
                "exp": 1_800_000_900u64,
                "jti": jti,
                "pools": ["readers", "orders"],
                "cert_identifier": {"kind": "CN", "value": "acme-client"},
            })
        );
        assert_eq!(token.subject, "orders");
        assert_eq!(token.expires_at_ms, 1_800_000_900_000);
    }

    #[test]
    fn scope_is_a_claim_only_when_configured() {
        let (issuer, _) = issuer(Some("kafka.produce kafka.consume"));
        let (_, claims, _) = segments(&issuer.issue(&resolution()).unwrap().jwt);
        assert_eq!(claims["scope"], "kafka.produce kafka.consume");
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let (issuer, _) = issuer(None);
        let a = segments(&issuer.issue(&resolution()).unwrap().jwt).1;
        let b = segments(&issuer.issue(&resolution()).unwrap().jwt).1;
        assert_ne!(a["jti"], b["jti"]);
    }

    #[test]
    fn header_names_the_signer_and_the_signature_verifies_with_its_public_key() {
        let (issuer, keys) = issuer(None);
        let token = issuer.issue(&resolution()).unwrap();
        let signer = keys.signer().unwrap();
        let (header, _, signature) = segments(&token.jwt);
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": signer.kid()})
        );
        let (signed, _) = token.jwt.rsplit_once('.').unwrap();
        assert_eq!(signature.len(), 64);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_point())
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        // A changed claim does not verify.
        let forged = signed.replacen('e', "f", 1);
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_point())
                .verify(forged.as_bytes(), &signature)
                .is_err()
        );
    }

    #[test]
    fn no_matched_pool_means_no_token() {
        let (issuer, _) = issuer(None);
        let empty = Resolution {
            matched: vec![],
            principals: vec![],
            identifier: None,
        };
        assert!(matches!(issuer.issue(&empty), Err(TokenError::NoPool)));
    }

    #[test]
    fn the_proxys_own_token_names_its_subject_and_no_pool_or_certificate() {
        let (issuer, keys) = issuer(Some("kafka.cluster"));
        let token = issuer.issue_for_subject("kafka-mtls-proxy").unwrap();
        let (header, claims, signature) = segments(&token.jwt);
        let jti = claims["jti"].as_str().unwrap().to_owned();
        assert_eq!(
            claims,
            serde_json::json!({
                "iss": "https://proxy.example",
                "aud": "kafka",
                "sub": "kafka-mtls-proxy",
                "iat": 1_800_000_000u64,
                "exp": 1_800_000_900u64,
                "jti": jti,
                "pools": [],
                "scope": "kafka.cluster",
            })
        );
        assert_eq!(token.subject, "kafka-mtls-proxy");
        assert!(token.pools.is_empty());
        // Signed like any token: the brokers verify it against the same JWKS.
        let signer = keys.signer().unwrap();
        assert_eq!(header["kid"], signer.kid());
        let (signed, _) = token.jwt.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, signer.public_point())
            .verify(signed.as_bytes(), &signature)
            .unwrap();
        // Kafka refuses an empty extension value: no identityPoolId at all.
        let message = issuer.sasl_message(&token).unwrap();
        assert_eq!(
            message,
            format!("n,,\x01auth=Bearer {}\x01\x01", token.jwt).into_bytes()
        );
    }

    #[test]
    fn sasl_message_carries_the_token_and_the_deduplicated_pools() {
        let (issuer, _) = issuer(None);
        let token = issuer.issue(&resolution()).unwrap();
        let message = issuer.sasl_message(&token).unwrap();
        let expected = format!(
            "n,,\x01auth=Bearer {}\x01identityPoolId=readers,orders\x01\x01",
            token.jwt
        );
        assert_eq!(message, expected.into_bytes());
    }
}
