//! Arbitrary CEL through filter compilation (`Filter::compile`, run on every pool filter of a
//! configuration or an iam API write), then evaluation on arbitrary certificate attributes.
//!
//! Input layout: parts separated by NUL. Part 0 is the filter source (lossy UTF-8: YAML and
//! JSON hand the proxy a string). Each further part is one attribute value: its first byte picks
//! where it goes (a subject or issuer attribute, a SAN list, the serial, a fingerprint, a
//! validity time), the rest is the value.
//!
//! What must hold: no panic (the parser runs on a thread of its own, so a parser panic would
//! come back as a `Compiler` error; that is a crash here too), and compiling is deterministic:
//! the same source compiles to the same plan twice.

#![no_main]

use kafka_mtls_proxy::identity::{CertIdentity, DistinguishedName, DnAttribute, SubjectAltNames};
use kafka_mtls_proxy::pools::{Attributes, Filter, FilterError};
use libfuzzer_sys::fuzz_target;

/// The attribute names a DN can carry, as `identity` names them, plus an OID.
const DN_NAMES: [&str; 12] = [
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
    "2.5.4.42",
];

fn empty_name() -> DistinguishedName {
    DistinguishedName {
        rfc4514: String::new(),
        attributes: Vec::new(),
    }
}

fn identity_from(parts: &[&[u8]]) -> CertIdentity {
    let mut identity = CertIdentity {
        subject: empty_name(),
        issuer: empty_name(),
        san: SubjectAltNames::default(),
        serial: String::new(),
        sha1: String::new(),
        sha256: String::new(),
        not_before: String::new(),
        not_after: String::new(),
    };
    for part in parts {
        let [slot, value @ ..] = part else { continue };
        let value = String::from_utf8_lossy(value).into_owned();
        let slot = usize::from(*slot);
        let dn_slots = DN_NAMES.len() * 2;
        if slot < dn_slots {
            let name = if slot < DN_NAMES.len() {
                &mut identity.subject
            } else {
                &mut identity.issuer
            };
            let key = DN_NAMES[slot % DN_NAMES.len()];
            if !name.rfc4514.is_empty() {
                name.rfc4514.push(',');
            }
            name.rfc4514.push_str(&format!("{key}={value}"));
            name.attributes.push(DnAttribute {
                name: key.to_owned(),
                value,
            });
            continue;
        }
        let san = &mut identity.san;
        match slot - dn_slots {
            0 => san.dns.push(value.clone()),
            1 => san.uri.push(value.clone()),
            2 => san.email.push(value.clone()),
            3 => san.ip.push(value.clone()),
            4 => identity.serial = value,
            5 => identity.sha1 = value,
            6 => identity.sha256 = value,
            7 => identity.not_before = value,
            _ => identity.not_after = value,
        }
        if (0..4).contains(&(slot - dn_slots)) {
            if let Some(last) = [&san.dns, &san.uri, &san.email, &san.ip][slot - dn_slots].last() {
                let last = last.clone();
                san.all.push(last);
            }
        }
    }
    identity
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let source = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let compiled = Filter::compile(&source);
    if let Err(FilterError::Compiler(reason)) = &compiled {
        panic!("the CEL compiler failed: {reason}");
    }
    let Ok(filter) = compiled else {
        return;
    };
    let again = Filter::compile(&source).map(|f| f.uses_interpreter());
    assert_eq!(
        again.ok(),
        Some(filter.uses_interpreter()),
        "compiling is not deterministic"
    );
    let parts: Vec<&[u8]> = parts.collect();
    let identity = identity_from(&parts);
    let attributes = Attributes::new(&identity);
    let _ = filter.evaluate(&attributes);
});
