//! `certificate_authorities`: the trusted client CAs (their chains and CRL files), the identity
//! pools each one admits, and their ACL rules.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};

use super::authorization::{CaAuthorization, acl_rules};
use super::certificate_facts::{
    CertificateExpiry, DEFAULT_EXPIRY_WARNING_DAYS, crl_distribution_points, unix_now,
};
use super::limits::Limits;
use super::raw::{RawCertificateAuthority, RawConfig, RawIdentityPool};
use super::sources::Sources;
use super::{Issues, pem};
use crate::pools::{CaPools, ExternalIdentifier, Filter, Pool};

/// A trusted client certificate authority and the identity pools it admits.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    pub id: String,
    pub display_name: String,
    pub description: String,
    pub certificate_chain_path: PathBuf,
    /// 1 to 4 CA certificates, as in the file.
    pub certificates: Vec<CertificateDer<'static>>,
    pub crl_chain_path: Option<PathBuf>,
    /// CRLs from `crl_chain` (CRLs fetched from `crl_url` are kept by the proxy, not here).
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub crl_url: Option<String>,
    /// The http:// CRL distribution points of the bundle's certificates: fetched like a
    /// `crl_url` when the CA has neither `crl_chain` nor `crl_url` (Confluent Cloud's rule).
    pub crl_distribution_points: Vec<String>,
    pub require_crl: bool,
    pub pools: CaPools,
    pub authorization: CaAuthorization,
}

impl CertificateAuthority {
    /// The URLs this CA's CRLs are fetched from: `crl_url`, or else — when there is no
    /// `crl_chain` either — the bundle's CRL distribution points.
    pub fn crl_urls(&self) -> &[String] {
        match (&self.crl_url, &self.crl_chain_path) {
            (Some(url), _) => std::slice::from_ref(url),
            (None, None) => &self.crl_distribution_points,
            (None, Some(_)) => &[],
        }
    }

    /// Whether this CA learns CRL URLs from its client certificates' distribution points: only
    /// when nothing configures its CRLs (neither `crl_url` nor `crl_chain`).
    pub fn learns_crl_urls(&self) -> bool {
        self.crl_url.is_none() && self.crl_chain_path.is_none()
    }

    /// When each certificate of the bundle expires, as in the file.
    pub fn expiries(&self) -> Vec<CertificateExpiry> {
        self.certificates
            .iter()
            .filter_map(CertificateExpiry::of)
            .collect()
    }
}

/// Check `certificate_authorities`: every CA's chain and CRLs, its pools (ids unique across
/// all CAs, at most `limits.pools_per_ca`) and its ACL rules. A CA with an error is left out.
pub(super) fn check(
    issues: &mut Issues,
    raw: &RawConfig,
    limits: &Limits,
    sources: &Sources,
) -> Vec<CertificateAuthority> {
    if raw.certificate_authorities.is_empty() {
        issues.error(
            "certificate_authorities",
            "configure at least one certificate authority: without one every client is refused",
        );
    }
    let mut ca_ids = HashSet::new();
    let mut pool_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    // `tls.expiry_warning_days` covers CA certificates too.
    let expiry_warning_days = raw
        .tls
        .expiry_warning_days
        .unwrap_or(DEFAULT_EXPIRY_WARNING_DAYS);
    for (i, ca) in raw.certificate_authorities.iter().enumerate() {
        let at = format!("certificate_authorities[{i}]");
        if let Err(reason) = check_id(&ca.id) {
            issues.error(format!("{at}.id"), reason);
        } else if !ca_ids.insert(ca.id.clone()) {
            issues.error(
                format!("{at}.id"),
                format!("duplicate certificate authority id `{}`", ca.id),
            );
        }
        let checked = authority(
            issues,
            &at,
            ca,
            (limits, sources, expiry_warning_days),
            &mut pool_ids,
        );
        if let Some(ca) = checked {
            out.push(ca);
        }
    }
    out
}

