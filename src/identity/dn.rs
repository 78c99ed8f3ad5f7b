//! Distinguished names: decoded attributes, and the RFC 4514 string Kafka users know.
//!
//! Kafka builds principals from Java's `X500Principal.getName()`, which is the RFC 2253 form
//! (RFC 4514 is its successor and agrees on everything we emit):
//!
//! - RDNs in *reverse* ASN.1 order (most specific first), separated by `,` with no spaces;
//!   the parts of a multi-valued RDN joined with `+`, in certificate order.
//! - Keywords only for `CN`, `L`, `ST`, `O`, `OU`, `C`, `STREET`, `DC` and `UID`. Every other
//!   attribute type, including the common `SERIALNUMBER` (2.5.4.5) and `emailAddress`
//!   (1.2.840.113549.1.9.1), is written as its dotted OID, `=#`, and the lowercase hex of the
//!   value's whole DER encoding (tag, length and content): `1.2.840.113549.1.9.1=#1603612e62`.
//! - Values escaped as in RFC 4514 §2.4.
//!
//! x509-parser's `Display` for names is none of this (forward order, `", "`, no escaping),
//! hence this formatter.

use serde::Serialize;
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::x509::X509Name;

/// One attribute of a distinguished name, decoded for humans and filters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnAttribute {
    /// The short name (`CN`, `OU`, `O`, `L`, `ST`, `C`, `DC`, `STREET`, `UID`, `SERIALNUMBER`,
    /// `emailAddress`) or, for any other type, the dotted OID (`2.5.4.42`).
    pub name: String,
    /// The decoded string, or `#` and the lowercase hex of the value's DER encoding when the
    /// value is not one of the string types we decode (see [`decode_string`]).
    pub value: String,
}

/// A subject or issuer name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DistinguishedName {
    /// The RFC 4514 / Java `X500Principal.getName()` string, e.g. `CN=app,OU=payments,O=Acme\, Inc.,C=US`.
    pub rfc4514: String,
    /// Every attribute in RFC 4514 string order: reversed ASN.1 order, most specific first.
    pub attributes: Vec<DnAttribute>,
}

impl DistinguishedName {
    /// The first value (in RFC 4514 order) of the attribute called `name`, if any.
    ///
    /// `name` is case-sensitive and uses the short names of [`DnAttribute::name`].
    pub fn first(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
            .map(|attribute| attribute.value.as_str())
    }

    /// Every value of the attribute called `name`, in RFC 4514 order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.attributes
            .iter()
            .filter(move |attribute| attribute.name == name)
            .map(|attribute| attribute.value.as_str())
    }

    /// Decodes an x509-parser name.
    pub(crate) fn from_x509(name: &X509Name<'_>) -> Self {
        let mut rdns = Vec::new();
        let mut attributes = Vec::new();
        // RFC 4514 §2.1: the string starts with the *last* RDN of the ASN.1 sequence.
        for rdn in name.iter_rdn().collect::<Vec<_>>().into_iter().rev() {
            let mut parts = Vec::new();
            for atv in rdn.iter() {
                let oid = atv.attr_type().to_id_string();
                let short = short_name(&oid);
                let decoded = decode_string(atv.attr_value());
                let hex = || format!("#{}", hex::encode(der_encoding(atv.attr_value())));

                let keyword = short.filter(|name| RFC4514_KEYWORDS.contains(name));
                parts.push(match (keyword, &decoded) {
                    (Some(keyword), Some(value)) => format!("{keyword}={}", escape_value(value)),
                    (Some(keyword), None) => format!("{keyword}={}", hex()),
                    (None, _) => format!("{oid}={}", hex()),
                });
                attributes.push(DnAttribute {
                    name: short.map_or(oid, str::to_owned),
                    value: decoded.unwrap_or_else(hex),
                });
            }
            rdns.push(parts.join("+"));
        }
        DistinguishedName {
            rfc4514: rdns.join(","),
            attributes,
        }
    }
}

/// The attribute types that have a short name in [`DnAttribute::name`], by dotted OID.
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "SERIALNUMBER"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// The short names RFC 2253 (and so Java, and so Kafka) writes as keywords in the DN string.
/// `SERIALNUMBER` and `emailAddress` are deliberately absent: Java prints them as OIDs.
const RFC4514_KEYWORDS: &[&str] = &["CN", "L", "ST", "O", "OU", "C", "STREET", "DC", "UID"];

/// The short name of the attribute type with this dotted OID, if it has one.
pub(crate) fn short_name(oid: &str) -> Option<&'static str> {
    SHORT_NAMES
        .iter()
        .find(|(dotted, _)| *dotted == oid)
        .map(|(_, short)| *short)
}

