//! `kafka-mtls-proxy pki`: write a development PKI that exercises every path of the proxy.
//!
//! mTLS in front of Kafka involves two separate trust relationships, and the development PKI
//! keeps them in separate hierarchies so that a mix-up shows up as a failed handshake instead
//! of silently working:
//!
//! - **Server side** (`server-ca`): the certificate the proxy serves to clients, the certificate
//!   a TLS test broker serves to the proxy, and the client certificate the proxy may present to
//!   such a broker. Kafka clients trust `server-ca` through `truststore.p12`.
//! - **Client side** (`acme-root-ca` → `acme-intermediate-ca`): the certificates that Kafka clients
//!   present to the proxy. The proxy trusts the bundle `acme-internal-client-ca.pem` and maps each
//!   verified certificate to identity pools.
//!
//! The client certificates are chosen to hit one case each: a certificate that matches a
//! narrow pool (`acme-client`), one that matches only the broad pool (`acme-analytics`), one
//! that is trusted but matches no pool (`outsider`), one whose validity is over (`expired`), and
//! an impostor (`rogue`) whose issuer *name* and subject are identical to the real ones but whose
//! issuer *key* is not — the proxy must refuse it, which proves that it verifies signatures
//! rather than comparing names.
//!
//! Every client certificate also comes as a PKCS#12 keystore and a `.properties` file that
//! `kafka-topics.sh --command-config` accepts as is, because Java clients are the ones that
//! check most (host names in the server certificate, the trusted-certificate attribute of a
//! PKCS#12 truststore).
//!
//! Generation happens fully in memory first; only when every file is ready, and when none of them
//! exists (unless `--force`), does anything get written. A refused run therefore leaves an
//! existing PKI untouched, and a failed generation never leaves half of a new one behind.
//!
//! These certificates are for development and tests only: their keys sit unencrypted next to the
//! certificates, and the keystore password is printed and stored in plain text.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use p12_keystore::{KeyStore, KeyStoreEntry, PrivateKeyChain};
use rand::RngExt;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha1::{Digest, Sha1};
use time::{Duration, OffsetDateTime};

mod jks;
pub use jks::JksOutcome;

/// Where `pki` writes unless told otherwise; the repository's `certs/` holds only a README.
pub const DEFAULT_OUT_DIR: &str = "certs";

/// 825 days is the longest validity Apple platforms accept for a TLS server certificate; a
/// shorter default would only make developers regenerate more often.
pub const DEFAULT_VALIDITY_DAYS: u32 = 825;

/// An upper bound on `--validity-days` keeps `now + days` far from the limits of X.509 dates
/// (year 9999) and of `time::OffsetDateTime`, so the arithmetic below cannot overflow.
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

/// Length of the generated keystore password. 24 alphanumeric characters carry about 142 bits
/// of entropy and need no escaping in shells or Java properties files.
pub const GENERATED_PASSWORD_LEN: usize = 24;

/// Certificates become valid an hour in the past, so that a machine whose clock is slightly
/// behind the generating machine (a container, a VM) does not reject them as "not yet valid".
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::hours(1);

/// Host names and addresses every server certificate carries: Java clients check the address
/// they dial against the SANs, and the quickstart dials `localhost`.
const DEFAULT_SERVER_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];

/// Command-line arguments of `kafka-mtls-proxy pki`.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
pub struct PkiArgs {
    /// Directory to write the PKI into (created if missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_OUT_DIR)]
    pub out: PathBuf,

    /// Replace files that already exist. Without it, `pki` refuses and names the first one.
    #[arg(long)]
    pub force: bool,

    /// Validity of every certificate (CAs and leaves), in days from now.
    #[arg(
        long,
        value_name = "DAYS",
        default_value_t = DEFAULT_VALIDITY_DAYS,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_VALIDITY_DAYS)),
    )]
    pub validity_days: u32,

    /// Password of every PKCS#12 keystore and truststore. Default: a random 24-character
    /// alphanumeric one, printed at the end and written into the .properties files.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Extra host name or IP address for the proxy's server certificate (repeatable).
    /// `localhost` and `127.0.0.1` are always included.
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,

    /// Skip the JKS copies of the keystores (written with the JDK's keytool when it is on the
    /// machine; PKCS#12 alone works with every Java client since Java 9).
    #[arg(long)]
    pub no_jks: bool,
}

impl Default for PkiArgs {
    fn default() -> Self {
        Self {
            out: PathBuf::from(DEFAULT_OUT_DIR),
            force: false,
            validity_days: DEFAULT_VALIDITY_DAYS,
            password: None,
            hosts: Vec::new(),
            no_jks: false,
        }
    }
}

