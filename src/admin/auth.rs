//! Who may change the configuration through the admin API: whoever holds the bearer token.
//!
//! Reads need no token (the admin port is for the machine's own agents and operators). Writes
//! need `Authorization: Bearer <token>`, where the token is `admin.token_file`'s content or
//! `admin.token_env`'s value, read again for every write (a rotated token file applies at
//! once). Without either setting the API is read-only. The comparison takes the same time
//! wherever the first differing byte is: both sides are hashed to fixed-length digests, which
//! are compared in constant time.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::AdminTokenSource;

/// Why a write was not authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No `admin.token_file` / `admin.token_env`: the API is read-only (403).
    ReadOnly,
    /// No `Authorization: Bearer` header (401).
    MissingToken,
    /// A token that is not the configured one (401).
    WrongToken,
    /// The configured token cannot be read now (500): the file vanished, say.
    Unavailable(String),
}

impl Denied {
    pub fn status(&self) -> u16 {
        match self {
            Denied::ReadOnly => 403,
            Denied::MissingToken | Denied::WrongToken => 401,
            Denied::Unavailable(_) => 500,
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Denied::ReadOnly => "the admin API is read-only: set admin.token_file or \
                                 admin.token_env in the configuration to allow writes"
                .to_string(),
            Denied::MissingToken => {
                "writes need an `Authorization: Bearer <token>` header".to_string()
            }
            Denied::WrongToken => "the bearer token is not the configured admin token".to_string(),
            Denied::Unavailable(reason) => format!("cannot read the admin token: {reason}"),
        }
    }
}

/// Whether `headers` carry the token that `source` holds.
pub fn authorize_write(
    headers: &HeaderMap,
    source: Option<&AdminTokenSource>,
) -> Result<(), Denied> {
    let source = source.ok_or(Denied::ReadOnly)?;
    let presented = bearer(headers).ok_or(Denied::MissingToken)?;
    let expected = source.read().map_err(Denied::Unavailable)?;
    if tokens_match(presented, &expected) {
        Ok(())
    } else {
        Err(Denied::WrongToken)
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Constant time in the position of the first difference and in the lengths.
fn tokens_match(presented: &str, expected: &str) -> bool {
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    fn token_file(token: &str) -> (tempfile::TempDir, AdminTokenSource) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, format!("{token}\n")).unwrap();
        (dir, AdminTokenSource::File(path))
    }

    #[test]
    fn the_configured_token_authorizes() {
        let (_dir, source) = token_file("s3cret-s3cret-s3cret");
        for value in [
            "Bearer s3cret-s3cret-s3cret",
            "bearer s3cret-s3cret-s3cret",
            "BEARER  s3cret-s3cret-s3cret ",
        ] {
            assert_eq!(authorize_write(&headers(value), Some(&source)), Ok(()));
        }
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        let (_dir, source) = token_file("s3cret-s3cret-s3cret");
        let cases = [
            (HeaderMap::new(), Denied::MissingToken),
            (headers("Bearer "), Denied::MissingToken),
            (headers("Basic czNjcmV0"), Denied::MissingToken),
            (headers("Bearer s3cret-s3cret-s3cre"), Denied::WrongToken),
            (headers("Bearer s3cret-s3cret-s3cret2"), Denied::WrongToken),
        ];
        for (h, want) in cases {
            assert_eq!(authorize_write(&h, Some(&source)), Err(want));
        }
        assert_eq!(
            authorize_write(&headers("Bearer x"), None),
            Err(Denied::ReadOnly)
        );
        assert_eq!(Denied::ReadOnly.status(), 403);
        assert_eq!(Denied::WrongToken.status(), 401);
    }

    #[test]
    fn a_vanished_token_file_refuses_writes() {
        let (dir, source) = token_file("s3cret-s3cret-s3cret");
        drop(dir);
        let got = authorize_write(&headers("Bearer s3cret-s3cret-s3cret"), Some(&source));
        assert!(matches!(got, Err(Denied::Unavailable(_))), "{got:?}");
    }
}