/// Decodes a directory string.
///
/// Handled: UTF8String, PrintableString, IA5String, NumericString and VisibleString (all read as
/// UTF-8, of which they are subsets), TeletexString (read as Latin-1, as most software does),
/// BMPString (UTF-16BE) and UniversalString (UTF-32BE). Anything else, or bytes that are not
/// valid in their encoding, is `None`: the caller shows it as hex rather than guessing.
pub(crate) fn decode_string(value: &Any<'_>) -> Option<String> {
    if value.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        Tag::TeletexString => Some(data.iter().map(|&byte| char::from(byte)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units = data
                .chunks_exact(2)
                .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|quad| {
                    char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]]))
                })
                .collect()
        }
        _ => None,
    }
}

/// The DER encoding (identifier octets, length, content) of a parsed value.
///
/// x509-parser hands us the header and the content separately, so the header is re-encoded.
/// The certificate was DER, so re-encoding its header in DER gives back the original bytes.
pub(crate) fn der_encoding(value: &Any<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.data.len() + 6);
    match value.header.raw_tag() {
        Some(raw) => out.extend_from_slice(raw),
        None => {
            let class_bits = (value.class() as u8) << 6;
            let constructed_bit = if value.header.is_constructed() {
                0x20
            } else {
                0
            };
            let number = value.tag().0;
            if number < 31 {
                // `number < 31` makes the cast lossless.
                out.push(class_bits | constructed_bit | number as u8);
            } else {
                out.push(class_bits | constructed_bit | 0x1f);
                push_base128(&mut out, number);
            }
        }
    }
    push_der_length(&mut out, value.data.len());
    out.extend_from_slice(value.data);
    out
}

/// Appends `n` in base 128, most significant group first, continuation bit on all but the last.
fn push_base128(out: &mut Vec<u8>, n: u32) {
    let mut groups = [0u8; 5];
    let mut count = 0;
    let mut rest = n;
    loop {
        groups[count] = (rest & 0x7f) as u8;
        count += 1;
        rest >>= 7;
        if rest == 0 {
            break;
        }
    }
    for i in (0..count).rev() {
        let continuation = if i == 0 { 0 } else { 0x80 };
        out.push(groups[i] | continuation);
    }
}

/// Appends a DER definite length: short form below 128, else the minimal long form.
fn push_der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Checked just above: fits in seven bits.
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes.iter().take_while(|&&byte| byte == 0).count();
    let significant = &bytes[skip..];
    // At most `size_of::<usize>()` bytes, so the count fits the low seven bits.
    out.push(0x80 | significant.len() as u8);
    out.extend_from_slice(significant);
}

