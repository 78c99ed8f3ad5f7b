//! Certificate revocation lists fetched from `crl_url`s, or from the CRL distribution points of a
//! CA's certificates when it has neither `crl_url` nor `crl_chain`.
//!
//! CRLs from files (`crl_chain`) are part of the configuration. CRLs behind a URL are fetched
//! when the proxy starts, when a reload names a URL not seen before, and every
//! `revocation.crl_refresh_interval_ms`. A failed fetch keeps the last good CRL (and is
//! logged); a URL that never answered contributes nothing, so its CA's certificates are
//! admitted unless `require_crl_on_client_certificate` asks for a CRL.
//!
//! Fetches are blocking (ureq, plain HTTP) and bounded in time and size; callers run them off
//! the async workers.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateRevocationListDer;

use crate::config::{ReloadableConfig, defaults::CRL_MAX_BYTES, load_crls_bytes};

#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url}: {reason}")]
    Invalid { url: String, reason: String },
}

/// One fetched CRL document.
#[derive(Debug, Clone)]
struct Fetched {
    crls: Vec<CertificateRevocationListDer<'static>>,
    at: SystemTime,
}

/// The CRLs fetched so far, by URL. Shared by every configuration generation.
#[derive(Debug, Default)]
pub struct FetchedCrls {
    by_url: RwLock<HashMap<String, Fetched>>,
}

/// Download one CRL document (PEM or DER), within `timeout` and `CRL_MAX_BYTES`.
pub fn fetch(
    url: &str,
    timeout: Duration,
) -> Result<Vec<CertificateRevocationListDer<'static>>, CrlError> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .build()
        .new_agent();
    let mut response = agent.get(url).call().map_err(|e| CrlError::Fetch {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let body = response
        .body_mut()
        .with_config()
        .limit(CRL_MAX_BYTES)
        .read_to_vec()
        .map_err(|e| CrlError::Fetch {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    load_crls_bytes(&body).map_err(|reason| CrlError::Invalid {
        url: url.to_string(),
        reason,
    })
}

impl FetchedCrls {
    /// The CRLs last fetched from `url` (empty when it never answered).
    pub fn get(&self, url: &str) -> Vec<CertificateRevocationListDer<'static>> {
        self.by_url
            .read()
            .ok()
            .and_then(|m| m.get(url).map(|f| f.crls.clone()))
            .unwrap_or_default()
    }

    /// Seconds since `url` was last fetched successfully.
    pub fn age(&self, url: &str) -> Option<Duration> {
        let m = self.by_url.read().ok()?;
        SystemTime::now().duration_since(m.get(url)?.at).ok()
    }

    /// Fetch every CRL URL of `config` (all of them, or only those never fetched).
    /// Failures are logged; the last good CRL stays.
    pub fn refresh(&self, config: &ReloadableConfig, only_missing: bool) -> Refreshed {
        let mut refreshed = Refreshed::default();
        for (ca, url) in config
            .authorities
            .iter()
            .flat_map(|ca| ca.crl_urls().iter().map(move |url| (ca, url)))
        {
            let known = self.by_url.read().is_ok_and(|m| m.contains_key(url));
            if only_missing && known {
                continue;
            }
            match fetch(url, config.revocation.crl_fetch_timeout) {
                Ok(crls) => {
                    let Ok(mut m) = self.by_url.write() else {
                        continue;
                    };
                    let same = m.get(url).is_some_and(|old| old.crls == crls);
                    refreshed.changed |= !same;
                    tracing::info!(ca = %ca.id, %url, crls = crls.len(), changed = !same, "CRL fetched");
                    if let Ok(since) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
                        refreshed.fetched.push((ca.id.clone(), since.as_secs()));
                    }
                    m.insert(
                        url.clone(),
                        Fetched {
                            crls,
                            at: SystemTime::now(),
                        },
                    );
                }
                Err(e) => tracing::error!(
                    ca = %ca.id,
                    error = %e,
                    kept_previous = known,
                    "CRL fetch failed"
                ),
            }
        }
        refreshed
    }
}

/// What one [`FetchedCrls::refresh`] did.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Whether any CRL changed.
    pub changed: bool,
    /// Each certificate authority whose CRL was fetched, with the Unix time it was (metrics).
    pub fetched: Vec<(String, u64)>,
}