/// Everything that can stop `pki`. Each variant names the file, host or certificate at fault,
/// because the operator's next step depends on which one it was; messages also carry the
/// underlying cause (as the rest of the crate does), since the CLI prints only the top error.
#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum PkiError {
    /// A file of the PKI is already there and `--force` was not given. Nothing was written.
    #[error(
        "refusing to overwrite {}: it already exists (pass --force to replace the whole development PKI)",
        path.display()
    )]
    AlreadyExists {
        /// The first existing file, in the order `pki` writes them.
        path: PathBuf,
    },

    /// `--validity-days` outside `1..=MAX_VALIDITY_DAYS`.
    #[error("--validity-days must be between 1 and {MAX_VALIDITY_DAYS}, got {0}")]
    InvalidValidity(u32),

    /// An empty `--password`: Java refuses to open a PKCS#12 keystore protected by one.
    #[error("--password must not be empty")]
    EmptyPassword,

    /// A `--host` that is neither an IP address nor a DNS name (ASCII, no wildcards).
    #[error("--host {host:?} is neither an IP address nor a DNS name (ASCII, no wildcards)")]
    InvalidHost {
        /// The offending value, as given.
        host: String,
    },

    /// Key generation, certificate encoding or signing failed.
    #[error("could not generate {what}: {source}")]
    Generate {
        /// The certificate or key being made.
        what: String,
        /// The underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },

    /// Building a PKCS#12 keystore failed.
    #[error("could not build the PKCS#12 keystore {what}: {source}")]
    Keystore {
        /// The keystore being built.
        what: String,
        /// The underlying p12-keystore error.
        #[source]
        source: p12_keystore::error::Error,
    },

    /// The output directory could not be created or resolved to an absolute path.
    #[error("could not prepare the output directory {}: {source}", path.display())]
    OutDir {
        /// The directory, as given.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },

    /// A file could not be written (or, with `--force`, the old one removed).
    #[error("could not write {}: {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
}

/// One file `pki` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    /// Absolute path of the file.
    pub path: PathBuf,
    /// Whether the file holds secret material (a private key, an encrypted keystore or a
    /// password) and was therefore written with mode 0600.
    pub secret: bool,
}

/// What `pki` did: where, which files, and the keystore password the `.properties` files use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiReport {
    /// Absolute path of the output directory.
    pub out_dir: PathBuf,
    /// Every file written, in the order of writing.
    pub files: Vec<WrittenFile>,
    /// Password of every keystore and truststore (also inside every `.properties` file).
    pub password: String,
    /// Whether `password` was generated rather than given with `--password`.
    pub password_generated: bool,
    /// The JKS copies of the keystores (written by the JDK's keytool when it is there).
    pub jks: JksOutcome,
}

impl fmt::Display for PkiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = self.out_dir.display();
        let names: Vec<&str> = CLIENTS.iter().map(|c| c.name).collect();
        writeln!(
            f,
            "Wrote a development PKI ({} files) to {dir}",
            self.files.len()
        )?;
        writeln!(
            f,
            "  proxy server cert:  server.pem + server.key (chain to server-ca.pem)"
        )?;
        writeln!(f, "  client CA bundle:   acme-internal-client-ca.pem")?;
        writeln!(
            f,
            "  client identities:  {} (.pem .key .p12 .properties)",
            names.join(", ")
        )?;
        writeln!(f, "  Java truststore:    truststore.p12 (trusts server-ca)")?;
        writeln!(f, "  {}", self.jks)?;
        let origin = if self.password_generated {
            "generated"
        } else {
            "from --password"
        };
        writeln!(f, "Keystore password ({origin}): {}", self.password)?;
        write!(
            f,
            "Try: kafka-topics.sh --bootstrap-server localhost:9092 --command-config {dir}/client.properties --list"
        )
    }
}

/// Writes the development PKI described in the module documentation into `args.out`.
///
/// Refuses with [`PkiError::AlreadyExists`] — before writing anything — if any of the files
/// exists and `args.force` is false. Private keys, keystores and `.properties` files (which
/// contain the password) are written with mode 0600 on Unix.
pub fn run(args: &PkiArgs) -> Result<PkiReport, PkiError> {
    if args.validity_days == 0 || args.validity_days > MAX_VALIDITY_DAYS {
        return Err(PkiError::InvalidValidity(args.validity_days));
    }
    let (password, password_generated) = match &args.password {
        Some(p) if p.is_empty() => return Err(PkiError::EmptyPassword),
        Some(p) => (p.clone(), false),
        None => (generate_password(), true),
    };
    let server_sans = server_sans(&args.hosts)?;

    // The .properties files need absolute paths (Kafka resolves relative ones against the
    // client's working directory, not the file's), so the directory must exist first.
    fs::create_dir_all(&args.out).map_err(|source| PkiError::OutDir {
        path: args.out.clone(),
        source,
    })?;
    let out_dir = fs::canonicalize(&args.out).map_err(|source| PkiError::OutDir {
        path: args.out.clone(),
        source,
    })?;

    let now = OffsetDateTime::now_utc();
    let valid = Window {
        not_before: now - CLOCK_SKEW_ALLOWANCE,
        not_after: now + Duration::days(i64::from(args.validity_days)),
    };
    let files = generate(&out_dir, &server_sans, valid, now, &password)?;

    if !args.force {
        // Checked for every file before writing any, so a refusal leaves the directory as it was.
        // `symlink_metadata` also sees dangling symlinks, which `Path::exists` would miss.
        if let Some(existing) = files
            .iter()
            .map(|f| out_dir.join(&f.name))
            .chain(jks::file_names().iter().map(|name| out_dir.join(name)))
            .find(|p| fs::symlink_metadata(p).is_ok())
        {
            return Err(PkiError::AlreadyExists { path: existing });
        }
    }

    let mut written = Vec::with_capacity(files.len());
    for file in &files {
        let path = out_dir.join(&file.name);
        write_file(&path, &file.contents, file.secret)?;
        written.push(WrittenFile {
            path,
            secret: file.secret,
        });
    }
    let jks = if args.no_jks {
        JksOutcome::NotAsked
    } else {
        jks::convert(&out_dir, &password, &mut written)?
    };

    Ok(PkiReport {
        out_dir,
        files: written,
        password,
        password_generated,
        jks,
    })
}

