//! What a filter can see: one certificate's attributes, prepared once per certificate.
//!
//! # Identifiers visible to CEL filters
//!
//! Identifiers are case-sensitive. Every string below is `""` and every list `[]` when the
//! certificate lacks the attribute, so `CN == "x"` and `"x" in cert.subject.OU` are simply
//! false for such a certificate, never an error.
//!
//! | identifier | type | value |
//! |---|---|---|
//! | `CN`, `OU`, `O`, `L`, `ST`, `C`, `DC`, `STREET`, `UID`, `SERIALNUMBER`, `emailAddress` | string | the **first** value of that subject attribute in RFC 4514 order (most specific first) |
//! | `DN` | string | the subject as an RFC 4514 string, as Kafka prints it: `CN=app,OU=payments,O=Acme\, Inc.,C=US` |
//! | `ISSUER` | string | the issuer as an RFC 4514 string |
//! | `SAN` | string | every subject alternative name in certificate order, joined with `,` (so `SAN.contains("spiffe://acme/payments")` matches if any entry contains it) |
//! | `SERIAL` | string | the serial number as `openssl x509 -serial` prints it: uppercase hex, no separators (`8F0102`) |
//! | `SHA1`, `SHA256` | string | uppercase hex fingerprints of the certificate DER, no colons |
//! | `cert.subject.<NAME>` | list(string) | **every** value of subject attribute `<NAME>` (any short name above), most specific first: `"payments" in cert.subject.OU` |
//! | `cert.issuer.<NAME>` | list(string) | the same for the issuer |
//! | `cert.san.dns`, `cert.san.uri`, `cert.san.email`, `cert.san.ip` | list(string) | the SAN entries of that type; IPs as `10.0.0.1` / `2001:db8::1` |
//! | `cert.san.all` | list(string) | every SAN entry, in certificate order (what `SAN` joins) |
//! | `cert.dn`, `cert.serial`, `cert.sha1`, `cert.sha256` | string | the same as `DN`, `SERIAL`, `SHA1`, `SHA256` |
//! | `cert.not_before`, `cert.not_after` | string | validity in RFC 3339 UTC, `2026-11-22T10:00:00Z` (compare as strings: the format sorts chronologically) |
//!
//! Any other identifier, and any other field of `cert`, is rejected when the filter is
//! compiled, so a typo fails at config load rather than silently never matching.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use cel::common::types::{CelList, CelMap, CelMapKey, CelString};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use serde_json::{Map as JsonMap, Value as Json};

use crate::identity::{CertIdentity, DistinguishedName};

/// A string-valued attribute, the unit of the allocation-free fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attr {
    Cn,
    Ou,
    O,
    L,
    St,
    C,
    Dc,
    Street,
    Uid,
    SerialNumber,
    EmailAddress,
    Dn,
    Issuer,
    San,
    Serial,
    Sha1,
    Sha256,
    NotBefore,
    NotAfter,
}

const ATTR_COUNT: usize = Attr::NotAfter as usize + 1;

impl Attr {
    /// Every attribute, in discriminant order (the index of its string in [`Attributes`]).
    const ALL: [Attr; ATTR_COUNT] = [
        Attr::Cn,
        Attr::Ou,
        Attr::O,
        Attr::L,
        Attr::St,
        Attr::C,
        Attr::Dc,
        Attr::Street,
        Attr::Uid,
        Attr::SerialNumber,
        Attr::EmailAddress,
        Attr::Dn,
        Attr::Issuer,
        Attr::San,
        Attr::Serial,
        Attr::Sha1,
        Attr::Sha256,
        Attr::NotBefore,
        Attr::NotAfter,
    ];

