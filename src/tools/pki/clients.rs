//! The client identities of the development PKI: who each one is, who issued it, and which
//! path of the proxy it exercises.

use rcgen::DnType;

/// Which CA signs a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientIssuer {
    /// The real Acme intermediate, trusted through `acme-internal-client-ca.pem`.
    AcmeIntermediate,
    /// The impostor CA with the intermediate's name but its own key.
    Rogue,
}

/// One client identity: its subject, SANs, issuer, and what the proxy should make of it.
pub(super) struct ClientSpec {
    /// File stem and PKCS#12 alias.
    pub(super) name: &'static str,
    /// Subject attributes, most significant first (C, O, OU, CN), which is the order in the
    /// encoded name and so the reverse of the RFC 4514 string Kafka principals use.
    pub(super) subject: &'static [(Attr, &'static str)],
    /// `uniformResourceIdentifier` SANs (SPIFFE IDs).
    pub(super) uri_sans: &'static [&'static str],
    /// `dNSName` SANs.
    pub(super) dns_sans: &'static [&'static str],
    pub(super) issuer: ClientIssuer,
    /// Whether the validity lies entirely in the past.
    pub(super) expired: bool,
    /// Whether the intermediate's CRL (`acme-intermediate-ca.crl.pem`) lists it.
    pub(super) revoked: bool,
    /// What the proxy should do with it; goes into the `.properties` header.
    pub(super) intent: &'static str,
}

/// The subject attributes the development PKI uses. A local enum rather than `rcgen::DnType`,
/// because the client table below is a `static` and `DnType` cannot be built in one.
#[derive(Debug, Clone, Copy)]
pub(super) enum Attr {
    C,
    O,
    Ou,
    Cn,
}

impl Attr {
    pub(super) fn dn_type(self) -> DnType {
        match self {
            Attr::C => DnType::CountryName,
            Attr::O => DnType::OrganizationName,
            Attr::Ou => DnType::OrganizationalUnitName,
            Attr::Cn => DnType::CommonName,
        }
    }
}

pub(super) const ACME_ORG: &str = "Acme Inc";
const ACME_CLIENT_SUBJECT: &[(Attr, &str)] = &[
    (Attr::C, "US"),
    (Attr::O, ACME_ORG),
    (Attr::Ou, "payments"),
    (Attr::Cn, "acme-client"),
];
const ACME_CLIENT_URIS: &[&str] = &["spiffe://acme/payments"];
const ACME_CLIENT_DNS: &[&str] = &["acme-client.acme.internal"];
/// The intermediate's subject; the rogue CA copies it byte for byte.
pub(super) const ACME_INTERMEDIATE_SUBJECT: &[(Attr, &str)] =
    &[(Attr::O, ACME_ORG), (Attr::Cn, "Acme Internal Client CA")];

/// The client identities, in the order their files are written.
pub(super) static CLIENTS: [ClientSpec; 6] = [
    ClientSpec {
        name: "acme-client",
        subject: ACME_CLIENT_SUBJECT,
        uri_sans: ACME_CLIENT_URIS,
        dns_sans: ACME_CLIENT_DNS,
        issuer: ClientIssuer::AcmeIntermediate,
        expired: false,
        revoked: false,
        intent: "Meant to match pool-payments (CN == \"acme-client\" && OU == \"payments\") \
                 and pool-acme-all (O == \"Acme Inc\")",
    },
    ClientSpec {
        name: "acme-analytics",
        subject: &[
            (Attr::C, "US"),
            (Attr::O, ACME_ORG),
            (Attr::Ou, "analytics"),
            (Attr::Cn, "acme-analytics"),
        ],
        uri_sans: &["spiffe://acme/analytics"],
        dns_sans: &[],
        issuer: ClientIssuer::AcmeIntermediate,
        expired: false,
        revoked: false,
        intent: "Meant to match pool-acme-all (O == \"Acme Inc\") only, not pool-payments",
    },
    ClientSpec {
        name: "outsider",
        subject: &[(Attr::O, "Other Corp"), (Attr::Cn, "outsider")],
        uri_sans: &[],
        dns_sans: &[],
        issuer: ClientIssuer::AcmeIntermediate,
        expired: false,
        revoked: false,
        intent: "Trusted chain but meant to match NO pool: the proxy must refuse it",
    },
    ClientSpec {
        name: "expired",
        subject: &[
            (Attr::O, ACME_ORG),
            (Attr::Ou, "payments"),
            (Attr::Cn, "acme-expired"),
        ],
        uri_sans: &[],
        dns_sans: &[],
        issuer: ClientIssuer::AcmeIntermediate,
        expired: true,
        revoked: false,
        intent: "EXPIRED (not_after was yesterday): the proxy must refuse it in the TLS handshake",
    },
    ClientSpec {
        name: "rogue",
        subject: ACME_CLIENT_SUBJECT,
        uri_sans: ACME_CLIENT_URIS,
        dns_sans: ACME_CLIENT_DNS,
        issuer: ClientIssuer::Rogue,
        expired: false,
        revoked: false,
        intent: "ROGUE: same subject as acme-client, issued by an impostor CA with the Acme \
                 intermediate's name (rogue-ca.pem); the proxy must refuse it as untrusted",
    },
    ClientSpec {
        name: "revoked",
        subject: &[
            (Attr::O, ACME_ORG),
            (Attr::Ou, "payments"),
            (Attr::Cn, "acme-revoked"),
        ],
        uri_sans: &[],
        dns_sans: &[],
        issuer: ClientIssuer::AcmeIntermediate,
        expired: false,
        revoked: true,
        intent: "REVOKED: listed in acme-intermediate-ca.crl.pem; the proxy must refuse it when \
                 that CRL is configured (crl_chain)",
    },
];
