//! Which certificate field identifies a client in logs: `external_identifier`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::identity::{CertIdentity, MAX_IDENTIFIER_CHARS, truncate_chars};

/// The certificate field a pool names as the client's identifier.
///
/// When several pools match, the identifier reported is the highest-priority one any of them
/// names: `CN` > `DN` > `SERIAL` > `SAN` > `SHA1`. [`Ord`] is that priority: `Cn` is the
/// greatest, so the reported kind is the `max()` of the matched pools' kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExternalIdentifier {
    Cn,
    Dn,
    Serial,
    San,
    Sha1,
}

impl ExternalIdentifier {
    /// Every value, highest priority first.
    pub const ALL: [ExternalIdentifier; 5] = [
        ExternalIdentifier::Cn,
        ExternalIdentifier::Dn,
        ExternalIdentifier::Serial,
        ExternalIdentifier::San,
        ExternalIdentifier::Sha1,
    ];

    /// The configuration spelling: `CN`, `DN`, `SERIAL`, `SAN`, `SHA1`.
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalIdentifier::Cn => "CN",
            ExternalIdentifier::Dn => "DN",
            ExternalIdentifier::Serial => "SERIAL",
            ExternalIdentifier::San => "SAN",
            ExternalIdentifier::Sha1 => "SHA1",
        }
    }

    /// Higher is preferred.
    fn priority(self) -> u8 {
        match self {
            ExternalIdentifier::Cn => 5,
            ExternalIdentifier::Dn => 4,
            ExternalIdentifier::Serial => 3,
            ExternalIdentifier::San => 2,
            ExternalIdentifier::Sha1 => 1,
        }
    }

    /// This field's value for `identity`. CN, DN and SAN are cut to
    /// [`MAX_IDENTIFIER_CHARS`] characters; a CN is `""` when the subject has none.
    pub fn value_of(self, identity: &CertIdentity) -> String {
        let cut = |value: &str| truncate_chars(value, MAX_IDENTIFIER_CHARS).to_owned();
        match self {
            ExternalIdentifier::Cn => cut(identity.subject.first("CN").unwrap_or_default()),
            ExternalIdentifier::Dn => cut(&identity.subject.rfc4514),
            ExternalIdentifier::Serial => identity.serial.clone(),
            ExternalIdentifier::San => cut(&identity.san.joined()),
            ExternalIdentifier::Sha1 => identity.sha1.clone(),
        }
    }
}

impl Ord for ExternalIdentifier {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority().cmp(&other.priority())
    }
}

impl PartialOrd for ExternalIdentifier {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for ExternalIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `external_identifier` that is none of the valid values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown external identifier `{0}`; valid values: CN, DN, SERIAL, SAN, SHA1")]
pub struct UnknownExternalIdentifier(pub String);

impl FromStr for ExternalIdentifier {
    type Err = UnknownExternalIdentifier;

    /// Case-insensitive: `cn`, `Cn` and `CN` are all [`ExternalIdentifier::Cn`].
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        ExternalIdentifier::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(value))
            .ok_or_else(|| UnknownExternalIdentifier(value.to_owned()))
    }
}

impl Serialize for ExternalIdentifier {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ExternalIdentifier {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

/// The identifier reported for a connection: which field, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertIdentifier {
    #[serde(rename = "type")]
    pub kind: ExternalIdentifier,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_is_case_insensitive_and_display_is_upper_case() {
        for kind in ExternalIdentifier::ALL {
            let lower = kind.as_str().to_lowercase();
            assert_eq!(lower.parse::<ExternalIdentifier>().unwrap(), kind);
            assert_eq!(kind.to_string(), kind.as_str());
        }
        assert_eq!("Sha1".parse(), Ok(ExternalIdentifier::Sha1));
    }

    #[test]
    fn an_unknown_value_lists_the_valid_ones() {
        let error = "SHA256".parse::<ExternalIdentifier>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown external identifier `SHA256`; valid values: CN, DN, SERIAL, SAN, SHA1"
        );
    }

    #[test]
    fn order_is_priority_with_cn_highest() {
        use ExternalIdentifier::*;
        assert!(Cn > Dn && Dn > Serial && Serial > San && San > Sha1);
        assert_eq!([Sha1, Cn, San].into_iter().max(), Some(Cn));
        assert_eq!([Sha1, Serial, Dn].into_iter().max(), Some(Dn));
    }

    #[test]
    fn serde_uses_the_upper_case_spelling() {
        let json = serde_json::to_string(&CertIdentifier {
            kind: ExternalIdentifier::Cn,
            value: "acme-client".to_owned(),
        })
        .unwrap();
        assert_eq!(json, r#"{"type":"CN","value":"acme-client"}"#);
        let parsed: ExternalIdentifier = serde_json::from_str(r#""serial""#).unwrap();
        assert_eq!(parsed, ExternalIdentifier::Serial);
    }
}
