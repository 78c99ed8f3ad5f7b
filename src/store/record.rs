//! One record of the shared store: its key names a CA or a pool, its value is a JSON document
//! carrying everything a replica with an empty disk needs (PEM text inline, not file paths);
//! no value (a tombstone) deletes.
//!
//! | key | value |
//! | --- | --- |
//! | `ca/<ca-id>` | [`CaDoc`] |
//! | `pool/<ca-id>/<pool-id>` | [`RawIdentityPool`] as in the configuration file |

use serde::{Deserialize, Serialize};

use crate::config::raw::{RawAuthorization, RawIdentityPool};

/// The biggest value accepted: a CA chain of 4 certificates and a CRL fit many times over.
pub const MAX_VALUE_BYTES: usize = 512 * 1024;

/// A certificate authority as stored: its settings and its chain (and CRLs) as PEM text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaDoc {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// PEM text of 1 to 4 CA certificates.
    pub certificate_chain_pem: String,
    /// PEM text of the CA's CRLs (`X509 CRL` blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_chain_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_url: Option<String>,
    #[serde(default)]
    pub require_crl_on_client_certificate: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<RawAuthorization>,
}

/// What one record says.
#[derive(Debug, Clone)]
pub enum Change {
    PutCa(Box<CaDoc>),
    DeleteCa(String),
    PutPool { ca: String, pool: RawIdentityPool },
    DeletePool { ca: String, pool: String },
}

impl Change {
    /// The record's key.
    pub fn key(&self) -> String {
        match self {
            Change::PutCa(doc) => ca_key(&doc.id),
            Change::DeleteCa(id) => ca_key(id),
            Change::PutPool { ca, pool } => pool_key(ca, &pool.id),
            Change::DeletePool { ca, pool } => pool_key(ca, pool),
        }
    }

    /// The record's key and value (`None`: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let value = match self {
            // Serializing these types cannot fail: strings, booleans and maps with string keys.
            Change::PutCa(doc) => serde_json::to_vec(doc).ok(),
            Change::PutPool { pool, .. } => serde_json::to_vec(pool).ok(),
            Change::DeleteCa(_) | Change::DeletePool { .. } => None,
        };
        (self.key().into_bytes(), value)
    }

    /// Read a record. Every way it can be wrong is a [`RecordError`]; nothing here panics.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Change, RecordError> {
        let key = key.ok_or(RecordError::NoKey)?;
        let key = std::str::from_utf8(key).map_err(|_| RecordError::KeyNotUtf8)?;
        if value.is_some_and(|v| v.len() > MAX_VALUE_BYTES) {
            return Err(RecordError::TooLarge(key.to_string()));
        }
        let bad_json = |e: serde_json::Error| RecordError::Json {
            key: key.to_string(),
            reason: e.to_string(),
        };
        match parse_key(key)? {
            Key::Ca(id) => match value {
                None => Ok(Change::DeleteCa(id)),
                Some(v) => {
                    let doc: CaDoc = serde_json::from_slice(v).map_err(bad_json)?;
                    if doc.id != id {
                        return Err(RecordError::IdMismatch {
                            key: key.to_string(),
                            id: doc.id,
                        });
                    }
                    Ok(Change::PutCa(Box::new(doc)))
                }
            },
            Key::Pool(ca, pool_id) => match value {
                None => Ok(Change::DeletePool { ca, pool: pool_id }),
                Some(v) => {
                    let pool: RawIdentityPool = serde_json::from_slice(v).map_err(bad_json)?;
                    if pool.id != pool_id {
                        return Err(RecordError::IdMismatch {
                            key: key.to_string(),
                            id: pool.id,
                        });
                    }
                    Ok(Change::PutPool { ca, pool })
                }
            },
        }
    }
}

/// Why a record was not applied. The `reason` label of
/// `kafka_mtls_proxy_pool_store_records_rejected_total` is [`RecordError::label`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("the record has no key")]
    NoKey,
    #[error("the record key is not UTF-8")]
    KeyNotUtf8,
    #[error("key `{0}` is not `ca/<ca-id>` or `pool/<ca-id>/<pool-id>`")]
    BadKey(String),
    #[error("record `{0}` is over {MAX_VALUE_BYTES} bytes")]
    TooLarge(String),
    #[error("record `{key}` is not a valid document: {reason}")]
    Json { key: String, reason: String },
    #[error("record `{key}` carries id `{id}`, not the one its key names")]
    IdMismatch { key: String, id: String },
    #[error("record `{key}` does not validate: {reason}")]
    Invalid { key: String, reason: String },
}

