//! `revocation`: how often the certificate authorities' `crl_url`s are fetched, and for how long.

use std::time::Duration;

use super::raw::RawRevocation;
use super::{Issues, defaults};

#[derive(Debug, Clone)]
pub struct RevocationConfig {
    pub crl_refresh_interval: Duration,
    pub crl_fetch_timeout: Duration,
}

/// Check `revocation`.
pub(super) fn check(issues: &mut Issues, r: &RawRevocation) -> RevocationConfig {
    RevocationConfig {
        crl_refresh_interval: Duration::from_millis(issues.positive(
            "revocation.crl_refresh_interval_ms",
            r.crl_refresh_interval_ms,
            defaults::CRL_REFRESH_INTERVAL_MS,
        )),
        crl_fetch_timeout: Duration::from_millis(issues.positive(
            "revocation.crl_fetch_timeout_ms",
            r.crl_fetch_timeout_ms,
            defaults::CRL_FETCH_TIMEOUT_MS,
        )),
    }
}