/// The validity period of a certificate.
#[derive(Debug, Clone, Copy)]
struct Window {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

/// Which CA signs a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientIssuer {
    /// The real Acme intermediate, trusted through `acme-internal-client-ca.pem`.
    AcmeIntermediate,
    /// The impostor CA with the intermediate's name but its own key.
    Rogue,
}

/// One client identity: its subject, SANs, issuer, and what the proxy should make of it.
struct ClientSpec {
    /// File stem and PKCS#12 alias.
    name: &'static str,
    /// Subject attributes, most significant first (C, O, OU, CN), which is the order in the
    /// encoded name and so the reverse of the RFC 4514 string Kafka principals use.
    subject: &'static [(Attr, &'static str)],
    /// `uniformResourceIdentifier` SANs (SPIFFE IDs).
    uri_sans: &'static [&'static str],
    /// `dNSName` SANs.
    dns_sans: &'static [&'static str],
    issuer: ClientIssuer,
    /// Whether the validity lies entirely in the past.
    expired: bool,
    /// Whether the intermediate's CRL (`acme-intermediate-ca.crl.pem`) lists it.
    revoked: bool,
    /// What the proxy should do with it; goes into the `.properties` header.
    intent: &'static str,
}

/// The subject attributes the development PKI uses. A local enum rather than `rcgen::DnType`,
/// because the client table below is a `static` and `DnType` cannot be built in one.
#[derive(Debug, Clone, Copy)]
enum Attr {
    C,
    O,
    Ou,
    Cn,
}

impl Attr {
    fn dn_type(self) -> DnType {
        match self {
            Attr::C => DnType::CountryName,
            Attr::O => DnType::OrganizationName,
            Attr::Ou => DnType::OrganizationalUnitName,
            Attr::Cn => DnType::CommonName,
        }
    }
}

const ACME_ORG: &str = "Acme Inc";
const ACME_CLIENT_SUBJECT: &[(Attr, &str)] = &[
    (Attr::C, "US"),
    (Attr::O, ACME_ORG),
    (Attr::Ou, "payments"),
    (Attr::Cn, "acme-client"),
];
const ACME_CLIENT_URIS: &[&str] = &["spiffe://acme/payments"];
const ACME_CLIENT_DNS: &[&str] = &["acme-client.acme.internal"];
/// The intermediate's subject; the rogue CA copies it byte for byte.
const ACME_INTERMEDIATE_SUBJECT: &[(Attr, &str)] =
    &[(Attr::O, ACME_ORG), (Attr::Cn, "Acme Internal Client CA")];

/// The client identities, in the order their files are written.
static CLIENTS: [ClientSpec; 6] = [
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

/// A file to write: its name inside the output directory, its bytes, and whether it is secret.
struct OutFile {
    name: String,
    contents: Vec<u8>,
    secret: bool,
}

impl OutFile {
    fn public(name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            contents: contents.into(),
            secret: false,
        }
    }

    fn secret(name: impl Into<String>, contents: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            contents: contents.into(),
            secret: true,
        }
    }
}

/// A CA: its certificate together with what it needs to sign (name, key usages, key).
type Ca = CertifiedIssuer<'static, KeyPair>;

