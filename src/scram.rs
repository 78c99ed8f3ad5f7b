//! The client side of SCRAM (RFC 5802; SCRAM-SHA-256 and SCRAM-SHA-512 as Kafka uses them),
//! without channel binding (`n,,`), as the proxy speaks it to brokers on behalf of a pool.
//!
//! ```text
//! client-first   n,,n=<user>,r=<client nonce>
//! server-first   r=<client nonce + server nonce>,s=<salt b64>,i=<iterations>
//! client-final   c=biws,r=<nonce>,p=<proof b64>
//! server-final   v=<server signature b64>     (or e=<error>)
//! ```
//!
//! Built from the RustCrypto primitives (hmac, sha2, pbkdf2). Usernames are limited to
//! printable ASCII (SASLprep of ASCII is the identity, apart from the `=`/`,` escaping done
//! here); anything else is refused with a clear error rather than guessed at.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Iteration counts outside this range are refused: below 4096 is weaker than RFC 7677 allows
/// a server to ask for (Kafka's own minimum), above a million is a denial of service on the
/// proxy (every connection pays for the key derivation).
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 1_000_000;

/// The SCRAM hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

impl Mechanism {
    /// The SASL mechanism name, as sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            Mechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => Sha256::digest(data).to_vec(),
            Mechanism::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `Hi()` of RFC 5802: PBKDF2 with HMAC and the mechanism's hash.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Mechanism::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// What went wrong in an exchange; none of these carry the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("username `{0}` is not printable ASCII (SASLprep beyond ASCII is not supported)")]
    Username(String),
    #[error("the broker sent a malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("the broker's nonce does not extend the proxy's")]
    Nonce,
    #[error("the broker asked for {0} iterations (allowed: {MIN_ITERATIONS}..={MAX_ITERATIONS})")]
    Iterations(u32),
    #[error("the broker refused the credentials: {0}")]
    ServerError(String),
    #[error("the broker's signature does not verify: it does not know this password")]
    ServerSignature,
}

/// `saslname` of RFC 5802: printable ASCII, with `=` and `,` escaped.
fn sasl_name(user: &str) -> Result<String, ScramError> {
    if user.is_empty() || !user.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(ScramError::Username(user.to_string()));
    }
    Ok(user.replace('=', "=3D").replace(',', "=2C"))
}

