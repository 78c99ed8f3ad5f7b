//! `tls`: the proxy's own certificate and key, and the TLS versions it accepts from clients.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use super::certificate_facts::{CertificateExpiry, DEFAULT_EXPIRY_WARNING_DAYS, unix_now};
use super::raw::RawServerTls;
use super::sources::Sources;
use super::{Issues, pem};

#[derive(Clone)]
pub struct ServerTlsConfig {
    pub certificate_chain_path: PathBuf,
    pub private_key_path: PathBuf,
    pub certified_key: Arc<CertifiedKey>,
    pub tls13_only: bool,
    /// Days before a certificate (this one, or a CA's) expires that it is warned about; 0: never.
    pub expiry_warning_days: u32,
}

impl ServerTlsConfig {
    /// When each certificate of the chain expires, leaf first.
    pub fn expiries(&self) -> Vec<CertificateExpiry> {
        self.certified_key
            .cert
            .iter()
            .filter_map(CertificateExpiry::of)
            .collect()
    }
}

impl fmt::Debug for ServerTlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsConfig")
            .field("certificate_chain_path", &self.certificate_chain_path)
            .field("private_key_path", &self.private_key_path)
            .field("tls13_only", &self.tls13_only)
            .finish_non_exhaustive()
    }
}

/// Check `tls`; `advertised_hosts` are the names the certificate should carry, each with the
/// field that names it.
pub(super) fn check(
    issues: &mut Issues,
    t: &RawServerTls,
    advertised_hosts: &[(String, String)],
    sources: &Sources,
) -> Option<ServerTlsConfig> {
    let tls13_only = match t.min_version.as_deref() {
        None | Some("1.2") => false,
        Some("1.3") => true,
        Some(other) => {
            issues.error(
                "tls.min_version",
                format!("`{other}` is not supported; use \"1.2\" or \"1.3\""),
            );
            false
        }
    };
    match pem::certified_key(
        sources.file(&t.certificate_chain),
        sources.file(&t.private_key),
    ) {
        Ok(key) => {
            for (field, host) in advertised_hosts {
                if let Some(leaf) = key.cert.first()
                    && !pem::certificate_names_host(leaf, host)
                {
                    issues.warn(
                        "tls.certificate_chain",
                        format!(
                            "the server certificate does not name `{host}` ({field}); \
                             Java clients verify the host name and will refuse the connection"
                        ),
                    );
                }
            }
            let config = ServerTlsConfig {
                certificate_chain_path: t.certificate_chain.clone(),
                private_key_path: t.private_key.clone(),
                certified_key: Arc::new(key),
                tls13_only,
                expiry_warning_days: t.expiry_warning_days.unwrap_or(DEFAULT_EXPIRY_WARNING_DAYS),
            };
            let now = unix_now();
            for warning in config
                .expiries()
                .iter()
                .filter_map(|e| e.warning(now, config.expiry_warning_days))
            {
                issues.warn("tls.certificate_chain", warning);
            }
            Some(config)
        }
        Err((field, reason)) => {
            issues.error(format!("tls.{field}"), reason);
            None
        }
    }
}