/// An issued end-entity certificate and its key.
struct Leaf {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// Generates every certificate, key, keystore and properties file, in memory.
fn generate(
    out_dir: &Path,
    server_sans: &[SanType],
    valid: Window,
    now: OffsetDateTime,
    password: &str,
) -> Result<Vec<OutFile>, PkiError> {
    let mut files = Vec::new();

    // Server side.
    let server_ca = self_signed_ca(
        "server-ca",
        &[(Attr::Cn, "kafka-mtls-proxy Dev Server CA")],
        BasicConstraints::Unconstrained,
        valid,
    )?;
    push_ca(&mut files, "server-ca", &server_ca);

    let server = leaf(
        "server",
        &[(Attr::Cn, "localhost")],
        server_sans.to_vec(),
        ExtendedKeyUsagePurpose::ServerAuth,
        valid,
        &server_ca,
    )?;
    push_leaf(&mut files, "server", &server, &server_ca);

    let broker = leaf(
        "broker",
        &[(Attr::Cn, "localhost")],
        host_sans(DEFAULT_SERVER_HOSTS)?,
        ExtendedKeyUsagePurpose::ServerAuth,
        valid,
        &server_ca,
    )?;
    push_leaf(&mut files, "broker", &broker, &server_ca);

    let upstream_client = leaf(
        "proxy-upstream-client",
        &[(Attr::Cn, "kafka-mtls-proxy")],
        Vec::new(),
        ExtendedKeyUsagePurpose::ClientAuth,
        valid,
        &server_ca,
    )?;
    push_leaf(
        &mut files,
        "proxy-upstream-client",
        &upstream_client,
        &server_ca,
    );

    // Client side: the real hierarchy.
    let acme_root = self_signed_ca(
        "acme-root-ca",
        &[(Attr::O, ACME_ORG), (Attr::Cn, "Acme Root CA")],
        BasicConstraints::Unconstrained,
        valid,
    )?;
    push_ca(&mut files, "acme-root-ca", &acme_root);

    // pathlen 0: the intermediate issues leaves only, so a stolen client key cannot be used to
    // mint further identities even if someone marks a leaf as a CA.
    let acme_intermediate = issued_ca(
        "acme-intermediate-ca",
        ACME_INTERMEDIATE_SUBJECT,
        BasicConstraints::Constrained(0),
        valid,
        &acme_root,
    )?;
    push_ca(&mut files, "acme-intermediate-ca", &acme_intermediate);

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
    push_ca(&mut files, "rogue-ca", &rogue_ca);

    // The truststore comes before the clients because their .properties files point at it.
    let truststore_name = "truststore.p12";
    files.push(OutFile::public(
        truststore_name,
        truststore(&server_ca, password)?,
    ));
    let truststore_path = out_dir.join(truststore_name);

    let expired = Window {
        not_before: now - Duration::days(30),
        not_after: now - Duration::days(1),
    };
    let mut revoked = Vec::new();
    for spec in &CLIENTS {
        let issuer = match spec.issuer {
            ClientIssuer::AcmeIntermediate => &acme_intermediate,
            ClientIssuer::Rogue => &rogue_ca,
        };
        let mut sans = Vec::new();
        for uri in spec.uri_sans {
            sans.push(SanType::URI(ia5(spec.name, uri)?));
        }
        for dns in spec.dns_sans {
            sans.push(SanType::DnsName(ia5(spec.name, dns)?));
        }
        let window = if spec.expired { expired } else { valid };
        let client = leaf(
            spec.name,
            spec.subject,
            sans,
            ExtendedKeyUsagePurpose::ClientAuth,
            window,
            issuer,
        )?;
        push_leaf(&mut files, spec.name, &client, issuer);
        if spec.revoked {
            revoked.push(revoked_entry(spec.name, &client, now)?);
        }

        let p12_name = format!("{}.p12", spec.name);
        files.push(OutFile::secret(
            p12_name.clone(),
            client_keystore(spec.name, &client, issuer, password)?,
        ));
        let properties = client_properties(
            spec,
            &out_dir.join(&p12_name),
            &truststore_path,
            password,
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
    }

    // The intermediate's CRL, listing the `revoked` client; valid for the PKI's lifetime.
    let crl = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: valid.not_after,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&acme_intermediate)
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

    Ok(files)
}

/// The CRL entry for an issued certificate: its serial, revoked an hour ago.
fn revoked_entry(
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

fn self_signed_ca(
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

fn issued_ca(
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

fn leaf(
    what: &str,
    subject: &[(Attr, &str)],
    sans: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    window: Window,
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
    let key = new_key(what)?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| PkiError::Generate {
            what: format!("the {what} certificate"),
            source,
        })?;
    Ok(Leaf { cert, key })
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

fn ia5(what: &str, value: &str) -> Result<Ia5String, PkiError> {
    Ia5String::try_from(value).map_err(|source| PkiError::Generate {
        what: format!("the {what} SAN {value:?}"),
        source,
    })
}

/// The proxy server certificate's SANs: the defaults plus every `--host`, without duplicates.
fn server_sans(extra_hosts: &[String]) -> Result<Vec<SanType>, PkiError> {
    host_sans(
        DEFAULT_SERVER_HOSTS
            .into_iter()
            .chain(extra_hosts.iter().map(String::as_str)),
    )
}

/// One SAN per host, in order, without duplicates.
fn host_sans<'a>(hosts: impl IntoIterator<Item = &'a str>) -> Result<Vec<SanType>, PkiError> {
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
                rustls_pki_types::DnsName::try_from(host).map_err(|_| invalid())?;
                SanType::DnsName(Ia5String::try_from(host).map_err(|_| invalid())?)
            }
        };
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    Ok(sans)
}

fn p12_cert(what: &str, der: &[u8]) -> Result<p12_keystore::Certificate, PkiError> {
    p12_keystore::Certificate::from_der(der).map_err(|source| PkiError::Keystore {
        what: what.to_owned(),
        source,
    })
}

/// A PKCS#12 keystore with one private-key entry, alias `name`, holding the key and the chain
/// leaf → issuer (the root stays out: the proxy has it, and sending it gains nothing).
fn client_keystore(
    name: &str,
    leaf: &Leaf,
    issuer: &Ca,
    password: &str,
) -> Result<Vec<u8>, PkiError> {
    let what = format!("{name}.p12");
    let keystore_err = |source| PkiError::Keystore {
        what: what.clone(),
        source,
    };
    let key =
        p12_keystore::PrivateKey::from_der(leaf.key.serialized_der()).map_err(keystore_err)?;
    let chain = vec![
        p12_cert(&what, leaf.cert.der())?,
        p12_cert(&what, issuer.der())?,
    ];
    // The local key id ties the key bag to its certificate bag; the SHA-1 of the certificate is
    // what OpenSSL and Java use, and it is unique per certificate.
    let local_key_id = Sha1::digest(leaf.cert.der().as_ref()).to_vec();
    let mut keystore = KeyStore::new();
    keystore.add_entry(
        name,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id, key, chain)),
    );
    keystore.writer(password).write().map_err(keystore_err)
}

/// A PKCS#12 truststore with `server-ca` as a trusted-certificate entry.
///
/// Java only treats a certificate bag in a PKCS#12 file as a trust anchor when the bag carries
/// Oracle's trusted-key-usage attribute (OID 2.16.840.1.113894.746875.1.1); without it the
/// store loads but holds no trustedCertEntry. p12-keystore 0.4 adds that attribute to every
/// certificate-only entry (`KeyStoreEntry::Certificate`), which is what this relies on; the
/// unit tests and `keytool -list` confirm it.
fn truststore(server_ca: &Ca, password: &str) -> Result<Vec<u8>, PkiError> {
    let what = "truststore.p12";
    let mut keystore = KeyStore::new();
    keystore.add_entry(
        "server-ca",
        KeyStoreEntry::Certificate(p12_cert(what, server_ca.der())?),
    );
    keystore
        .writer(password)
        .write()
        .map_err(|source| PkiError::Keystore {
            what: what.to_owned(),
            source,
        })
}