/// Escapes an attribute value as RFC 4514 §2.4 requires.
///
/// Backslash before `"`, `+`, `,`, `;`, `<`, `>` and `\` anywhere, before a leading `#` or
/// space, and before a trailing space; NUL becomes `\00`. Everything else, non-ASCII included,
/// stays as it is (RFC 4514 allows UTF-8 in the string).
pub(crate) fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '\0' => out.push_str("\\00"),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::test_certs::der;
    use x509_parser::prelude::FromDer;

    fn parse_name(name_der: &[u8]) -> DistinguishedName {
        let (rest, name) = X509Name::from_der(name_der).expect("a valid Name");
        assert!(rest.is_empty());
        DistinguishedName::from_x509(&name)
    }

    #[test]
    fn special_characters_are_escaped_with_a_backslash() {
        assert_eq!(escape_value("Acme, Inc."), "Acme\\, Inc.");
        assert_eq!(
            escape_value("a\"b+c;d<e>f\\g"),
            "a\\\"b\\+c\\;d\\<e\\>f\\\\g"
        );
    }

    #[test]
    fn leading_hash_and_space_and_trailing_space_are_escaped_but_inner_ones_are_not() {
        assert_eq!(escape_value("#1 team "), "\\#1 team\\ ");
        assert_eq!(escape_value(" a#b"), "\\ a#b");
        assert_eq!(escape_value(" "), "\\ ");
        assert_eq!(escape_value("  "), "\\ \\ ");
    }

    #[test]
    fn nul_is_written_as_backslash_00() {
        assert_eq!(escape_value("a\0b"), "a\\00b");
    }

    #[test]
    fn non_ascii_is_kept_verbatim() {
        assert_eq!(escape_value("Zürich, 東京"), "Zürich\\, 東京");
    }

    #[test]
    fn multi_valued_rdn_parts_are_joined_with_plus_in_certificate_order() {
        let name = der::name(&[
            &[(der::OID_C, der::utf8("US"))],
            &[(der::OID_CN, der::utf8("a")), (der::OID_OU, der::utf8("b"))],
        ]);
        let dn = parse_name(&name);
        assert_eq!(dn.rfc4514, "CN=a+OU=b,C=US");
        let names: Vec<&str> = dn.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["CN", "OU", "C"]);
    }

    #[test]
    fn every_supported_string_type_is_decoded() {
        let bmp: Vec<u8> = "Zoë 😀".encode_utf16().flat_map(u16::to_be_bytes).collect();
        let universal: Vec<u8> = "Zoë 😀"
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        let name = der::name(&[
            &[(der::OID_CN, der::tlv(0x13, b"Printable"))],
            &[(der::OID_CN, der::tlv(0x16, b"ia5"))],
            &[(
                der::OID_CN,
                der::tlv(0x14, &[0x5a, 0xfc, 0x72, 0x69, 0x63, 0x68]),
            )],
            &[(der::OID_CN, der::tlv(0x1e, &bmp))],
            &[(der::OID_CN, der::tlv(0x1c, &universal))],
            &[(der::OID_CN, der::utf8("utf8 ✓"))],
        ]);
        let dn = parse_name(&name);
        let values: Vec<&str> = dn.all("CN").collect();
        assert_eq!(
            values,
            ["utf8 ✓", "Zoë 😀", "Zoë 😀", "Zürich", "ia5", "Printable"]
        );
    }

    #[test]
    fn an_undecodable_value_is_shown_as_der_hex_in_both_forms() {
        // An OCTET STRING where a string is expected, and a BMPString of odd length.
        let name = der::name(&[
            &[(der::OID_O, der::tlv(0x04, &[0xde, 0xad]))],
            &[(der::OID_CN, der::tlv(0x1e, &[0x00, 0x41, 0x00]))],
        ]);
        let dn = parse_name(&name);
        assert_eq!(dn.rfc4514, "CN=#1e03004100,O=#0402dead");
        assert_eq!(dn.first("CN"), Some("#1e03004100"));
        assert_eq!(dn.first("O"), Some("#0402dead"));
    }

    #[test]
    fn attribute_types_without_keyword_use_the_dotted_oid_and_der_hex() {
        let name = der::name(&[
            &[(der::OID_EMAIL, der::tlv(0x16, b"a@b"))],
            &[(der::OID_SERIALNUMBER, der::tlv(0x13, b"42"))],
            &[("2.5.4.42", der::utf8("Ada"))],
        ]);
        let dn = parse_name(&name);
        assert_eq!(
            dn.rfc4514,
            "2.5.4.42=#0c03416461,2.5.4.5=#13023432,1.2.840.113549.1.9.1=#1603614062"
        );
        assert_eq!(dn.first("emailAddress"), Some("a@b"));
        assert_eq!(dn.first("SERIALNUMBER"), Some("42"));
        assert_eq!(dn.first("2.5.4.42"), Some("Ada"));
    }

    #[test]
    fn long_values_get_a_long_form_der_length_in_hex() {
        let long = "x".repeat(200);
        let name = der::name(&[&[(der::OID_EMAIL, der::tlv(0x16, long.as_bytes()))]]);
        let dn = parse_name(&name);
        let expected = format!("1.2.840.113549.1.9.1=#1681c8{}", "78".repeat(200));
        assert_eq!(dn.rfc4514, expected);
    }

    #[test]
    fn first_and_all_follow_rfc4514_order_and_are_case_sensitive() {
        let name = der::name(&[
            &[(der::OID_DC, der::utf8("com"))],
            &[(der::OID_DC, der::utf8("acme"))],
            &[(der::OID_CN, der::utf8("x"))],
        ]);
        let dn = parse_name(&name);
        assert_eq!(dn.first("DC"), Some("acme"));
        assert_eq!(dn.all("DC").collect::<Vec<_>>(), ["acme", "com"]);
        assert_eq!(dn.first("dc"), None);
        assert_eq!(dn.first("OU"), None);
    }

    #[test]
    fn der_length_encoding_is_minimal() {
        let mut out = Vec::new();
        push_der_length(&mut out, 0x7f);
        push_der_length(&mut out, 0x80);
        push_der_length(&mut out, 0x1234);
        assert_eq!(out, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }

    #[test]
    fn high_tag_numbers_are_written_in_base_128() {
        let mut out = Vec::new();
        push_base128(&mut out, 201);
        assert_eq!(out, [0x81, 0x49]);
    }
}
