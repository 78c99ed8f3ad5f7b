//! Trusted certificate authorities and the verdict for a presented client chain.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;

use crate::config::CertificateAuthority;
use crate::identity::CertIdentity;
use crate::pools::{self, Attributes, CaPools, ResolutionCache, Resolved};
use crate::tls::crl::FetchedCrls;

/// Why a client was not admitted. The `as_str` form is what audit records and logs carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// The client sent no certificate.
    NoCertificate,
    /// The certificate does not parse.
    BadCertificate,
    /// No configured CA issued the chain.
    UntrustedChain,
    Expired,
    NotYetValid,
    Revoked,
    /// `require_crl_on_client_certificate` is set and no current CRL covers the certificate.
    RevocationUnknown,
    /// Trusted, valid, but no identity pool's filter admits it.
    NoPoolMatched,
    /// The certificate is not for client authentication (extended key usage).
    WrongKeyUsage,
    /// The TLS handshake failed for another reason (protocol, ciphers, bad signature, not TLS).
    HandshakeFailed,
    HandshakeTimeout,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::BadCertificate => "bad_certificate",
            Self::UntrustedChain => "untrusted_chain",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::RevocationUnknown => "revocation_status_unknown",
            Self::NoPoolMatched => "no_pool_matched",
            Self::WrongKeyUsage => "wrong_key_usage",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
        }
    }

    /// The rustls error (and so the TLS alert) this refusal is reported with.
    fn to_rustls(self) -> rustls::Error {
        use rustls::CertificateError as C;
        rustls::Error::InvalidCertificate(match self {
            Self::Expired => C::Expired,
            Self::NotYetValid => C::NotValidYet,
            Self::Revoked => C::Revoked,
            Self::RevocationUnknown => C::UnknownRevocationStatus,
            Self::UntrustedChain => C::UnknownIssuer,
            Self::WrongKeyUsage => C::InvalidPurpose,
            // access_denied: "a valid certificate was received, but access control refused it".
            Self::NoPoolMatched => C::ApplicationVerificationFailure,
            _ => C::BadEncoding,
        })
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision about one presented certificate chain.
#[derive(Debug, Clone)]
pub enum Verdict {
    Admitted {
        resolved: Arc<Resolved>,
        /// Ids of every configured CA that verified the chain.
        verified_by: Vec<String>,
    },
    Refused {
        reason: RefusalReason,
        /// Human-readable detail for logs and audit (`certificate expired at …`).
        detail: String,
        /// The certificate's identity, when it parsed (for audit and logs).
        identity: Option<Arc<CertIdentity>>,
    },
}

impl Verdict {
    pub fn to_rustls_result(&self) -> Result<(), rustls::Error> {
        match self {
            Verdict::Admitted { .. } => Ok(()),
            Verdict::Refused { reason, .. } => Err(reason.to_rustls()),
        }
    }
}

/// One CA, ready to verify chains.
struct TrustedCa {
    id: String,
    verifier: Arc<dyn ClientCertVerifier>,
    /// `require_crl_on_client_certificate` with no CRL loaded (a URL that never answered):
    /// rustls would skip revocation checks without CRLs, so this CA fails closed instead.
    missing_required_crl: bool,
    pools: CaPools,
}

/// Per-CA verification result, for `explain`.
#[derive(Debug, Clone, Serialize)]
pub struct CaCheck {
    pub ca_id: String,
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The configured certificate authorities, each with its pools, and the resolution cache.
///
/// One `TrustStore` belongs to one loaded configuration; a reload builds a new one, which also
/// gives the new configuration a fresh cache.
pub struct TrustStore {
    authorities: Vec<TrustedCa>,
    hints: Vec<rustls::DistinguishedName>,
    cache: ResolutionCache,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field(
                "authorities",
                &self.authorities.iter().map(|a| &a.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("certificate authority `{ca}`: {reason}")]
    Authority { ca: String, reason: String },
}

impl TrustStore {
    /// `fetched` holds the CRLs downloaded from the CAs' CRL URLs (may be empty).
    pub fn new(
        authorities: &[CertificateAuthority],
        fetched: &FetchedCrls,
        cache_entries: usize,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TrustError> {
        let mut out = Vec::with_capacity(authorities.len());
        let mut hints = Vec::new();
        for ca in authorities {
            let mut roots = RootCertStore::empty();
            // Every certificate of the bundle is a trust anchor: a client issued by the
            // intermediate verifies even when it sends only its leaf.
            for cert in &ca.certificates {
                roots.add(cert.clone()).map_err(|e| TrustError::Authority {
                    ca: ca.id.clone(),
                    reason: format!("unusable as a trust anchor: {e}"),
                })?;
            }
            hints.extend(roots.subjects());
            let mut crls = ca.crls.clone();
            for url in fetched.urls_of(ca) {
                crls.extend(fetched.get(&url));
            }
            let missing_required_crl = ca.require_crl && crls.is_empty();
            if missing_required_crl {
                tracing::warn!(
                    ca = %ca.id,
                    "require_crl_on_client_certificate is set but no CRL is loaded: \
                     every certificate of this CA is refused until one is"
                );
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .with_crls(crls);
            // Confluent's require_crl_on_client_certificate: the client certificate itself must
            // have a known, current revocation status. Otherwise CRLs are checked where present.
            let builder = if ca.require_crl {
                builder
                    .only_check_end_entity_revocation()
                    .enforce_revocation_expiration()
            } else {
                builder.allow_unknown_revocation_status()
            };
            let verifier = builder.build().map_err(|e| TrustError::Authority {
                ca: ca.id.clone(),
                reason: e.to_string(),
            })?;
            out.push(TrustedCa {
                id: ca.id.clone(),
                verifier,
                missing_required_crl,
                pools: ca.pools.clone(),
            });
        }
        Ok(Self {
            authorities: out,
            hints,
            cache: ResolutionCache::new(cache_entries),
            provider,
        })
    }

    /// CA subjects sent in the CertificateRequest so clients pick the right certificate.
    pub fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &self.hints
    }

    pub fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Verify the chain against every CA, then resolve the pools of those that verified it.
    pub fn verdict(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Verdict {
        let checks = self.check_chain(end_entity, intermediates, now);
        self.verdict_from_checks(end_entity, &checks)
    }

    /// Verify the chain against each CA, without pool resolution.
    pub fn check_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Vec<(usize, Result<(), rustls::Error>)> {
        self.authorities
            .iter()
            .enumerate()
            .map(|(i, ca)| {
                let result = ca
                    .verifier
                    .verify_client_cert(end_entity, intermediates, now)
                    .map(|_| ());
                let result = match result {
                    Ok(()) if ca.missing_required_crl => Err(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::UnknownRevocationStatus,
                    )),
                    other => other,
                };
                (i, result)
            })
            .collect()
    }

    /// Per-CA results in a printable form (for `explain`).
    pub fn describe_checks(&self, checks: &[(usize, Result<(), rustls::Error>)]) -> Vec<CaCheck> {
        checks
            .iter()
            .filter_map(|(i, r)| {
                self.authorities.get(*i).map(|ca| CaCheck {
                    ca_id: ca.id.clone(),
                    verified: r.is_ok(),
                    error: r.as_ref().err().map(|e| e.to_string()),
                })
            })
            .collect()
    }

    pub fn verdict_from_checks(
        &self,
        end_entity: &CertificateDer<'_>,
        checks: &[(usize, Result<(), rustls::Error>)],
    ) -> Verdict {
        let verified: Vec<&TrustedCa> = checks
            .iter()
            .filter(|(_, r)| r.is_ok())
            .filter_map(|(i, _)| self.authorities.get(*i))
            .collect();
        if verified.is_empty() {
            let (reason, detail) = chain_refusal(checks);
            return Verdict::Refused {
                reason,
                detail,
                identity: CertIdentity::from_der(end_entity).ok().map(Arc::new),
            };
        }
        let cas: Vec<&CaPools> = verified.iter().map(|ca| &ca.pools).collect();
        let resolved = self.cache.get_or_resolve(end_entity.as_ref(), &cas, || {
            let (identity, crl_urls) = CertIdentity::from_der_with_crl_urls(end_entity)?;
            let attrs = Attributes::new(&identity);
            let evaluation = pools::evaluate(&cas, &identity, &attrs);
            Ok(Arc::new(Resolved {
                identity,
                evaluation,
                crl_urls,
            }))
        });
        let verified_by = verified.iter().map(|ca| ca.id.clone()).collect::<Vec<_>>();
        match resolved {
            Err(e) => Verdict::Refused {
                reason: RefusalReason::BadCertificate,
                detail: format!("certificate attributes could not be read: {e}"),
                identity: None,
            },
            Ok(resolved) if !resolved.evaluation.resolution.is_admitted() => Verdict::Refused {
                reason: RefusalReason::NoPoolMatched,
                detail: format!(
                    "certificate `{}` is trusted by {} but matches no identity pool",
                    resolved.identity.subject.rfc4514,
                    verified_by.join(", ")
                ),
                identity: Some(Arc::new(resolved.identity.clone())),
            },
            Ok(resolved) => Verdict::Admitted {
                resolved,
                verified_by,
            },
        }
    }
}

/// The most specific reason across CAs: a CA that recognised the chain but found it expired
/// says more than the others' "unknown issuer".
fn chain_refusal(checks: &[(usize, Result<(), rustls::Error>)]) -> (RefusalReason, String) {
    use rustls::CertificateError as C;
    let mut best: Option<(u8, RefusalReason, String)> = None;
    for (_, r) in checks {
        let Err(e) = r else { continue };
        let (rank, reason) = match e {
            rustls::Error::InvalidCertificate(c) => match c {
                C::Revoked => (6, RefusalReason::Revoked),
                C::Expired | C::ExpiredContext { .. } => (5, RefusalReason::Expired),
                C::NotValidYet | C::NotValidYetContext { .. } => (5, RefusalReason::NotYetValid),
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                    (4, RefusalReason::WrongKeyUsage)
                }
                C::BadEncoding => (3, RefusalReason::BadCertificate),
                C::UnknownIssuer => (1, RefusalReason::UntrustedChain),
                C::UnknownRevocationStatus
                | C::ExpiredRevocationList
                | C::ExpiredRevocationListContext { .. } => (4, RefusalReason::RevocationUnknown),
                _ => (2, RefusalReason::UntrustedChain),
            },
            _ => (2, RefusalReason::UntrustedChain),
        };
        if best.as_ref().is_none_or(|(r, _, _)| rank > *r) {
            best = Some((rank, reason, e.to_string()));
        }
    }
    match best {
        Some((_, reason, detail)) => (reason, detail),
        None => (
            RefusalReason::UntrustedChain,
            "no certificate authority is configured".to_string(),
        ),
    }
}

#[cfg(test)]
mod test_pki;
#[cfg(test)]
mod tests;
