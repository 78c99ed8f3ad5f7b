//! One ES256 signing key: a P-256 key pair, its key id, and when it starts signing.
//!
//! - The key id (`kid`) is the key's RFC 7638 JWK thumbprint: SHA-256 over the canonical
//!   public JWK, base64url. It is derived from the public key alone, so every replica that
//!   loads the same key file names it the same way, and a restart does not rename it.
//! - ES256 signatures in a JWS are the 64-byte `r || s` form (RFC 7518 §3.4), which is what
//!   aws-lc-rs' `ECDSA_P256_SHA256_FIXED_SIGNING` produces (not ASN.1 DER).
//! - On disk a key is a PKCS#8 `PRIVATE KEY` PEM file; see [`super::keyring`] for the file
//!   names and who writes them.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject as _;
use sha2::Digest as _;

/// Length of an uncompressed P-256 point: `0x04 || X (32) || Y (32)`.
const UNCOMPRESSED_POINT_LEN: usize = 65;

#[derive(Debug, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("the key pair could not be generated")]
    Generate,
    #[error("not a PKCS#8 PEM private key: {0}")]
    Pem(String),
    #[error("not a P-256 (ES256) PKCS#8 key: {0}")]
    NotP256(String),
    #[error("the key could not be exported as PKCS#8")]
    Export,
    #[error("signing failed")]
    Sign,
}

/// A P-256 key pair with its key id and the time it may start signing.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    /// Base64url public coordinates, as the JWK `x` and `y`.
    x: String,
    y: String,
    /// The JWS protected header for this key, already base64url-encoded: it is the same for
    /// every token the key signs.
    header_b64: String,
    /// Unix milliseconds from which this key is the one that signs (until a newer key's
    /// `active_from`). Before that it is only published.
    active_from_ms: u64,
    /// Source of randomness for ECDSA nonces. aws-lc draws its own; the argument exists for
    /// API compatibility with ring.
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("active_from_ms", &self.active_from_ms)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key pair that signs from `active_from_ms`.
    pub fn generate(active_from_ms: u64) -> Result<Self, KeyMaterialError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| KeyMaterialError::Generate)?;
        Self::from_pair(pair, active_from_ms)
    }

    /// A key read from a PKCS#8 PEM file's contents.
    pub fn from_pkcs8_pem(pem: &[u8], active_from_ms: u64) -> Result<Self, KeyMaterialError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|e| KeyMaterialError::Pem(e.to_string()))?;
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_pkcs8_der())
                .map_err(|e| KeyMaterialError::NotP256(e.to_string()))?;
        Self::from_pair(pair, active_from_ms)
    }

    fn from_pair(pair: EcdsaKeyPair, active_from_ms: u64) -> Result<Self, KeyMaterialError> {
        let point = pair.public_key().as_ref();
        if point.len() != UNCOMPRESSED_POINT_LEN || point[0] != 0x04 {
            return Err(KeyMaterialError::NotP256(
                "the public key is not an uncompressed P-256 point".into(),
            ));
        }
        let x = URL_SAFE_NO_PAD.encode(&point[1..33]);
        let y = URL_SAFE_NO_PAD.encode(&point[33..65]);
        // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
        let header = serde_json::json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(Self {
            pair,
            kid,
            x,
            y,
            header_b64,
            active_from_ms,
            rng: SystemRandom::new(),
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn active_from_ms(&self) -> u64 {
        self.active_from_ms
    }

    /// The base64url public coordinates `(x, y)`.
    pub fn public_coordinates(&self) -> (&str, &str) {
        (&self.x, &self.y)
    }

    /// The uncompressed public point, for verifying with `UnparsedPublicKey`.
    pub fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The base64url JWS protected header (`alg`, `typ`, `kid`).
    pub fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// The 64-byte `r || s` ES256 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyMaterialError> {
        self.pair
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| KeyMaterialError::Sign)
    }

    /// The private key as a PKCS#8 `PRIVATE KEY` PEM document (what goes in `keys_dir`).
    pub fn to_pkcs8_pem(&self) -> Result<String, KeyMaterialError> {
        let der = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| KeyMaterialError::Export)?;
        let b64 = STANDARD.encode(der.as_ref());
        let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
        pem.push_str("-----BEGIN PRIVATE KEY-----\n");
        // RFC 7468: 64 characters a line. Base64 is ASCII, so byte chunks are whole characters.
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(pem)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn signature_is_64_byte_r_s_and_verifies_with_the_public_point() {
        let key = SigningKey::generate(0).unwrap();
        let sig = key.sign(b"header.claims").unwrap();
        assert_eq!(sig.len(), 64);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.public_point())
            .verify(b"header.claims", &sig)
            .unwrap();
    }

    #[test]
    fn pem_round_trip_keeps_the_key_and_its_kid() {
        let key = SigningKey::generate(5).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let again = SigningKey::from_pkcs8_pem(pem.as_bytes(), 5).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_coordinates(), key.public_coordinates());
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint_of_the_public_jwk() {
        let key = SigningKey::generate(0).unwrap();
        let (x, y) = key.public_coordinates();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let expected = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
        assert_eq!(key.kid(), expected);
        assert_eq!(key.kid().len(), 43);
    }

    #[test]
    fn header_names_es256_jwt_and_the_kid() {
        let key = SigningKey::generate(0).unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(key.header_b64()).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": key.kid()})
        );
    }

    #[test]
    fn garbage_and_non_p256_keys_are_refused() {
        assert!(matches!(
            SigningKey::from_pkcs8_pem(b"not pem", 0),
            Err(KeyMaterialError::Pem(_))
        ));
        let ed =
            aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(ed.as_ref())
        );
        assert!(matches!(
            SigningKey::from_pkcs8_pem(pem.as_bytes(), 0),
            Err(KeyMaterialError::NotP256(_))
        ));
    }
}
