//! Keys and certificates: CAs, leaves, the server certificate's host names, the CRL entry.

use std::net::IpAddr;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, CrlDistributionPoint, DistinguishedName,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::PkiError;
use super::clients::Attr;

/// Host names and addresses every server certificate carries: Java clients check the address
/// they dial against the SANs, and the quickstart dials `localhost`.
pub(super) const DEFAULT_SERVER_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// The validity period of a certificate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) not_before: OffsetDateTime,
    pub(super) not_after: OffsetDateTime,
}

/// A CA: its certificate together with what it needs to sign (name, key usages, key).
pub(super) type Ca = CertifiedIssuer<'static, KeyPair>;

/// An issued end-entity certificate and its key.
pub(super) struct Leaf {
    pub(super) cert: rcgen::Certificate,
    pub(super) key: KeyPair,
}

/// The CRL entry for an issued certificate: its serial, revoked an hour ago.
pub(super) fn revoked_entry(
    what: &str,
    leaf: &Leaf,
    now: time::OffsetDateTime,
) -> Result<RevokedCertParams, PkiError> {
    let serial = x509_parser::parse_x509_certificate(leaf.cert.der())
        .map(|(_, c)| c.raw_serial().to_vec())
        .map_err(|e| PkiError::Generate {
            what: format!("the {what} certificate's serial ({e})"),
            source: rcgen::Error::CouldNotParseCertificate,
        })?;
    Ok(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial),
        revocation_time: now - Duration::hours(1),
        reason_code: Some(RevocationReason::KeyCompromise),
        invalidity_date: None,
    })
}

/// Generates a fresh ECDSA P-256 key. P-256 because every TLS stack the proxy meets (rustls,
/// OpenSSL, Java, librdkafka) supports it, and its keys and signatures are small.
fn new_key(what: &str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
        what: format!("the {what} key"),
        source,
    })
}

fn distinguished_name(attrs: &[(Attr, &str)]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for (attr, value) in attrs {
        dn.push(attr.dn_type(), *value);
    }
    dn
}

fn ca_params(
    subject: &[(Attr, &str)],
    constraints: BasicConstraints,
    valid: Window,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    params.is_ca = IsCa::Ca(constraints);
    // keyCertSign to issue certificates, cRLSign so the same CA can later sign the CRLs the
    // proxy's revocation tests load.
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = valid.not_before;
    params.not_after = valid.not_after;
    params
}

pub(super) fn self_signed_ca(
    what: &str,
    subject: &[(Attr, &str)],
    constraints: BasicConstraints,
    valid: Window,
) -> Result<Ca, PkiError> {
    let params = ca_params(subject, constraints, valid);
    CertifiedIssuer::self_signed(params, new_key(what)?).map_err(|source| PkiError::Generate {
        what: format!("the {what} certificate"),
        source,
    })
}

pub(super) fn issued_ca(
    what: &str,
    subject: &[(Attr, &str)],
    constraints: BasicConstraints,
    valid: Window,
    issuer: &Ca,
) -> Result<Ca, PkiError> {
    let mut params = ca_params(subject, constraints, valid);
    // The authority key identifier lets OpenSSL-based verifiers pick the right issuer when
    // several CAs share a name — exactly the situation the rogue CA creates.
    params.use_authority_key_identifier_extension = true;
    CertifiedIssuer::signed_by(params, new_key(what)?, issuer).map_err(|source| {
        PkiError::Generate {
            what: format!("the {what} certificate"),
            source,
        }
    })
}

pub(super) fn leaf(
    what: &str,
    subject: &[(Attr, &str)],
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    (window, crl_url): (Window, Option<&str>),
    issuer: &Ca,
) -> Result<Leaf, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(subject);
    params.subject_alt_names = sans;
    // Explicitly not a CA, so no verifier can be talked into treating a leaf as an issuer.
    params.is_ca = IsCa::ExplicitNoCa;
    // ECDSA keys only sign (the TLS handshake signature); they never encrypt key material.
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = window.not_before;
    params.not_after = window.not_after;
    params.crl_distribution_points = crl_url
        .map(|url| {
            vec![CrlDistributionPoint {
                uris: vec![url.to_string()],
            }]
        })
        .unwrap_or_default();
    let key = new_key(what)?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| PkiError::Generate {
            what: format!("the {what} certificate"),
            source,
        })?;
    Ok(Leaf { cert, key })
}

pub(super) fn ia5(what: &str, value: &str) -> Result<Ia5String, PkiError> {
    Ia5String::try_from(value).map_err(|source| PkiError::Generate {
        what: format!("the {what} SAN {value:?}"),
        source,
    })
}

/// The proxy server certificate's SANs: the defaults plus every `--host`, without duplicates.
pub(super) fn server_sans(extra_hosts: &[String]) -> Result<Vec<SanType>, PkiError> {
    host_sans(
        DEFAULT_SERVER_HOSTS
            .into_iter()
            .chain(extra_hosts.iter().map(String::as_str)),
    )
}

/// One SAN per host, in order, without duplicates.
pub(super) fn host_sans<'a>(
    hosts: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<SanType>, PkiError> {
    let mut sans = Vec::new();
    for host in hosts {
        let invalid = || PkiError::InvalidHost {
            host: host.to_owned(),
        };
        // An address must be an iPAddress SAN: clients that dial 127.0.0.1 compare it with
        // iPAddress entries only, never with a dNSName spelled "127.0.0.1".
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                // Checked against DNS syntax first: the SAN type would take any ASCII, spaces
                // included, and a name no client can match would only surface much later as a
                // host-name verification failure in some Kafka client.
                // A wildcard (`*.kafka.example.com`, for SNI routing) only as the whole first
                // label, the one form clients match (RFC 6125 §6.4.3).
                let checked = host.strip_prefix("*.").unwrap_or(host);
                rustls_pki_types::DnsName::try_from(checked).map_err(|_| invalid())?;
                SanType::DnsName(Ia5String::try_from(host).map_err(|_| invalid())?)
            }
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}