/// Check one certificate authority after its id; `None` when its chain or CRLs cannot be
/// loaded, the errors that leave it out.
fn authority(
    issues: &mut Issues,
    at: &str,
    ca: &RawCertificateAuthority,
    (limits, sources, expiry_warning_days): (&Limits, &Sources, u32),
    pool_ids: &mut BTreeMap<String, String>,
) -> Option<CertificateAuthority> {
    if ca.display_name.trim().is_empty() {
        issues.error(format!("{at}.display_name"), "must not be empty");
    }
    let certificates = match pem::ca_bundle(sources.file(&ca.certificate_chain)) {
        Ok(certs) => Some(certs),
        Err(reason) => {
            issues.error(format!("{at}.certificate_chain"), reason);
            None
        }
    };
    let distribution_points = certificates
        .as_deref()
        .map(|certs| distribution_points(issues, at, ca, certs, expiry_warning_days))
        .unwrap_or_default();
    let crls = crls(issues, at, ca, sources, &distribution_points);
    pool_count(issues, at, ca, limits);
    let authorization = CaAuthorization {
        enabled: ca.authorization.as_ref().and_then(|a| a.enabled),
        rules: ca
            .authorization
            .as_ref()
            .map(|a| acl_rules(issues, &format!("{at}.authorization.rules"), &a.rules))
            .unwrap_or_default(),
    };
    let mut pools = Vec::new();
    for (j, p) in ca.identity_pools.iter().enumerate() {
        let at = format!("{at}.identity_pools[{j}]");
        if let Some(pool) = pool(issues, &at, p, &ca.id, pool_ids) {
            pools.push(pool);
        }
    }
    Some(CertificateAuthority {
        id: ca.id.clone(),
        display_name: ca.display_name.clone(),
        description: ca.description.clone(),
        certificate_chain_path: ca.certificate_chain.clone(),
        certificates: certificates?,
        crl_chain_path: ca.crl_chain.clone(),
        crls: crls?,
        crl_url: ca.crl_url.clone(),
        crl_distribution_points: distribution_points,
        require_crl: ca.require_crl_on_client_certificate,
        pools: CaPools {
            ca_id: ca.id.clone(),
            pools,
        },
        authorization,
    })
}

/// A CA's revocation settings: the CRLs of `crl_chain` (`None` when they cannot be loaded), a
/// usable `crl_url`, and a CRL source when one is required.
fn crls(
    issues: &mut Issues,
    at: &str,
    ca: &RawCertificateAuthority,
    sources: &Sources,
    distribution_points: &[String],
) -> Option<Vec<CertificateRevocationListDer<'static>>> {
    let crls = match &ca.crl_chain {
        None => Some(Vec::new()),
        Some(path) => match pem::crls(sources.file(path)) {
            Ok(crls) => Some(crls),
            Err(reason) => {
                issues.error(format!("{at}.crl_chain"), reason);
                None
            }
        },
    };
    if let Some(url) = &ca.crl_url
        && let Err(reason) = check_crl_url(url)
    {
        issues.error(format!("{at}.crl_url"), reason);
    }
    if ca.require_crl_on_client_certificate
        && ca.crl_chain.is_none()
        && ca.crl_url.is_none()
        && distribution_points.is_empty()
    {
        issues.error(
            format!("{at}.require_crl_on_client_certificate"),
            "needs a crl_chain, a crl_url or an http:// CRL distribution point in the \
             certificate chain: without a CRL every certificate would be refused",
        );
    }
    crls
}