impl RecordError {
    /// A fixed label per kind, for the metric.
    pub fn label(&self) -> &'static str {
        match self {
            RecordError::NoKey | RecordError::KeyNotUtf8 | RecordError::BadKey(_) => "key",
            RecordError::TooLarge(_) => "too_large",
            RecordError::Json { .. } | RecordError::IdMismatch { .. } => "document",
            RecordError::Invalid { .. } => "invalid",
        }
    }
}

enum Key {
    Ca(String),
    Pool(String, String),
}

pub fn ca_key(id: &str) -> String {
    format!("ca/{id}")
}

pub fn pool_key(ca: &str, pool: &str) -> String {
    format!("pool/{ca}/{pool}")
}

fn parse_key(key: &str) -> Result<Key, RecordError> {
    let bad = || RecordError::BadKey(key.to_string());
    let part = |s: &str| -> Result<String, RecordError> {
        if s.is_empty() || s.contains('/') {
            Err(bad())
        } else {
            Ok(s.to_string())
        }
    };
    if let Some(id) = key.strip_prefix("ca/") {
        return Ok(Key::Ca(part(id)?));
    }
    if let Some(rest) = key.strip_prefix("pool/") {
        let (ca, pool) = rest.split_once('/').ok_or_else(bad)?;
        return Ok(Key::Pool(part(ca)?, part(pool)?));
    }
    Err(bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(id: &str) -> RawIdentityPool {
        RawIdentityPool {
            id: id.to_string(),
            display_name: "P".into(),
            description: String::new(),
            external_identifier: "CN".into(),
            filter: "CN == \"a\"".into(),
            priority: Some(2),
            acls: vec![],
        }
    }

    fn ca(id: &str) -> CaDoc {
        CaDoc {
            id: id.to_string(),
            display_name: "CA".into(),
            description: "d".into(),
            certificate_chain_pem: "-----BEGIN CERTIFICATE-----\n...".into(),
            crl_chain_pem: None,
            crl_url: Some("http://x/crl".into()),
            require_crl_on_client_certificate: true,
            authorization: None,
        }
    }

    fn round_trip(change: &Change) -> Change {
        let (k, v) = change.encode();
        Change::decode(Some(&k), v.as_deref()).unwrap()
    }

    #[test]
    fn records_round_trip() {
        match round_trip(&Change::PutCa(Box::new(ca("acme")))) {
            Change::PutCa(doc) => assert_eq!(*doc, ca("acme")),
            other => panic!("{other:?}"),
        }
        match round_trip(&Change::PutPool {
            ca: "acme".into(),
            pool: pool("p1"),
        }) {
            Change::PutPool { ca, pool: p } => {
                assert_eq!(ca, "acme");
                assert_eq!(
                    serde_json::to_value(&p).unwrap(),
                    serde_json::to_value(pool("p1")).unwrap()
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tombstones_delete_what_their_key_names() {
        let (k, v) = Change::DeleteCa("acme".into()).encode();
        assert_eq!((k.as_slice(), v), (b"ca/acme".as_slice(), None));
        assert!(
            matches!(round_trip(&Change::DeleteCa("acme".into())), Change::DeleteCa(id) if id == "acme")
        );
        let gone = Change::DeletePool {
            ca: "acme".into(),
            pool: "p1".into(),
        };
        assert_eq!(gone.encode().0, b"pool/acme/p1");
        assert!(
            matches!(round_trip(&gone), Change::DeletePool { ca, pool } if ca == "acme" && pool == "p1")
        );
    }

    #[test]
    fn bad_records_are_refused_with_a_reason() {
        type Case<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, &'a str);
        let cases: Vec<Case> = vec![
            (None, Some(b"{}"), "key"),
            (Some(b"\xff"), None, "key"),
            (Some(b"user/x"), None, "key"),
            (Some(b"ca/"), None, "key"),
            (Some(b"ca/a/b"), None, "key"),
            (Some(b"pool/acme"), None, "key"),
            (Some(b"pool/acme/"), None, "key"),
            (Some(b"ca/acme"), Some(b"not json"), "document"),
            (Some(b"ca/acme"), Some(br#"{"id":"acme"}"#), "document"),
            (
                Some(b"pool/acme/p1"),
                Some(br#"{"id":"p1","display_name":"x","external_identifier":"CN","color":"red"}"#),
                "document",
            ),
            (
                Some(b"pool/acme/p1"),
                Some(br#"{"id":"p2","display_name":"x","external_identifier":"CN"}"#),
                "document",
            ),
        ];
        for (k, v, label) in cases {
            let e = Change::decode(k, v).unwrap_err();
            assert_eq!(e.label(), label, "{k:?} {v:?}: {e}");
        }
        let huge = vec![b' '; MAX_VALUE_BYTES + 1];
        assert_eq!(
            Change::decode(Some(b"ca/acme"), Some(&huge))
                .unwrap_err()
                .label(),
            "too_large"
        );
    }
}
