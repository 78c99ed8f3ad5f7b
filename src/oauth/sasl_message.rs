//! The OAUTHBEARER client message (RFC 7628 §3.1) with Kafka's SASL extensions (KIP-342).
//!
//! ```text
//! n,,\x01auth=Bearer <jwt>\x01identityPoolId=pool-a,pool-b\x01<name>=<value>\x01\x01
//! ```
//!
//! - `n,,` is the GS2 header: no channel binding, no authorization identity (the broker takes
//!   the principal from the token's `sub` claim).
//! - Key/value pairs are separated by `\x01` and the message ends with `\x01\x01`.
//! - `identityPoolId` is Confluent's extension name for the pools a client authenticates as
//!   (Java clients configure it as `extension_identityPoolId`); the proxy sends it with every
//!   matched pool id, comma-separated (and leaves it out of its own token, which has none).
//! - Kafka's `OAuthBearerClientInitialResponse` refuses extension names outside
//!   `^[a-zA-Z]+$`, values outside `^[\x21-\x7E \t\r\n]+$`, and the name `auth`. Configured
//!   extensions are checked against the same rules at load ([`Extensions::new`]), so a bad one
//!   is a configuration error instead of a broker refusing every login.
//!
//! When the broker refuses the token it answers with an error JSON (`{"status":
//! "invalid_token"}`) instead of an error code; RFC 7628 §3.2.3 has the client answer that
//! with a lone `\x01` ([`ERROR_ACKNOWLEDGEMENT`]), after which the broker fails the
//! authentication with an error code.

use std::collections::BTreeMap;

/// The key/value separator.
const KVSEP: char = '\x01';
/// Confluent's extension naming the identity pools.
pub const IDENTITY_POOL_EXTENSION: &str = "identityPoolId";
/// The key of the token itself; not available as an extension name.
const AUTH_KEY: &str = "auth";
/// What the client sends after the broker's error challenge (RFC 7628 §3.2.3).
pub const ERROR_ACKNOWLEDGEMENT: &[u8] = b"\x01";

/// Why an extension cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    #[error("extension name `{0}` must be letters only (Kafka: ^[a-zA-Z]+$)")]
    BadName(String),
    #[error("`auth` is the token's own key, not an extension name")]
    Reserved,
    #[error("`identityPoolId` is set by the proxy to the connection's matched pools")]
    SetByProxy,
    #[error(
        "the value of extension `{0}` must be printable ASCII, space, tab, CR or LF, and not \
         empty (Kafka: ^[\\x21-\\x7E \\t\\r\\n]+$)"
    )]
    BadValue(String),
}

/// Operator-configured extensions, checked. Sent in name order after `identityPoolId`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions(BTreeMap<String, String>);

impl Extensions {
    /// Check every extension; every problem is reported, keyed by extension name.
    pub fn new(raw: &BTreeMap<String, String>) -> Result<Self, Vec<(String, ExtensionError)>> {
        let problems: Vec<_> = raw
            .iter()
            .filter_map(|(name, value)| {
                let problem = if name == AUTH_KEY {
                    Some(ExtensionError::Reserved)
                } else if name == IDENTITY_POOL_EXTENSION {
                    Some(ExtensionError::SetByProxy)
                } else if !valid_name(name) {
                    Some(ExtensionError::BadName(name.clone()))
                } else if !valid_value(value) {
                    Some(ExtensionError::BadValue(name.clone()))
                } else {
                    None
                };
                problem.map(|p| (name.clone(), p))
            })
            .collect();
        if problems.is_empty() {
            Ok(Self(raw.clone()))
        } else {
            Err(problems)
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphabetic())
}

fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| matches!(b, 0x21..=0x7E | b' ' | b'\t' | b'\r' | b'\n'))
}

/// The client's first (and only) message: the token, the pool ids, and the configured
/// extensions. Errors when a pool id cannot be an extension value (pools created through the
/// admin API are checked by the same id rules as configured ones, so this is a safety net).
pub fn client_message(
    jwt: &str,
    pool_ids: &[&str],
    extensions: &Extensions,
) -> Result<Vec<u8>, ExtensionError> {
    let pools = pool_ids.join(",");
    // No pools (the proxy's own token): no extension, as Kafka refuses an empty value.
    if !pool_ids.is_empty() && !valid_value(&pools) {
        return Err(ExtensionError::BadValue(IDENTITY_POOL_EXTENSION.into()));
    }
    let extra: usize = extensions.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut message =
        String::with_capacity(jwt.len() + pools.len() + IDENTITY_POOL_EXTENSION.len() + extra + 24);
    message.push_str("n,,");
    message.push(KVSEP);
    message.push_str("auth=Bearer ");
    message.push_str(jwt);
    let pool_extension =
        (!pool_ids.is_empty()).then_some((IDENTITY_POOL_EXTENSION, pools.as_str()));
    for (name, value) in pool_extension.into_iter().chain(extensions.iter()) {
        message.push(KVSEP);
        message.push_str(name);
        message.push('=');
        message.push_str(value);
    }
    message.push(KVSEP);
    message.push(KVSEP);
    Ok(message.into_bytes())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    fn ext(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn message_is_gs2_header_token_pools_then_extensions_in_name_order() {
        let extensions =
            Extensions::new(&ext(&[("zone", "eu"), ("logicalCluster", "lkc-1")])).unwrap();
        let message = client_message("h.c.s", &["orders", "audit"], &extensions).unwrap();
        assert_eq!(
            message,
            b"n,,\x01auth=Bearer h.c.s\x01identityPoolId=orders,audit\
              \x01logicalCluster=lkc-1\x01zone=eu\x01\x01"
                .to_vec()
        );
    }

    #[test]
    fn message_without_configured_extensions_still_names_the_pools() {
        let message = client_message("t", &["p"], &Extensions::default()).unwrap();
        assert_eq!(
            message,
            b"n,,\x01auth=Bearer t\x01identityPoolId=p\x01\x01".to_vec()
        );
    }

    #[test]
    fn extension_names_must_be_letters_and_not_reserved() {
        let problems = Extensions::new(&ext(&[
            ("auth", "x"),
            ("identityPoolId", "x"),
            ("with-dash", "x"),
            ("digits1", "x"),
            ("", "x"),
            ("fine", "ok"),
        ]))
        .unwrap_err();
        let names: Vec<_> = problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["", "auth", "digits1", "identityPoolId", "with-dash"]
        );
        assert!(problems.contains(&("auth".into(), ExtensionError::Reserved)));
        assert!(problems.contains(&("identityPoolId".into(), ExtensionError::SetByProxy)));
    }

    #[test]
    fn extension_values_must_be_kafka_printable_and_not_empty() {
        assert!(Extensions::new(&ext(&[("a", "tab\tcr\rlf\n ~!")])).is_ok());
        for bad in ["", "sep\x01arated", "del\x7f", "é"] {
            assert_eq!(
                Extensions::new(&ext(&[("a", bad)])).unwrap_err(),
                vec![("a".to_string(), ExtensionError::BadValue("a".into()))],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_pool_id_that_is_not_a_valid_value_is_an_error_not_a_corrupt_message() {
        assert_eq!(
            client_message("t", &["a\x01b"], &Extensions::default()),
            Err(ExtensionError::BadValue(IDENTITY_POOL_EXTENSION.into()))
        );
    }
}
