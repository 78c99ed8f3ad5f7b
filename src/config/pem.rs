//! Certificates, keys and CRLs from PEM (or DER) bytes, with errors that name the file and the
//! reason.
//!
//! The parsers take what reading the file gave ([`FileRead`]): the configuration checks work on
//! bytes read beforehand ([`super::sources`]), and the `load_*` functions read the file first,
//! for callers outside a configuration load (the admin API, the CRL download).

use std::path::Path;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName};

use super::defaults::MAX_CA_CHAIN;

/// A file's path and what reading it gave: its bytes, or why it could not be read.
#[derive(Debug, Clone, Copy)]
pub struct FileRead<'a> {
    pub path: &'a Path,
    pub bytes: Result<&'a [u8], &'a std::io::Error>,
}

/// Every `CERTIFICATE` block of a PEM file (other blocks are skipped). At least one is required.
pub fn load_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path);
    pem_certificates(FileRead {
        path,
        bytes: bytes.as_deref(),
    })
}

/// [`load_pem_certificates`] on the file as read.
pub fn pem_certificates(file: FileRead<'_>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = file.path;
    let bytes = file
        .bytes
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a valid PEM file: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// A certificate authority's chain as Confluent accepts it: a `.pem` file with 1 to 4
/// certificates, every one of them a CA (basicConstraints CA:TRUE).
pub fn ca_bundle(file: FileRead<'_>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = file.path;
    if path.extension().and_then(|e| e.to_str()) != Some("pem") {
        return Err(format!(
            "{}: a certificate chain must be a .pem file",
            path.display()
        ));
    }
    let certs = pem_certificates(file)?;
    if certs.len() > MAX_CA_CHAIN {
        return Err(format!(
            "{}: holds {} certificates; a certificate authority chain has 1 to {MAX_CA_CHAIN}",
            path.display(),
            certs.len()
        ));
    }
    for (i, der) in certs.iter().enumerate() {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
            format!(
                "{}: certificate #{} does not parse: {e}",
                path.display(),
                i + 1
            )
        })?;
        if !rest.is_empty() {
            return Err(format!(
                "{}: certificate #{} has trailing data",
                path.display(),
                i + 1
            ));
        }
        let is_ca = matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
        if !is_ca {
            return Err(format!(
                "{}: certificate #{} ({}) is not a CA certificate (basicConstraints CA:TRUE is missing)",
                path.display(),
                i + 1,
                cert.subject()
            ));
        }
    }
    Ok(certs)
}

/// A certificate chain and its private key, checked to belong together. The error names the
/// field (`certificate_chain` or `private_key`) and the reason.
pub fn certified_key(
    chain: FileRead<'_>,
    key: FileRead<'_>,
) -> Result<CertifiedKey, (&'static str, String)> {
    let certs = pem_certificates(chain).map_err(|e| ("certificate_chain", e))?;
    let (chain, key_read, key) = (chain.path, key.bytes, key.path);
    let no_key = |reason: String| {
        (
            "private_key",
            format!("{}: no usable private key: {reason}", key.display()),
        )
    };
    // Worded as rustls-pki-types words a read error (the key used to be read by it).
    let key_bytes = key_read.map_err(|e| no_key(format!("I/O error: {e}")))?;
    let key_der = PrivateKeyDer::from_pem_slice(key_bytes).map_err(|e| no_key(e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(certs, key_der, &provider).map_err(|e| {
        (
            "private_key",
            format!(
                "{} does not fit the certificate in {}: {e}",
                key.display(),
                chain.display()
            ),
        )
    })?;
    Ok(certified)
}

/// Whether a server certificate is valid for `host` (DNS name or IP, wildcards honoured).
pub fn certificate_names_host(leaf: &CertificateDer<'_>, host: &str) -> bool {
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    match webpki::EndEntityCert::try_from(leaf) {
        Ok(cert) => cert.verify_is_valid_for_subject_name(&name).is_ok(),
        Err(_) => false,
    }
}

/// Certificate revocation lists from a file: PEM (`X509 CRL` blocks) or a single DER CRL.
/// Each one must parse; whether it belongs to the CA is checked when it is used (its signature).
pub fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = std::fs::read(path);
    crls(FileRead {
        path,
        bytes: bytes.as_deref(),
    })
}

/// [`load_crls`] on the file as read.
pub fn crls(file: FileRead<'_>) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let path = file.path;
    let bytes = file
        .bytes
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    load_crls_bytes(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// CRLs from bytes: PEM (`X509 CRL` blocks) or a single DER CRL, each checked to parse.
pub fn load_crls_bytes(bytes: &[u8]) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let pem = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a valid PEM file: {e}"))?;
    let crls = if pem.is_empty() {
        vec![CertificateRevocationListDer::from(bytes.to_vec())]
    } else {
        pem
    };
    for (i, crl) in crls.iter().enumerate() {
        match x509_parser::parse_x509_crl(crl) {
            Ok(([], _)) => {}
            Ok(_) => return Err(format!("CRL #{} has trailing data", i + 1)),
            Err(e) => {
                return Err(format!(
                    "CRL #{} does not parse (PEM `X509 CRL` blocks or one DER CRL expected): {e}",
                    i + 1
                ));
            }
        }
        // rustls parses every CRL again, more strictly (v2 only, known reason codes, no delta
        // or indirect CRLs), when it builds the verifier: refuse here what it would refuse
        // there, so that such a CRL is a configuration error or a failed fetch (the last good
        // CRL kept), not a trust store that cannot be built.
        if let Err(e) = webpki::OwnedCertRevocationList::from_der(crl) {
            return Err(format!(
                "CRL #{} cannot be used for revocation checks: {e:?}",
                i + 1
            ));
        }
    }
    Ok(crls)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    /// Found by the `crl` fuzz target: a CRL entry whose reasonCode is 53, which x509-parser
    /// accepts and rustls refuses (`UnsupportedRevocationReason`) when it builds the verifier.
    /// Accepted here, it passed `check-config` and then failed every build of the trust store:
    /// the proxy's start, or (fetched from a `crl_url`) every reload, instead of being refused
    /// like any bad CRL with the last good one kept.
    const UNSUPPORTED_REASON: &str = "-----BEGIN X509 CRL-----\nMIIBCDCBrgIBATAKBggqhkjOPQQDAjAnMRAwDgYDVQQDDAdTZWVkIENBMRMwEQYD\nVQQKDApBY21lLCBJbmMuFw0yNjEyMDYwMjEzNTJaFw0yNzAxMDUwMjEzNTJaMCUw\nIwIEAIABAhcNMjYxMjA2MDIxMzUyWjAMMAoGA1UdFQQDCgE1oC8wLTAfBgNVHSME\nGDAWgBSExShG38NpEui3de7QiSMRRdONXzAKBgNVHRQEAwIBATAKBggqhkjOPQQD\nAgNJADBGAiEA2We4eSYGXpNiObTxa940aGI/PIsw6mxY8OD2kEaon88CIQD+n3it\n0P0ucAEFVl9Ugpve8qe6Zm0JCgMPPYg7SsVWLw==\n-----END X509 CRL-----\n";

    #[test]
    fn a_crl_rustls_cannot_use_is_refused_when_loaded() {
        let error = load_crls_bytes(UNSUPPORTED_REASON.as_bytes()).unwrap_err();
        assert!(error.contains("CRL #1"), "{error}");
        assert!(error.contains("UnsupportedRevocationReason"), "{error}");
    }
}
