//! The development PKI's certificates for the trust-store tests, built with rcgen.
//!
//! `kafka-mtls-proxy pki` belongs to the binary, so the library's tests cannot call it; this
//! writes the files the tests read, with the same names, hierarchies, subjects, extensions and
//! CRL as the tool's, into a directory:
//!
//! - `server-ca` issues `server`, a TLS *server* certificate (`serverAuth` only).
//! - `acme-root-ca` → `acme-intermediate-ca` (path length 0) issue `acme-client`, `outsider`,
//!   `expired` (its validity is over) and `revoked` (listed in `acme-intermediate-ca.crl.pem`);
//!   `acme-internal-client-ca.pem` is the bundle, intermediate then root.
//! - `rogue-ca` is self-signed with the intermediate's subject and issues `rogue`, whose subject
//!   is acme-client's: only the keys differ.
//!
//! A leaf's `.pem` is the leaf then its issuer, as the tool writes it. Keys are not written:
//! these tests only verify chains.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

type Ca = CertifiedIssuer<'static, KeyPair>;

const ACME_CLIENT: &[(DnType, &str)] = &[
    (DnType::CountryName, "US"),
    (DnType::OrganizationName, "Acme Inc"),
    (DnType::OrganizationalUnitName, "payments"),
    (DnType::CommonName, "acme-client"),
];
const ACME_INTERMEDIATE: &[(DnType, &str)] = &[
    (DnType::OrganizationName, "Acme Inc"),
    (DnType::CommonName, "Acme Internal Client CA"),
];

/// The validity of a certificate.
#[derive(Clone, Copy)]
struct Window {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// Writes the certificates and the CRL into `dir`.
pub(super) fn write(dir: &Path) {
    let now = OffsetDateTime::now_utc();
    let valid = Window {
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(30),
    };
    let expired = Window {
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(1),
    };
    let file = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();

    let server_ca = self_signed_ca(
        &[(DnType::CommonName, "kafka-mtls-proxy Dev Server CA")],
        BasicConstraints::Unconstrained,
        valid,
    );
    file("server-ca.pem", server_ca.pem());
    let server = leaf(
        &[(DnType::CommonName, "localhost")],
        vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress([127, 0, 0, 1].into()),
        ],
        ExtendedKeyUsagePurpose::ServerAuth,
        valid,
        &server_ca,
    );
    file("server.pem", server.pem() + &server_ca.pem());

    let root = self_signed_ca(
        &[
            (DnType::OrganizationName, "Acme Inc"),
            (DnType::CommonName, "Acme Root CA"),
        ],
        BasicConstraints::Unconstrained,
        valid,
    );
    file("acme-root-ca.pem", root.pem());
    let mut params = ca_params(ACME_INTERMEDIATE, BasicConstraints::Constrained(0), valid);
    params.use_authority_key_identifier_extension = true;
    let intermediate = CertifiedIssuer::signed_by(params, KeyPair::generate().unwrap(), &root)
        .expect("intermediate CA");
    file("acme-intermediate-ca.pem", intermediate.pem());
    file(
        "acme-internal-client-ca.pem",
        intermediate.pem() + &root.pem(),
    );
    let rogue_ca = self_signed_ca(ACME_INTERMEDIATE, BasicConstraints::Constrained(0), valid);

    let acme_sans = || {
        vec![
            SanType::URI("spiffe://acme/payments".try_into().unwrap()),
            SanType::DnsName("acme-client.acme.internal".try_into().unwrap()),
        ]
    };
    let payments = |cn| {
        [
            (DnType::OrganizationName, "Acme Inc"),
            (DnType::OrganizationalUnitName, "payments"),
            (DnType::CommonName, cn),
        ]
    };
    // A client certificate, written as `<name>.pem`: the leaf, then its issuer.
    let client = |name: &str, subject: &[(DnType, &str)], sans, window, issuer: &Ca| {
        let cert = leaf(
            subject,
            sans,
            ExtendedKeyUsagePurpose::ClientAuth,
            window,
            issuer,
        );
        file(&format!("{name}.pem"), cert.pem() + &issuer.pem());
        cert
    };
    client(
        "acme-client",
        ACME_CLIENT,
        acme_sans(),
        valid,
        &intermediate,
    );
    client(
        "outsider",
        &[
            (DnType::OrganizationName, "Other Corp"),
            (DnType::CommonName, "outsider"),
        ],
        Vec::new(),
        valid,
        &intermediate,
    );
    client(
        "expired",
        &payments("acme-expired"),
        Vec::new(),
        expired,
        &intermediate,
    );
    client("rogue", ACME_CLIENT, acme_sans(), valid, &rogue_ca);
    let revoked = client(
        "revoked",
        &payments("acme-revoked"),
        Vec::new(),
        valid,
        &intermediate,
    );
    let (_, parsed) = x509_parser::parse_x509_certificate(revoked.der()).unwrap();
    let revoked = RevokedCertParams {
        serial_number: SerialNumber::from_slice(parsed.raw_serial()),
        revocation_time: now - Duration::hours(1),
        reason_code: Some(RevocationReason::KeyCompromise),
        invalidity_date: None,
    };

    let crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: valid.not_after,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![revoked],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&intermediate)
    .expect("CRL");
    file("acme-intermediate-ca.crl.pem", crl.pem().unwrap());
}

fn distinguished_name(attrs: &[(DnType, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (attr, value) in attrs {
        dn.push(attr.clone(), *value);
    }
    dn
}

fn ca_params(
    subject: &[(DnType, &str)],
    constraints: BasicConstraints,
    valid: Window,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = valid.not_before;
    params.not_after = valid.not_after;
    params
}

fn self_signed_ca(subject: &[(DnType, &str)], constraints: BasicConstraints, valid: Window) -> Ca {
    let params = ca_params(subject, constraints, valid);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).expect("self-signed CA")
}

/// An end-entity certificate as the tool issues it: not a CA, digitalSignature, one EKU.
fn leaf(
    subject: &[(DnType, &str)],
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    window: Window,
    issuer: &Ca,
) -> rcgen::Certificate {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = window.not_before;
    params.not_after = window.not_after;
    params
        .signed_by(&KeyPair::generate().unwrap(), issuer)
        .expect("leaf certificate")
}
