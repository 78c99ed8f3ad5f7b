//! `explain`: what the proxy would decide for a certificate, and why.
//!
//! Operators run it before deploying a filter change, as the `explain` command
//! (`kafka-mtls-proxy explain --config config/proxy.yaml --cert client.pem`) or through the
//! admin API (`POST /iam/v2/explain`, against the running configuration).
//! The output is JSON: the certificate's attributes exactly as CEL sees them, which CA verified
//! the chain (or each CA's reason for not verifying it), every pool's filter and result, and
//! the outcome (`admitted`, `matched_pools`, `principals`, `identifier`). Pools of a CA that
//! did not verify the chain are shown with `"counted": false`: they cannot admit it.
//!
//! It lives next to [`trust`](super::trust) because it is the handshake's verdict, spelled out:
//! the same [`TrustStore`] checks, with each CA's and each pool's result kept.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};

use crate::config::ReloadableConfig;
use crate::identity::CertIdentity;
use crate::pools::{self, Attributes};
use crate::tls::crl::FetchedCrls;
use crate::tls::trust::CaCheck;
use crate::tls::{TrustStore, Verdict};

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{path}: no PEM certificate found ({reason})")]
    NoCertificate { path: String, reason: String },
    #[error("{path}: the first certificate does not parse: {reason}")]
    BadCertificate { path: String, reason: String },
    #[error(transparent)]
    Trust(#[from] crate::tls::trust::TrustError),
}

/// The explanation, and whether the certificate would be admitted.
pub struct Explanation {
    pub json: Value,
    pub admitted: bool,
}

/// Explain the decision for PEM text: the leaf first, then any intermediates (`name` appears
/// in errors).
pub fn explain_pem(
    config: &ReloadableConfig,
    pem: &[u8],
    name: &str,
) -> Result<Explanation, ExplainError> {
    let chain = parse_chain(pem, name)?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(ExplainError::NoCertificate {
            path: name.to_string(),
            reason: "the file holds no CERTIFICATE block".into(),
        });
    };
    let identity = CertIdentity::from_der(leaf).map_err(|e| ExplainError::BadCertificate {
        path: name.to_string(),
        reason: e.to_string(),
    })?;
    let attrs = Attributes::new(&identity);
    // What the running proxy would use: the CRL files, and the CRL URLs fetched now.
    let fetched = FetchedCrls::default();
    fetched.refresh(config, true);
    let trust = TrustStore::new(
        &config.authorities,
        &fetched,
        config.limits.pool_cache_entries,
        crate::tls::provider(),
    )?;
    let checks = trust.check_chain(leaf, intermediates, UnixTime::now());
    let ca_checks = trust.describe_checks(&checks);
    let pool_rows = pool_rows(config, &ca_checks, &identity, &attrs);
    let verdict = trust.verdict_from_checks(leaf, &checks);
    let (admitted, outcome) = outcome(&verdict);
    let mut json = json!({
        "certificate": identity,
        "cel": attrs.cel_view(),
        "certificate_authorities": ca_checks,
        "pools": pool_rows,
    });
    if let (Value::Object(target), Value::Object(extra)) = (&mut json, outcome) {
        target.extend(extra);
    }
    Ok(Explanation { json, admitted })
}

/// Every PEM certificate block in `pem`, in order (`name` appears in errors).
fn parse_chain(pem: &[u8], name: &str) -> Result<Vec<CertificateDer<'static>>, ExplainError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ExplainError::NoCertificate {
            path: name.to_string(),
            reason: e.to_string(),
        })
}

/// Every pool's filter result, CA by CA; `counted` says whether its CA verified the chain,
/// without which the pool cannot admit it.
fn pool_rows(
    config: &ReloadableConfig,
    ca_checks: &[CaCheck],
    identity: &CertIdentity,
    attrs: &Attributes,
) -> Vec<Value> {
    let mut pool_rows = Vec::new();
    for (ca, check) in config.authorities.iter().zip(ca_checks) {
        let evaluation = pools::evaluate(&[&ca.pools], identity, attrs);
        for r in evaluation.results {
            let mut row = serde_json::to_value(&r).unwrap_or(Value::Null);
            row["counted"] = json!(check.verified);
            pool_rows.push(row);
        }
    }
    pool_rows
}

/// Whether the certificate is admitted, and the outcome fields of the explanation.
fn outcome(verdict: &Verdict) -> (bool, Value) {
    match verdict {
        Verdict::Admitted {
            resolved,
            verified_by,
        } => {
            let res = &resolved.evaluation.resolution;
            (
                true,
                json!({
                    "admitted": true,
                    "verified_by": verified_by,
                    "matched_pools": res.pool_ids(),
                    "principals": res.principals,
                    "identifier": res.identifier,
                }),
            )
        }
        Verdict::Refused { reason, detail, .. } => (
            false,
            json!({
                "admitted": false,
                "refusal": { "reason": reason.as_str(), "detail": detail },
                "matched_pools": [],
                "principals": [],
                "identifier": null,
            }),
        ),
    }
}
