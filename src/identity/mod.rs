//! A client certificate's identity: the attributes identity-pool filters and principals use.
//!
//! [`CertIdentity::from_der`] parses a leaf certificate once, right after the TLS handshake,
//! and keeps only strings: the subject and issuer as RFC 4514 strings and as decoded
//! attributes ([`DistinguishedName`]), the subject alternative names ([`SubjectAltNames`]),
//! the serial number and the SHA-1/SHA-256 fingerprints in the forms operators copy from
//! `openssl x509`, and the validity period in RFC 3339.
//!
//! Nothing here verifies anything: the TLS layer has already checked the chain. Parsing is
//! still strict (trailing bytes, a malformed subjectAltName) because whatever we extract
//! becomes an identity.

mod crl_urls;
mod dn;
mod san;
#[cfg(test)]
pub(crate) mod test_certs;

pub use crl_urls::{MAX_DISTRIBUTION_POINTS, crl_distribution_points};
pub use dn::{DistinguishedName, DnAttribute};
pub use san::SubjectAltNames;

use serde::Serialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::time::ASN1Time;

/// The longest CN, DN or SAN value reported as a certificate identifier, in characters.
///
/// Confluent Cloud cuts certificate identifiers to 255 characters; audit logs and principals
/// built from them stay bounded whatever the certificate says.
pub const MAX_IDENTIFIER_CHARS: usize = 255;

/// Why a certificate could not be turned into an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not a DER X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    NotACertificate(String),
    /// A certificate was parsed, but more bytes follow it.
    #[error("{0} bytes of trailing data after the certificate")]
    TrailingData(usize),
    /// The subjectAltName extension is present but malformed, or present twice.
    #[error("invalid subjectAltName extension: {0}")]
    BadSubjectAltName(String),
    /// A validity time cannot be written as RFC 3339 (a year outside 0000–9999).
    #[error("invalid {field} time: {reason}")]
    BadValidity { field: &'static str, reason: String },
}

/// Everything the proxy knows about a client certificate, as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertIdentity {
    /// The subject name.
    pub subject: DistinguishedName,
    /// The issuer name.
    pub issuer: DistinguishedName,
    /// The subject alternative names (empty when the extension is absent).
    pub san: SubjectAltNames,
    /// Uppercase hex of the serial number's big-endian magnitude, two digits per byte, no
    /// separators: what `openssl x509 -noout -serial` prints after `serial=`. A (non-conforming)
    /// negative serial gets a leading `-`, as OpenSSL prints it.
    pub serial: String,
    /// Uppercase hex, no colons, of SHA-1 over the certificate DER.
    pub sha1: String,
    /// Uppercase hex, no colons, of SHA-256 over the certificate DER.
    pub sha256: String,
    /// Start of validity, RFC 3339 in UTC: `2026-11-22T10:00:00Z`.
    pub not_before: String,
    /// End of validity, same format.
    pub not_after: String,
}

impl CertIdentity {
    /// Parses one DER certificate. Trailing bytes are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|error| IdentityError::NotACertificate(error.to_string()))?;
        Self::from_parsed(der, rest, &cert)
    }

    /// [`from_der`](Self::from_der), and in the same parse the certificate's usable CRL
    /// distribution point URLs (as [`crl_distribution_points`] gives them): what a CA that
    /// learns CRL URLs fetches for an admitted client.
    pub fn from_der_with_crl_urls(der: &[u8]) -> Result<(Self, Vec<String>), IdentityError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|error| IdentityError::NotACertificate(error.to_string()))?;
        let identity = Self::from_parsed(der, rest, &cert)?;
        let mut urls = crl_urls::Urls::default();
        urls.add(&cert);
        Ok((identity, urls.finish().0))
    }

    fn from_parsed(
        der: &[u8],
        rest: &[u8],
        cert: &X509Certificate<'_>,
    ) -> Result<Self, IdentityError> {
        if !rest.is_empty() {
            return Err(IdentityError::TrailingData(rest.len()));
        }
        let san = match cert.subject_alternative_name() {
            Ok(Some(extension)) => {
                SubjectAltNames::from_general_names(&extension.value.general_names)
            }
            Ok(None) => SubjectAltNames::default(),
            Err(error) => return Err(IdentityError::BadSubjectAltName(error.to_string())),
        };
        let validity = cert.validity();
        Ok(CertIdentity {
            subject: DistinguishedName::from_x509(cert.subject()),
            issuer: DistinguishedName::from_x509(cert.issuer()),
            san,
            serial: serial_hex(cert.raw_serial()),
            sha1: hex::encode_upper(Sha1::digest(der)),
            sha256: hex::encode_upper(Sha256::digest(der)),
            not_before: rfc3339(validity.not_before, "notBefore")?,
            not_after: rfc3339(validity.not_after, "notAfter")?,
        })
    }
}