/// A Kafka client configuration that `--command-config` accepts unchanged; `store_type` is
/// `PKCS12` or `JKS`, for both stores.
fn client_properties(
    spec: &ClientSpec,
    keystore: &Path,
    truststore: &Path,
    password: &str,
    store_type: &str,
) -> String {
    let keystore = properties_value(&keystore.to_string_lossy());
    let truststore = properties_value(&truststore.to_string_lossy());
    let password = properties_value(password);
    format!(
        "# Kafka client config for the development identity \"{name}\" (kafka-mtls-proxy pki).\n\
         # {intent}.\n\
         # Development certificates only. Regenerate with: kafka-mtls-proxy pki --force\n\
         security.protocol=SSL\n\
         ssl.keystore.type={store_type}\n\
         ssl.keystore.location={keystore}\n\
         ssl.keystore.password={password}\n\
         ssl.key.password={password}\n\
         ssl.truststore.type={store_type}\n\
         ssl.truststore.location={truststore}\n\
         ssl.truststore.password={password}\n",
        name = spec.name,
        intent = spec.intent,
    )
}

/// Escapes a value for a Java `.properties` file.
///
/// Kafka's command-line tools load these with `Properties.load(InputStream)`, which reads
/// ISO-8859-1 and treats `\` as an escape and leading blanks as separators; so backslashes are
/// doubled, a leading space is escaped, and anything outside printable ASCII becomes `\uXXXX`
/// (UTF-16 code units). Paths and generated passwords are plain ASCII and pass unchanged.
fn properties_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            ' ' if i == 0 => out.push_str("\\ "),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        }
    }
    out
}

fn generate_password() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(GENERATED_PASSWORD_LEN)
        .map(char::from)
        .collect()
}

/// Writes `contents` to `path`. Secret files get mode 0600 from the moment they exist, so the
/// key is never readable by others, not even briefly.
fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<(), PkiError> {
    let err = |source| PkiError::Write {
        path: path.to_owned(),
        source,
    };
    // Removing first (only reached with --force, or when the file appeared since the check)
    // means the new file is created with the right mode, rather than inheriting a wider mode
    // of the old one, and that a symlink in its place is replaced instead of followed.
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)
}

#[cfg(test)]
#[allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed expectation in a test is the test failing"
)]
mod tests {
    use super::*;

