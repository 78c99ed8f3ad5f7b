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
use tokio::sync::Notify;

use rustls_pki_types::CertificateRevocationListDer;

use crate::config::{
    CertificateAuthority, MAX_DISTRIBUTION_POINTS, ReloadableConfig, defaults::CRL_MAX_BYTES,
    load_crls_bytes,
};

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

/// The CRLs fetched so far, by URL, and the CRL URLs learned from client certificates. Shared by
/// every configuration generation.
#[derive(Debug, Default)]
pub struct FetchedCrls {
    by_url: RwLock<HashMap<String, Fetched>>,
    /// CA id → the http:// CRL distribution points of its admitted client certificates, for a
    /// CA with neither `crl_chain` nor `crl_url` (at most `MAX_DISTRIBUTION_POINTS` each: a
    /// certificate holder cannot make the proxy fetch without bound).
    discovered: RwLock<HashMap<String, Vec<String>>>,
    /// Woken when a URL is discovered, so it is fetched at once rather than at the next refresh.
    wake: Notify,
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
    /// Every URL `ca`'s CRLs come from: its `crl_url` or bundle distribution points (see
    /// [`CertificateAuthority::crl_urls`]), and — with neither `crl_url` nor `crl_chain` — the
    /// distribution points its admitted client certificates named.
    pub fn urls_of(&self, ca: &CertificateAuthority) -> Vec<String> {
        let mut urls = ca.crl_urls().to_vec();
        if ca.learns_crl_urls()
            && let Ok(discovered) = self.discovered.read()
            && let Some(more) = discovered.get(&ca.id)
        {
            urls.extend(
                more.iter()
                    .filter(|u| !urls.contains(u))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        urls
    }

    /// Whether any CA of `config` has a CRL URL to fetch.
    pub fn has_urls(&self, config: &ReloadableConfig) -> bool {
        config
            .authorities
            .iter()
            .any(|ca| !self.urls_of(ca).is_empty())
    }

    /// Learn the CRL distribution points of a client certificate `ca` admitted (the caller
    /// checked [`CertificateAuthority::learns_crl_urls`]). True when a URL was new: it is
    /// then fetched by the task waiting in [`FetchedCrls::discovered`].
    pub fn discover(&self, ca: &CertificateAuthority, urls: &[String]) -> bool {
        let Ok(mut discovered) = self.discovered.write() else {
            return false;
        };
        let known = discovered.entry(ca.id.clone()).or_default();
        let mut new = false;
        for url in urls {
            if known.contains(url) || ca.crl_urls().contains(url) {
                continue;
            }
            if known.len() >= MAX_DISTRIBUTION_POINTS {
                tracing::warn!(
                    ca = %ca.id,
                    %url,
                    max = MAX_DISTRIBUTION_POINTS,
                    "CRL distribution point of a client certificate ignored: this CA's limit is reached"
                );
                break;
            }
            tracing::info!(ca = %ca.id, %url, "CRL distribution point learned from a client certificate");
            known.push(url.clone());
            new = true;
        }
        if new {
            self.wake.notify_one();
        }
        new
    }

    /// Resolves when [`FetchedCrls::discover`] learned a URL since the last call.
    pub async fn discovered(&self) {
        self.wake.notified().await;
    }

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
            .flat_map(|ca| self.urls_of(ca).into_iter().map(move |url| (ca, url)))
        {
            let url = &url;
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