/// `value` cut to at most `max_chars` characters, never inside a UTF-8 character.
pub fn truncate_chars(value: &str, max_chars: usize) -> &str {
    match value.char_indices().nth(max_chars) {
        Some((byte_index, _)) => &value[..byte_index],
        None => value,
    }
}

/// The serial as OpenSSL prints it.
///
/// DER integers are two's complement with a leading `00` when the top bit of a positive value
/// is set; OpenSSL prints the magnitude, so that sign byte is not part of the serial.
fn serial_hex(raw: &[u8]) -> String {
    let negative = raw.first().is_some_and(|byte| byte & 0x80 != 0);
    let magnitude: Vec<u8> = if negative {
        twos_complement_magnitude(raw)
    } else {
        raw.to_vec()
    };
    let significant = magnitude
        .iter()
        .position(|&byte| byte != 0)
        .map_or(&[][..], |first| &magnitude[first..]);
    let digits = if significant.is_empty() {
        "00".to_owned()
    } else {
        hex::encode_upper(significant)
    };
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

/// The magnitude of a negative big-endian two's complement integer: invert, then add one.
fn twos_complement_magnitude(raw: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = raw.iter().map(|byte| !byte).collect();
    for byte in out.iter_mut().rev() {
        let (sum, carry) = byte.overflowing_add(1);
        *byte = sum;
        if !carry {
            break;
        }
    }
    out
}

fn rfc3339(time: ASN1Time, field: &'static str) -> Result<String, IdentityError> {
    time.to_datetime()
        .to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .map_err(|error| IdentityError::BadValidity {
            field,
            reason: error.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::test_certs::{self, der};
    use super::*;
    use rcgen::{CertificateParams, DnType, DnValue};

    /// A subject with three OUs, two DCs, a multi-valued RDN, emailAddress, SERIALNUMBER and
    /// STREET/UID, and a SAN of every type.
    fn rich_certificate() -> Vec<u8> {
        let subject = der::name(&[
            &[(der::OID_DC, der::ia5("com"))],
            &[(der::OID_DC, der::ia5("acme"))],
            &[(der::OID_C, der::tlv(0x13, b"US"))],
            &[(der::OID_ST, der::utf8("CA"))],
            &[(der::OID_L, der::utf8("San Francisco"))],
            &[(der::OID_STREET, der::utf8("1 Main St"))],
            &[(der::OID_O, der::utf8("Acme, Inc."))],
            &[(der::OID_OU, der::utf8("platform"))],
            &[(der::OID_OU, der::utf8("payments"))],
            &[
                (der::OID_OU, der::utf8("team+a")),
                (der::OID_UID, der::utf8("u123")),
            ],
            &[(der::OID_SERIALNUMBER, der::tlv(0x13, b"A1"))],
            &[(der::OID_EMAIL, der::ia5("ops@acme.com"))],
            &[(der::OID_CN, der::utf8("payments-svc"))],
        ]);
        let directory_name = der::name(&[&[(der::OID_CN, der::utf8("dir"))]]);
        let san = der::tlv(
            0x30,
            &[
                // otherName (UPN): left out of every list.
                der::tlv(
                    0xa0,
                    &[
                        der::oid("1.3.6.1.4.1.311.20.2.3"),
                        der::tlv(0xa0, &der::utf8("upn@acme")),
                    ]
                    .concat(),
                ),
                der::tlv(0x81, b"ops@acme.com"),
                der::tlv(0x82, b"payments.acme.com"),
                der::tlv(0xa4, &directory_name),
                der::tlv(0x86, b"spiffe://acme/payments"),
                der::tlv(0x87, &[192, 0, 2, 7]),
                der::tlv(
                    0x87,
                    &[
                        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
                    ],
                ),
                der::tlv(0x88, &der::oid_content("1.2.3.4")),
                der::tlv(0x82, b"*.acme.com"),
            ]
            .concat(),
        );
        test_certs::with_subject_and_san(&subject, Some(&san), &[0x00, 0x8f, 0x01, 0x02])
    }

    #[test]
    fn the_subject_dn_string_is_java_rfc2253_form() {
        let identity = CertIdentity::from_der(&rich_certificate()).unwrap();
        assert_eq!(
            identity.subject.rfc4514,
            "CN=payments-svc,\
             1.2.840.113549.1.9.1=#160c6f70734061636d652e636f6d,\
             2.5.4.5=#13024131,\
             OU=team\\+a+UID=u123,\
             OU=payments,OU=platform,\
             O=Acme\\, Inc.,\
             STREET=1 Main St,L=San Francisco,ST=CA,C=US,DC=acme,DC=com"
        );
    }

    #[test]
    fn every_value_of_a_repeated_attribute_is_kept_most_specific_first() {
        let identity = CertIdentity::from_der(&rich_certificate()).unwrap();
        let subject = &identity.subject;
        assert_eq!(
            subject.all("OU").collect::<Vec<_>>(),
            ["team+a", "payments", "platform"]
        );
        assert_eq!(subject.all("DC").collect::<Vec<_>>(), ["acme", "com"]);
        assert_eq!(subject.first("CN"), Some("payments-svc"));
        assert_eq!(subject.first("emailAddress"), Some("ops@acme.com"));
        assert_eq!(subject.first("SERIALNUMBER"), Some("A1"));
        assert_eq!(subject.first("UID"), Some("u123"));
        assert_eq!(subject.first("STREET"), Some("1 Main St"));
        assert_eq!(subject.first("O"), Some("Acme, Inc."));
        assert_eq!(subject.attributes.len(), 14);
    }

    #[test]
    fn sans_of_every_type_land_in_their_lists_and_in_all_in_certificate_order() {
        let identity = CertIdentity::from_der(&rich_certificate()).unwrap();
        let san = &identity.san;
        assert_eq!(san.dns, ["payments.acme.com", "*.acme.com"]);
        assert_eq!(san.uri, ["spiffe://acme/payments"]);
        assert_eq!(san.email, ["ops@acme.com"]);
        assert_eq!(san.ip, ["192.0.2.7", "2001:db8::42"]);
        assert_eq!(
            san.all,
            [
                "ops@acme.com",
                "payments.acme.com",
                "CN=dir",
                "spiffe://acme/payments",
                "192.0.2.7",
                "2001:db8::42",
                "1.2.3.4",
                "*.acme.com"
            ]
        );
        assert_eq!(
            san.joined(),
            "ops@acme.com,payments.acme.com,CN=dir,spiffe://acme/payments,192.0.2.7,\
             2001:db8::42,1.2.3.4,*.acme.com"
        );
    }

    #[test]
    fn serial_is_openssl_hex_without_the_der_sign_byte() {
        let identity = CertIdentity::from_der(&rich_certificate()).unwrap();
        assert_eq!(identity.serial, "8F0102");
    }

    #[test]
    fn serial_formatting_matches_openssl_for_edge_cases() {
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x01]), "01");
        assert_eq!(serial_hex(&[0x00, 0x80]), "80");
        assert_eq!(serial_hex(&[0x0a, 0x0b]), "0A0B");
        // -1 and -256 in two's complement.
        assert_eq!(serial_hex(&[0xff]), "-01");
        assert_eq!(serial_hex(&[0xff, 0x00]), "-0100");
    }

    #[test]
    fn fingerprints_are_uppercase_hex_of_the_der_digest() {
        let der = rich_certificate();
        let identity = CertIdentity::from_der(&der).unwrap();
        // Computed independently of the code under test: the digests' own hex formatting.
        let upper_hex =
            |digest: &[u8]| -> String { digest.iter().map(|b| format!("{b:02X}")).collect() };
        let sha1 = upper_hex(&sha1::Sha1::digest(&der));
        let sha256 = upper_hex(&sha2::Sha256::digest(&der));
        assert_eq!(identity.sha1, sha1);
        assert_eq!(identity.sha256, sha256);
        assert_eq!(identity.sha1.len(), 40);
        assert_eq!(identity.sha256.len(), 64);
        assert!(!identity.sha1.contains(':'));
    }

    #[test]
    fn validity_is_rfc3339_utc() {
        let identity = CertIdentity::from_der(&rich_certificate()).unwrap();
        assert_eq!(identity.not_before, "2026-11-22T00:00:00Z");
        assert_eq!(identity.not_after, "2027-11-22T00:00:00Z");
    }

    #[test]
    fn a_comma_in_a_real_certificate_is_escaped_and_the_issuer_is_parsed() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Acme, Inc.");
        params.distinguished_name.push(DnType::CommonName, "client");
        let identity = CertIdentity::from_der(&test_certs::self_signed(&params)).unwrap();
        assert_eq!(identity.subject.rfc4514, "CN=client,O=Acme\\, Inc.,C=US");
        // Self-signed: the issuer is the subject.
        assert_eq!(identity.issuer, identity.subject);
        assert_eq!(identity.san, SubjectAltNames::default());
    }

    #[test]
    fn the_issuer_is_read_from_the_issuer_field() {
        let issuer = der::name(&[
            &[(der::OID_O, der::utf8("Acme"))],
            &[(der::OID_CN, der::utf8("Acme Issuing CA 1"))],
        ]);
        let subject = der::name(&[&[(der::OID_CN, der::utf8("leaf"))]]);
        let leaf = test_certs::with_subject_and_san(&subject, None, &[1]);
        let leaf = test_certs::replace_name(&leaf, test_certs::ISSUER_INDEX, &issuer);
        let identity = CertIdentity::from_der(&leaf).unwrap();
        assert_eq!(identity.issuer.rfc4514, "CN=Acme Issuing CA 1,O=Acme");
        assert_eq!(identity.subject.rfc4514, "CN=leaf");
    }

    #[test]
    fn a_non_ascii_cn_is_decoded_from_bmp_and_utf8() {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            DnValue::BmpString("Jürgen Świątek".try_into().unwrap()),
        );
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "東京チーム");
        let identity = CertIdentity::from_der(&test_certs::self_signed(&params)).unwrap();
        assert_eq!(identity.subject.first("CN"), Some("Jürgen Świątek"));
        assert_eq!(identity.subject.rfc4514, "OU=東京チーム,CN=Jürgen Świątek");
    }

    #[test]
    fn a_dn_longer_than_255_characters_is_kept_whole() {
        let subject = der::name(&[
            &[(der::OID_O, der::utf8(&"o".repeat(200)))],
            &[(der::OID_CN, der::utf8(&"c".repeat(200)))],
        ]);
        let der = test_certs::with_subject_and_san(&subject, None, &[1]);
        let identity = CertIdentity::from_der(&der).unwrap();
        assert_eq!(
            identity.subject.rfc4514.chars().count(),
            3 + 200 + 1 + 2 + 200
        );
    }

    #[test]
    fn truncation_counts_characters_and_never_splits_one() {
        let value = "é".repeat(300);
        let cut = truncate_chars(&value, MAX_IDENTIFIER_CHARS);
        assert_eq!(cut.chars().count(), 255);
        assert_eq!(cut.len(), 510);
        assert_eq!(truncate_chars("short", 255), "short");
        assert_eq!(truncate_chars("abc😀def", 4), "abc😀");
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let error = CertIdentity::from_der(b"not a certificate").unwrap_err();
        assert!(
            matches!(error, IdentityError::NotACertificate(_)),
            "{error}"
        );
    }

    #[test]
    fn trailing_bytes_after_the_certificate_are_rejected() {
        let mut der = rich_certificate();
        der.extend_from_slice(&[0, 0]);
        assert_eq!(
            CertIdentity::from_der(&der).unwrap_err(),
            IdentityError::TrailingData(2)
        );
    }

    #[test]
    fn a_malformed_subject_alt_name_is_an_error() {
        // A GeneralNames SEQUENCE whose dNSName is truncated.
        let bad_san = [0x30, 0x03, 0x82, 0x05, b'a'];
        let subject = der::name(&[&[(der::OID_CN, der::utf8("x"))]]);
        let der = test_certs::with_subject_and_san(&subject, Some(&bad_san), &[1]);
        let error = CertIdentity::from_der(&der).unwrap_err();
        assert!(
            matches!(error, IdentityError::BadSubjectAltName(_)),
            "{error}"
        );
    }

    #[test]
    fn identity_serializes_to_json_for_explain() {
        let identity = CertIdentity::from_der(&rich_certificate()).unwrap();
        let json = serde_json::to_value(&identity).unwrap();
        assert_eq!(json["serial"], "8F0102");
        assert_eq!(json["subject"]["attributes"][0]["name"], "CN");
        assert_eq!(json["san"]["uri"][0], "spiffe://acme/payments");
    }

    #[test]
    fn the_crl_urls_come_from_the_same_parse_as_the_identity() {
        let mut params = rcgen::CertificateParams::new(vec!["app.acme.test".to_owned()]).unwrap();
        params.crl_distribution_points = vec![
            rcgen::CrlDistributionPoint {
                uris: vec![
                    "http://crl.acme.test/a.crl".into(),
                    "ldap://dir.acme.test/cn=a".into(),
                ],
            },
            rcgen::CrlDistributionPoint {
                uris: vec!["http://crl.acme.test/a.crl".into()],
            },
        ];
        let der = test_certs::self_signed(&params);
        let (identity, urls) = CertIdentity::from_der_with_crl_urls(&der).unwrap();
        assert_eq!(identity, CertIdentity::from_der(&der).unwrap());
        assert_eq!(urls, ["http://crl.acme.test/a.crl"]);
        assert_eq!(urls, crl_distribution_points(&[&der]).0);
        let plain = test_certs::self_signed(&rcgen::CertificateParams::default());
        assert!(
            CertIdentity::from_der_with_crl_urls(&plain)
                .unwrap()
                .1
                .is_empty()
        );
    }
}