/// A client nonce: 32 printable characters, never `,`.
pub fn new_nonce() -> String {
    use rand::RngExt;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// A SCRAM exchange, client side. Drive it with [`ScramClient::client_first`],
/// [`ScramClient::client_final`], [`ScramClient::verify_server_final`].
pub struct ScramClient {
    mechanism: Mechanism,
    nonce: String,
    client_first_bare: String,
    /// `ServerSignature`, known once the client-final message is built.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: Mechanism, username: &str, nonce: String) -> Result<Self, ScramError> {
        let client_first_bare = format!("n={},r={nonce}", sasl_name(username)?);
        Ok(Self {
            mechanism,
            nonce,
            client_first_bare,
            server_signature: None,
        })
    }

    /// `n,,n=<user>,r=<nonce>`.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Read the server-first message and build the client-final one with the proof.
    pub fn client_final(
        &mut self,
        server_first: &[u8],
        password: &[u8],
    ) -> Result<String, ScramError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| ScramError::Malformed("server-first is not UTF-8"))?;
        if let Some(e) = server_first.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_string()));
        }
        let mut parts = server_first.split(',');
        let nonce = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or(ScramError::Malformed("server-first lacks r="))?;
        let salt = parts
            .next()
            .and_then(|p| p.strip_prefix("s="))
            .ok_or(ScramError::Malformed("server-first lacks s="))?;
        let iterations = parts
            .next()
            .and_then(|p| p.strip_prefix("i="))
            .ok_or(ScramError::Malformed("server-first lacks i="))?;
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramError::Nonce);
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| ScramError::Malformed("salt is not base64"))?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| ScramError::Malformed("iteration count is not a number"))?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let m = self.mechanism;
        let salted = m.salted_password(password, &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let stored_key = m.hash(&client_key);
        // "biws" is base64("n,,"): no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = m.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Check the server-final message: the server proves it knows the password too.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let server_final = std::str::from_utf8(server_final)
            .map_err(|_| ScramError::Malformed("server-final is not UTF-8"))?;
        if let Some(e) = server_final.strip_prefix("e=") {
            return Err(ScramError::ServerError(e.to_string()));
        }
        let v = server_final
            .split(',')
            .next()
            .and_then(|p| p.strip_prefix("v="))
            .ok_or(ScramError::Malformed("server-final lacks v="))?;
        let v = B64
            .decode(v)
            .map_err(|_| ScramError::Malformed("server signature is not base64"))?;
        let expected = self
            .server_signature
            .as_ref()
            .ok_or(ScramError::Malformed("server-final before client-final"))?;
        if bool::from(v.as_slice().ct_eq(expected.as_slice())) {
            Ok(())
        } else {
            Err(ScramError::ServerSignature)
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

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_scram_sha256_vector() {
        let mut c = ScramClient::new(
            Mechanism::Sha256,
            "user",
            "rOprNGfwEbeRWgbNEkqO".to_string(),
        )
        .unwrap();
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
            s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final = c.client_final(server_first, b"pencil").unwrap();
        assert_eq!(
            client_final,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert_eq!(
            c.verify_server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::ServerSignature)
        );
    }

    /// A server side computed independently from the RFC 5802 definitions.
    fn server_proof_check(
        m: Mechanism,
        password: &[u8],
        salt: &[u8],
        i: u32,
        auth_message: &str,
        proof: &[u8],
    ) -> Option<Vec<u8>> {
        let salted = m.salted_password(password, salt, i);
        let stored_key = m.hash(&m.hmac(&salted, b"Client Key"));
        let sig = m.hmac(&stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(&sig).map(|(p, s)| p ^ s).collect();
        (m.hash(&client_key) == stored_key).then(|| {
            let server_key = m.hmac(&salted, b"Server Key");
            m.hmac(&server_key, auth_message.as_bytes())
        })
    }

    #[test]
    fn sha512_round_trip_against_a_server() {
        let m = Mechanism::Sha512;
        let mut c = ScramClient::new(m, "acme-all", new_nonce()).unwrap();
        let first = c.client_first();
        let bare = first.strip_prefix("n,,").unwrap().to_string();
        let client_nonce = bare.split(",r=").nth(1).unwrap().to_string();
        let server_first = format!(
            "r={client_nonce}srv123,s={},i=4096",
            B64.encode(b"salty salt")
        );
        let client_final = c.client_final(server_first.as_bytes(), b"s3cret").unwrap();
        let (without_proof, proof) = client_final.split_once(",p=").unwrap();
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let proof = B64.decode(proof).unwrap();
        let sig =
            server_proof_check(m, b"s3cret", b"salty salt", 4096, &auth_message, &proof).unwrap();
        assert!(
            server_proof_check(m, b"wrong", b"salty salt", 4096, &auth_message, &proof).is_none()
        );
        c.verify_server_final(format!("v={}", B64.encode(&sig)).as_bytes())
            .unwrap();
        assert_eq!(
            c.verify_server_final(b"e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn refuses_bad_server_first_and_usernames() {
        let mut c = ScramClient::new(Mechanism::Sha256, "u", "abc".into()).unwrap();
        assert_eq!(
            c.client_final(b"r=xyzdef,s=AAAA,i=4096", b"p"),
            Err(ScramError::Nonce)
        );
        assert_eq!(
            c.client_final(b"r=abcdef,s=AAAA,i=1", b"p"),
            Err(ScramError::Iterations(1))
        );
        assert!(matches!(
            c.client_final(b"r=abcdef", b"p"),
            Err(ScramError::Malformed(_))
        ));
        assert!(matches!(
            ScramClient::new(Mechanism::Sha256, "jürgen", "n".into()),
            Err(ScramError::Username(_))
        ));
        let c = ScramClient::new(Mechanism::Sha256, "a=b,c", "n".into()).unwrap();
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=n");
    }
}
