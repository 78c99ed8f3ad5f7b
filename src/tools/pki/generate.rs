//! The whole development PKI, generated in memory as the files to write.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateRevocationListParams, ExtendedKeyUsagePurpose, KeyIdMethod,
    RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::PkiError;
use super::clients::{
    ACME_INTERMEDIATE_SUBJECT, ACME_ORG, Attr, CLIENTS, ClientIssuer, ClientSpec,
};
use super::files::OutFile;
use super::issue::{
    Ca, DEFAULT_SERVER_HOSTS, Leaf, Window, host_sans, ia5, issued_ca, leaf, revoked_entry,
    self_signed_ca,
};
use super::keystore::{client_keystore, truststore};
use super::properties::client_properties;

/// Generates every certificate, key, keystore and properties file, in memory.
pub(super) fn generate(
    out_dir: &Path,
    server_sans: &[SanType],
    valid: Window,
    now: OffsetDateTime,
    password: &str,
    crl_url: Option<&str>,
) -> Result<Vec<OutFile>, PkiError> {
    let mut files = Vec::new();
    let server_ca = server_side(&mut files, server_sans, valid)?;
    let client_cas = client_cas(&mut files, valid)?;

    // The truststore comes before the clients because their .properties files point at it.
    let truststore_name = "truststore.p12";
    files.push(OutFile::public(
        truststore_name,
        truststore(&server_ca, password)?,
    ));
    let clients = ClientOutput {
        out_dir,
        truststore_path: out_dir.join(truststore_name),
        password,
        crl_url,
    };

    let expired = Window {
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(1),
    };
    let mut revoked = Vec::new();
    for spec in &CLIENTS {
        let issuer = match spec.issuer {
            ClientIssuer::AcmeIntermediate => &client_cas.intermediate,
            ClientIssuer::Rogue => &client_cas.rogue,
        };
        let window = if spec.expired { expired } else { valid };
        let client = clients.push(&mut files, spec, window, issuer)?;
        if spec.revoked {
            revoked.push(revoked_entry(spec.name, &client, now)?);
        }
    }

    push_intermediate_crl(&mut files, &client_cas.intermediate, revoked, valid, now)?;
    Ok(files)
}

/// The server side: its CA, the proxy's listener certificate, the development broker's, and
/// the client certificate the proxy presents upstream. Returns the server CA.
fn server_side(
    files: &mut Vec<OutFile>,
    server_sans: &[SanType],
    valid: Window,
) -> Result<Ca, PkiError> {
    let server_ca = self_signed_ca(
        "server-ca",
        &[(Attr::Cn, "kafka-mtls-proxy Dev Server CA")],
        BasicConstraints::Unconstrained,
        valid,
    )?;
    push_ca(files, "server-ca", &server_ca);

    let server = leaf(
        "server",
        &[(Attr::Cn, "localhost")],
        server_sans.to_vec(),
        ExtendedKeyUsagePurpose::ServerAuth,
        (valid, None),
        &server_ca,
    )?;
    push_leaf(files, "server", &server, &server_ca);

    let broker = leaf(
        "broker",
        &[(Attr::Cn, "localhost")],
        host_sans(DEFAULT_SERVER_HOSTS)?,
        ExtendedKeyUsagePurpose::ServerAuth,
        (valid, None),
        &server_ca,
    )?;
    push_leaf(files, "broker", &broker, &server_ca);

    let upstream_client = leaf(
        "proxy-upstream-client",
        &[(Attr::Cn, "kafka-mtls-proxy")],
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        (valid, None),
        &server_ca,
    )?;
    push_leaf(files, "proxy-upstream-client", &upstream_client, &server_ca);
    Ok(server_ca)
}

/// The CAs that sign client certificates.
struct ClientCas {
    /// The real Acme intermediate.
    intermediate: Ca,
    /// The impostor with the intermediate's name.
    rogue: Ca,
}

