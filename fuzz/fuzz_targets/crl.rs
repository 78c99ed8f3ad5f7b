//! Arbitrary bytes as a CRL file (`crl_chain`) or a document fetched from a `crl_url`:
//! `load_crls_bytes` (PEM blocks or one DER CRL, each parsed), then, for what it accepts, the
//! trust store the proxy builds from a certificate authority with those CRLs, where rustls
//! parses them again for revocation checks.
//!
//! What must hold: no panic, and a CRL the configuration check accepts never makes building
//! the trust store fail.

#![no_main]

use std::sync::{Arc, LazyLock};

use kafka_mtls_proxy::config::{CaAuthorization, CertificateAuthority, load_crls_bytes};
use kafka_mtls_proxy::pools::CaPools;
use kafka_mtls_proxy::tls::crl::FetchedCrls;
use kafka_mtls_proxy::tls::trust::TrustStore;
use libfuzzer_sys::fuzz_target;
use rustls_pki_types::CertificateDer;

/// A CA certificate to hang the CRLs on (generated once: only the CRLs are fuzzed).
static CA_CERT: LazyLock<CertificateDer<'static>> = LazyLock::new(|| {
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("CA key: {e}"));
    let mut params =
        rcgen::CertificateParams::new(Vec::new()).unwrap_or_else(|e| panic!("CA params: {e}"));
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fuzz CA");
    let cert = params
        .self_signed(&key)
        .unwrap_or_else(|e| panic!("CA certificate: {e}"));
    cert.der().clone()
});

fuzz_target!(|data: &[u8]| {
    let Ok(crls) = load_crls_bytes(data) else {
        return;
    };
    let ca = CertificateAuthority {
        id: "op-fuzz".to_owned(),
        display_name: String::new(),
        description: String::new(),
        certificate_chain_path: "ca.pem".into(),
        certificates: vec![CA_CERT.clone()],
        crl_chain_path: Some("crl.pem".into()),
        crls,
        crl_url: None,
        crl_distribution_points: Vec::new(),
        require_crl: data.first().is_some_and(|b| b % 2 == 1),
        pools: CaPools {
            ca_id: "op-fuzz".to_owned(),
            pools: Vec::new(),
        },
        authorization: CaAuthorization::default(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    if let Err(e) = TrustStore::new(&[ca], &FetchedCrls::default(), 16, provider) {
        panic!("a CRL the configuration accepts breaks the trust store: {e}");
    }
});
