//! The broker side of SCRAM-SHA-256 (RFC 5802, RFC 7677) for the fake brokers of the
//! in-process tests, and the Kafka framing they read and answer SASL requests with. One copy,
//! so that every fake checks a client proof the same way a Kafka broker does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::proxy::framed;

/// RFC 7677's minimum, which the proxy requires of a broker.
pub const ITERATIONS: u32 = 4096;
/// Every fake salts every password alike: the tests need no per-user salt.
pub const SALT: &[u8] = b"fake-broker-salt";
/// Appended to the client's nonce in server-first.
const SERVER_NONCE: &str = "fakeservernonce";
/// Kafka's SASL_AUTHENTICATION_FAILED.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// What a Kafka broker answers a SCRAM login whose proof matches no password.
pub fn invalid_credentials() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(SASL_AUTHENTICATION_FAILED)
        .with_error_message(Some(StrBytes::from_static_str(
            "Authentication failed during authentication due to invalid credentials with SASL \
             mechanism SCRAM-SHA-256",
        )))
}

/// One SCRAM exchange between client-first and client-final: what the proof is checked
/// against.
pub struct ScramServer {
    client_first_bare: String,
    user: String,
    server_first: String,
}

impl ScramServer {
    /// Reads client-first (`n,,n=<user>,r=<nonce>`) and makes server-first; `None` when it
    /// names no user or nonce.
    pub fn start(client_first: &[u8]) -> Option<Self> {
        let client_first = std::str::from_utf8(client_first).expect("client-first is UTF-8");
        // The proxy never asks for channel binding: the GS2 header is always `n,,`.
        let bare = client_first
            .strip_prefix("n,,")
            .expect("client-first starts with the GS2 header `n,,`");
        let user = bare.strip_prefix("n=")?.split(',').next()?.to_string();
        let nonce = bare.split(",r=").nth(1)?;
        let server_first = format!(
            "r={nonce}{SERVER_NONCE},s={},i={ITERATIONS}",
            B64.encode(SALT)
        );
        Some(Self {
            client_first_bare: bare.to_string(),
            user,
            server_first,
        })
    }

    /// The user client-first named.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The answer to client-first.
    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Checks client-final's proof against each of `passwords` (a broker in the middle of a
    /// rotation knows two); on success, server-final and the password that verified.
    pub fn finish<'a>(
        &self,
        client_final: &[u8],
        passwords: impl IntoIterator<Item = &'a str>,
    ) -> Option<(String, &'a str)> {
        let client_final = std::str::from_utf8(client_final).ok()?;
        let (without_proof, proof) = client_final.split_once(",p=")?;
        let proof = B64.decode(proof).ok()?;
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        passwords.into_iter().find_map(|password| {
            let mut salted = [0u8; 32];
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), SALT, ITERATIONS, &mut salted);
            let client_key = hmac(&salted, b"Client Key");
            let stored_key = Sha256::digest(&client_key).to_vec();
            let signature = hmac(&stored_key, auth_message.as_bytes());
            let recovered: Vec<u8> = proof.iter().zip(&signature).map(|(p, s)| p ^ s).collect();
            (Sha256::digest(&recovered).to_vec() == stored_key).then(|| {
                let server_key = hmac(&salted, b"Server Key");
                let v = hmac(&server_key, auth_message.as_bytes());
                (format!("v={}", B64.encode(v)), password)
            })
        })
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A response frame (size prefix included) for a known api.
pub fn response<T: Encodable>(key: ApiKey, version: i16, correlation_id: i32, body: &T) -> Vec<u8> {
    let mut out = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut out, key.response_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    framed(&out)
}

/// Reads one request frame of a known api: its key, version, correlation id and body. `None`
/// when the connection ends or the frame is not such a request.
pub async fn read_request(socket: &mut TcpStream) -> Option<(ApiKey, i16, i32, Bytes)> {
    let size = socket.read_i32().await.ok()?;
    let mut frame = vec![0u8; usize::try_from(size).ok()?];
    socket.read_exact(&mut frame).await.ok()?;
    if frame.len() < 4 {
        return None;
    }
    let mut buf = Bytes::from(frame);
    let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).ok()?;
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version)).ok()?;
    Some((key, version, header.correlation_id, buf))
}