    use p12_keystore::Pkcs12ImportPolicy;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, UnixTime};
    use x509_parser::prelude::{FromDer, X509Certificate};

    /// Every file `run` must write, in the directory it writes them to.
    const EXPECTED_FILES: &[&str] = &[
        "server-ca.pem",
        "server-ca.key",
        "server.pem",
        "server.key",
        "broker.pem",
        "broker.key",
        "proxy-upstream-client.pem",
        "proxy-upstream-client.key",
        "acme-root-ca.pem",
        "acme-root-ca.key",
        "acme-intermediate-ca.pem",
        "acme-intermediate-ca.key",
        "acme-internal-client-ca.pem",
        "rogue-ca.pem",
        "rogue-ca.key",
        "truststore.p12",
        "acme-client.pem",
        "acme-client.key",
        "acme-client.p12",
        "acme-client.properties",
        "client.properties",
        "acme-analytics.pem",
        "acme-analytics.key",
        "acme-analytics.p12",
        "acme-analytics.properties",
        "outsider.pem",
        "outsider.key",
        "outsider.p12",
        "outsider.properties",
        "expired.pem",
        "expired.key",
        "expired.p12",
        "expired.properties",
        "rogue.pem",
        "rogue.key",
        "rogue.p12",
        "rogue.properties",
        "revoked.pem",
        "revoked.key",
        "revoked.p12",
        "revoked.properties",
        "acme-intermediate-ca.crl.pem",
    ];

    const PASSWORD: &str = "test-password";

    fn args(out: &Path) -> PkiArgs {
        PkiArgs {
            out: out.to_owned(),
            password: Some(PASSWORD.to_owned()),
            hosts: vec!["kafka.example.test".to_owned(), "10.1.2.3".to_owned()],
            no_jks: true, // keytool costs a JVM start per keystore; src/pki/jks.rs tests it
            ..PkiArgs::default()
        }
    }

    fn generated() -> (tempfile::TempDir, PkiReport) {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = run(&args(&dir.path().join("certs"))).expect("pki run");
        (dir, report)
    }

    fn pem_chain(report: &PkiReport, name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(report.out_dir.join(name))
            .expect("open pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse pem")
    }

    fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
        let (rest, cert) = X509Certificate::from_der(der.as_ref()).expect("parse x509");
        assert!(rest.is_empty(), "trailing bytes after certificate");
        cert
    }

    fn is_ca(cert: &X509Certificate<'_>) -> bool {
        cert.basic_constraints()
            .expect("basicConstraints parses")
            .is_some_and(|bc| bc.value.ca)
    }

    /// Verifies `chain[0]` as a client certificate against `anchors`, with `chain[1..]` as
    /// intermediates — what the proxy's verifier does.
    fn verify_client(
        chain: &[CertificateDer<'static>],
        anchors: &[CertificateDer<'static>],
        at: UnixTime,
    ) -> Result<(), webpki::Error> {
        let anchors: Vec<_> = anchors
            .iter()
            .map(|a| webpki::anchor_from_trusted_cert(a).expect("anchor"))
            .collect();
        let ee = webpki::EndEntityCert::try_from(&chain[0]).expect("end entity");
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            at,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
    }

    #[test]
    fn writes_every_file_and_only_those() {
        let (_dir, report) = generated();
        let written: Vec<String> = report
            .files
            .iter()
            .map(|f| {
                f.path
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(written, EXPECTED_FILES);
        for file in &report.files {
            assert!(file.path.is_absolute());
            let meta = fs::metadata(&file.path).expect("file exists");
            assert!(meta.len() > 0, "{} is empty", file.path.display());
        }
        assert_eq!(report.password, PASSWORD);
        assert!(!report.password_generated);
    }

    #[cfg(unix)]
    #[test]
    fn private_keys_are_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let (_dir, report) = generated();
        for file in &report.files {
            let mode = fs::metadata(&file.path).expect("meta").permissions().mode() & 0o777;
            let name = file.path.to_string_lossy();
            if name.ends_with(".key") || name.ends_with(".properties") {
                assert!(file.secret, "{name} must be marked secret");
            }
            if file.secret {
                assert_eq!(mode, 0o600, "{name}");
            } else {
                assert_eq!(mode & 0o077 & !0o044, 0, "{name} is group/world writable");
            }
        }
    }

    #[test]
    fn keys_are_pkcs8_p256() {
        let (_dir, report) = generated();
        for file in report
            .files
            .iter()
            .filter(|f| f.path.extension().is_some_and(|e| e == "key"))
        {
            let pem = fs::read_to_string(&file.path).expect("read key");
            assert!(
                pem.starts_with("-----BEGIN PRIVATE KEY-----"),
                "{}",
                file.path.display()
            );
            let key = KeyPair::from_pem(&pem).expect("key parses");
            assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        }
    }

    #[test]
    fn client_chain_verifies_to_the_bundle() {
        let (_dir, report) = generated();
        let bundle = pem_chain(&report, "acme-internal-client-ca.pem");
        assert_eq!(bundle.len(), 2, "bundle = intermediate then root");
        let (intermediate, root) = (parse(&bundle[0]), parse(&bundle[1]));
        assert_eq!(root.subject(), root.issuer(), "root is self-signed");
        assert_eq!(intermediate.issuer(), root.subject());
        assert!(is_ca(&root) && is_ca(&intermediate));
        let bc = intermediate
            .basic_constraints()
            .expect("bc")
            .expect("present");
        assert_eq!(bc.value.path_len_constraint, Some(0));

        for name in ["acme-client", "acme-analytics", "outsider"] {
            let chain = pem_chain(&report, &format!("{name}.pem"));
            assert_eq!(chain.len(), 2, "{name}.pem = leaf then intermediate");
            assert_eq!(chain[1], bundle[0]);
            let leaf = parse(&chain[0]);
            assert_eq!(leaf.issuer(), intermediate.subject());
            assert!(!is_ca(&leaf));
            let eku = leaf.extended_key_usage().expect("eku").expect("present");
            assert!(eku.value.client_auth && !eku.value.server_auth);
            // Only the root is a trust anchor; the intermediate must come from the chain.
            verify_client(&chain, &bundle[1..], UnixTime::now())
                .unwrap_or_else(|e| panic!("{name} does not verify: {e:?}"));
        }

        let client_chain = pem_chain(&report, "acme-client.pem");
        let client = parse(&client_chain[0]);
        assert_eq!(
            client.subject().to_string(),
            "C=US, O=Acme Inc, OU=payments, CN=acme-client"
        );
        let sans = client
            .subject_alternative_name()
            .expect("san")
            .expect("present");
        let sans: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            sans,
            [
                "URI(spiffe://acme/payments)",
                "DNSName(acme-client.acme.internal)"
            ]
        );
    }

    #[test]
    fn rogue_leaf_does_not_chain_to_the_real_intermediate() {
        let (_dir, report) = generated();
        let bundle = pem_chain(&report, "acme-internal-client-ca.pem");
        let rogue = pem_chain(&report, "rogue.pem");
        let rogue_ca = pem_chain(&report, "rogue-ca.pem");
        let real = pem_chain(&report, "acme-client.pem");

        // Same names everywhere: only the keys differ.
        let (rogue_leaf, real_leaf) = (parse(&rogue[0]), parse(&real[0]));
        assert_eq!(rogue_leaf.subject(), real_leaf.subject());
        assert_eq!(rogue_leaf.issuer(), real_leaf.issuer());
        assert_eq!(parse(&rogue_ca[0]).subject(), parse(&bundle[0]).subject());
        assert_ne!(
            parse(&rogue_ca[0]).public_key().raw,
            parse(&bundle[0]).public_key().raw
        );

        // With the real bundle, neither the rogue's own chain nor the real intermediate help.
        let err =
            verify_client(&rogue, &bundle[1..], UnixTime::now()).expect_err("rogue via its CA");
        assert!(matches!(err, webpki::Error::UnknownIssuer), "{err:?}");
        let via_real = [rogue[0].clone(), bundle[0].clone()];
        let err = verify_client(&via_real, &bundle[1..], UnixTime::now())
            .expect_err("rogue via the real intermediate");
        // The issuer name matches, so the verifier tries the real intermediate's key — and the
        // signature does not verify under it.
        assert!(
            matches!(err, webpki::Error::InvalidSignatureForPublicKey),
            "{err:?}"
        );
        // Even with the real intermediate itself as a trust anchor, the signature does not match.
        let err = verify_client(&rogue[..1], &bundle[..1], UnixTime::now())
            .expect_err("rogue against the intermediate anchor");
        assert!(
            matches!(err, webpki::Error::InvalidSignatureForPublicKey),
            "{err:?}"
        );

        // Sanity: it is a well-formed certificate that its own CA does vouch for.
        verify_client(&rogue[..1], &rogue_ca, UnixTime::now()).expect("rogue verifies to rogue-ca");
    }

    #[test]
    fn expired_certificate_is_in_the_past() {
        let (_dir, report) = generated();
        let chain = pem_chain(&report, "expired.pem");
        let leaf = parse(&chain[0]);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert!(leaf.validity().not_after.timestamp() < now);
        assert!(leaf.validity().not_before.timestamp() < leaf.validity().not_after.timestamp());
        let bundle = pem_chain(&report, "acme-internal-client-ca.pem");
        let err = verify_client(&chain, &bundle[1..], UnixTime::now()).expect_err("expired");
        assert!(matches!(err, webpki::Error::CertExpired { .. }), "{err:?}");
    }

    #[test]
    fn server_certificate_names_and_chain() {
        let (_dir, report) = generated();
        let ca = pem_chain(&report, "server-ca.pem");
        let anchors = [webpki::anchor_from_trusted_cert(&ca[0]).expect("anchor")];
        for name in ["server", "broker"] {
            let chain = pem_chain(&report, &format!("{name}.pem"));
            assert_eq!(chain.len(), 2);
            assert_eq!(chain[1], ca[0]);
            let ee = webpki::EndEntityCert::try_from(&chain[0]).expect("ee");
            ee.verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &chain[1..],
                UnixTime::now(),
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            for host in ["localhost", "127.0.0.1"] {
                let sn = rustls_pki_types::ServerName::try_from(host).expect("name");
                ee.verify_is_valid_for_subject_name(&sn)
                    .unwrap_or_else(|e| panic!("{name} not valid for {host}: {e:?}"));
            }
        }
        let server = pem_chain(&report, "server.pem");
        let ee = webpki::EndEntityCert::try_from(&server[0]).expect("ee");
        for host in ["kafka.example.test", "10.1.2.3"] {
            let sn = rustls_pki_types::ServerName::try_from(host).expect("name");
            ee.verify_is_valid_for_subject_name(&sn)
                .unwrap_or_else(|e| panic!("--host {host} missing: {e:?}"));
        }

        let upstream = pem_chain(&report, "proxy-upstream-client.pem");
        verify_client(&upstream, &ca, UnixTime::now()).expect("upstream client cert verifies");
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("certs");
        let first = run(&args(&out)).expect("first run");
        let key_before = fs::read(out.join("server-ca.key")).expect("read");

        match run(&args(&out)) {
            Err(PkiError::AlreadyExists { path }) => {
                assert_eq!(path, first.out_dir.join("server-ca.pem"));
            }
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(
            fs::read(out.join("server-ca.key")).expect("read"),
            key_before
        );

        // A single leftover file is enough to refuse, and it is the one named.
        fs::remove_dir_all(&out).expect("clean");
        fs::create_dir_all(&out).expect("mkdir");
        fs::write(out.join("outsider.p12"), b"keep me").expect("write");
        match run(&args(&out)) {
            Err(PkiError::AlreadyExists { path }) => assert!(path.ends_with("outsider.p12")),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(
            fs::read(out.join("outsider.p12")).expect("read"),
            b"keep me"
        );
        assert_eq!(
            fs::read_dir(&out).expect("ls").count(),
            1,
            "nothing else written"
        );

        let forced = run(&PkiArgs {
            no_jks: true,
            force: true,
            ..args(&out)
        })
        .expect("forced run");
        assert_eq!(forced.files.len(), EXPECTED_FILES.len());
        assert_ne!(
            fs::read(out.join("server-ca.key")).expect("read"),
            key_before
        );
    }

    #[test]
    fn keystores_parse_back_with_the_password() {
        let (_dir, report) = generated();
        for spec in &CLIENTS {
            let data = fs::read(report.out_dir.join(format!("{}.p12", spec.name))).expect("read");
            let ks = KeyStore::from_pkcs12(&data, PASSWORD, Pkcs12ImportPolicy::Strict)
                .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
            assert_eq!(ks.entries_len(), 1);
            let Some(KeyStoreEntry::PrivateKeyChain(chain)) = ks.entry(spec.name) else {
                panic!("{}: no private key entry under its alias", spec.name);
            };
            let pem = pem_chain(&report, &format!("{}.pem", spec.name));
            let ders: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
            let expected: Vec<&[u8]> = pem.iter().map(|c| c.as_ref()).collect();
            assert_eq!(ders, expected, "{}: chain = leaf then issuer", spec.name);
            let key_pem = fs::read_to_string(report.out_dir.join(format!("{}.key", spec.name)))
                .expect("read key");
            let key = KeyPair::from_pem(&key_pem).expect("key");
            assert_eq!(chain.key().as_der(), key.serialized_der());

            assert!(
                KeyStore::from_pkcs12(&data, "wrong", Pkcs12ImportPolicy::Strict).is_err(),
                "{}: wrong password accepted",
                spec.name
            );
        }

        let data = fs::read(report.out_dir.join("truststore.p12")).expect("read");
        let ks =
            KeyStore::from_pkcs12(&data, PASSWORD, Pkcs12ImportPolicy::Strict).expect("truststore");
        // Strict import keeps a certificate-only bag only when it carries the Java
        // trusted-certificate attribute, so this also proves the attribute is there.
        assert_eq!(ks.entries_len(), 1);
        let Some(KeyStoreEntry::Certificate(cert)) = ks.entry("server-ca") else {
            panic!("no trusted server-ca entry");
        };
        assert_eq!(
            cert.as_der(),
            pem_chain(&report, "server-ca.pem")[0].as_ref()
        );
        let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, PASSWORD).expect("archive");
        assert!(archive.certs.iter().all(|c| c.trusted));
    }

    #[test]
    fn properties_point_at_absolute_keystores() {
        let (_dir, report) = generated();
        let client = fs::read_to_string(report.out_dir.join("client.properties")).expect("read");
        let acme = fs::read_to_string(report.out_dir.join("acme-client.properties")).expect("read");
        assert_eq!(client, acme);
        for spec in &CLIENTS {
            let text = fs::read_to_string(report.out_dir.join(format!("{}.properties", spec.name)))
                .expect("read");
            let value = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or_else(|| panic!("{}: {key} missing", spec.name))
                    .to_owned()
            };
            assert_eq!(value("security.protocol"), "SSL");
            assert_eq!(value("ssl.keystore.type"), "PKCS12");
            assert_eq!(value("ssl.truststore.type"), "PKCS12");
            for key in [
                "ssl.keystore.password",
                "ssl.key.password",
                "ssl.truststore.password",
            ] {
                assert_eq!(value(key), PASSWORD);
            }
            let keystore = PathBuf::from(value("ssl.keystore.location"));
            assert!(keystore.is_absolute() && keystore.is_file());
            assert!(keystore.ends_with(format!("{}.p12", spec.name)));
            let truststore = PathBuf::from(value("ssl.truststore.location"));
            assert!(truststore.is_absolute() && truststore.is_file());
            assert!(text.starts_with('#') && text.contains(spec.intent));
        }
    }

    #[test]
    fn generated_password_and_argument_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let report = run(&PkiArgs {
            no_jks: true,
            out: dir.path().to_owned(),
            ..PkiArgs::default()
        })
        .expect("run");
        assert!(report.password_generated);
        assert_eq!(report.password.len(), GENERATED_PASSWORD_LEN);
        assert!(report.password.chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(report.to_string().contains(&report.password));

        let bad = |args: PkiArgs| run(&args).expect_err("must be refused");
        let out = dir.path().join("other");
        assert!(matches!(
            bad(PkiArgs {
                no_jks: true,
                out: out.clone(),
                validity_days: 0,
                ..PkiArgs::default()
            }),
            PkiError::InvalidValidity(0)
        ));
        assert!(matches!(
            bad(PkiArgs {
                no_jks: true,
                out: out.clone(),
                password: Some(String::new()),
                ..PkiArgs::default()
            }),
            PkiError::EmptyPassword
        ));
        assert!(matches!(
            bad(PkiArgs {
                no_jks: true,
                out: out.clone(),
                hosts: vec!["bücher.example".into()],
                ..PkiArgs::default()
            }),
            PkiError::InvalidHost { .. }
        ));
        assert!(matches!(
            bad(PkiArgs {
                no_jks: true,
                out: out.clone(),
                hosts: vec!["two words".into()],
                ..PkiArgs::default()
            }),
            PkiError::InvalidHost { .. }
        ));
        assert!(
            !out.exists(),
            "argument errors are reported before anything is created"
        );
    }

    #[test]
    fn properties_values_are_escaped_for_java() {
        assert_eq!(properties_value("/tmp/certs/a.p12"), "/tmp/certs/a.p12");
        assert_eq!(properties_value(r"C:\certs"), r"C:\\certs");
        assert_eq!(properties_value(" x y"), r"\ x y");
        assert_eq!(properties_value("é😀"), r"\u00E9\uD83D\uDE00");
    }

    #[test]
    fn cli_defaults() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            pki: PkiArgs,
        }
        let cli = Cli::try_parse_from(["pki"]).expect("defaults parse");
        assert_eq!(cli.pki, PkiArgs::default());
        let cli = Cli::try_parse_from([
            "pki",
            "--out",
            "x",
            "--force",
            "--validity-days",
            "10",
            "--password",
            "p",
            "--host",
            "a.example",
            "--host",
            "10.0.0.1",
        ])
        .expect("parse");
        assert_eq!(cli.pki.hosts, ["a.example", "10.0.0.1"]);
        assert!(cli.pki.force && cli.pki.validity_days == 10);
        assert!(Cli::try_parse_from(["pki", "--validity-days", "0"]).is_err());
    }

    /// Writes a PKI for inspection by hand:
    /// `PKI_OUT=/tmp/pki cargo test --bin kafka-mtls-proxy tools::pki::tests::write_for_inspection -- --ignored --nocapture`
    #[test]
    #[ignore = "writes into $PKI_OUT for manual keytool/openssl checks"]
    fn write_for_inspection() {
        let out = std::env::var_os("PKI_OUT")
            .map_or_else(|| PathBuf::from("/tmp/pki-dev"), PathBuf::from);
        let report = run(&PkiArgs {
            no_jks: true,
            out,
            force: true,
            ..PkiArgs::default()
        })
        .expect("run");
        println!("{report}");
    }
}
