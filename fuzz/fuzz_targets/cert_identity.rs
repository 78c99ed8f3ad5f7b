//! Arbitrary DER through certificate attribute extraction: `CertIdentity::from_der`, run on
//! every client leaf after the handshake, then the attributes filters see (`Attributes`, the
//! `explain` view) and two filters evaluated on them, one on the fast path and one in the CEL
//! interpreter.
//!
//! What must hold: no panic; the fingerprints are those of the input; every identifier the
//! identity reports is within `MAX_IDENTIFIER_CHARS` once cut as the proxy cuts it.

#![no_main]

use std::sync::LazyLock;

use kafka_mtls_proxy::identity::{CertIdentity, MAX_IDENTIFIER_CHARS, truncate_chars};
use kafka_mtls_proxy::pools::{Attributes, Filter};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// One filter inside the fast subset, one that needs the interpreter.
static FILTERS: LazyLock<[Filter; 2]> = LazyLock::new(|| {
    let compile = |source: &str| {
        Filter::compile(source).unwrap_or_else(|e| panic!("a fixed filter does not compile: {e}"))
    };
    [
        compile(r#"CN == "app" || OU.startsWith("pay") || SAN.contains("spiffe://")"#),
        compile(
            r#"cert.subject.OU.exists(ou, ou.matches("^team-[a-z]+$")) || size(cert.san.dns) > 2"#,
        ),
    ]
});

fuzz_target!(|der: &[u8]| {
    let Ok(identity) = CertIdentity::from_der(der) else {
        return;
    };
    assert_eq!(identity.sha256, hex::encode_upper(Sha256::digest(der)));
    for value in [
        &identity.subject.rfc4514,
        &identity.issuer.rfc4514,
        &identity.serial,
    ] {
        assert!(
            truncate_chars(value, MAX_IDENTIFIER_CHARS).chars().count() <= MAX_IDENTIFIER_CHARS
        );
    }
    let attributes = Attributes::new(&identity);
    for filter in FILTERS.iter() {
        let _ = filter.evaluate(&attributes);
    }
    let _ = attributes.cel_view();
});
