//! Verdicts for the development PKI's certificates: one per refusal reason, and the
//! several-CAs rule.

use std::path::Path;
use std::sync::OnceLock;

use rustls_pki_types::pem::PemObject;

use super::*;
use crate::pools::{ExternalIdentifier, Filter, Pool};

/// One PKI for all tests of this module (generating it costs a few hundred ms).
fn pki() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        super::test_pki::write(dir.path());
        dir
    })
    .path()
}

fn chain(name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pki().join(name))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn pool(id: &str, ident: ExternalIdentifier, filter: &str) -> Pool {
    Pool {
        id: id.into(),
        display_name: id.into(),
        description: String::new(),
        external_identifier: ident,
        filter: Filter::compile(filter).unwrap(),
        priority: 0,
        acls: Vec::new(),
    }
}

fn ca(id: &str, bundle: &str, pools: Vec<Pool>) -> CertificateAuthority {
    CertificateAuthority {
        id: id.into(),
        display_name: id.into(),
        description: String::new(),
        certificate_chain_path: pki().join(bundle),
        certificates: chain(bundle),
        crl_chain_path: None,
        crls: Vec::new(),
        crl_url: None,
        crl_distribution_points: Vec::new(),
        require_crl: false,
        pools: CaPools {
            ca_id: id.into(),
            pools,
        },
        authorization: Default::default(),
    }
}

fn acme_pools() -> Vec<Pool> {
    vec![
        pool(
            "pool-payments",
            ExternalIdentifier::Cn,
            r#"CN == "acme-client" && OU == "payments""#,
        ),
        pool(
            "pool-acme-all",
            ExternalIdentifier::Sha1,
            r#"O == "Acme Inc""#,
        ),
    ]
}

fn store(cas: &[CertificateAuthority]) -> TrustStore {
    TrustStore::new(cas, &FetchedCrls::default(), 100, crate::tls::provider()).unwrap()
}

fn verdict_for(store: &TrustStore, client: &str) -> Verdict {
    let certs = chain(&format!("{client}.pem"));
    store.verdict(&certs[0], &certs[1..], UnixTime::now())
}

fn refusal(v: &Verdict) -> RefusalReason {
    match v {
        Verdict::Refused { reason, .. } => *reason,
        Verdict::Admitted { .. } => panic!("expected a refusal, got {v:?}"),
    }
}

#[test]
fn a_trusted_certificate_matching_two_pools_gets_both_principals() {
    let s = store(&[ca("ca-acme", "acme-internal-client-ca.pem", acme_pools())]);
    let Verdict::Admitted {
        resolved,
        verified_by,
    } = verdict_for(&s, "acme-client")
    else {
        panic!("acme-client was refused");
    };
    let res = &resolved.evaluation.resolution;
    assert_eq!(res.principals, ["User:pool-payments", "User:pool-acme-all"]);
    assert_eq!(verified_by, ["ca-acme"]);
    let id = res.identifier.as_ref().unwrap();
    assert_eq!(
        (id.kind, id.value.as_str()),
        (ExternalIdentifier::Cn, "acme-client")
    );
}

#[test]
fn a_trusted_certificate_matching_no_pool_is_refused_with_access_denied() {
    let s = store(&[ca("ca-acme", "acme-internal-client-ca.pem", acme_pools())]);
    let v = verdict_for(&s, "outsider");
    assert_eq!(refusal(&v), RefusalReason::NoPoolMatched);
    assert!(matches!(
        v.to_rustls_result(),
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure
        ))
    ));
    assert_eq!(
        rustls::AlertDescription::from(rustls::CertificateError::ApplicationVerificationFailure),
        rustls::AlertDescription::AccessDenied
    );
}

#[test]
fn a_rogue_ca_with_the_same_subject_is_untrusted() {
    let s = store(&[ca("ca-acme", "acme-internal-client-ca.pem", acme_pools())]);
    assert_eq!(
        refusal(&verdict_for(&s, "rogue")),
        RefusalReason::UntrustedChain
    );
}

#[test]
fn an_expired_certificate_is_refused_as_expired() {
    let s = store(&[ca("ca-acme", "acme-internal-client-ca.pem", acme_pools())]);
    assert_eq!(refusal(&verdict_for(&s, "expired")), RefusalReason::Expired);
}

