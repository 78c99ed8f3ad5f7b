//! Test certificates: rcgen for real ones, a few DER builders for what rcgen cannot express
//! (several values of one attribute type, multi-valued RDNs, every SAN type).
//!
//! Signatures are never checked here: identity extraction reads a certificate that TLS has
//! already verified, so a certificate whose subject was swapped after signing is a fine input.

use rcgen::{CertificateParams, CustomExtension, KeyPair, SerialNumber};

/// A self-signed certificate from `params`, as DER.
pub(crate) fn self_signed(params: &CertificateParams) -> Vec<u8> {
    let key = KeyPair::generate().expect("key generation");
    params
        .self_signed(&key)
        .expect("self-signed")
        .der()
        .to_vec()
}

/// A self-signed certificate with `subject` (a DER `Name`) and the SAN extension value `san`
/// (a DER `GeneralNames`), serial `serial`, valid 2026-11-22 .. 2027-11-22.
pub(crate) fn with_subject_and_san(subject: &[u8], san: Option<&[u8]>, serial: &[u8]) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.not_before = rcgen::date_time_ymd(2026, 11, 22);
    params.not_after = rcgen::date_time_ymd(2027, 11, 22);
    if let Some(san) = san {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[2, 5, 29, 17],
                san.to_vec(),
            ));
    }
    replace_name(&self_signed(&params), SUBJECT_INDEX, subject)
}

/// Position of the issuer and subject in a v3 TBSCertificate:
/// version, serialNumber, signature, issuer, validity, subject, ...
pub(crate) const ISSUER_INDEX: usize = 3;
pub(crate) const SUBJECT_INDEX: usize = 5;

/// Replaces the `index`th element of the TBSCertificate with `replacement`, fixing lengths.
pub(crate) fn replace_name(cert: &[u8], index: usize, replacement: &[u8]) -> Vec<u8> {
    let (outer_tag, outer) = der::split_tlv(cert);
    assert_eq!(outer_tag, 0x30);
    let outer_parts = der::elements(outer);
    let (tbs_tag, tbs) = der::split_tlv(outer_parts[0]);
    assert_eq!(tbs_tag, 0x30);
    let mut tbs_parts: Vec<Vec<u8>> = der::elements(tbs).iter().map(|e| e.to_vec()).collect();
    tbs_parts[index] = replacement.to_vec();
    let new_tbs = der::tlv(0x30, &tbs_parts.concat());
    let mut rest = vec![new_tbs];
    rest.extend(outer_parts[1..].iter().map(|e| e.to_vec()));
    der::tlv(0x30, &rest.concat())
}

/// Minimal DER building and splitting, for tests only.
pub(crate) mod der {
    pub(crate) const OID_CN: &str = "2.5.4.3";
    pub(crate) const OID_SERIALNUMBER: &str = "2.5.4.5";
    pub(crate) const OID_C: &str = "2.5.4.6";
    pub(crate) const OID_L: &str = "2.5.4.7";
    pub(crate) const OID_ST: &str = "2.5.4.8";
    pub(crate) const OID_STREET: &str = "2.5.4.9";
    pub(crate) const OID_O: &str = "2.5.4.10";
    pub(crate) const OID_OU: &str = "2.5.4.11";
    pub(crate) const OID_UID: &str = "0.9.2342.19200300.100.1.1";
    pub(crate) const OID_DC: &str = "0.9.2342.19200300.100.1.25";
    pub(crate) const OID_EMAIL: &str = "1.2.840.113549.1.9.1";

    /// Tag, DER length, content.
    pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    pub(crate) fn utf8(s: &str) -> Vec<u8> {
        tlv(0x0c, s.as_bytes())
    }

    pub(crate) fn ia5(s: &str) -> Vec<u8> {
        tlv(0x16, s.as_bytes())
    }

    /// The content octets of an OBJECT IDENTIFIER.
    pub(crate) fn oid_content(dotted: &str) -> Vec<u8> {
        let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().expect("arc")).collect();
        let mut out = Vec::new();
        let mut push = |mut n: u64| {
            let mut groups = vec![(n & 0x7f) as u8];
            n >>= 7;
            while n > 0 {
                groups.push((n & 0x7f) as u8 | 0x80);
                n >>= 7;
            }
            out.extend(groups.iter().rev());
        };
        push(arcs[0] * 40 + arcs[1]);
        for arc in &arcs[2..] {
            push(*arc);
        }
        out
    }

    pub(crate) fn oid(dotted: &str) -> Vec<u8> {
        tlv(0x06, &oid_content(dotted))
    }

    /// A `Name` from RDNs in ASN.1 order (least specific first); each RDN is a list of
    /// (attribute type OID, encoded value).
    pub(crate) fn name(rdns: &[&[(&str, Vec<u8>)]]) -> Vec<u8> {
        let mut content = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid_str, value) in rdn.iter() {
                set.extend(tlv(0x30, &[oid(oid_str), value.clone()].concat()));
            }
            content.extend(tlv(0x31, &set));
        }
        tlv(0x30, &content)
    }

    /// Splits one TLV into its tag and content (short or long form lengths).
    pub(crate) fn split_tlv(input: &[u8]) -> (u8, &[u8]) {
        let (tag, len, header) = header(input);
        (tag, &input[header..header + len])
    }

    /// The consecutive TLVs of `content`, each with its header.
    pub(crate) fn elements(mut content: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !content.is_empty() {
            let (_, len, header) = header(content);
            out.push(&content[..header + len]);
            content = &content[header + len..];
        }
        out
    }

    fn header(input: &[u8]) -> (u8, usize, usize) {
        let tag = input[0];
        let first = input[1] as usize;
        if first < 0x80 {
            (tag, first, 2)
        } else {
            let n = first & 0x7f;
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (tag, len, 2 + n)
        }
    }
}