    fn value_of(self, identity: &CertIdentity) -> String {
        let first = |name: &str| identity.subject.first(name).unwrap_or_default().to_owned();
        match self {
            Attr::Cn => first("CN"),
            Attr::Ou => first("OU"),
            Attr::O => first("O"),
            Attr::L => first("L"),
            Attr::St => first("ST"),
            Attr::C => first("C"),
            Attr::Dc => first("DC"),
            Attr::Street => first("STREET"),
            Attr::Uid => first("UID"),
            Attr::SerialNumber => first("SERIALNUMBER"),
            Attr::EmailAddress => first("emailAddress"),
            Attr::Dn => identity.subject.rfc4514.clone(),
            Attr::Issuer => identity.issuer.rfc4514.clone(),
            Attr::San => identity.san.joined(),
            Attr::Serial => identity.serial.clone(),
            Attr::Sha1 => identity.sha1.clone(),
            Attr::Sha256 => identity.sha256.clone(),
            Attr::NotBefore => identity.not_before.clone(),
            Attr::NotAfter => identity.not_after.clone(),
        }
    }
}

/// The subject/issuer attribute short names filters can use, in the order of [`Attr::Cn`]..
/// [`Attr::EmailAddress`].
pub(crate) const NAME_KEYS: [&str; 11] = [
    "CN",
    "OU",
    "O",
    "L",
    "ST",
    "C",
    "DC",
    "STREET",
    "UID",
    "SERIALNUMBER",
    "emailAddress",
];

/// Top-level identifiers that are strings.
pub(crate) const STRING_IDENTIFIERS: [(&str, Attr); 17] = [
    ("CN", Attr::Cn),
    ("OU", Attr::Ou),
    ("O", Attr::O),
    ("L", Attr::L),
    ("ST", Attr::St),
    ("C", Attr::C),
    ("DC", Attr::Dc),
    ("STREET", Attr::Street),
    ("UID", Attr::Uid),
    ("SERIALNUMBER", Attr::SerialNumber),
    ("emailAddress", Attr::EmailAddress),
    ("DN", Attr::Dn),
    ("ISSUER", Attr::Issuer),
    ("SAN", Attr::San),
    ("SERIAL", Attr::Serial),
    ("SHA1", Attr::Sha1),
    ("SHA256", Attr::Sha256),
];

/// The one top-level identifier that is not a string.
pub(crate) const CERT: &str = "cert";

/// The string fields of `cert`.
pub(crate) const CERT_STRING_FIELDS: [(&str, Attr); 6] = [
    ("dn", Attr::Dn),
    ("serial", Attr::Serial),
    ("sha1", Attr::Sha1),
    ("sha256", Attr::Sha256),
    ("not_before", Attr::NotBefore),
    ("not_after", Attr::NotAfter),
];

/// The map fields of `cert`.
pub(crate) const CERT_NAME_FIELDS: [&str; 2] = ["subject", "issuer"];
pub(crate) const CERT_SAN_FIELD: &str = "san";

/// The list fields of `cert.san`.
pub(crate) const SAN_KEYS: [&str; 5] = ["dns", "uri", "email", "ip", "all"];

/// Every top-level identifier, for error messages.
pub(crate) fn known_identifiers() -> Vec<&'static str> {
    let mut known: Vec<&'static str> = STRING_IDENTIFIERS.iter().map(|(name, _)| *name).collect();
    known.push(CERT);
    known
}

/// Every field of `cert`, for error messages.
pub(crate) fn cert_fields() -> Vec<&'static str> {
    let mut fields: Vec<&'static str> = CERT_NAME_FIELDS.to_vec();
    fields.push(CERT_SAN_FIELD);
    fields.extend(CERT_STRING_FIELDS.iter().map(|(name, _)| *name));
    fields
}

/// Everything a filter can see about one certificate.
///
/// Built once per certificate ([`Attributes::new`]) and shared by every pool's filter. The
/// strings the fast path compares are laid out in a fixed array, so a lookup is an index. The
/// values the CEL interpreter needs are built lazily, the first time a filter that needs the
/// interpreter runs, and then reused for every other such filter.
#[derive(Debug)]
pub struct Attributes {
    strings: [String; ATTR_COUNT],
    subject: [Vec<String>; NAME_KEYS.len()],
    issuer: [Vec<String>; NAME_KEYS.len()],
    /// `dns`, `uri`, `email`, `ip`, `all`, as in [`SAN_KEYS`].
    san: [Vec<String>; SAN_KEYS.len()],
    /// The interpreter's view, built on first use.
    cel: OnceLock<CelVariables>,
}