#[test]
fn a_server_certificate_is_not_a_client_certificate() {
    let s = store(&[ca("ca-server", "server-ca.pem", acme_pools())]);
    assert_eq!(
        refusal(&verdict_for(&s, "server")),
        RefusalReason::WrongKeyUsage
    );
}

#[test]
fn every_ca_that_verifies_the_chain_contributes_its_pools() {
    // The root alone and the intermediate alone both verify acme-client's chain.
    let s = store(&[
        ca(
            "ca-root",
            "acme-root-ca.pem",
            vec![pool("pool-root", ExternalIdentifier::Dn, r#"C == "US""#)],
        ),
        ca(
            "ca-intermediate",
            "acme-intermediate-ca.pem",
            vec![pool(
                "pool-inter",
                ExternalIdentifier::Sha1,
                r#"CN.startsWith("acme-")"#,
            )],
        ),
        ca(
            "ca-unrelated",
            "server-ca.pem",
            vec![pool("pool-never", ExternalIdentifier::Cn, "true")],
        ),
    ]);
    let Verdict::Admitted {
        resolved,
        verified_by,
    } = verdict_for(&s, "acme-client")
    else {
        panic!("acme-client was refused");
    };
    assert_eq!(verified_by, ["ca-root", "ca-intermediate"]);
    let res = &resolved.evaluation.resolution;
    assert_eq!(res.principals, ["User:pool-root", "User:pool-inter"]);
    // DN outranks SHA1.
    assert_eq!(
        res.identifier.as_ref().unwrap().kind,
        ExternalIdentifier::Dn
    );
}

fn with_crl(mut ca: CertificateAuthority, require: bool) -> CertificateAuthority {
    let path = pki().join("acme-intermediate-ca.crl.pem");
    ca.crls = crate::config::load_crls(&path).unwrap();
    ca.crl_chain_path = Some(path);
    ca.require_crl = require;
    ca
}

#[test]
fn a_certificate_listed_in_the_cas_crl_is_refused_as_revoked() {
    let acme = ca("ca-acme", "acme-internal-client-ca.pem", acme_pools());
    let s = store(&[with_crl(acme.clone(), false)]);
    assert_eq!(refusal(&verdict_for(&s, "revoked")), RefusalReason::Revoked);
    assert!(matches!(
        verdict_for(&s, "acme-client"),
        Verdict::Admitted { .. }
    ));
    // Without the CRL the same certificate is admitted: revocation is opt-in per CA.
    let s = store(&[acme]);
    assert!(matches!(
        verdict_for(&s, "revoked"),
        Verdict::Admitted { .. }
    ));
}

#[test]
fn require_crl_refuses_certificates_no_crl_covers() {
    // The CRL is the intermediate's; a CA whose anchor is the root alone sees
    // acme-client's issuer (the intermediate, sent by the client) without a CRL from the
    // root for it, but only the end entity must be covered: the intermediate's CRL does.
    let acme = ca("ca-acme", "acme-internal-client-ca.pem", acme_pools());
    let s = store(&[with_crl(acme.clone(), true)]);
    assert!(matches!(
        verdict_for(&s, "acme-client"),
        Verdict::Admitted { .. }
    ));
    assert_eq!(refusal(&verdict_for(&s, "revoked")), RefusalReason::Revoked);
    // A CRL from another issuer covers nothing: status unknown, refused.
    let mut other = acme;
    other.crls = Vec::new();
    other.require_crl = true;
    let s = store(&[other]);
    assert_eq!(
        refusal(&verdict_for(&s, "acme-client")),
        RefusalReason::RevocationUnknown
    );
}

#[test]
fn a_repeated_certificate_is_resolved_from_the_cache() {
    let s = store(&[ca("ca-acme", "acme-internal-client-ca.pem", acme_pools())]);
    let (Verdict::Admitted { resolved: a, .. }, Verdict::Admitted { resolved: b, .. }) = (
        verdict_for(&s, "acme-client"),
        verdict_for(&s, "acme-client"),
    ) else {
        panic!("acme-client was refused");
    };
    assert!(Arc::ptr_eq(&a, &b));
}