/// The bundle's usable CRL distribution points, and warnings for what the operator should
/// know: certificates expiring soon, and distribution points the proxy cannot fetch when it
/// would have used them.
fn distribution_points(
    issues: &mut Issues,
    at: &str,
    ca: &RawCertificateAuthority,
    certificates: &[CertificateDer<'static>],
    expiry_warning_days: u32,
) -> Vec<String> {
    let now = unix_now();
    for warning in certificates
        .iter()
        .filter_map(CertificateExpiry::of)
        .filter_map(|e| e.warning(now, expiry_warning_days))
    {
        issues.warn(format!("{at}.certificate_chain"), warning);
    }
    let (usable, unusable) = crl_distribution_points(certificates);
    if ca.crl_chain.is_none() && ca.crl_url.is_none() && !unusable.is_empty() {
        issues.warn(
            format!("{at}.certificate_chain"),
            format!(
                "CRL distribution point(s) {} not used: only http:// URLs are fetched (at most \
                 {MAX}); set crl_url or crl_chain",
                unusable.join(", "),
                MAX = super::certificate_facts::MAX_DISTRIBUTION_POINTS,
            ),
        );
    }
    usable
}

/// A CA without pools admits nobody (a warning); more than `limits.pools_per_ca` is an error.
fn pool_count(issues: &mut Issues, at: &str, ca: &RawCertificateAuthority, limits: &Limits) {
    if ca.identity_pools.is_empty() {
        issues.warn(
            format!("{at}.identity_pools"),
            "no identity pools: every certificate of this CA will be refused",
        );
    }
    if ca.identity_pools.len() > limits.pools_per_ca {
        issues.error(
            format!("{at}.identity_pools"),
            format!(
                "{} pools exceed limits.pools_per_ca ({})",
                ca.identity_pools.len(),
                limits.pools_per_ca
            ),
        );
    }
}

/// Check one identity pool; its id is recorded in `pool_ids` (pool id → CA id) to catch
/// duplicates across certificate authorities.
fn pool(
    issues: &mut Issues,
    at: &str,
    p: &RawIdentityPool,
    ca_id: &str,
    pool_ids: &mut BTreeMap<String, String>,
) -> Option<Pool> {
    let mut ok = true;
    if let Err(reason) = check_id(&p.id) {
        issues.error(format!("{at}.id"), reason);
        ok = false;
    } else if let Some(other_ca) = pool_ids.insert(p.id.clone(), ca_id.to_string()) {
        issues.error(
            format!("{at}.id"),
            format!(
                "duplicate identity pool id `{}` (also in certificate authority `{other_ca}`); \
                 pool ids are principals (User:<id>) and must be unique",
                p.id
            ),
        );
        ok = false;
    }
    if p.display_name.trim().is_empty() {
        issues.error(format!("{at}.display_name"), "must not be empty");
    }
    let external_identifier = match p.external_identifier.parse::<ExternalIdentifier>() {
        Ok(e) => Some(e),
        Err(e) => {
            issues.error(format!("{at}.external_identifier"), e.to_string());
            None
        }
    };
    let filter = match Filter::compile(&p.filter) {
        Ok(f) => {
            if f.is_empty() {
                issues.warn(
                    format!("{at}.filter"),
                    format!(
                        "pool `{}` has an empty filter, which never matches (as in Confluent Cloud)",
                        p.id
                    ),
                );
            }
            Some(f)
        }
        Err(e) => {
            issues.error(format!("{at}.filter"), format!("pool `{}`: {e}", p.id));
            None
        }
    };
    let acls = acl_rules(issues, &format!("{at}.acls"), &p.acls);
    if !ok {
        return None;
    }
    Some(Pool {
        id: p.id.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        external_identifier: external_identifier?,
        filter: filter?,
        priority: p.priority.unwrap_or(0),
        acls,
    })
}

/// CRL URLs are fetched over plain HTTP (CRLs are signed; distribution points are http).
fn check_crl_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "`{url}`: only http:// CRL URLs are supported (a CRL is signed by its CA; use crl_chain for a local file)"
        ));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// Ids become principals (`User:<id>`) and audit fields: keep them to a safe alphabet.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > 128 {
        return Err(format!("`{id}` is longer than 128 characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "`{id}` contains `{c}`; use letters, digits, `-`, `_` and `.`"
        ));
    }
    Ok(())
}