impl Attributes {
    /// Prepares what filters see of `identity`.
    pub fn new(identity: &CertIdentity) -> Self {
        let san = &identity.san;
        Attributes {
            strings: Attr::ALL.map(|attr| attr.value_of(identity)),
            subject: name_lists(&identity.subject),
            issuer: name_lists(&identity.issuer),
            san: [
                san.dns.clone(),
                san.uri.clone(),
                san.email.clone(),
                san.ip.clone(),
                san.all.clone(),
            ],
            cel: OnceLock::new(),
        }
    }

    /// The string the fast path reads for `attr`.
    #[inline]
    pub(crate) fn get(&self, attr: Attr) -> &str {
        &self.strings[attr as usize]
    }

    /// The exact identifiers and values CEL filters see, as JSON (for `explain`).
    pub fn cel_view(&self) -> Json {
        let mut view = JsonMap::new();
        for (name, attr) in STRING_IDENTIFIERS {
            view.insert(name.to_owned(), Json::from(self.get(attr)));
        }
        let names = |lists: &[Vec<String>; NAME_KEYS.len()]| {
            let map: JsonMap<String, Json> = NAME_KEYS
                .iter()
                .zip(lists)
                .map(|(key, values)| ((*key).to_owned(), Json::from(values.clone())))
                .collect();
            Json::Object(map)
        };
        let san: JsonMap<String, Json> = SAN_KEYS
            .iter()
            .zip(&self.san)
            .map(|(key, values)| ((*key).to_owned(), Json::from(values.clone())))
            .collect();
        let mut cert = JsonMap::new();
        cert.insert("subject".to_owned(), names(&self.subject));
        cert.insert("issuer".to_owned(), names(&self.issuer));
        cert.insert("san".to_owned(), Json::Object(san));
        for (name, attr) in CERT_STRING_FIELDS {
            cert.insert(name.to_owned(), Json::from(self.get(attr)));
        }
        view.insert(CERT.to_owned(), Json::Object(cert));
        Json::Object(view)
    }

    /// Whether the interpreter's variables have been built (tests of laziness).
    #[cfg(test)]
    pub(crate) fn cel_variables_built(&self) -> bool {
        self.cel.get().is_some()
    }

    /// The interpreter's variables, built on first use.
    pub(crate) fn cel_variables(&self) -> &CelVariables {
        self.cel.get_or_init(|| CelVariables::build(self))
    }
}

fn name_lists(name: &DistinguishedName) -> [Vec<String>; NAME_KEYS.len()] {
    NAME_KEYS.map(|key| name.all(key).map(str::to_owned).collect())
}

/// The values the CEL interpreter resolves identifiers to, owned so that every filter of
/// this certificate can borrow them instead of rebuilding them.
///
/// Handed to cel as a [`VariableResolver`]: a lookup returns a borrowed value, no copy.
#[derive(Debug)]
pub(crate) struct CelVariables {
    values: BTreeMap<&'static str, Box<dyn Val>>,
}