/// The client side's CAs: the real hierarchy (root → intermediate), the bundle the proxy
/// trusts, and the impostor.
fn client_cas(files: &mut Vec<OutFile>, valid: Window) -> Result<ClientCas, PkiError> {
    let acme_root = self_signed_ca(
        "acme-root-ca",
        &[(Attr::O, ACME_ORG), (Attr::Cn, "Acme Root CA")],
        BasicConstraints::Unconstrained,
        valid,
    )?;
    push_ca(files, "acme-root-ca", &acme_root);

    // pathlen 0: the intermediate issues leaves only, so a stolen client key cannot be used to
    // mint further identities even if someone marks a leaf as a CA.
    let acme_intermediate = issued_ca(
        "acme-intermediate-ca",
        ACME_INTERMEDIATE_SUBJECT,
        BasicConstraints::Constrained(0),
        valid,
        &acme_root,
    )?;
    push_ca(files, "acme-intermediate-ca", &acme_intermediate);

    // The bundle the proxy's config points at: intermediate first, then root, the order in
    // which a verifier walks up from a leaf.
    files.push(OutFile::public(
        "acme-internal-client-ca.pem",
        format!("{}{}", acme_intermediate.pem(), acme_root.pem()),
    ));

    // The impostor: self-signed, so nothing links it to the Acme root except its name.
    let rogue_ca = self_signed_ca(
        "rogue-ca",
        ACME_INTERMEDIATE_SUBJECT,
        BasicConstraints::Constrained(0),
        valid,
    )?;
    push_ca(files, "rogue-ca", &rogue_ca);
    Ok(ClientCas {
        intermediate: acme_intermediate,
        rogue: rogue_ca,
    })
}

/// What every client's files share: where they will live and the keystore password.
struct ClientOutput<'a> {
    out_dir: &'a Path,
    truststore_path: PathBuf,
    password: &'a str,
    /// The intermediate's CRL, named in the certificates it issues (`--crl-base-url`).
    crl_url: Option<&'a str>,
}

impl ClientOutput<'_> {
    /// Issues one client certificate and pushes its chain, key, PKCS#12 keystore and
    /// `.properties` file. Returns the certificate so the caller can revoke it.
    fn push(
        &self,
        files: &mut Vec<OutFile>,
        spec: &ClientSpec,
        window: Window,
        issuer: &Ca,
    ) -> Result<Leaf, PkiError> {
        let mut sans = Vec::new();
        for uri in spec.uri_sans {
            sans.push(SanType::URI(ia5(spec.name, uri)?));
        }
        for dns in spec.dns_sans {
            sans.push(SanType::DnsName(ia5(spec.name, dns)?));
        }
        let crl_url = match spec.issuer {
            ClientIssuer::AcmeIntermediate => self.crl_url,
            ClientIssuer::Rogue => None,
        };
        let client = leaf(
            spec.name,
            spec.subject,
            sans,
            ExtendedKeyUsagePurpose::ClientAuth,
            (window, crl_url),
            issuer,
        )?;
        push_leaf(files, spec.name, &client, issuer);

        let p12_name = format!("{}.p12", spec.name);
        files.push(OutFile::secret(
            p12_name.clone(),
            client_keystore(spec.name, &client, issuer, self.password)?,
        ));
        let properties = client_properties(
            spec,
            &self.out_dir.join(&p12_name),
            &self.truststore_path,
            self.password,
            "PKCS12",
        );
        files.push(OutFile::secret(
            format!("{}.properties", spec.name),
            properties.clone(),
        ));
        if spec.name == "acme-client" {
            // The quickstart's name for "a client that works".
            files.push(OutFile::secret("client.properties", properties));
        }
        Ok(client)
    }
}

/// The intermediate's CRL, listing the `revoked` client; valid for the PKI's lifetime.
fn push_intermediate_crl(
    files: &mut Vec<OutFile>,
    intermediate: &Ca,
    revoked: Vec<RevokedCertParams>,
    valid: Window,
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: valid.not_after,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(intermediate)
    .map_err(|source| PkiError::Generate {
        what: "the intermediate's CRL".into(),
        source,
    })?;
    files.push(OutFile::public(
        "acme-intermediate-ca.crl.pem",
        crl.pem().map_err(|source| PkiError::Generate {
            what: "the intermediate's CRL (PEM)".into(),
            source,
        })?,
    ));
    Ok(())
}

fn push_ca(files: &mut Vec<OutFile>, name: &str, ca: &Ca) {
    files.push(OutFile::public(format!("{name}.pem"), ca.pem()));
    files.push(OutFile::secret(
        format!("{name}.key"),
        ca.key().serialize_pem(),
    ));
}

/// Writes `<name>.pem` as leaf then issuer — the chain a TLS peer must send, since the other
/// side trusts only the root — and `<name>.key`.
fn push_leaf(files: &mut Vec<OutFile>, name: &str, leaf: &Leaf, issuer: &Ca) {
    files.push(OutFile::public(
        format!("{name}.pem"),
        format!("{}{}", leaf.cert.pem(), issuer.pem()),
    ));
    files.push(OutFile::secret(
        format!("{name}.key"),
        leaf.key.serialize_pem(),
    ));
}