impl CelVariables {
    /// Builds cel's value types directly: going through `cel::Value` would copy every string
    /// twice and cost several times as much.
    fn build(attrs: &Attributes) -> Self {
        let mut values = BTreeMap::new();
        for (name, attr) in STRING_IDENTIFIERS {
            values.insert(name, cel_string(attrs.get(attr)));
        }
        let names = |lists: &[Vec<String>; NAME_KEYS.len()]| {
            cel_map(
                NAME_KEYS
                    .iter()
                    .zip(lists)
                    .map(|(key, values)| (*key, cel_list(values))),
            )
        };
        let san = cel_map(
            SAN_KEYS
                .iter()
                .zip(&attrs.san)
                .map(|(key, values)| (*key, cel_list(values))),
        );
        let strings = CERT_STRING_FIELDS
            .iter()
            .map(|(name, attr)| (*name, cel_string(attrs.get(*attr))));
        let cert = cel_map(
            [
                ("subject", names(&attrs.subject)),
                ("issuer", names(&attrs.issuer)),
                (CERT_SAN_FIELD, san),
            ]
            .into_iter()
            .chain(strings),
        );
        values.insert(CERT, cert);
        CelVariables { values }
    }
}

impl VariableResolver for CelVariables {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        self.values
            .get(variable)
            .map(|value| CowVal::Borrowed(value.as_ref()))
    }
}

fn cel_string(value: &str) -> Box<dyn Val> {
    Box::new(CelString::from(value.to_owned()))
}

fn cel_list(values: &[String]) -> Box<dyn Val> {
    let items: Vec<Box<dyn Val>> = values.iter().map(|value| cel_string(value)).collect();
    Box::new(CelList::from(items))
}

fn cel_map<'k>(entries: impl Iterator<Item = (&'k str, Box<dyn Val>)>) -> Box<dyn Val> {
    let map: HashMap<CelMapKey<'static>, Box<dyn Val>> = entries
        .map(|(key, value)| (CelMapKey::from(key.to_owned()), value))
        .collect();
    Box::new(CelMap::from(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::test_certs::{self, der};

    fn identity() -> CertIdentity {
        let subject = der::name(&[
            &[(der::OID_O, der::utf8("Acme"))],
            &[(der::OID_OU, der::utf8("platform"))],
            &[(der::OID_OU, der::utf8("payments"))],
            &[(der::OID_CN, der::utf8("svc"))],
        ]);
        let san = der::tlv(0x30, &der::tlv(0x86, b"spiffe://acme/payments"));
        CertIdentity::from_der(&test_certs::with_subject_and_san(
            &subject,
            Some(&san),
            &[7],
        ))
        .unwrap()
    }

    #[test]
    fn every_attribute_is_stored_at_its_own_index() {
        for (index, attr) in Attr::ALL.iter().enumerate() {
            assert_eq!(*attr as usize, index, "{attr:?}");
        }
    }

    #[test]
    fn string_identifiers_hold_the_first_value_or_empty() {
        let attrs = Attributes::new(&identity());
        assert_eq!(attrs.get(Attr::Cn), "svc");
        assert_eq!(attrs.get(Attr::Ou), "payments");
        assert_eq!(attrs.get(Attr::L), "");
        assert_eq!(attrs.get(Attr::San), "spiffe://acme/payments");
        assert_eq!(attrs.get(Attr::Serial), "07");
    }

    #[test]
    fn cel_view_lists_every_identifier_and_every_cert_field() {
        let view = Attributes::new(&identity()).cel_view();
        for name in known_identifiers() {
            assert!(view.get(name).is_some(), "{name} missing from {view}");
        }
        for field in cert_fields() {
            assert!(view["cert"].get(field).is_some(), "cert.{field} missing");
        }
        assert_eq!(view["OU"], "payments");
        assert_eq!(
            view["cert"]["subject"]["OU"],
            serde_json::json!(["payments", "platform"])
        );
        assert_eq!(view["cert"]["subject"]["L"], serde_json::json!([]));
        assert_eq!(
            view["cert"]["san"]["uri"],
            serde_json::json!(["spiffe://acme/payments"])
        );
        assert_eq!(view["cert"]["dn"], view["DN"]);
    }

    #[test]
    fn interpreter_variables_are_built_once_and_reused() {
        let attrs = Attributes::new(&identity());
        let first: *const CelVariables = attrs.cel_variables();
        let second: *const CelVariables = attrs.cel_variables();
        assert_eq!(first, second);
    }

    #[test]
    fn attributes_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Attributes>();
    }
}
